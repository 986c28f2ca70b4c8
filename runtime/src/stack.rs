//! Guarded coroutine stacks: the per-worker pool, the process-wide cap, and the overflow reporter.
//!
//! Every coroutine runs on a [`corosensei::stack::DefaultStack`]: an `mmap`ed region with one
//! inaccessible guard page at its low end. Each such stack costs the kernel two memory mappings,
//! and a process may hold at most `vm.max_map_count` (65,530 by default) mappings; at that limit
//! even `malloc` fails. So:
//!
//! * **Pool.** A finished coroutine gives its stack back to its worker's [`StackPool`]; the next
//!   coroutine started there reuses it (about 12 ns instead of about 4 µs for `mmap` +
//!   `mprotect` + `munmap`). An idle worker trims its pool by half (down to [`POOL_KEEP`]).
//! * **Cap.** Live coroutines are counted process-wide ([`reserve`] / [`release`]). A spawn past
//!   the cap is refused with a clear [`io::Error`], well before the kernel limit: by default the
//!   cap lets live coroutines use at most 40 % of the map limit, and stacks allocated (pooled or
//!   in use) may use at most 60 % of it, leaving the rest to the allocator and the program.
//! * **Overflow.** A coroutine that runs past its stack touches the guard page and gets
//!   `SIGSEGV`. The handler installed by [`install_overflow_handler`] compares the faulting
//!   address with the guard page of the coroutine running on that thread (published through
//!   [`set_current_guard`] before every resume); on a match it prints a sentence naming the
//!   problem and aborts. Any other fault is passed on to the previous handler.
//!
//! This module and `fiber.rs` are the only places that touch stack memory; the `unsafe` here is
//! the signal-handler plumbing, each block with its reason.

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use corosensei::stack::{DefaultStack, Stack};

/// How many free stacks an idle worker keeps when it trims its pool.
pub(crate) const POOL_KEEP: usize = 64;

/// Coroutines alive (spawned and not yet finished) in this process, over all runtimes.
static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Guarded stacks currently mapped (in use or pooled) in this process.
static MAPPED: AtomicUsize = AtomicUsize::new(0);

/// The kernel's limit on memory mappings per process, read once.
fn max_map_count() -> usize {
    static VALUE: AtomicUsize = AtomicUsize::new(0);
    let v = VALUE.load(Ordering::Relaxed);
    if v != 0 {
        return v;
    }
    let v = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .unwrap_or(65_530);
    VALUE.store(v, Ordering::Relaxed);
    v
}

/// The default cap on live coroutines: 40 % of the map limit, two mappings per stack.
pub(crate) fn default_max_stacks() -> usize {
    max_map_count() * 4 / 10 / 2
}

/// The hard limit on mapped stacks (pooled + in use): 60 % of the map limit.
fn mapped_limit() -> usize {
    max_map_count() * 6 / 10 / 2
}

/// Guarded stacks mapped in this process now (in use or pooled).
#[cfg(test)]
pub(crate) fn mapped() -> usize {
    MAPPED.load(Ordering::Relaxed)
}

/// The number of coroutines alive in this process (spawned and not finished), over all runtimes.
pub fn live_coroutines() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Reserves room for one more live coroutine, or explains why there is none.
pub(crate) fn reserve(cap: usize) -> io::Result<()> {
    let mut cur = LIVE.load(Ordering::Relaxed);
    loop {
        if cur >= cap {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!(
                    "coact: cannot spawn: {cur} coroutines are alive and the cap is {cap} \
                     (each needs a guarded stack, which costs two of the kernel's \
                     vm.max_map_count = {} mappings); raise Builder::max_stacks or keep fewer alive",
                    max_map_count()
                ),
            ));
        }
        match LIVE.compare_exchange_weak(cur, cur + 1, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(now) => cur = now,
        }
    }
}

/// Gives back the room taken by [`reserve`].
pub(crate) fn release() {
    LIVE.fetch_sub(1, Ordering::Relaxed);
}

/// A worker's free stacks, all of one size.
pub(crate) struct StackPool {
    free: Vec<DefaultStack>,
    size: usize,
}

impl StackPool {
    /// An empty pool handing out stacks of `size` usable bytes.
    pub(crate) fn new(size: usize) -> Self {
        StackPool {
            free: Vec::new(),
            size,
        }
    }

    /// A stack from the pool, or a freshly mapped one.
    pub(crate) fn take(&mut self) -> io::Result<DefaultStack> {
        if let Some(s) = self.free.pop() {
            return Ok(s);
        }
        if MAPPED.fetch_add(1, Ordering::Relaxed) >= mapped_limit() {
            MAPPED.fetch_sub(1, Ordering::Relaxed);
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "coact: no guarded stack can be mapped: the process is at 60% of vm.max_map_count",
            ));
        }
        DefaultStack::new(self.size).inspect_err(|_| {
            MAPPED.fetch_sub(1, Ordering::Relaxed);
        })
    }

    /// Returns a stack for reuse.
    pub(crate) fn give(&mut self, stack: DefaultStack) {
        self.free.push(stack);
    }

    /// Frees half of the pooled stacks beyond [`POOL_KEEP`]; called when the worker is idle.
    pub(crate) fn trim(&mut self) {
        if self.free.len() > POOL_KEEP {
            let keep = POOL_KEEP.max(self.free.len() / 2);
            let n = self.free.len() - keep;
            self.free.truncate(keep);
            MAPPED.fetch_sub(n, Ordering::Relaxed);
        }
    }
}

impl Drop for StackPool {
    fn drop(&mut self) {
        MAPPED.fetch_sub(self.free.len(), Ordering::Relaxed);
    }
}

