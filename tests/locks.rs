//! `coact::sync::{Condvar, RwLock, Barrier, Once, OnceLock, LazyLock}`: std's semantics, from
//! coroutines and plain threads mixed, on 1, 2 and 4 workers. (Cancellation of coroutines parked in them is in `cancel.rs`;
//! the `Mutex` they build on is in `lessons.rs`.)

mod common;

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use coact::sync::mpsc::channel;
use coact::sync::{Barrier, Condvar, LazyLock, Mutex, Once, OnceLock, RwLock, TryLockError};
use common::{bounded, on_workers, WORKER_COUNTS};

/// The traits std's versions have, so that code moves over unchanged: shared across threads,
/// and usable from `catch_unwind` without `AssertUnwindSafe` (poisoning reports a panic).
#[test]
fn locks_have_the_traits_of_std_s() {
    fn shared<T: Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    shared::<Mutex<Vec<u8>>>();
    shared::<RwLock<Vec<u8>>>();
    shared::<Condvar>();
    shared::<Barrier>();
    shared::<Once>();
    shared::<OnceLock<Vec<u8>>>();
    shared::<LazyLock<Vec<u8>>>();
    let m = Mutex::new(1);
    let r = std::panic::catch_unwind(|| {
        let _g = m.lock().unwrap();
        panic!("poisons");
    });
    assert!(r.is_err() && m.is_poisoned());
}

// ---------------------------------------------------------------------------------------------
// Condvar
// ---------------------------------------------------------------------------------------------

/// A bounded queue built the textbook way: one mutex, "not empty" and "not full" conditions.
struct Queue {
    items: Mutex<VecDeque<u64>>,
    not_empty: Condvar,
    not_full: Condvar,
    cap: usize,
}

impl Queue {
    fn new(cap: usize) -> Self {
        Queue {
            items: Mutex::new(VecDeque::new()),
            not_empty: Condvar::new(),
            not_full: Condvar::new(),
            cap,
        }
    }

    fn push(&self, v: u64) {
        let g = self.items.lock().unwrap();
        let mut g = self
            .not_full
            .wait_while(g, |q| q.len() >= self.cap)
            .unwrap();
        g.push_back(v);
        drop(g);
        self.not_empty.notify_one();
    }

    fn pop(&self) -> u64 {
        let g = self.items.lock().unwrap();
        let mut g = self.not_empty.wait_while(g, |q| q.is_empty()).unwrap();
        let v = g.pop_front().unwrap();
        drop(g);
        self.not_full.notify_one();
        v
    }
}

/// Producers and consumers, coroutines and plain threads, pass 24,000 values through a queue
/// of 4 guarded by a mutex and two condition variables, with `notify_one` only: every value
/// arrives exactly once (a lost notification would hang the test).
#[test]
fn condvar_queue_moves_every_value_between_coroutines_and_threads_with_notify_one() {
    const PER_PRODUCER: u64 = 2_000;
    for workers in WORKER_COUNTS {
        let (sum, count) = on_workers(workers, || {
            let q = Arc::new(Queue::new(4));
            // 4 producer coroutines + 2 producer threads; 3 consumer coroutines + 3 threads.
            let producers = 6u64;
            let total = producers * PER_PRODUCER;
            let per_consumer = total / 6;
            let mut coroutines = Vec::new();
            let mut threads = Vec::new();
            for p in 0..producers {
                let q = q.clone();
                let work = move || {
                    for i in 0..PER_PRODUCER {
                        q.push(p * PER_PRODUCER + i);
                    }
                    (0u64, 0u64)
                };
                if p < 4 {
                    coroutines.push(coact::spawn(work));
                } else {
                    threads.push(thread::spawn(work));
                }
            }
            for c in 0..6 {
                let q = q.clone();
                let work = move || {
                    let mut sum = 0u64;
                    for _ in 0..per_consumer {
                        sum += q.pop();
                    }
                    (sum, per_consumer)
                };
                if c < 3 {
                    coroutines.push(coact::spawn(work));
                } else {
                    threads.push(thread::spawn(work));
                }
            }
            let mut sum = 0;
            let mut count = 0;
            for h in coroutines {
                let (s, n) = h.join().unwrap();
                sum += s;
                count += n;
            }
            for h in threads {
                let (s, n) = h.join().unwrap();
                sum += s;
                count += n;
            }
            assert!(q.items.lock().unwrap().is_empty());
            (sum, count)
        });
        let total = 6 * PER_PRODUCER;
        assert_eq!(count, total, "workers={workers}");
        assert_eq!(sum, total * (total - 1) / 2, "workers={workers}");
    }
}

