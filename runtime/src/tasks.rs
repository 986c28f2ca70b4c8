//! A worker's unstarted tasks: in the deque its peers steal from, or, for a worker without
//! peers, in a plain queue.
//!
//! Idle peers steal from a worker's `crossbeam_deque`, which makes every push and pop an
//! atomic operation, and which grows by doubling when a push finds it full and shrinks by half
//! when a pop leaves it a quarter full, allocating a new buffer each time. A burst of spawns (a
//! thousand coroutines at once, an actor fanning out to a thousand others) takes it through
//! every size and back on each burst, and the allocations of the shrinking half made malloc
//! consolidate every small block freed since. That is the price of being stealable, and a
//! worker with peers pays it: a task a peer cannot see could wait behind a long computation
//! while the peer idles. A worker without peers has nobody to steal for, so its tasks wait in a
//! `VecDeque` that keeps its capacity (W4, spawning coroutines in batches of 1,000 on one
//! worker: 165 to 144 ns per spawn, medians of an interleaved comparison).

use std::cell::RefCell;
use std::collections::VecDeque;

use crossbeam_deque::Worker as Deque;

use crate::fiber::Task;

/// A worker's unstarted tasks, first in, first out. Only the owning worker thread uses it;
/// peers reach the deque through its stealer.
pub(crate) struct Tasks {
    /// Tasks peers may steal; for a worker without peers, only what it took from the
    /// injector in a batch (see [`Tasks::deque`]).
    deque: Deque<Task>,
    /// The tasks of a worker without peers.
    local: RefCell<VecDeque<Task>>,
    peers: bool,
}

impl Tasks {
    /// Wraps the worker's deque (whose stealer its peers already hold); `peers`: whether
    /// the worker has any.
    pub(crate) fn new(deque: Deque<Task>, peers: bool) -> Tasks {
        Tasks {
            deque,
            local: RefCell::new(VecDeque::new()),
            peers,
        }
    }

    /// The deque, as the destination of a batch steal (from the injector or a peer). Batch
    /// steals go there only while this worker holds no tasks, so what they bring is older than
    /// anything queued after it.
    pub(crate) fn deque(&self) -> &Deque<Task> {
        &self.deque
    }

    /// Queues a task behind all others.
    pub(crate) fn push(&self, task: Task) {
        if self.peers {
            self.deque.push(task);
        } else {
            self.local.borrow_mut().push_back(task);
        }
    }

    /// Whether peers can steal what [`Tasks::push`] queues.
    pub(crate) fn stealable(&self) -> bool {
        self.peers
    }

    /// Takes the oldest task.
    pub(crate) fn pop(&self) -> Option<Task> {
        self.deque
            .pop()
            .or_else(|| self.local.borrow_mut().pop_front())
    }

    /// Tasks waiting (a peer may be stealing from the deque meanwhile).
    pub(crate) fn len(&self) -> usize {
        self.deque.len() + self.local.borrow().len()
    }

    /// Whether no task waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.deque.is_empty() && self.local.borrow().is_empty()
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
    fn first_in_first_out_with_and_without_peers() {
        for peers in [false, true] {
            let log = Arc::new(Mutex::new(Vec::new()));
            let tasks = Tasks::new(Deque::new_fifo(), peers);
            // What a batch steal from the injector leaves in the deque of an idle worker.
            tasks.deque().push(task(&log, 0));
            for i in 1..1000 {
                tasks.push(task(&log, i));
            }
            assert_eq!(tasks.len(), 1000);
            assert_eq!(tasks.deque().len(), if peers { 1000 } else { 1 });
            let mut run = 0;
            while let Some(t) = tasks.pop() {
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
}
