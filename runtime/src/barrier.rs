//! Asymmetric memory barriers: a cheap fence for a hot path and a costly one for the rare
//! party it pairs with.
//!
//! A store-then-load handshake between two threads (each writes its own flag, then reads the
//! other's) needs a full fence on both sides, or both may read the old values. When one side
//! runs millions of times a second (an actor starting an activation) and the other almost never
//! (a `kill`), the fence can be moved: the hot side calls [`light`], which costs nothing but a
//! compiler barrier, and the rare side calls [`heavy`], which makes every running thread of the
//! process execute a full fence (Linux's `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, a
//! system call that interrupts the process's other CPUs). Pairing them is as strong as a
//! `fence(SeqCst)` on each side: every other thread's program order is cut by a full fence
//! somewhere during the `heavy` call, so either the hot side's store is visible to the loads
//! after `heavy`, or the hot side's load comes after the fence and sees the rare side's store.
//!
//! Where the kernel does not offer the command (not Linux, an old kernel, a sandbox that
//! refuses it), both functions are `fence(SeqCst)`. A light side that skipped its fence is
//! always met by a heavy side that used the command: the registration only ever goes from
//! "not yet" to "done", and `heavy` settles it before it looks. The command is registered
//! when the first runtime is built, before its threads start, so that hot paths take the cheap
//! branch from the start.
//!
//! ```
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use coact_runtime::barrier;
//!
//! let (mine, theirs) = (AtomicBool::new(false), AtomicBool::new(false));
//! // The hot side: publish, then look.
//! mine.store(true, Ordering::Relaxed);
//! barrier::light();
//! let _saw = theirs.load(Ordering::Relaxed);
//! // The rare side (another thread, normally) does the mirror image with `barrier::heavy()`.
//! ```

use std::sync::atomic::{compiler_fence, fence, AtomicBool, Ordering};
use std::sync::Once;

/// Whether `heavy` makes every thread of the process fence (the command is registered).
static EXPEDITED: AtomicBool = AtomicBool::new(false);
static INIT: Once = Once::new();

/// The hot side's fence: a compiler barrier where [`heavy`] fences the other threads, a
/// `fence(SeqCst)` otherwise.
#[inline(always)]
pub fn light() {
    if EXPEDITED.load(Ordering::Relaxed) {
        compiler_fence(Ordering::SeqCst);
    } else {
        fence(Ordering::SeqCst);
    }
}

/// The rare side's fence: makes every running thread of the process execute a full fence
/// (a system call that costs microseconds), then fences this thread.
///
/// It settles the registration first (`init`), so it always knows the final answer: a
/// [`light`] that skipped its fence (it saw the command registered) is always paired with a
/// `heavy` that uses the command, whatever the order in which threads first got here.
pub fn heavy() {
    init();
    if EXPEDITED.load(Ordering::Acquire) && !sys::private_expedited() {
        // Registered commands do not fail; if the kernel ever says otherwise, hot sides that
        // skipped their fence cannot be trusted, and continuing could lose a kill silently.
        eprintln!("coact: membarrier failed after it was registered; aborting");
        std::process::abort();
    }
    fence(Ordering::SeqCst);
}

/// Registers the process for expedited barriers, once: when a runtime is built (before its
/// worker threads start) and by every [`heavy`]. Cheap after the first call (one load).
pub(crate) fn init() {
    INIT.call_once(|| {
        if sys::register() {
            EXPEDITED.store(true, Ordering::Release);
        }
    });
}

/// Whether [`heavy`] uses the kernel's expedited barrier (for tests and diagnostics).
pub fn is_expedited() -> bool {
    EXPEDITED.load(Ordering::Acquire)
}

#[cfg(target_os = "linux")]
mod sys {
    // From <linux/membarrier.h>.
    const CMD_QUERY: libc::c_long = 0;
    const CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

    fn membarrier(cmd: libc::c_long) -> libc::c_long {
        // SAFETY: membarrier takes two integer arguments (command and flags) and touches no
        // memory of ours; an unknown command fails with EINVAL.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long) }
    }

    /// Registers the process for private expedited barriers; false if the kernel cannot.
    pub(super) fn register() -> bool {
        let supported = membarrier(CMD_QUERY);
        if supported < 0 || supported & CMD_PRIVATE_EXPEDITED == 0 {
            return false;
        }
        membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0
    }

    /// One private expedited barrier; false if the kernel refused it.
    pub(super) fn private_expedited() -> bool {
        membarrier(CMD_PRIVATE_EXPEDITED) == 0
    }
}

#[cfg(not(target_os = "linux"))]
mod sys {
    pub(super) fn register() -> bool {
        false
    }

    pub(super) fn private_expedited() -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::{Arc, Barrier};

    /// The store-buffering handshake never lets both sides read the old value: one thread
    /// stores and calls `light`, the other stores and calls `heavy`, each then loads the other's
    /// flag; 2,000 rounds, and in each at least one side sees the other's store.
    #[test]
    fn light_and_heavy_forbid_both_sides_missing_each_other() {
        init();
        const ROUNDS: usize = 2_000;
        let a = Arc::new(AtomicUsize::new(0));
        let b = Arc::new(AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(2));
        // One side of each round: store this side's flag, fence, look at the other's.
        fn side(
            mine: &AtomicUsize,
            theirs: &AtomicUsize,
            start: &Barrier,
            fence: fn(),
        ) -> Vec<bool> {
            (1..=ROUNDS)
                .map(|round| {
                    start.wait();
                    mine.store(round, Ordering::Relaxed);
                    fence();
                    let saw = theirs.load(Ordering::Relaxed) >= round;
                    start.wait();
                    saw
                })
                .collect()
        }
        let hot = {
            let (a, b, start) = (a.clone(), b.clone(), start.clone());
            std::thread::spawn(move || side(&a, &b, &start, light))
        };
        let seen = side(&b, &a, &start, heavy);
        let hot_seen = hot.join().expect("the hot thread");
        for (round, (h, r)) in hot_seen.iter().zip(&seen).enumerate() {
            assert!(
                *h || *r,
                "round {round}: both sides missed the other's store"
            );
        }
    }
}