/// `notify_all` releases every waiter, coroutines and threads alike, each seeing the flag set.
#[test]
fn condvar_notify_all_wakes_every_waiter() {
    for workers in WORKER_COUNTS {
        let woken = on_workers(workers, || {
            let state = Arc::new((Mutex::new((false, 0usize)), Condvar::new()));
            let (waiting_tx, waiting_rx) = channel();
            let wait = {
                let state = state.clone();
                move || {
                    let (m, cv) = &*state;
                    let mut g = m.lock().unwrap();
                    g.1 += 1;
                    let arrived = g.1;
                    let g = cv.wait_while(g, |(go, _)| !*go).unwrap();
                    assert!(g.0);
                    arrived
                }
            };
            let coroutines: Vec<_> = (0..8)
                .map(|_| {
                    let wait = wait.clone();
                    let waiting_tx = waiting_tx.clone();
                    coact::spawn(move || {
                        waiting_tx.send(()).unwrap();
                        wait()
                    })
                })
                .collect();
            let threads: Vec<_> = (0..3)
                .map(|_| {
                    let wait = wait.clone();
                    let waiting_tx = waiting_tx.clone();
                    thread::spawn(move || {
                        waiting_tx.send(()).unwrap();
                        wait()
                    })
                })
                .collect();
            for _ in 0..11 {
                waiting_rx.recv().unwrap();
            }
            let (m, cv) = &*state;
            m.lock().unwrap().0 = true;
            cv.notify_all();
            // Each returns its place in the arrival order: all eleven, once each.
            let mut woken: Vec<usize> = coroutines.into_iter().map(|h| h.join().unwrap()).collect();
            woken.extend(threads.into_iter().map(|h| h.join().unwrap()));
            woken.sort_unstable();
            woken
        });
        assert_eq!(woken, (1..=11).collect::<Vec<_>>(), "workers={workers}");
    }
}

/// A wait with a timeout and nobody to notify returns after the timeout, saying so, and with
/// the mutex held; from a coroutine and from a plain thread. A notification given before the
/// wait began is not remembered (std's semantics).
#[test]
fn condvar_wait_timeout_times_out_without_a_notification() {
    fn timed_wait() -> (bool, Duration) {
        let m = Mutex::new(7u32);
        let cv = Condvar::new();
        cv.notify_one(); // nobody waits yet: lost, as with std
        let start = Instant::now();
        let (g, r) = cv
            .wait_timeout(m.lock().unwrap(), Duration::from_millis(50))
            .unwrap();
        assert_eq!(*g, 7);
        assert!(m.try_lock().is_err(), "the mutex is held again");
        (r.timed_out(), start.elapsed())
    }
    for workers in [1, 2] {
        let (timed_out, waited) = on_workers(workers, timed_wait);
        assert!(timed_out);
        assert!(waited >= Duration::from_millis(50), "{waited:?}");
    }
    let (timed_out, waited) = bounded(timed_wait);
    assert!(timed_out);
    assert!(waited >= Duration::from_millis(50), "{waited:?}");
}

/// `wait_timeout_while` returns as soon as the condition fails (not timed out), and reports a
/// timeout when it never does.
#[test]
fn condvar_wait_timeout_while_ends_on_the_condition_or_the_timeout() {
    for workers in [1, 2] {
        on_workers(workers, || {
            let state = Arc::new((Mutex::new(0u32), Condvar::new()));
            let s2 = state.clone();
            let setter = coact::spawn(move || {
                let (m, cv) = &*s2;
                *m.lock().unwrap() = 3;
                cv.notify_one();
            });
            let (m, cv) = &*state;
            let (g, r) = cv
                .wait_timeout_while(m.lock().unwrap(), Duration::from_secs(60), |v| *v != 3)
                .unwrap();
            assert_eq!(*g, 3);
            assert!(!r.timed_out());
            drop(g);
            setter.join().unwrap();

            let start = Instant::now();
            let (g, r) = cv
                .wait_timeout_while(m.lock().unwrap(), Duration::from_millis(30), |v| *v != 4)
                .unwrap();
            assert!(r.timed_out());
            assert_eq!(*g, 3);
            assert!(start.elapsed() >= Duration::from_millis(30));
        });
    }
}

