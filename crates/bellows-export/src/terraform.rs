//! `bellows export terraform`.
