//! A worker's unstarted tasks: a stealable deque of bounded length, and an overflow behind it.
//!
//! Idle peers steal from the deque (`crossbeam_deque`). That deque grows by doubling when a
//! push finds it full and shrinks by half when a pop leaves it a quarter full, each time
//! allocating a new buffer and retiring the old one through the epoch collector. A burst of
//! spawns (a thousand coroutines at once, an actor fanning out to a thousand workers) made it
//! grow and shrink through every size on each burst, and the shrinking allocations made the
//! allocator consolidate every small block freed since (about a tenth of the time of a
//! spawn-heavy workload went there).
//!
//! So the deque is never allowed past its initial capacity ([`STEALABLE`]): it never resizes.
//! Tasks beyond it wait in a plain `VecDeque` that only its worker sees, and move into the
//! deque as it drains. Order is kept: every task in the deque is older than every task in the
//! overflow, so taking from the deque first and refilling it from the overflow's front is
//! first-in, first-out. Peers can steal at most [`STEALABLE`] tasks at a time, which is more
//! than one steal takes anyway (a steal takes half the deque, and at most 32).

use std::cell::RefCell;
use std::collections::VecDeque;

use crossbeam_deque::Worker as Deque;

use crate::fiber::Task;

/// The deque's fixed capacity: the smallest a `crossbeam_deque::Worker` has, which it only
/// leaves by growing when a push finds it full.
pub(crate) const STEALABLE: usize = 64;

/// Refill the deque from the overflow once it holds this many tasks or fewer.
const REFILL_AT: usize = STEALABLE / 2;

/// A worker's unstarted tasks, first in, first out. Only the owning worker thread uses it;
/// peers reach the deque through its stealer.
pub(crate) struct Tasks {
    deque: Deque<Task>,
    overflow: RefCell<VecDeque<Task>>,
    /// The deque's capacity: [`STEALABLE`], or 0 when the worker has no peers (then every
    /// task waits in the overflow, and no push or pop pays the deque's atomic operations).
    stealable: usize,
}

impl Tasks {
    /// Wraps the worker's deque (whose stealer its peers already hold); `peers`: whether
    /// the worker has any.
    pub(crate) fn new(deque: Deque<Task>, peers: bool) -> Tasks {
        Tasks {
            deque,
            overflow: RefCell::new(VecDeque::new()),
            stealable: if peers { STEALABLE } else { 0 },
        }
    }

    /// The stealable deque, as the destination of a batch steal (from the injector or a
    /// peer). Batch steals go there only while this worker holds no tasks, and take at most
    /// 32, so the deque stays within its capacity.
    pub(crate) fn deque(&self) -> &Deque<Task> {
        &self.deque
    }

    /// Queues a task behind all others.
    pub(crate) fn push(&self, task: Task) {
        let mut overflow = self.overflow.borrow_mut();
        if overflow.is_empty() && self.deque.len() < self.stealable {
            self.deque.push(task);
        } else {
            overflow.push_back(task);
        }
    }

    /// Takes the oldest task.
    pub(crate) fn pop(&self) -> Option<Task> {
        {
            let mut overflow = self.overflow.borrow_mut();
            if self.stealable == 0 {
                // No peers: the deque only ever holds what a steal from the injector put there.
                return self.deque.pop().or_else(|| overflow.pop_front());
            }
            if !overflow.is_empty() {
                let len = self.deque.len();
                if len <= REFILL_AT {
                    let n = (STEALABLE - len).min(overflow.len());
                    for t in overflow.drain(..n) {
                        self.deque.push(t);
                    }
                }
            }
        }
        self.deque.pop()
    }

    /// Tasks waiting (a peer may be stealing from the deque meanwhile).
    pub(crate) fn len(&self) -> usize {
        self.deque.len() + self.overflow.borrow().len()
    }

    /// Whether no task waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.deque.is_empty() && self.overflow.borrow().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn task(log: &Arc<Mutex<Vec<usize>>>, i: usize) -> Task {
        let log = log.clone();
        Task::Detached(Box::new(move || log.lock().unwrap().push(i)))
    }

    #[test]
    fn first_in_first_out_across_the_overflow_and_steals() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let tasks = Tasks::new(Deque::new_fifo(), true);
        let stealer = tasks.deque().stealer();
        for i in 0..1000 {
            tasks.push(task(&log, i));
        }
        assert_eq!(tasks.len(), 1000);
        assert_eq!(tasks.deque().len(), STEALABLE);
        // A peer steals from the front: the oldest tasks.
        let thief = Deque::new_fifo();
        let _ = stealer.steal_batch(&thief);
        let stolen = thief.len();
        assert!(stolen > 0);
        while let Some(t) = thief.pop() {
            t.run();
        }
        let mut run = 0;
        while let Some(t) = tasks.pop() {
            assert!(tasks.deque().len() <= STEALABLE);
            t.run();
            run += 1;
            // Pushes in the middle of draining go behind everything already queued.
            if run == 500 {
                for i in 1000..1100 {
                    tasks.push(task(&log, i));
                }
            }
        }
        assert!(tasks.is_empty());
        assert_eq!(*log.lock().unwrap(), (0..1100).collect::<Vec<_>>());
    }
}