/// Each `notify_one` lets exactly one of several waiters through: with three waiters and three
/// notifications, one at a time, every waiter returns, and the count of permits never goes
/// below zero.
#[test]
fn condvar_notify_one_releases_one_waiter_per_notification() {
    for workers in WORKER_COUNTS {
        on_workers(workers, || {
            // (permits handed out, waiters waiting)
            let state = Arc::new((Mutex::new((0u32, 0u32)), Condvar::new()));
            let (done_tx, done_rx) = channel();
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let state = state.clone();
                    let done_tx = done_tx.clone();
                    coact::spawn(move || {
                        let (m, cv) = &*state;
                        let mut g = m.lock().unwrap();
                        g.1 += 1;
                        let mut g = cv.wait_while(g, |(permits, _)| *permits == 0).unwrap();
                        g.0 -= 1;
                        drop(g);
                        done_tx.send(()).unwrap();
                    })
                })
                .collect();
            let (m, cv) = &*state;
            // Wait until all three wait, by polling the count under the mutex between yields.
            let mut spins = 0u64;
            while m.lock().unwrap().1 < 3 {
                coact::yield_now();
                spins += 1;
                assert!(spins < 10_000_000, "the waiters never arrived");
            }
            for released in 1..=3 {
                m.lock().unwrap().0 += 1;
                cv.notify_one();
                done_rx.recv().unwrap();
                assert_eq!(m.lock().unwrap().0, 0, "after {released} notifications");
            }
            for w in waiters {
                w.join().unwrap();
            }
        });
    }
}

/// A condition wait on a mutex poisoned meanwhile returns the guard inside the error, like std.
#[test]
fn condvar_wait_reports_a_mutex_poisoned_while_waiting() {
    on_workers(2, || {
        let state = Arc::new((Mutex::new(false), Condvar::new()));
        let (m, cv) = &*state;
        // Locked before the poisoner starts: it gets the mutex only once this wait releases it.
        let g = m.lock().unwrap();
        let s2 = state.clone();
        let poisoner = coact::spawn(move || {
            let (m, cv) = &*s2;
            let mut g = m.lock().unwrap();
            *g = true;
            cv.notify_one();
            panic!("poisoning on purpose");
        });
        let r = cv.wait_while(g, |set| !*set);
        assert!(poisoner.join().is_err());
        let g = r.expect_err("the mutex was poisoned during the wait");
        assert!(*g.into_inner());
        assert!(m.is_poisoned());
    });
}

/// Waiters get their turns while a plain thread releases and retakes the mutex in a loop (a
/// free lock goes to whoever takes it first, so a woken waiter races the thread for it; the
/// thread stops only once three coroutines have had twenty turns each).
#[test]
fn mutex_waiters_get_turns_while_a_thread_keeps_retaking_the_lock() {
    for workers in [1, 2] {
        let turns = on_workers(workers, || {
            let m = Arc::new(Mutex::new(0u64));
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let (started_tx, started_rx) = channel();
            let busy = {
                let (m, done) = (m.clone(), done.clone());
                thread::spawn(move || {
                    let mut turns = 0u64;
                    while !done.load(Ordering::Acquire) {
                        let mut g = m.lock().unwrap();
                        *g += 1;
                        turns += 1;
                        if turns == 1 {
                            started_tx.send(()).unwrap();
                        }
                        // Hold it a little, so that a waiter arriving finds it taken.
                        for _ in 0..200 {
                            std::hint::black_box(&mut *g);
                        }
                    }
                    turns
                })
            };
            started_rx.recv().unwrap();
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let m = m.clone();
                    coact::spawn(move || {
                        for _ in 0..20 {
                            *m.lock().unwrap() += 1;
                        }
                    })
                })
                .collect();
            for w in waiters {
                w.join().unwrap();
            }
            done.store(true, Ordering::Release);
            let turns = busy.join().unwrap();
            assert_eq!(*m.lock().unwrap(), turns + 60);
            turns
        });
        assert!(turns > 0, "workers={workers}");
    }
}

