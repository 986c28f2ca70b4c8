//! `coact::offload`: thread-blocking calls run on the runtime's offload pool while only the
//! calling coroutine waits; panics come back to the caller; the pool is capped, shrinks when
//! idle, and a runtime's drop waits for every job it accepted. (A coroutine parked in
//! `offload` when its runtime ends is unwound: `cancel.rs`.)

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use coact::offload;
use coact::panic_text;
use coact::sync::mpsc::channel;
use common::{bounded, on_workers, WORKER_COUNTS};

#[test]
fn offload_runs_the_closure_on_another_thread_and_returns_its_value() {
    for workers in WORKER_COUNTS {
        on_workers(workers, || {
            let here = thread::current().id();
            let (value, there) = offload(|| (6 * 7, thread::current().id()));
            assert_eq!(value, 42);
            assert_ne!(there, here, "the closure ran on the worker itself");
            let name = offload(|| thread::current().name().map(String::from));
            assert!(
                name.as_deref()
                    .is_some_and(|n| n.starts_with("coact-offload-")),
                "pool thread named {name:?}"
            );
        });
    }
}

/// The seed case: a call that blocks its thread until another coroutine of the same (only)
/// worker acts. Made on the worker it would deadlock; offloaded, the worker runs the other
/// coroutine meanwhile.
#[test]
fn an_offloaded_blocking_call_leaves_the_worker_free_for_other_coroutines() {
    on_workers(1, || {
        const JOBS: usize = 8;
        let (results_tx, results_rx) = channel();
        let mut releases = Vec::new();
        for i in 0..JOBS {
            let (release_tx, release_rx) = std_mpsc::channel::<usize>();
            releases.push(release_tx);
            let results = results_tx.clone();
            coact::spawn_detached(move || {
                // std's recv blocks its thread: only another coroutine's send ends it.
                let got = offload(move || release_rx.recv().unwrap());
                results.send((i, got)).unwrap();
            });
        }
        // These sends run on the same worker while all eight jobs block.
        let releaser = coact::spawn(move || {
            for (i, tx) in releases.into_iter().enumerate() {
                tx.send(i * 10).unwrap();
            }
        });
        releaser.join().unwrap();
        let mut got: Vec<_> = (0..JOBS).map(|_| results_rx.recv().unwrap()).collect();
        got.sort_unstable();
        assert_eq!(got, (0..JOBS).map(|i| (i, i * 10)).collect::<Vec<_>>());
    });
}

#[test]
fn a_panic_in_an_offloaded_closure_reaches_the_caller_and_the_pool_lives_on() {
    for workers in [1, 2] {
        on_workers(workers, || {
            let r = catch_unwind(AssertUnwindSafe(|| offload(|| -> u32 { panic!("boom 7") })));
            let payload = r.expect_err("the panic comes back to the caller");
            assert_eq!(panic_text(payload.as_ref()), "boom 7");
            // The same pool serves the next job.
            assert_eq!(offload(|| 5), 5);
        });
    }
}

#[test]
fn offload_outside_a_coroutine_runs_the_closure_in_place() {
    bounded(|| {
        let here = thread::current().id();
        assert_eq!(offload(move || thread::current().id()), here);
        // A plain thread beside a runtime, too.
        let rt = common::runtime(1);
        let here = thread::current().id();
        assert_eq!(offload(move || thread::current().id()), here);
        drop(rt);
    });
}

