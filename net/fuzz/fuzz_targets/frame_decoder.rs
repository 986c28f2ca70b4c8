//! Feeds arbitrary bytes to the frame decoder a link runs: length prefixes, bincode frames.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = coact_net::decode_frame_for_fuzzing(data);
});