// ---------------------------------------------------------------------------------------------
// RwLock
// ---------------------------------------------------------------------------------------------

/// Five readers hold the lock at once: each takes it and then waits at a barrier that only opens
/// when all five (and the test) are there, which cannot happen unless they share it; a writer
/// cannot get in meanwhile.
#[test]
fn rwlock_readers_share_the_lock_and_exclude_writers() {
    for workers in WORKER_COUNTS {
        on_workers(workers, || {
            let lock = Arc::new(RwLock::new(5u32));
            let barrier = Arc::new(Barrier::new(6));
            let (held_tx, held_rx) = channel();
            let readers: Vec<_> = (0..5)
                .map(|_| {
                    let lock = lock.clone();
                    let barrier = barrier.clone();
                    let held_tx = held_tx.clone();
                    coact::spawn(move || {
                        let g = lock.read().unwrap();
                        held_tx.send(()).unwrap();
                        barrier.wait(); // all five hold the read lock here
                        *g
                    })
                })
                .collect();
            for _ in 0..5 {
                held_rx.recv().unwrap();
            }
            assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
            assert_eq!(*lock.try_read().unwrap(), 5, "readers share");
            barrier.wait();
            for r in readers {
                assert_eq!(r.join().unwrap(), 5);
            }
            *lock.try_write().unwrap() += 1;
            assert_eq!(*lock.read().unwrap(), 6);
        });
    }
}

