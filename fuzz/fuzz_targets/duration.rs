//! The duration parser over arbitrary text: a parsed duration prints back to one that
//! parses to the same value.
#![no_main]

use bellows_core::Duration;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = text.parse::<Duration>() {
        let shown = d.to_string();
        assert_eq!(shown.parse::<Duration>().ok(), Some(d), "{text:?} shown as {shown}");
    }
});
