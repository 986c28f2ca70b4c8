//! Sleeping and deadlines.
//!
//! Inside a coroutine, [`sleep`] parks only the calling coroutine: its worker keeps a timer
//! heap and wakes it when the deadline passes, and sleeps in the I/O poll no longer than the
//! nearest deadline. On a plain thread, [`sleep`] is [`std::thread::sleep`].
//!
//! Every blocking call with a timeout (`recv_timeout`, `select_timeout`, ...) uses the same
//! worker timers. A wait that ends before its deadline leaves its heap entry behind as a stale
//! record (checked by sequence number when it pops); when stale records outnumber live ones the
//! heap is rebuilt, so a loop of short waits with long timeouts keeps the heap small.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::park::{self, Park};

/// Parks the caller for at least `dur`.
///
/// In a coroutine, other coroutines run meanwhile. If the runtime ends during the sleep, the
/// coroutine is cancelled: the sleep does not return and the stack unwinds.
pub fn sleep(dur: Duration) {
    match Instant::now().checked_add(dur) {
        Some(deadline) => sleep_until(deadline),
        None => sleep_forever(),
    }
}

/// Parks the caller until `deadline` has passed.
pub fn sleep_until(deadline: Instant) {
    if !crate::in_coroutine() {
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        return;
    }
    while Instant::now() < deadline {
        if park::park(Some(deadline)) == Park::Cancelled {
            park::cancelled();
            return;
        }
    }
}

fn sleep_forever() {
    if !crate::in_coroutine() {
        loop {
            std::thread::park();
        }
    }
    loop {
        if park::park(None) == Park::Cancelled {
            park::cancelled();
            return;
        }
    }
}

/// One pending timer: wake fiber `key` of generation `gen` at `at`, if its current timer is
/// still `seq`.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Instant,
    seq: u64,
    key: u32,
    gen: u32,
}

/// A worker's timers.
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Entries in `heap` whose wait already ended.
    stale: usize,
    next_seq: u64,
}

impl Timers {
    pub(crate) fn new() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            stale: 0,
            next_seq: 1,
        }
    }

    /// Adds a timer for fiber (`key`, `gen`); returns its sequence number (never 0).
    pub(crate) fn add(&mut self, at: Instant, key: u32, gen: u32) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse(Entry { at, seq, key, gen }));
        seq
    }

    /// Notes that one timer's wait ended before it fired; rebuilds the heap when stale
    /// entries are the majority. `live` says whether an entry still counts.
    pub(crate) fn cancelled(&mut self, live: impl Fn(u32, u32, u64) -> bool) {
        self.stale += 1;
        if self.stale > 64 && self.stale * 2 > self.heap.len() {
            let old = std::mem::take(&mut self.heap).into_vec();
            self.heap = old
                .into_iter()
                .filter(|Reverse(e)| live(e.key, e.gen, e.seq))
                .collect();
            self.stale = 0;
        }
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Pops one timer due at `now`, as (key, gen, seq).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u32, u32, u64)> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => {
                let Reverse(e) = self.heap.pop()?;
                Some((e.key, e.gen, e.seq))
            }
            _ => None,
        }
    }

    /// Counts a popped entry that turned out stale.
    pub(crate) fn popped_stale(&mut self) {
        self.stale = self.stale.saturating_sub(1);
    }

    /// Number of entries (live and stale).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_pop_in_deadline_order() {
        let mut t = Timers::new();
        let now = Instant::now();
        t.add(now + Duration::from_millis(30), 3, 0);
        t.add(now + Duration::from_millis(10), 1, 0);
        t.add(now + Duration::from_millis(20), 2, 0);
        assert!(t.pop_due(now).is_none());
        let later = now + Duration::from_secs(1);
        let keys: Vec<u32> = std::iter::from_fn(|| t.pop_due(later))
            .map(|e| e.0)
            .collect();
        assert_eq!(keys, vec![1, 2, 3]);
    }

    #[test]
    fn stale_entries_are_swept() {
        let mut t = Timers::new();
        let at = Instant::now() + Duration::from_secs(3600);
        let mut seqs = Vec::new();
        for k in 0..1000 {
            seqs.push(t.add(at, k, 0));
        }
        // Every wait ends early except the last one.
        for _ in 0..999 {
            t.cancelled(|k, _, _| k == 999);
        }
        assert!(t.len() < 600, "heap kept {} entries", t.len());
    }
}
