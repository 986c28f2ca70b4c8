//! Plays arbitrary bytes as the peer of a handshake (the acceptor side): it must refuse or
//! succeed, never panic, and never authenticate without the secret.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Forging the proof without the secret is infeasible: the handshake must never succeed.
    assert!(coact_net::handshake_for_fuzzing(data).is_err());
});