/// The lock is fair: a writer that waits for a reader goes before a reader that arrives after
/// it, so readers cannot starve writers; every party gets in, in arrival order.
#[test]
fn rwlock_a_waiting_writer_goes_before_later_readers() {
    on_workers(1, || {
        let lock = Arc::new(RwLock::new(Vec::<&'static str>::new()));
        let first = lock.read().unwrap();
        // One worker, no preemption: a coroutine that says it is arriving runs on into its
        // `write` or `read` until that parks (or returns) before this one resumes.
        let (arriving_tx, arriving_rx) = channel();
        let (l, a) = (lock.clone(), arriving_tx.clone());
        let writer = coact::spawn(move || {
            a.send(()).unwrap();
            l.write().unwrap().push("writer");
        });
        arriving_rx.recv().unwrap();
        assert!(lock.try_read().is_err(), "a writer is queued");
        let (l, a) = (lock.clone(), arriving_tx);
        let late_reader = coact::spawn(move || {
            a.send(()).unwrap();
            let g = l.read().unwrap();
            g.clone()
        });
        arriving_rx.recv().unwrap();
        drop(first);
        writer.join().unwrap();
        assert_eq!(
            late_reader.join().unwrap(),
            vec!["writer"],
            "the writer went first"
        );
    });
}

/// Writers keep two counters equal under the write lock; readers, coroutines and plain threads,
/// check they always see them equal; the final count is exact.
#[test]
fn rwlock_readers_never_see_a_half_done_write_and_writes_count_exactly() {
    const WRITES: u64 = 1_000;
    for workers in WORKER_COUNTS {
        let total = on_workers(workers, || {
            let lock = Arc::new(RwLock::new((0u64, 0u64)));
            let reads = Arc::new(AtomicUsize::new(0));
            let mut coroutines = Vec::new();
            let mut threads = Vec::new();
            for w in 0..4 {
                let lock = lock.clone();
                let work = move || {
                    for _ in 0..WRITES {
                        let mut g = lock.write().unwrap();
                        g.0 += 1;
                        if w % 2 == 0 {
                            coact::yield_now(); // other coroutines run while the write is half done
                        }
                        g.1 += 1;
                    }
                };
                if w < 3 {
                    coroutines.push(coact::spawn(work));
                } else {
                    threads.push(thread::spawn(work));
                }
            }
            for r in 0..4 {
                let lock = lock.clone();
                let reads = reads.clone();
                let work = move || {
                    for _ in 0..WRITES {
                        let g = lock.read().unwrap();
                        assert_eq!(g.0, g.1, "a reader saw a half-done write");
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                };
                if r < 3 {
                    coroutines.push(coact::spawn(work));
                } else {
                    threads.push(thread::spawn(work));
                }
            }
            for h in coroutines {
                h.join().unwrap();
            }
            for h in threads {
                h.join().unwrap();
            }
            assert_eq!(reads.load(Ordering::Relaxed) as u64, 4 * WRITES);
            let g = lock.read().unwrap();
            *g
        });
        assert_eq!(total, (4 * WRITES, 4 * WRITES), "workers={workers}");
    }
}

/// Every party mixes reads, writes and their `try_` forms in its own pseudo-random order, so
/// the uncontended paths (one atomic operation) and the queued ones (hand-over under the
/// queue's lock) keep crossing: the invariant holds for every reader and the count of writes
/// done is exact.
#[test]
fn rwlock_mixed_operations_from_many_parties_keep_the_invariant_and_the_count() {
    const OPS: u64 = 4_000;
    fn party(lock: Arc<RwLock<(u64, u64)>>, seed: u64) -> u64 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut wrote = 0;
        for _ in 0..OPS {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 8 {
                0 => {
                    let mut g = lock.write().unwrap();
                    g.0 += 1;
                    if x % 3 == 0 && coact::in_coroutine() {
                        coact::yield_now();
                    }
                    g.1 += 1;
                    wrote += 1;
                }
                1 => {
                    if let Ok(mut g) = lock.try_write() {
                        g.0 += 1;
                        g.1 += 1;
                        wrote += 1;
                    }
                }
                2 => {
                    if let Ok(g) = lock.try_read() {
                        assert_eq!(g.0, g.1);
                    }
                }
                _ => {
                    let g = lock.read().unwrap();
                    if x % 5 == 0 && coact::in_coroutine() {
                        coact::yield_now();
                    }
                    assert_eq!(g.0, g.1, "a reader saw a half-done write");
                }
            }
        }
        wrote
    }
    for workers in WORKER_COUNTS {
        let (wrote, seen) = on_workers(workers, || {
            let lock = Arc::new(RwLock::new((0u64, 0u64)));
            let coroutines: Vec<_> = (0..8)
                .map(|i| {
                    let lock = lock.clone();
                    coact::spawn(move || party(lock, i))
                })
                .collect();
            let threads: Vec<_> = (8..10)
                .map(|i| {
                    let lock = lock.clone();
                    thread::spawn(move || party(lock, i))
                })
                .collect();
            let mut wrote: u64 = coroutines.into_iter().map(|h| h.join().unwrap()).sum();
            wrote += threads.into_iter().map(|h| h.join().unwrap()).sum::<u64>();
            let seen = *lock.read().unwrap();
            assert!(lock.try_write().is_ok(), "nothing is left held or queued");
            (wrote, seen)
        });
        assert_eq!(seen, (wrote, wrote), "workers={workers}");
        assert!(wrote > 0);
    }
}

/// Writers only, many of them, from coroutines on every worker and plain threads: the lock
/// passes between them uncontended, to a woken writer racing for it, and to a newcomer that
/// takes it first, and no two are ever in at once: each write checks it is alone and the count
/// is exact. (The locks benchmark once lost an increment when serving the queue raced a woken
/// writer; the hand-over to a writer that lost for a millisecond, rare here, is forced by the
/// unit tests in `rwlock.rs` and `mutex.rs`.)
#[test]
fn rwlock_writers_are_alone_by_every_route_and_count_exactly() {
    const WRITES: u64 = 40_000;
    fn writer(lock: Arc<RwLock<u64>>, inside: Arc<AtomicUsize>) {
        for i in 0..WRITES {
            let mut g = lock.write().unwrap();
            assert_eq!(
                inside.fetch_add(1, Ordering::SeqCst),
                0,
                "two writers at once"
            );
            *g += 1;
            if i % 1024 == 0 && coact::in_coroutine() {
                coact::yield_now(); // hold it across a switch now and then
            }
            inside.fetch_sub(1, Ordering::SeqCst);
        }
    }
    for workers in [2, 4] {
        let total = on_workers(workers, || {
            let lock = Arc::new(RwLock::new(0u64));
            let inside = Arc::new(AtomicUsize::new(0));
            let coroutines: Vec<_> = (0..4)
                .map(|_| {
                    let (l, i) = (lock.clone(), inside.clone());
                    coact::spawn(move || writer(l, i))
                })
                .collect();
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (l, i) = (lock.clone(), inside.clone());
                    thread::spawn(move || writer(l, i))
                })
                .collect();
            for h in coroutines {
                h.join().unwrap();
            }
            for h in threads {
                h.join().unwrap();
            }
            let total = *lock.read().unwrap();
            total
        });
        assert_eq!(total, 6 * WRITES, "workers={workers}");
    }
}

