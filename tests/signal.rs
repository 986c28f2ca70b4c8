//! `coact::signal`: Unix signals received like messages. A `recv` parks only its coroutine
//! until the signal arrives (on 1, 2 and 4 workers) and blocks a plain thread the same way;
//! `try_recv` never parks; repeats coalesce; every watcher hears a signal; `recv_timeout`
//! gives up; a handle's `close` ends a parked wait from another thread; a persistent `Select`
//! waits on a channel and a `Signals` together, registering once; a coroutine parked in `recv`
//! when its runtime ends is unwound; signals that cannot be handled are refused; a signal
//! stays caught while any watcher is left, and takes its default action again (here: ends a
//! child process) once none is.
//!
//! Signals belong to the whole process and the tests of this file run in parallel, so each
//! test watches signals no other test uses. Every watched signal is caught before it is raised
//! (a `Signals` exists first), so none takes its default action.

mod common;

use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coact::select::Select;
use coact::signal::{self, Signals, SignalsHandle};
use coact::sync::mpsc::{channel, sync_channel};
use common::{bounded, on_workers, DropCounter, WORKER_COUNTS};

#[test]
fn recv_parks_only_its_coroutine_until_the_signal_arrives() {
    for &n in &WORKER_COUNTS {
        let got = on_workers(n, || {
            let signals = Signals::new([signal::SIGUSR1]).unwrap();
            let (ready_tx, ready_rx) = channel();
            let waiter = coact::spawn(move || {
                ready_tx.send(()).unwrap();
                // Nothing has raised the signal yet: this parks. On one worker, this
                // coroutine runs up to the park before the main one runs again, so the main
                // one running on proves the park left the worker free.
                signals.recv()
            });
            ready_rx.recv().unwrap();
            signal::raise(signal::SIGUSR1).unwrap();
            waiter.join().unwrap()
        });
        assert_eq!(got, Ok(signal::SIGUSR1), "workers={n}");
    }
}

#[test]
fn try_recv_never_parks_and_repeats_coalesce() {
    on_workers(1, || {
        let signals = Signals::new([signal::SIGUSR2, signal::SIGWINCH]).unwrap();
        assert_eq!(signals.try_recv(), Err(TryRecvError::Empty));
        // Raised three times before anyone looks: received once, as the kernel would.
        for _ in 0..3 {
            signal::raise(signal::SIGUSR2).unwrap();
        }
        signal::raise(signal::SIGWINCH).unwrap();
        let mut got: Vec<i32> = signals.try_iter().collect();
        got.sort_unstable();
        let mut want = vec![signal::SIGUSR2, signal::SIGWINCH];
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(signals.try_recv(), Err(TryRecvError::Empty));
        // A signal raised after the pipe was drained is seen again.
        signal::raise(signal::SIGWINCH).unwrap();
        assert_eq!(signals.try_recv(), Ok(signal::SIGWINCH));
        assert_eq!(signals.try_recv(), Err(TryRecvError::Empty));
    });
}

#[test]
fn every_watcher_receives_the_signal() {
    on_workers(2, || {
        let a = Signals::new([libc::SIGURG]).unwrap();
        let b = Signals::new([libc::SIGURG]).unwrap();
        signal::raise(libc::SIGURG).unwrap();
        let ha = coact::spawn(move || a.recv_timeout(Duration::from_secs(30)));
        let hb = coact::spawn(move || b.recv_timeout(Duration::from_secs(30)));
        assert_eq!(ha.join().unwrap(), Ok(libc::SIGURG));
        assert_eq!(hb.join().unwrap(), Ok(libc::SIGURG));
    });
}

#[test]
fn recv_timeout_gives_up_then_receives() {
    on_workers(1, || {
        let signals = Signals::new([libc::SIGVTALRM]).unwrap();
        let start = Instant::now();
        let r = signals.recv_timeout(Duration::from_millis(50));
        let waited = start.elapsed();
        assert_eq!(r, Err(RecvTimeoutError::Timeout));
        assert!(
            waited >= Duration::from_millis(50),
            "gave up after {waited:?}"
        );
        assert!(waited < Duration::from_secs(20), "gave up after {waited:?}");
        signal::raise(libc::SIGVTALRM).unwrap();
        assert_eq!(
            signals.recv_timeout(Duration::from_secs(30)),
            Ok(libc::SIGVTALRM)
        );
    });
}

