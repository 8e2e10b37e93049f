//! The reader of a target's response head over arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bellows_proxy::fuzzing::response_head(data);
});
