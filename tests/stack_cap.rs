//! Reaching the cap on live coroutines is a clear error, not a crash, and the runtime keeps
//! working once coroutines finish. (Alone in its test binary: the count is process-wide, so
//! the tests here also take turns.)

mod common;

use std::panic::catch_unwind;
use std::sync::Mutex;

use coact::sync::mpsc::channel;
use common::bounded;

/// Held by each test for its whole run: the live-coroutine count they read is the process's.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn spawning_past_the_cap_is_a_clear_error_and_the_runtime_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
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

#[test]
fn stack_cap_makes_try_spawn_fail_and_recovers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const CAP: usize = 8;
    for workers in [1, 2] {
        bounded(move || {
            let rt = coact::Runtime::builder()
                .workers(workers)
                .max_stacks(CAP)
                .build()
                .expect("building a runtime");
            rt.block_on(|| {
                let fill = || {
                    let mut parked = Vec::new();
                    loop {
                        let (tx, rx) = channel::<()>();
                        match coact::try_spawn(move || {
                            let _ = rx.recv();
                        }) {
                            Ok(h) => parked.push((tx, h)),
                            Err(_) => break,
                        }
                        assert!(parked.len() <= CAP, "more than {CAP} live coroutines");
                    }
                    parked
                };
                let parked = fill();
                assert!(
                    !parked.is_empty() && parked.len() <= CAP,
                    "{} parked",
                    parked.len()
                );
                let at_cap = parked.len();
                // spawn (unlike try_spawn) panics at the cap, like std::thread::spawn.
                let r = catch_unwind(|| {
                    let _h = coact::spawn(|| ());
                });
                assert!(r.is_err(), "coact::spawn at the stack cap must panic");

                // Let them all finish; the stacks come back (perhaps a moment after join).
                for (tx, h) in parked {
                    drop(tx);
                    h.join().unwrap();
                }
                let mut tries = 0u32;
                let h = loop {
                    match coact::try_spawn(|| 1) {
                        Ok(h) => break h,
                        Err(_) => {
                            tries += 1;
                            assert!(tries < 100_000, "stacks never came back after join");
                            coact::yield_now();
                        }
                    }
                };
                assert_eq!(h.join().unwrap(), 1);
                // Eventually the full capacity is available again.
                let mut tries = 0u32;
                loop {
                    let parked = fill();
                    let n = parked.len();
                    for (tx, h) in parked {
                        drop(tx);
                        h.join().unwrap();
                    }
                    if n == at_cap {
                        break;
                    }
                    tries += 1;
                    assert!(tries < 10_000, "capacity stuck at {n} < {at_cap}");
                    coact::yield_now();
                }
            });
            drop(rt);
        });
    }
}