#[test]
fn close_from_another_thread_ends_a_parked_recv() {
    for &n in &WORKER_COUNTS {
        let (got, iterated) = on_workers(n, || {
            let signals = Signals::new([signal::SIGHUP]).unwrap();
            let handle: SignalsHandle = signals.handle();
            let (ready_tx, ready_rx) = channel();
            let waiter = coact::spawn(move || {
                ready_tx.send(()).unwrap();
                let got = signals.recv();
                // Closed: iteration ends at once too.
                let iterated = signals.iter().count();
                assert!(signals.is_closed());
                (got, iterated)
            });
            ready_rx.recv().unwrap();
            std::thread::spawn(move || handle.close()).join().unwrap();
            waiter.join().unwrap()
        });
        assert_eq!(got, Err(RecvError), "workers={n}");
        assert_eq!(iterated, 0, "workers={n}");
    }
}

#[test]
fn signals_already_received_are_still_handed_out_after_close() {
    on_workers(1, || {
        let signals = Signals::new([libc::SIGPWR]).unwrap();
        signal::raise(libc::SIGPWR).unwrap();
        signals.handle().close();
        assert_eq!(signals.recv(), Ok(libc::SIGPWR));
        assert_eq!(signals.recv(), Err(RecvError));
        assert_eq!(signals.try_recv(), Err(TryRecvError::Disconnected));
    });
}

#[test]
fn a_plain_thread_blocks_in_recv_until_the_signal_arrives() {
    let got = bounded(|| {
        let signals = Signals::new([signal::SIGALRM]).unwrap();
        let (ready_tx, ready_rx) = sync_channel(0);
        let waiter = std::thread::spawn(move || {
            ready_tx.send(()).unwrap();
            signals.recv()
        });
        ready_rx.recv().unwrap();
        signal::raise(signal::SIGALRM).unwrap();
        waiter.join().unwrap()
    });
    assert_eq!(got, Ok(signal::SIGALRM));
}

#[test]
fn a_persistent_select_waits_on_a_channel_and_signals_registering_once() {
    const MESSAGES: u32 = 1_000;
    const RAISES: u32 = 3;
    for &n in &WORKER_COUNTS {
        let (messages, signals_seen, idle_wakes, registrations) = on_workers(n, || {
            let signals = Signals::new([libc::SIGIO]).unwrap();
            let (tx, rx) = sync_channel::<u32>(4);
            let (seen_tx, seen_rx) = channel::<()>();
            let producer = coact::spawn(move || {
                for i in 0..MESSAGES {
                    tx.send(i).unwrap();
                }
                // One raise at a time: each is received before the next (repeats coalesce).
                for _ in 0..RAISES {
                    signal::raise(libc::SIGIO).unwrap();
                    seen_rx.recv().unwrap();
                }
                // `tx` drops here: the loop below ends on that and on the last signal.
            });
            let mut sel = Select::new();
            let msg = sel.recv(&rx);
            let sig = sel.readable(&signals);
            let (mut messages, mut signals_seen, mut idle_wakes) = (0u32, 0u32, 0u32);
            let mut disconnected = false;
            while !(signals_seen == RAISES && disconnected) {
                let op = sel
                    .select_timeout(Duration::from_secs(30))
                    .expect("an event within 30 s");
                if op.index() == msg {
                    match op.recv(&rx) {
                        Ok(_) => messages += 1,
                        Err(_) => {
                            disconnected = true;
                            sel.remove(msg);
                        }
                    }
                } else {
                    assert_eq!(op.index(), sig);
                    drop(op);
                    match signals.try_recv() {
                        Ok(s) => {
                            assert_eq!(s, libc::SIGIO);
                            signals_seen += 1;
                            seen_tx.send(()).unwrap();
                        }
                        Err(TryRecvError::Empty) => idle_wakes += 1,
                        Err(e) => panic!("signals ended: {e:?}"),
                    }
                }
            }
            producer.join().unwrap();
            (messages, signals_seen, idle_wakes, sel.registrations())
        });
        assert_eq!(messages, MESSAGES, "workers={n}");
        assert_eq!(signals_seen, RAISES, "workers={n}");
        // One raise, one wake byte, one readiness event, taken with its signal: the select
        // never woke for a signal it had handed out already.
        assert_eq!(idle_wakes, 0, "workers={n}");
        assert!(
            registrations <= 2,
            "workers={n}: {registrations} registrations"
        );
    }
}

