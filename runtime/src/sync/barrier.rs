//! A barrier with `std::sync::Barrier`'s API, usable from coroutines and plain threads at once.
//!
//! Built on coact's [`Mutex`] and [`Condvar`]: each round has a generation number, and a waiter
//! waits until the round it joined has been completed by its last party.

use std::fmt;

use crate::sync::{Condvar, Mutex};

/// Lets `n` parties wait until all of them have arrived, then lets them all go, round after
/// round.
///
/// ```
/// use std::sync::Arc;
/// use coact_runtime::sync::Barrier;
///
/// let leaders = coact_runtime::run(|| {
///     let barrier = Arc::new(Barrier::new(5));
///     let parties: Vec<_> = (0..5)
///         .map(|_| {
///             let barrier = barrier.clone();
///             coact_runtime::spawn(move || barrier.wait().is_leader())
///         })
///         .collect();
///     let led: Vec<bool> = parties.into_iter().map(|p| p.join().unwrap()).collect();
///     led.into_iter().filter(|&l| l).count()
/// });
/// assert_eq!(leaders, 1);
/// ```
pub struct Barrier {
    round: Mutex<Round>,
    cv: Condvar,
    parties: usize,
}

struct Round {
    arrived: usize,
    generation: u64,
}

/// What [`Barrier::wait`] tells each party.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarrierWaitResult(bool);

impl BarrierWaitResult {
    /// `true` for exactly one party of each round: the last to arrive.
    pub fn is_leader(&self) -> bool {
        self.0
    }
}

impl Barrier {
    /// A barrier for `n` parties (a barrier for 0 parties behaves as one for 1, like std's).
    pub const fn new(n: usize) -> Barrier {
        Barrier {
            round: Mutex::new(Round {
                arrived: 0,
                generation: 0,
            }),
            cv: Condvar::new(),
            parties: n,
        }
    }

    /// Parks the coroutine (or blocks the thread) until all parties have called `wait` in this
    /// round.
    pub fn wait(&self) -> BarrierWaitResult {
        // Nothing is left half-updated under the lock, so a poisoned lock's data is sound.
        let mut r = self.round.lock().unwrap_or_else(|e| e.into_inner());
        r.arrived += 1;
        if r.arrived < self.parties {
            let generation = r.generation;
            let _r = self
                .cv
                .wait_while(r, |r| r.generation == generation)
                .unwrap_or_else(|e| e.into_inner());
            BarrierWaitResult(false)
        } else {
            r.arrived = 0;
            r.generation = r.generation.wrapping_add(1);
            drop(r);
            self.cv.notify_all();
            BarrierWaitResult(true)
        }
    }
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .finish_non_exhaustive()
    }
}
