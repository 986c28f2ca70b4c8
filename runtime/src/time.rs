//! Sleeping and deadlines.
//!
//! Inside a coroutine, [`sleep`] parks only the calling coroutine: its worker keeps a timer
//! heap and wakes it when the deadline passes, and sleeps in the I/O poll no longer than the
//! nearest deadline. On a plain thread, [`sleep`] is [`std::thread::sleep`].
//!
//! [`tick`] and [`after`] deliver the time on a channel, periodically or once, so that a
//! [`Select`](crate::select::Select) or [`select!`](crate::select!) loop can wait for a
//! heartbeat beside its other channels:
//!
//! ```
//! use std::time::Duration;
//! use coact_runtime::{select, time};
//! use coact_runtime::sync::mpsc::channel;
//!
//! coact_runtime::run(|| {
//!     let (tx, rx) = channel::<&str>();
//!     let beat = time::tick(Duration::from_millis(5));
//!     tx.send("hello").unwrap();
//!     let (mut got, mut beats) = (Vec::new(), 0);
//!     while beats < 3 {
//!         select! {
//!             recv(rx) -> msg => got.push(msg.unwrap()),
//!             recv(beat) -> _ => beats += 1,
//!         }
//!     }
//!     assert_eq!(got, ["hello"]);
//! });
//! ```
//!
//! [`alarm`] and [`alarm_every`] run a callback at a deadline or a period on the worker
//! itself, with no coroutine and so no stack held while they wait: what `tick` and `after`
//! are built on, and the way to keep thousands of timers (an actor's heartbeat, a session's
//! idle timeout). The callback must not wait; it sends with `try_send` or spawns.
//!
//! Every blocking call with a timeout (`recv_timeout`, `select_timeout`, ...) uses the same
//! worker timers. A wait that ends before its deadline leaves its heap entry behind as a stale
//! record (checked by sequence number when it pops); when stale records outnumber live ones the
//! heap is rebuilt, so a loop of short waits with long timeouts keeps the heap small.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::ops::Deref;
use std::time::{Duration, Instant};

pub use crate::alarm::{alarm, alarm_after, alarm_every, Alarm};
use crate::park::{self, Park};
use crate::sync::mpsc::{sync_channel, Receiver, TrySendError};

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
        crate::alarm::forbid_blocking();
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
        crate::alarm::forbid_blocking();
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

/// The receiving end of [`tick`] or [`after`]: a [`Receiver`] of the times the timer fired
/// (it derefs to one, so `recv`, `recv_timeout`, `Select::recv` and `select!`'s `recv(...)`
/// take it as they are). Dropping it stops the timer at once.
pub struct Timer {
    rx: Receiver<Instant>,
    /// Cancelled when the `Timer` is dropped.
    _alarm: Alarm,
}

impl Deref for Timer {
    type Target = Receiver<Instant>;
    fn deref(&self) -> &Receiver<Instant> {
        &self.rx
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer").finish_non_exhaustive()
    }
}

/// A timer that delivers the time every `period`, the first after one period. Deadlines do
/// not drift (the n-th is due n periods after the call); a tick that finds the previous one
/// still unreceived is dropped, as are ticks missed while the timer could not run, so a slow
/// receiver gets at most one waiting tick, never a burst.
///
/// The timer is an [`alarm_every`] sending on the channel: it holds no coroutine or stack
/// while it waits (called outside a runtime, it runs on a thread of its own). It ends when the
/// [`Timer`] is dropped.
///
/// # Panics
/// If `period` is zero.
pub fn tick(period: Duration) -> Timer {
    assert!(
        !period.is_zero(),
        "coact: a tick period must be longer than zero"
    );
    let (tx, rx) = sync_channel::<Instant>(1);
    let alarm = alarm_every(period, move |now| {
        !matches!(tx.try_send(now), Err(TrySendError::Disconnected(_)))
    });
    Timer { rx, _alarm: alarm }
}

/// A timer that delivers the time once, after `delay`; its channel is disconnected after
/// that (a later `recv` fails). See [`tick`] for where it runs.
pub fn after(delay: Duration) -> Timer {
    let (tx, rx) = sync_channel::<Instant>(1);
    let send = move |now| {
        let _ = tx.try_send(now);
    };
    // A delay past the end of `Instant` never comes: the sender is kept, so the channel
    // stays connected.
    let alarm = alarm_after(delay, send);
    Timer { rx, _alarm: alarm }
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