#[test]
fn a_coroutine_parked_in_recv_is_unwound_when_its_runtime_ends() {
    let drops = Arc::new(AtomicUsize::new(0));
    let counter = drops.clone();
    let rt = common::runtime(2);
    let parked = rt.block_on(move || {
        let signals = Signals::new([libc::SIGXCPU]).unwrap();
        let (ready_tx, ready_rx) = channel();
        coact::spawn_detached(move || {
            let _guard = DropCounter::new(&counter);
            ready_tx.send(()).unwrap();
            let _ = signals.recv();
            unreachable!("no SIGXCPU is ever raised");
        });
        ready_rx.recv().is_ok()
    });
    assert!(parked);
    bounded(move || drop(rt));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn signals_that_cannot_be_handled_are_refused() {
    for sig in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -1, 200] {
        let err = Signals::new([sig]).expect_err("refused");
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "signal {sig}: {err}");
    }
    // One bad signal refuses the whole set.
    let err = Signals::new([signal::SIGCHLD, libc::SIGKILL]).expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let ok = Signals::new([libc::SIGTTIN]).unwrap();
    assert_eq!(
        ok.add_signal(libc::SIGSTOP).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(signal::name(signal::SIGTERM), Some("SIGTERM"));
}

#[test]
fn a_signal_stays_caught_while_one_of_its_watchers_is_left() {
    on_workers(2, || {
        let a = Signals::new([libc::SIGPROF]).unwrap();
        let b = Signals::new([libc::SIGPROF]).unwrap();
        drop(a);
        // SIGPROF's default ends the process: this test binary would die here if dropping one
        // watcher had brought the default back.
        signal::raise(libc::SIGPROF).unwrap();
        assert_eq!(b.recv_timeout(Duration::from_secs(30)), Ok(libc::SIGPROF));
    });
}

/// Not a test of its own: the child process of the test below. Watches `SIGUSR2`, then either
/// receives it (`keep`) or drops the watch before raising it (`drop`); exits 0 if it is still
/// alive at the end.
#[test]
fn child_of_the_default_action_test() {
    let Ok(mode) = std::env::var("COACT_SIGNAL_TEST_CHILD") else {
        return;
    };
    coact::run(move || {
        let watch = Signals::new([libc::SIGUSR2]).unwrap();
        if mode == "keep" {
            signal::raise(libc::SIGUSR2).unwrap();
            assert_eq!(
                watch.recv_timeout(Duration::from_secs(30)),
                Ok(libc::SIGUSR2)
            );
        } else {
            drop(watch);
            signal::raise(libc::SIGUSR2).unwrap();
        }
    });
    std::process::exit(0);
}

#[test]
fn the_default_action_comes_back_once_no_signals_watches_it() {
    use std::os::unix::process::ExitStatusExt;
    let run = |mode: &str| {
        std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "child_of_the_default_action_test",
                "--exact",
                "--test-threads=1",
            ])
            .env("COACT_SIGNAL_TEST_CHILD", mode)
            .output()
            .expect("run the child")
    };
    let kept = run("keep");
    assert!(
        kept.status.success(),
        "a watched SIGUSR2 is received: {:?}\n{}",
        kept.status,
        String::from_utf8_lossy(&kept.stderr)
    );
    let dropped = run("drop");
    assert_eq!(
        dropped.status.signal(),
        Some(libc::SIGUSR2),
        "once unwatched, SIGUSR2 ends the process as its default action does: {:?}",
        dropped.status
    );
}
