//! The chunked-body decoder (requests and responses) over arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bellows_proxy::fuzzing::chunked_body(data);
});