thread_local! {
    /// The guard page `[lo, hi)` of the coroutine running on this thread, and its usable size;
    /// `(0, 0, 0)` while the worker itself runs. Read by the signal handler.
    static GUARD: Cell<(usize, usize, usize)> = const { Cell::new((0, 0, 0)) };
}

/// The guard page `[lo, hi)` of one stack and the stack's usable size in bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Guard {
    lo: usize,
    hi: usize,
    size: usize,
}

/// The guard page of `stack` (corosensei puts one page below the usable part).
pub(crate) fn guard_of(stack: &DefaultStack) -> Guard {
    let lo = stack.limit().get();
    let page = page_size();
    Guard {
        lo,
        hi: lo + page,
        size: stack.base().get() - lo - page,
    }
}

/// Publishes the guard page of the stack about to be resumed on this thread (or clears it).
pub(crate) fn set_current_guard(g: Guard) {
    GUARD.with(|c| c.set((g.lo, g.hi, g.size)));
}

fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: sysconf has no preconditions; _SC_PAGESIZE is always supported on Unix.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    PAGE.store(p, Ordering::Relaxed);
    p
}

/// The handlers that were installed before ours, to chain to for faults that are not ours.
static mut OLD_SEGV: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();
static mut OLD_BUS: std::mem::MaybeUninit<libc::sigaction> = std::mem::MaybeUninit::zeroed();

/// Installs the process-wide SIGSEGV/SIGBUS handler that reports coroutine stack overflows.
///
/// Idempotent. Worker threads must also call [`ensure_altstack`], since the handler cannot run
/// on the stack that just overflowed.
pub(crate) fn install_overflow_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: we fill a zeroed sigaction with a valid handler and flags, and save the old
        // actions into statics that are written only here, once, before any fault can read them.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = overflow_handler as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(
                libc::SIGSEGV,
                &sa,
                (&raw mut OLD_SEGV).cast::<libc::sigaction>(),
            );
            libc::sigaction(
                libc::SIGBUS,
                &sa,
                (&raw mut OLD_BUS).cast::<libc::sigaction>(),
            );
        }
    });
}

/// Gives the calling thread an alternate signal stack if it has none (std gives its own
/// threads one; this covers the rest). The stack is leaked with the thread: 64 KiB per worker.
pub(crate) fn ensure_altstack() {
    // SAFETY: sigaltstack with a null new stack only reads the current setting into `old`.
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(std::ptr::null(), &mut old);
        if old.ss_flags & libc::SS_DISABLE == 0 {
            return;
        }
    }
    let size = 64 * 1024;
    let mem = Box::leak(vec![0u8; size].into_boxed_slice());
    let st = libc::stack_t {
        ss_sp: mem.as_mut_ptr().cast(),
        ss_flags: 0,
        ss_size: size,
    };
    // SAFETY: `mem` is a leaked, writable region of `size` bytes that lives for the rest of the
    // process, so the kernel may use it as this thread's signal stack for as long as it likes.
    unsafe {
        libc::sigaltstack(&st, std::ptr::null_mut());
    }
}

/// The signal handler: reports a coroutine stack overflow and aborts, or chains.
extern "C" fn overflow_handler(
    sig: libc::c_int,
    info: *mut libc::siginfo_t,
    ctx: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers of SIGSEGV/SIGBUS.
    let addr = unsafe { (*info).si_addr() } as usize;
    let (lo, hi, size) = GUARD.with(|c| c.get());
    if lo != 0 && addr >= lo && addr < hi {
        let mut buf = [0u8; 256];
        let msg = format_overflow(&mut buf, size / 1024);
        // SAFETY: write(2) and abort(3) are async-signal-safe; `msg` is a valid byte slice.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::abort();
        }
    }
    // Not ours: hand it to whoever had it before, or fall back to the default action.
    // SAFETY: the saved actions were written once at install time, before this handler could run.
    unsafe {
        let old = if sig == libc::SIGBUS {
            &*(&raw const OLD_BUS).cast::<libc::sigaction>()
        } else {
            &*(&raw const OLD_SEGV).cast::<libc::sigaction>()
        };
        if old.sa_sigaction == libc::SIG_DFL || old.sa_sigaction == libc::SIG_IGN {
            // Restore the default and return: the faulting instruction runs again and the
            // process dies with the usual signal.
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        } else if old.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(old.sa_sigaction);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(old.sa_sigaction);
            f(sig);
        }
    }
}

/// Formats the overflow message without allocating (we are in a signal handler).
fn format_overflow(buf: &mut [u8; 256], kib: usize) -> &[u8] {
    let head = b"\ncoact: a coroutine overflowed its stack of ";
    let tail = b" KiB and hit the guard page; give it a bigger stack \
(Builder::stack_size) or run deep recursion elsewhere. Aborting.\n";
    let mut n = 0;
    for &b in head {
        buf[n] = b;
        n += 1;
    }
    let mut digits = [0u8; 20];
    let mut d = 0;
    let mut v = kib;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    for &b in tail {
        if n < buf.len() {
            buf[n] = b;
            n += 1;
        }
    }
    &buf[..n]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_message_names_the_size() {
        let mut buf = [0u8; 256];
        let msg = std::str::from_utf8(format_overflow(&mut buf, 64))
            .unwrap()
            .to_owned();
        assert!(msg.contains("stack of 64 KiB"), "{msg}");
        assert!(msg.contains("Aborting"), "{msg}");
    }

    #[test]
    fn reserve_refuses_past_the_cap_with_a_clear_error() {
        let live = live_coroutines();
        let _ = live;
        let err = reserve(0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::OutOfMemory);
        assert!(err.to_string().contains("cap"), "{err}");
    }
}
