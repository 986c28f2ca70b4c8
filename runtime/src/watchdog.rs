//! The watchdog: reports a worker stuck in one coroutine.
//!
//! A coroutine that makes a thread-blocking call (`std::thread::sleep`, a contended
//! `std::sync::Mutex`, blocking file or DNS I/O) or computes for long without a blocking call
//! stalls every other coroutine on its worker, and its sockets. Nothing in the coroutine's own
//! code shows it, so each runtime runs one watchdog thread: every worker publishes a progress
//! count (bumped before and after each resume, so odd while a coroutine runs); a worker seen running
//! with the same count for longer than the threshold is reported once per stall, by default
//! as a `tracing` warning (see [`Builder::stall_threshold`](crate::Builder::stall_threshold) and
//! [`Builder::on_stall`](crate::Builder::on_stall)).
//!
//! The watchdog also keeps such a worker's waiting tasks from waiting on it: a worker seen
//! running the same coroutine on two ticks in a row, with tasks a peer could steal, gets a
//! sleeping peer woken to take them (a worker asks for help itself only at a backlog of 16
//! or at the end of a round of its loop, and a coroutine that computes never ends the round).

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::label::Label;
use crate::worker::Shared;

/// A worker that ran one coroutine for longer than the stall threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stall {
    /// The worker's index.
    pub worker: usize,
    /// How long it had been running the same coroutine when it was noticed.
    pub running_for: Duration,
    /// That coroutine's label, if it set one since it last parked or yielded
    /// ([`set_label`](crate::set_label); a handler actor's activation is labelled with the
    /// actor's type).
    pub label: Option<Label>,
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.label {
            Some(l) => format!("`{l}`"),
            None => "one coroutine".to_string(),
        };
        write!(
            f,
            "coact: worker {} has run {what} for {} ms without it blocking or yielding; \
             every other coroutine on that worker waits. Look for a thread-blocking call \
             (std::thread::sleep, std::sync::Mutex, blocking file or DNS I/O) or a long \
             computation; use coact's versions, coact::offload for calls that have none, \
             or yield_now() in long loops",
            self.worker,
            self.running_for.as_millis()
        )
    }
}

/// The label recorded in `word` (see `Remote::label`) if it was set during the resume whose
/// progress count is `progress`.
fn stalled_label(word: u64, progress: u64) -> Option<Label> {
    if word & 0xffff_ffff == progress & 0xffff_ffff {
        Label::from_id((word >> 32) as u32)
    } else {
        None
    }
}

/// What the watchdog calls for each stall.
pub(crate) type StallHook = Arc<dyn Fn(&Stall) + Send + Sync>;

/// The default hook: a `tracing` warning (target `coact::watchdog`).
pub(crate) fn print_stall(s: &Stall) {
    tracing::warn!(target: "coact::watchdog", "{s}");
}

/// Starts the watchdog thread of a runtime. It ends when the runtime shuts down.
pub(crate) fn start(
    shared: Arc<Shared>,
    threshold: Duration,
    hook: StallHook,
) -> std::io::Result<thread::JoinHandle<()>> {
    thread::Builder::new()
        .name("coact-watchdog".into())
        .spawn(move || {
            let n = shared.remotes.len();
            // Per worker: the progress count last seen, since when, and whether reported.
            let mut seen: Vec<(u64, Instant, bool)> = vec![(u64::MAX, Instant::now(), false); n];
            let tick = (threshold / 4).max(Duration::from_millis(1));
            while !shared.is_shutting_down() {
                thread::park_timeout(tick);
                let now = Instant::now();
                for (i, r) in shared.remotes.iter().enumerate() {
                    let progress = r.progress.load(Ordering::Relaxed);
                    let running = progress % 2 == 1;
                    let (last, since, reported) = &mut seen[i];
                    if !running || progress != *last {
                        *last = progress;
                        *since = now;
                        *reported = false;
                        continue;
                    }
                    // The same coroutine since the last tick.
                    shared.rescue_backlog(i);
                    if !*reported && now.duration_since(*since) >= threshold {
                        *reported = true;
                        hook(&Stall {
                            worker: i,
                            running_for: now.duration_since(*since),
                            label: stalled_label(r.label.load(Ordering::Relaxed), progress),
                        });
                    }
                }
            }
        })
}
