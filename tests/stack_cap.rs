//! Reaching the cap on live coroutines is a clear error, not a crash, and the runtime keeps
//! working once coroutines finish. (Alone in its test binary: the count is process-wide.)

use coact::sync::mpsc::channel;

#[test]
fn spawning_past_the_cap_is_a_clear_error_and_the_runtime_recovers() {
    const CAP: usize = 64;
    let rt = coact::Runtime::builder()
        .workers(2)
        .max_stacks(CAP)
        .build()
        .unwrap();
    let (release_tx, release_rx) = channel::<()>();
    let release_rx = std::sync::Arc::new(coact::sync::Mutex::new(release_rx));
    // Fill the cap with coroutines that wait for a release signal.
    let mut held = Vec::new();
    let err = loop {
        let rx = release_rx.clone();
        match rt.try_spawn(move || {
            let _ = rx.lock().unwrap().recv();
        }) {
            Ok(h) => held.push(h),
            Err(e) => break e,
        }
        assert!(held.len() <= CAP, "the cap of {CAP} was not enforced");
    };
    assert_eq!(held.len(), CAP);
    assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory);
    let msg = err.to_string();
    assert!(
        msg.contains("cap is 64") && msg.contains("max_stacks"),
        "unclear error: {msg}"
    );

    // `spawn` (not `try_spawn`) panics with the same sentence, like std::thread::spawn.
    let panic = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.spawn(|| ())))
        .expect_err("spawn past the cap panics");
    let text = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("max_stacks"), "{text}");

    // Release them all; afterwards spawning works again.
    for _ in 0..CAP {
        release_tx.send(()).unwrap();
    }
    for h in held {
        h.join().unwrap();
    }
    assert_eq!(rt.block_on(|| 7), 7);
}
