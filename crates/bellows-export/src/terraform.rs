//! `bellows export terraform`.

use bellows_core::stack::Stack;

use crate::Export;

pub fn export(_stack: &Stack, _src: &str) -> Export {
    Export::default()
}
