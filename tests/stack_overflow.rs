//! A coroutine that overflows its stack makes the process print a sentence naming the problem
//! and abort, instead of dying with a bare SIGSEGV.
//!
//! The overflow runs in a child process (this test binary, re-run with an environment
//! variable), and the parent checks the child's exit and its stderr.

use std::process::Command;

const CHILD: &str = "COACT_OVERFLOW_CHILD";

#[inline(never)]
fn recurse(depth: u64, sink: &mut [u8; 512]) -> u64 {
    let mut local = [0u8; 512];
    local[(depth % 512) as usize] = depth as u8;
    sink[0] = sink[0].wrapping_add(local[0]);
    // black_box keeps the frame and the recursion from being optimised away.
    std::hint::black_box(&mut local);
    if depth == u64::MAX {
        return 0; // never: only here so that the function can return
    }
    recurse(depth + 1, &mut local) + u64::from(sink[0])
}

#[test]
fn stack_overflow_in_a_coroutine_is_reported_then_aborts() {
    if std::env::var_os(CHILD).is_some() {
        let rt = coact::Runtime::builder()
            .workers(1)
            .stack_size(64 * 1024)
            .build()
            .unwrap();
        rt.block_on(|| {
            let mut sink = [0u8; 512];
            recurse(0, &mut sink)
        });
        unreachable!("the recursion never returns");
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "stack_overflow_in_a_coroutine_is_reported_then_aborts",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .expect("run the child");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the child should have died; stderr: {stderr}"
    );
    assert!(
        stderr.contains("overflowed its stack of 64 KiB"),
        "the child's stderr should name the overflow: {stderr}"
    );
}