/// With a cap of 2, jobs that meet in pairs (a std barrier of 2) all finish, and never more
/// than two run at once. A cap of 1 would hang them; a cap of 3 or more lets three overlap.
#[test]
fn the_pool_runs_at_most_its_cap_of_threads_and_queues_the_rest() {
    bounded(|| {
        let rt = coact::Runtime::builder()
            .workers(2)
            .offload_threads(2)
            .build()
            .unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let pair = Arc::new(Barrier::new(2));
        let (r, m, p) = (running.clone(), most.clone(), pair.clone());
        let finished = rt.block_on(move || {
            let jobs: Vec<_> = (0..6)
                .map(|_| {
                    let (r, m, p) = (r.clone(), m.clone(), p.clone());
                    coact::spawn(move || {
                        offload(move || {
                            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                            m.fetch_max(now, Ordering::SeqCst);
                            p.wait();
                            r.fetch_sub(1, Ordering::SeqCst);
                        })
                    })
                })
                .collect();
            jobs.into_iter()
                .map(|h| h.join())
                .filter(Result::is_ok)
                .count()
        });
        assert_eq!(finished, 6);
        assert_eq!(
            most.load(Ordering::SeqCst),
            2,
            "at most the cap, and the cap is used"
        );
        assert!(rt.offload_threads() <= 2);
        drop(rt);
    });
}

/// Idle pool threads stay for the keep-alive (and serve the next job), then exit.
#[test]
fn idle_offload_threads_are_reused_and_exit_after_the_keep_alive() {
    bounded(|| {
        // With the default keep-alive (10 s) the thread of one job serves the next.
        let rt = common::runtime(1);
        let (a, b) = rt.block_on(|| {
            let a = offload(|| thread::current().id());
            let b = offload(|| thread::current().id());
            (a, b)
        });
        assert_eq!(a, b, "one idle thread serves jobs in turn");
        assert_eq!(rt.offload_threads(), 1);
        drop(rt);

        // A short keep-alive: the timer under test, waited for with a generous bound.
        let rt = coact::Runtime::builder()
            .workers(1)
            .offload_keep_alive(Duration::from_millis(20))
            .build()
            .unwrap();
        rt.block_on(|| offload(|| ()));
        let limit = Instant::now() + Duration::from_secs(30);
        while rt.offload_threads() > 0 {
            assert!(
                Instant::now() < limit,
                "an idle offload thread outlived its 20 ms keep-alive by 30 s"
            );
            thread::sleep(Duration::from_millis(5));
        }
        // And a new job starts a thread again.
        assert_eq!(rt.block_on(|| offload(|| 3)), 3);
        drop(rt);
    });
}

/// Dropping the runtime cancels the coroutines that wait, and then waits for their jobs,
/// the running one and the one still queued behind it (cap 1): nothing accepted is lost.
#[test]
fn dropping_the_runtime_waits_for_every_accepted_job() {
    bounded(|| {
        let rt = coact::Runtime::builder()
            .workers(1)
            .offload_threads(1)
            .build()
            .unwrap();
        let first_done = Arc::new(AtomicBool::new(false));
        let second_done = Arc::new(AtomicBool::new(false));
        let (f, s) = (first_done.clone(), second_done.clone());
        rt.block_on(move || {
            let (ready_tx, ready_rx) = channel();
            let (release_tx, release_rx) = std_mpsc::channel::<()>();
            let ready = ready_tx.clone();
            coact::spawn_detached(move || {
                // Dropped when this coroutine is unwound: that ends the first job's wait.
                let _release = release_tx;
                ready.send(()).unwrap();
                offload(move || {
                    let _ = release_rx.recv();
                    // Stands for a slow blocking call still under way as the drop begins.
                    thread::sleep(Duration::from_millis(100));
                    f.store(true, Ordering::SeqCst);
                });
            });
            coact::spawn_detached(move || {
                ready_tx.send(()).unwrap();
                // Queued behind the first job: the pool has one thread.
                offload(move || s.store(true, Ordering::SeqCst));
            });
            // One worker: each coroutine reached its offload before this one runs again.
            ready_rx.recv().unwrap();
            ready_rx.recv().unwrap();
        });
        drop(rt);
        assert!(
            first_done.load(Ordering::SeqCst),
            "the running job was not waited for"
        );
        assert!(
            second_done.load(Ordering::SeqCst),
            "the queued job was dropped unrun"
        );
    });
}