/// A downgraded write guard keeps the lock (no writer gets in between) and lets the reader
/// waiting behind it in at once: the two meet at a barrier only readers holding the lock
/// together can pass, and the reader sees the write.
#[test]
fn rwlock_downgrade_keeps_the_lock_and_lets_waiting_readers_in() {
    for workers in [1, 2] {
        on_workers(workers, || {
            let lock = Arc::new(RwLock::new(0u32));
            let barrier = Arc::new(Barrier::new(2));
            let mut w = lock.write().unwrap();
            *w = 1;
            let (arriving_tx, arriving_rx) = channel();
            let (l, b) = (lock.clone(), barrier.clone());
            let reader = coact::spawn(move || {
                arriving_tx.send(()).unwrap();
                let g = l.read().unwrap(); // queued behind the writer
                b.wait();
                *g
            });
            arriving_rx.recv().unwrap();
            // On two workers the reader may not have queued yet; either way it gets in.
            let r = coact::sync::RwLockWriteGuard::downgrade(w);
            assert_eq!(*r, 1);
            assert!(lock.try_write().is_err(), "still held, for reading");
            barrier.wait(); // both hold the read lock here
            assert_eq!(reader.join().unwrap(), 1);
            drop(r);
            assert!(lock.try_write().is_ok(), "nothing left held or queued");
        });
    }
}

/// A writer that panics poisons the lock (reads and writes then err, still giving access); a
/// reader that panics does not.
#[test]
fn rwlock_is_poisoned_by_a_panicking_writer_only() {
    on_workers(2, || {
        let lock = Arc::new(RwLock::new(1u32));
        let l = lock.clone();
        let reader = coact::spawn(move || {
            let _g = l.read().unwrap();
            panic!("a reader panics");
        });
        assert!(reader.join().is_err());
        assert!(!lock.is_poisoned());
        let l = lock.clone();
        let writer = coact::spawn(move || {
            let mut g = l.write().unwrap();
            *g = 2;
            panic!("a writer panics");
        });
        assert!(writer.join().is_err());
        assert!(lock.is_poisoned());
        assert_eq!(*lock.read().expect_err("poisoned").into_inner(), 2);
        assert!(matches!(lock.try_write(), Err(TryLockError::Poisoned(_))));
        lock.clear_poison();
        assert_eq!(*lock.write().unwrap(), 2);
    });
    let lock = RwLock::new(0u8);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let _g = lock.write().unwrap();
        panic!("on a plain thread");
    }));
    assert!(r.is_err());
    assert!(lock.into_inner().is_err());
}

// ---------------------------------------------------------------------------------------------
// Barrier
// ---------------------------------------------------------------------------------------------

/// Six coroutines and two plain threads meet at a barrier 200 times: no party leaves a round
/// before every party has arrived at it, and each round has exactly one leader.
#[test]
fn barrier_holds_every_party_until_all_arrive_each_round() {
    const ROUNDS: usize = 200;
    const PARTIES: usize = 8;
    for workers in WORKER_COUNTS {
        let leaders = on_workers(workers, || {
            let barrier = Arc::new(Barrier::new(PARTIES));
            let arrived: Arc<Vec<AtomicUsize>> =
                Arc::new((0..ROUNDS).map(|_| AtomicUsize::new(0)).collect());
            let leaders = Arc::new(AtomicUsize::new(0));
            let party = {
                let barrier = barrier.clone();
                let arrived = arrived.clone();
                let leaders = leaders.clone();
                move || {
                    for round in 0..ROUNDS {
                        arrived[round].fetch_add(1, Ordering::SeqCst);
                        if barrier.wait().is_leader() {
                            leaders.fetch_add(1, Ordering::SeqCst);
                        }
                        assert_eq!(
                            arrived[round].load(Ordering::SeqCst),
                            PARTIES,
                            "left round {round} before every party arrived"
                        );
                    }
                }
            };
            let coroutines: Vec<_> = (0..6).map(|_| coact::spawn(party.clone())).collect();
            let threads: Vec<_> = (0..2).map(|_| thread::spawn(party.clone())).collect();
            for h in coroutines {
                h.join().unwrap();
            }
            for h in threads {
                h.join().unwrap();
            }
            leaders.load(Ordering::SeqCst)
        });
        assert_eq!(leaders, ROUNDS, "workers={workers}");
    }
}

