//! The stack file parser and validator over arbitrary text: every problem must come
//! back as a diagnostic with a position inside the text, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(diagnostics) = bellows_core::stack::parse(text) {
        assert!(!diagnostics.is_empty());
        let lines = text.split('\n').count();
        for d in &diagnostics {
            assert!(d.line >= 1 && d.line <= lines.max(1), "{d:?} in {lines} lines");
        }
    }
});