/// A destructor that runs while its coroutine is cancelled can still offload (a last flush),
/// and waits for the job: it has no way to give up.
#[test]
fn a_coroutine_unwinding_at_the_end_of_its_runtime_can_still_offload() {
    /// Offloads a job that counts itself and returns 7, and adds what it got to `sum`.
    struct FlushOnDrop {
        jobs: Arc<AtomicUsize>,
        sum: Arc<AtomicUsize>,
    }
    impl Drop for FlushOnDrop {
        fn drop(&mut self) {
            let jobs = self.jobs.clone();
            let got = offload(move || {
                jobs.fetch_add(1, Ordering::SeqCst);
                7
            });
            self.sum.fetch_add(got, Ordering::SeqCst);
        }
    }
    for workers in [1, 2] {
        bounded(move || {
            let jobs = Arc::new(AtomicUsize::new(0));
            let sum = Arc::new(AtomicUsize::new(0));
            let rt = common::runtime(workers);
            let (j, s) = (jobs.clone(), sum.clone());
            rt.block_on(move || {
                let (ready_tx, ready_rx) = channel();
                for _ in 0..4 {
                    let flush = FlushOnDrop {
                        jobs: j.clone(),
                        sum: s.clone(),
                    };
                    let ready = ready_tx.clone();
                    coact::spawn_detached(move || {
                        let _flush = flush;
                        ready.send(()).unwrap();
                        coact::time::sleep(Duration::from_secs(3600));
                    });
                }
                for _ in 0..4 {
                    ready_rx.recv().unwrap();
                }
            });
            drop(rt);
            assert_eq!(
                jobs.load(Ordering::SeqCst),
                4,
                "workers={workers}: jobs run"
            );
            assert_eq!(
                sum.load(Ordering::SeqCst),
                28,
                "workers={workers}: every destructor got its job's value"
            );
        });
    }
}

/// Sockets take host names: the lookup runs on the pool (a pool thread appears), while an
/// address written as numbers is read in place (none does).
#[test]
fn sockets_look_host_names_up_on_the_pool_and_read_literals_in_place() {
    use coact::net::{lookup_host, TcpListener, TcpStream};
    use std::io::{Read, Write};
    bounded(|| {
        let rt = common::runtime(1);
        let port = rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            coact::spawn_detached(move || {
                for _ in 0..2 {
                    let (mut s, _) = listener.accept().unwrap();
                    s.write_all(b"hi").unwrap();
                }
            });
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut buf = [0; 2];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi");
            port
        });
        assert_eq!(rt.offload_threads(), 0, "a numeric address was looked up");
        rt.block_on(move || {
            // "localhost" may also name ::1, where nothing listens: connect tries each.
            let mut s = TcpStream::connect(format!("localhost:{port}")).unwrap();
            let mut buf = [0; 2];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"hi");
            let addrs: Vec<_> = lookup_host(("localhost", port)).unwrap().collect();
            assert!(addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == port));
        });
        assert!(
            rt.offload_threads() >= 1,
            "a host name was looked up on the worker"
        );
        drop(rt);
    });
}

