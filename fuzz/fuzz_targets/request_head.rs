//! The proxy's request-head parser over arbitrary bytes from a client.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bellows_proxy::fuzzing::request_heads(data);
});