/// A barrier for one party (or for none, like std's) never waits, and its one party leads.
#[test]
fn barrier_of_one_party_never_waits() {
    on_workers(1, || {
        for n in [0, 1] {
            let b = Barrier::new(n);
            assert!(b.wait().is_leader());
            assert!(b.wait().is_leader());
        }
    });
}

// ---------------------------------------------------------------------------------------------
// OnceLock and LazyLock
// ---------------------------------------------------------------------------------------------

/// An initialiser that parks (it waits for a message) while 20 coroutines of the same worker
/// and two plain threads ask for the value: they all wait, the initialiser runs once, and all
/// get its value. (With std's `OnceLock` the second coroutine would block the worker thread
/// and the initialiser could never be resumed: a deadlock.)
#[test]
fn once_lock_initialiser_that_parks_runs_once_while_the_others_wait() {
    for workers in WORKER_COUNTS {
        let runs = on_workers(workers, || {
            let cell: Arc<OnceLock<u64>> = Arc::new(OnceLock::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let (go_tx, go_rx) = channel::<u64>();
            let go_rx = Arc::new(Mutex::new(go_rx));
            let (asked_tx, asked_rx) = channel();
            let ask = {
                let (cell, runs, go_rx, asked_tx) =
                    (cell.clone(), runs.clone(), go_rx.clone(), asked_tx.clone());
                move || {
                    asked_tx.send(()).unwrap();
                    *cell.get_or_init(|| {
                        runs.fetch_add(1, Ordering::SeqCst);
                        go_rx.lock().unwrap().recv().unwrap() // parks
                    })
                }
            };
            let coroutines: Vec<_> = (0..20).map(|_| coact::spawn(ask.clone())).collect();
            let threads: Vec<_> = (0..2).map(|_| thread::spawn(ask.clone())).collect();
            for _ in 0..22 {
                asked_rx.recv().unwrap();
            }
            assert_eq!(
                cell.get(),
                None,
                "nobody has the value before the initialiser ends"
            );
            go_tx.send(42).unwrap();
            for c in coroutines {
                assert_eq!(c.join().unwrap(), 42);
            }
            for t in threads {
                assert_eq!(t.join().unwrap(), 42);
            }
            assert_eq!(
                cell.set(7),
                Err(7),
                "set on a full cell gives the value back"
            );
            runs.load(Ordering::SeqCst)
        });
        assert_eq!(runs, 1, "workers={workers}");
    }
}

/// An initialiser that panics leaves the cell empty: the panic goes to its caller, and the next
/// caller runs its own initialiser. `set`, `take` and `into_inner` behave as std's.
#[test]
fn once_lock_stays_empty_after_a_panicking_initialiser() {
    on_workers(2, || {
        let cell: Arc<OnceLock<String>> = Arc::new(OnceLock::new());
        let c = cell.clone();
        let failed = coact::spawn(move || {
            c.get_or_init(|| panic!("initialiser fails"));
        });
        assert!(failed.join().is_err());
        assert_eq!(cell.get(), None);
        assert_eq!(cell.get_or_init(|| "second".to_string()), "second");
        let mut cell = Arc::try_unwrap(cell).unwrap();
        assert_eq!(cell.take().as_deref(), Some("second"));
        assert_eq!(cell.set("third".to_string()), Ok(()));
        assert_eq!(cell.into_inner().as_deref(), Some("third"));
    });
}

static SQUARES: LazyLock<Vec<u64>> = LazyLock::new(|| (0..100).map(|i| i * i).collect());

/// A `static` `LazyLock` used from coroutines on several workers and from threads: computed once,
/// the same value for everyone.
#[test]
fn lazy_lock_static_is_computed_once_for_coroutines_and_threads() {
    for workers in WORKER_COUNTS {
        let sum = on_workers(workers, || {
            let coroutines: Vec<_> = (0..8).map(|_| coact::spawn(|| SQUARES[10])).collect();
            let threads: Vec<_> = (0..2).map(|_| thread::spawn(|| SQUARES[10])).collect();
            let mut sum: u64 = coroutines.into_iter().map(|h| h.join().unwrap()).sum();
            sum += threads.into_iter().map(|h| h.join().unwrap()).sum::<u64>();
            sum
        });
        assert_eq!(sum, 10 * 100, "workers={workers}");
    }
    assert_eq!(SQUARES.len(), 100);
}

/// A `LazyLock` whose initialiser panicked stays poisoned: every later use panics, as std's.
#[test]
fn lazy_lock_is_poisoned_by_a_panicking_initialiser() {
    on_workers(1, || {
        let lazy: Arc<LazyLock<u32, Box<dyn FnOnce() -> u32 + Send>>> =
            Arc::new(LazyLock::new(Box::new(|| panic!("no value"))));
        for _ in 0..2 {
            let l = lazy.clone();
            let r = coact::spawn(move || **l).join();
            assert!(r.is_err());
        }
    });
}

/// `Once::call_once` from 10 coroutines and 2 threads, its closure parking: it runs once and
/// every caller returns after it completed. A panicking closure poisons the `Once`:
/// `call_once` then panics, `call_once_force` runs (told so) and clears it.
#[test]
fn once_runs_its_closure_once_and_is_poisoned_by_a_panic() {
    for workers in [1, 2] {
        on_workers(workers, || {
            let once = Arc::new(Once::new());
            let runs = Arc::new(AtomicUsize::new(0));
            let call = {
                let (once, runs) = (once.clone(), runs.clone());
                move || {
                    once.call_once(|| {
                        coact::yield_now(); // parks: the others wait for it
                        runs.fetch_add(1, Ordering::SeqCst);
                    });
                    assert!(once.is_completed());
                    runs.load(Ordering::SeqCst)
                }
            };
            let coroutines: Vec<_> = (0..10).map(|_| coact::spawn(call.clone())).collect();
            let threads: Vec<_> = (0..2).map(|_| thread::spawn(call.clone())).collect();
            for c in coroutines {
                assert_eq!(c.join().unwrap(), 1);
            }
            for t in threads {
                assert_eq!(t.join().unwrap(), 1);
            }

            let once = Arc::new(Once::new());
            let o = once.clone();
            assert!(coact::spawn(move || o.call_once(|| panic!("fails")))
                .join()
                .is_err());
            assert!(!once.is_completed());
            let o = once.clone();
            assert!(
                coact::spawn(move || o.call_once(|| ())).join().is_err(),
                "poisoned"
            );
            let mut told = None;
            once.call_once_force(|state| told = Some(state.is_poisoned()));
            assert_eq!(told, Some(true));
            assert!(once.is_completed());
            once.call_once(|| unreachable!("completed already"));
            once.wait();
        });
    }
}

/// `Once::wait` parks until another party's closure completes (never running one itself), and
/// panics if that closure panicked; `wait_force` returns then.
#[test]
fn once_wait_parks_until_the_closure_completes_or_panics() {
    for workers in [1, 2] {
        on_workers(workers, || {
            let once = Arc::new(Once::new());
            let (go_tx, go_rx) = channel::<()>();
            let (waiting_tx, waiting_rx) = channel();
            let waiters: Vec<_> = (0..3)
                .map(|_| {
                    let (once, waiting_tx) = (once.clone(), waiting_tx.clone());
                    coact::spawn(move || {
                        waiting_tx.send(()).unwrap();
                        once.wait();
                        once.is_completed()
                    })
                })
                .collect();
            for _ in 0..3 {
                waiting_rx.recv().unwrap();
            }
            let o = once.clone();
            let runner = coact::spawn(move || o.call_once(|| go_rx.recv().unwrap()));
            go_tx.send(()).unwrap();
            runner.join().unwrap();
            for w in waiters {
                assert!(w.join().unwrap());
            }

            let once = Arc::new(Once::new());
            let (o1, o2) = (once.clone(), once.clone());
            let (waiting_tx, waiting_rx) = channel();
            let strict = coact::spawn(move || {
                waiting_tx.send(()).unwrap();
                o1.wait()
            });
            waiting_rx.recv().unwrap();
            assert!(coact::spawn(move || o2.call_once(|| panic!("fails")))
                .join()
                .is_err());
            assert!(strict.join().is_err(), "wait panics on a poisoned Once");
            once.wait_force();
            assert!(!once.is_completed());
        });
    }
}