/// Many coroutines on several workers offload through a small pool at once, mixing values,
/// panics and jobs that themselves wait on coact channels fed from coroutines: every call
/// gets its own result, and the totals are exact.
#[test]
fn many_coroutines_offload_through_a_small_pool_with_exact_totals() {
    const COROUTINES: u64 = 200;
    const CALLS: u64 = 50;
    for workers in [2, 4] {
        bounded(move || {
            let rt = coact::Runtime::builder()
                .workers(workers)
                .offload_threads(3)
                .build()
                .unwrap();
            let (sum, panics) = rt.block_on(|| {
                let hs: Vec<_> = (0..COROUTINES)
                    .map(|c| {
                        coact::spawn(move || {
                            let (mut sum, mut panics) = (0u64, 0u64);
                            for i in 0..CALLS {
                                let v = c * CALLS + i;
                                if v % 97 == 0 {
                                    let r = catch_unwind(AssertUnwindSafe(|| {
                                        offload(move || -> u64 { panic!("job {v}") })
                                    }));
                                    assert_eq!(
                                        panic_text(r.unwrap_err().as_ref()),
                                        format!("job {v}")
                                    );
                                    panics += 1;
                                } else if v % 13 == 0 {
                                    // A job that blocks on a coact channel until a coroutine
                                    // (possibly on this same worker) answers.
                                    let (tx, rx) = coact::sync::mpsc::sync_channel(0);
                                    coact::spawn_detached(move || tx.send(v).unwrap());
                                    sum += offload(move || rx.recv().unwrap());
                                } else {
                                    sum += offload(move || v);
                                }
                            }
                            (sum, panics)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().unwrap())
                    .fold((0, 0), |(s, p), (a, b)| (s + a, p + b))
            });
            let n = COROUTINES * CALLS;
            let expected_panics = (0..n).filter(|v| v % 97 == 0).count() as u64;
            let expected_sum: u64 = (0..n).filter(|v| v % 97 != 0).sum();
            assert_eq!(panics, expected_panics, "workers={workers}");
            assert_eq!(sum, expected_sum, "workers={workers}");
            assert!(rt.offload_threads() <= 3);
            drop(rt);
        });
    }
}

/// A job knows its runtime: it takes its handle and spawns coroutines and actors onto it.
#[test]
fn an_offloaded_job_spawns_onto_its_runtime() {
    use coact::actor::{spawn as spawn_actor, Actor, Ctx, ReplyTo};

    struct Doubler;
    impl Actor for Doubler {
        type Msg = (u64, ReplyTo<u64>);
        fn handle(&mut self, (n, reply): Self::Msg, _ctx: &mut Ctx<'_, Self::Msg>) {
            reply.send(n * 2);
        }
    }
    on_workers(2, || {
        let (from_coroutine, from_actor, workers) = offload(|| {
            assert!(!coact::in_coroutine(), "a job runs on a plain thread");
            let workers = coact::Handle::current().expect("a job's runtime").workers();
            // Joined from the pool thread: the join blocks that thread, not a worker.
            let h = coact::Handle::current().unwrap();
            let v = h
                .spawn(|| coact::current_worker().is_some())
                .join()
                .unwrap();
            let doubler = spawn_actor(Doubler);
            let d = doubler.ask(|r| (21, r), Duration::from_secs(30)).unwrap();
            (v, d, workers)
        });
        assert!(from_coroutine, "the job's spawn ran on a worker");
        assert_eq!(from_actor, 42);
        assert_eq!(workers, 2);
    });
    // A plain thread outside any runtime has none.
    assert!(coact::Handle::current().is_none());
}

/// `shutdown_timeout` bounds the wait for offloaded jobs that a drop would wait out: with a job
/// stuck it gives up after its timeout and says so; with none left it says all returned.
#[test]
fn shutdown_timeout_gives_up_on_a_job_that_does_not_return() {
    bounded(|| {
        let rt = common::runtime(1);
        let (started_tx, started_rx) = std_mpsc::channel::<()>();
        let (release_tx, release_rx) = std_mpsc::channel::<()>();
        let (finished_tx, finished_rx) = std_mpsc::channel::<()>();
        rt.block_on(move || {
            coact::spawn_detached(move || {
                offload(move || {
                    started_tx.send(()).unwrap();
                    let _ = release_rx.recv();
                    finished_tx.send(()).unwrap();
                });
            });
        });
        started_rx.recv().unwrap();
        // The timer under test: 50 ms, checked with generous bounds.
        let start = Instant::now();
        assert!(
            !rt.shutdown_timeout(Duration::from_millis(50)),
            "a job was still running"
        );
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
        assert!(waited < Duration::from_secs(60), "{waited:?}");
        // The job was left to its thread, and finishes there once released.
        release_tx.send(()).unwrap();
        finished_rx.recv().unwrap();

        let rt = common::runtime(1);
        assert_eq!(rt.block_on(|| offload(|| 2 + 2)), 4);
        assert!(
            rt.shutdown_timeout(Duration::from_secs(30)),
            "nothing was left"
        );
    });
}
