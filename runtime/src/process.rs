//! Child processes shaped like `std::process`'s, whose waits park only the calling coroutine:
//! [`Child::wait`] waits for the exit, and the pipes to a child's standard input, output and
//! error read and write like coact's sockets (a blocking call parks the coroutine or blocks a
//! plain thread, `read` returns as soon as any bytes are there, `try_*` calls never park, a
//! [`Select`](crate::select::Select) can wait on them). A `Select` can wait for a [`Child`]'s
//! exit too, beside channels and sockets; [`Child::try_wait`] and [`Child::kill`] take `&self`
//! for that, so the select may stay registered while its owner looks or kills.
//!
//! ```
//! use coact_runtime::process::Command;
//!
//! coact_runtime::run(|| {
//!     let out = Command::new("sh").args(["-c", "echo hello; exit 3"]).output()?;
//!     assert_eq!(out.stdout, b"hello\n");
//!     assert_eq!(out.status.code(), Some(3));
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Talking to a child through its pipes, from two coroutines:
//!
//! ```
//! use std::io::{Read, Write};
//! use coact_runtime::process::{Command, Stdio};
//!
//! coact_runtime::run(|| {
//!     let mut child = Command::new("cat").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn()?;
//!     let mut stdin = child.stdin.take().unwrap();
//!     let writer = coact_runtime::spawn(move || {
//!         stdin.write_all(&vec![b'x'; 1 << 20]) // more than a pipe holds: parks while full
//!         // `stdin` drops here: `cat` sees the end of its input
//!     });
//!     let mut echoed = Vec::new();
//!     child.stdout.take().unwrap().read_to_end(&mut echoed)?;
//!     writer.join().unwrap()?;
//!     assert_eq!(echoed.len(), 1 << 20);
//!     assert!(child.wait()?.success());
//!     Ok::<(), std::io::Error>(())
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # How an exit is waited for
//!
//! On Linux, [`Child::wait`] asks the kernel for a descriptor of the child's process
//! (`pidfd_open`, Linux 5.3 and later), which becomes readable when the child exits, and waits
//! for it like a socket: no thread and no signal handler. Where that call is refused (an older
//! kernel, a sandbox), it waits for `SIGCHLD` through [`signal::Signals`](crate::signal::Signals)
//! instead, and checks its child at each one.
//!
//! As with std, dropping a [`Child`] neither kills nor reaps it: wait for every child you
//! start (or kill, then wait), or it stays a zombie until this process ends. With
//! [`Command::kill_on_drop`], a child dropped unwaited (its coroutine cancelled, say) is
//! killed and reaped.

use std::cell::{Cell, OnceCell, RefCell};
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use std::process::{ExitStatus, Output, Stdio};

use crate::net::{NotSync, StreamInner};
use crate::reactor::{Direction, IoSlot};
use crate::signal::{Signals, SIGCHLD};

/// A process builder: std's [`Command`](std::process::Command) whose `spawn`, `output` and
/// `status` give coact's [`Child`], with coroutine-aware pipes and waits.
///
/// The builder methods mirror std's; for anything else (std's `CommandExt` traits, say),
/// [`as_std_mut`](Command::as_std_mut) reaches the std command underneath.
pub struct Command {
    inner: std::process::Command,
    /// Which standard streams were set through this builder (`output` pipes the others).
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
    kill_on_drop: bool,
}

impl Command {
    /// A command that runs `program`, found on `PATH` if it has no `/`; see std's
    /// [`Command::new`](std::process::Command::new).
    pub fn new<S: AsRef<OsStr>>(program: S) -> Command {
        Command::from(std::process::Command::new(program))
    }

    /// Adds an argument.
    pub fn arg<S: AsRef<OsStr>>(&mut self, arg: S) -> &mut Command {
        self.inner.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.inner.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env<K: AsRef<OsStr>, V: AsRef<OsStr>>(&mut self, key: K, val: V) -> &mut Command {
        self.inner.env(key, val);
        self
    }

    /// Sets several environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.inner.envs(vars);
        self
    }

    /// Removes an environment variable from the child's environment.
    pub fn env_remove<K: AsRef<OsStr>>(&mut self, key: K) -> &mut Command {
        self.inner.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.inner.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir<P: AsRef<Path>>(&mut self, dir: P) -> &mut Command {
        self.inner.current_dir(dir);
        self
    }

    /// Sets the child's standard input (`Stdio::piped()` makes [`Child::stdin`]).
    pub fn stdin<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// Sets the child's standard output (`Stdio::piped()` makes [`Child::stdout`]).
    pub fn stdout<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// Sets the child's standard error (`Stdio::piped()` makes [`Child::stderr`]).
    pub fn stderr<T: Into<Stdio>>(&mut self, cfg: T) -> &mut Command {
        self.inner.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// Makes the [`Child`]s spawned from now on kill their process when they are dropped
    /// before it was waited for (as when a coroutine waiting for it is cancelled, or gives
    /// up on an error), and reap it. Off by default, as in std: a dropped child runs on.
    pub fn kill_on_drop(&mut self, on: bool) -> &mut Command {
        self.kill_on_drop = on;
        self
    }

    /// Starts the child. Standard streams not set are inherited from this process.
    pub fn spawn(&mut self) -> io::Result<Child> {
        let mut child = Child::from_std(self.inner.spawn()?)?;
        child.kill_on_drop = self.kill_on_drop;
        Ok(child)
    }

    /// Runs the child to its end and collects its output: standard output and error are
    /// captured (unless set otherwise) and standard input is empty (unless set otherwise), as
    /// with std's `output`. Parks the calling coroutine meanwhile.
    pub fn output(&mut self) -> io::Result<Output> {
        // std's `output` picks these defaults without changing the command; here they are set
        // for this spawn and put back to what `spawn` uses when nothing is set (inherit).
        if !self.stdin_set {
            self.inner.stdin(Stdio::null());
        }
        if !self.stdout_set {
            self.inner.stdout(Stdio::piped());
        }
        if !self.stderr_set {
            self.inner.stderr(Stdio::piped());
        }
        let child = self.spawn();
        if !self.stdin_set {
            self.inner.stdin(Stdio::inherit());
        }
        if !self.stdout_set {
            self.inner.stdout(Stdio::inherit());
        }
        if !self.stderr_set {
            self.inner.stderr(Stdio::inherit());
        }
        child?.wait_with_output()
    }

    /// Runs the child to its end (standard streams inherited unless set) and returns how it
    /// ended. Parks the calling coroutine meanwhile.
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }

    /// The std command underneath.
    pub fn as_std(&self) -> &std::process::Command {
        &self.inner
    }

    /// The std command underneath, to set what this builder does not mirror. Standard streams
    /// set there count as not set for [`output`](Command::output), which sets its defaults.
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.inner
    }
}

impl From<std::process::Command> for Command {
    fn from(inner: std::process::Command) -> Command {
        Command {
            inner,
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
            kill_on_drop: false,
        }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

/// A running (or finished, not yet waited for) child process.
///
/// Its pipes are public fields, as in std: take them out to use them from other coroutines.
pub struct Child {
    /// The child's standard input, if it was set to `Stdio::piped()`.
    pub stdin: Option<ChildStdin>,
    /// The child's standard output, if it was set to `Stdio::piped()`.
    pub stdout: Option<ChildStdout>,
    /// The child's standard error, if it was set to `Stdio::piped()`.
    pub stderr: Option<ChildStderr>,
    /// How an exit is waited for, made at the first wait that has to wait. Declared before
    /// `child` (it may hold a descriptor of the child's process).
    watch: OnceCell<ExitWatch>,
    /// The exit status, once a wait saw it (the child is reaped then: its process id may be
    /// another process's by now, so no watch may be made from it).
    status: Cell<Option<ExitStatus>>,
    /// From [`Command::kill_on_drop`].
    kill_on_drop: bool,
    /// The child's process id (std's `id`, kept here to read without a borrow).
    pid: u32,
    /// Always `Some` but in `drop`, which may hand it to a reaper thread. In a cell, so that
    /// `try_wait` and `kill` work through a shared reference (which a `Select` holds).
    child: RefCell<Option<std::process::Child>>,
}

/// What a waiting [`Child`] waits on.
enum ExitWatch {
    /// A process descriptor, readable once the child has exited. `slot` is declared before
    /// `fd` so that the registration is dropped before the descriptor is closed.
    #[cfg(target_os = "linux")]
    Pidfd { slot: IoSlot, _fd: OwnedFd },
    /// `SIGCHLD`, where process descriptors are not available.
    Sigchld(Signals),
    /// For a `Select` only: always ready. Made for a child known to have exited, or when no
    /// other watch could be made (the select then wakes at once, and a wait tries again).
    Ready(Direction),
}

impl Child {
    /// Takes over a child started by std, making its pipes coroutine-aware (non-blocking).
    pub fn from_std(mut child: std::process::Child) -> io::Result<Child> {
        // A child std has waited for already must not be watched by its (maybe reused) id:
        // std hands its recorded status out again here.
        let status = child.try_wait()?;
        Ok(Child {
            stdin: child.stdin.take().map(ChildStdin::from_std).transpose()?,
            stdout: child.stdout.take().map(ChildStdout::from_std).transpose()?,
            stderr: child.stderr.take().map(ChildStderr::from_std).transpose()?,
            watch: OnceCell::new(),
            status: Cell::new(status),
            kill_on_drop: false,
            pid: child.id(),
            child: RefCell::new(Some(child)),
        })
    }

    /// Runs `f` on std's child.
    fn with_std<T>(&self, f: impl FnOnce(&mut std::process::Child) -> T) -> T {
        let mut child = self.child.borrow_mut();
        f(child.as_mut().expect("only a drop takes the child"))
    }

    /// The child's process id.
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Kills the child (`SIGKILL`); `Ok` if it has exited already. Wait for it afterwards.
    /// Takes `&self` (std's takes `&mut`), so that a coroutine may kill a child it is
    /// selecting on.
    pub fn kill(&self) -> io::Result<()> {
        self.with_std(|c| c.kill())
    }

    /// How the child ended, if it has: never parks. Takes `&self` (std's takes `&mut`), so
    /// that a `Select` waiting for the exit may stay registered while its owner looks.
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status.get() {
            return Ok(Some(status));
        }
        if let Some(ExitWatch::Sigchld(signals)) = self.watch.get() {
            // Taken before the look: a `Select` on this child then waits for the next
            // `SIGCHLD` instead of waking again for those already looked into.
            while signals.try_recv().is_ok() {}
        }
        let status = self.with_std(|c| c.try_wait())?;
        self.status.set(status);
        Ok(status)
    }

    /// Waits for the child to end: parks the calling coroutine (or blocks a plain thread).
    /// Its standard input, if still here, is closed first, as std does (a child that reads
    /// its input to the end would otherwise never end).
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        match self.wait_until(None)? {
            Some(status) => Ok(status),
            None => unreachable!("a wait without a deadline returned without a status"),
        }
    }

    /// [`wait`](Child::wait) that gives up after `timeout`: `Ok(None)` if the child is still
    /// running then.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// [`wait`](Child::wait) that gives up at `deadline`.
    pub fn wait_deadline(&mut self, deadline: Instant) -> io::Result<Option<ExitStatus>> {
        self.wait_until(Some(deadline))
    }

    fn wait_until(&mut self, deadline: Option<Instant>) -> io::Result<Option<ExitStatus>> {
        drop(self.stdin.take());
        if let Some(status) = self.try_wait()? {
            return Ok(Some(status));
        }
        if matches!(self.watch.get(), None | Some(ExitWatch::Ready(_))) {
            // (A `Ready` watch here means one could not be made for a select: try again.)
            self.watch = OnceCell::from(ExitWatch::new(self.id())?);
        }
        let mut child = self.child.borrow_mut();
        let child = child.as_mut().expect("only a drop takes the child");
        let r = match self.watch.get().expect("made above") {
            #[cfg(target_os = "linux")]
            ExitWatch::Pidfd { slot, .. } => {
                let r = slot.blocking(false, deadline, || {
                    child.try_wait()?.ok_or(io::ErrorKind::WouldBlock.into())
                });
                match r {
                    Ok(status) => Ok(Some(status)),
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(None),
                    Err(e) => Err(e),
                }
            }
            ExitWatch::Sigchld(signals) => wait_sigchld(child, signals, deadline),
            ExitWatch::Ready(_) => unreachable!("replaced above"),
        };
        if let Ok(Some(status)) = r {
            self.status.set(Some(status));
        }
        r
    }

    /// The readiness a `Select` waits on for this child's exit (see [`SelectReadable`]).
    ///
    /// [`SelectReadable`]: crate::select::SelectReadable
    pub(crate) fn read_direction(&self) -> &Direction {
        let watch = self.watch.get_or_init(|| {
            if self.status.get().is_some() {
                return ExitWatch::Ready(Direction::new());
            }
            ExitWatch::new(self.id()).unwrap_or_else(|e| {
                tracing::warn!(
                    target: "coact",
                    "coact: cannot watch child {} for a select ({e}); the select finds it ready at once",
                    self.id()
                );
                ExitWatch::Ready(Direction::new())
            })
        });
        match watch {
            #[cfg(target_os = "linux")]
            ExitWatch::Pidfd { slot, .. } => {
                // A fresh slot counts as ready; a look at the child says whether it is, made
                // through the slot (as a wait's), so that an exit event after the snapshot
                // keeps it ready.
                let _ = slot.nonblocking(false, || match self.try_wait() {
                    Ok(None) => Err(io::ErrorKind::WouldBlock.into()),
                    _ => Ok(()),
                });
                &slot.state.read
            }
            ExitWatch::Sigchld(signals) => signals.read_direction(),
            ExitWatch::Ready(d) => d,
        }
    }

    /// Waits for the child to end while collecting all of its standard output and error
    /// (those that are piped), read side by side so that neither pipe fills up and stalls
    /// the child. Standard input, if piped, is closed first.
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (stdout, stderr) = read_both(self.stdout.take(), self.stderr.take())?;
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let Some(mut child) = self.child.get_mut().take() else {
            return;
        };
        if !self.kill_on_drop || !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        let _ = child.kill();
        if let Ok(None) = child.try_wait() {
            // Killed but not dead yet (a signal takes a moment): a thread of its own waits
            // and reaps it, since a drop cannot park (it may run while the coroutine unwinds).
            let reaper = std::thread::Builder::new()
                .name("coact-reaper".into())
                .spawn(move || {
                    let _ = child.wait();
                });
            if reaper.is_err() {
                tracing::warn!(
                    target: "coact",
                    "coact: could not start a thread to reap a killed child; it stays a zombie"
                );
            }
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Child")
            .field("id", &self.id())
            .field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .finish()
    }
}

impl ExitWatch {
    /// A process descriptor for `pid` where the kernel gives one, else a `SIGCHLD` watch.
    /// Made after a first look found the child running; a watch made after the child exited
    /// still sees it (the descriptor is readable, or the loop looks before waiting).
    fn new(pid: u32) -> io::Result<ExitWatch> {
        #[cfg(target_os = "linux")]
        if let Some(fd) = pidfd_open(pid) {
            let slot = IoSlot::new(fd.as_raw_fd());
            slot.ensure_registered()?;
            return Ok(ExitWatch::Pidfd { slot, _fd: fd });
        }
        let _ = pid;
        Ok(ExitWatch::Sigchld(Signals::new([SIGCHLD])?))
    }
}

/// A descriptor of process `pid`, or `None` where the kernel refuses one (too old, or a
/// sandbox that filters the call): the caller then watches `SIGCHLD`.
#[cfg(target_os = "linux")]
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    use std::os::fd::FromRawFd;
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: `pidfd_open(pid, 0)` passes two integers and no memory; it returns a new
    // descriptor (close-on-exec) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    let fd = RawFd::try_from(fd).ok()?;
    // SAFETY: the kernel just made this descriptor for us; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits for `child` to end by watching `SIGCHLD` (which `signals` was watching before the
/// first look below, so an exit after that look is never missed). Every child's exit raises
/// one, so a wait may wake for another child: it looks, and waits again.
fn wait_sigchld(
    child: &mut std::process::Child,
    signals: &Signals,
    deadline: Option<Instant>,
) -> io::Result<Option<ExitStatus>> {
    use crate::sync::mpsc::RecvTimeoutError;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let r = match deadline {
            Some(d) => signals.recv_deadline(d),
            None => signals.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match r {
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => return child.try_wait(),
            Err(RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other(crate::Cancelled));
            }
        }
    }
}

/// Reads `stdout` and `stderr` (either may be absent) to their ends, side by side.
fn read_both(
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut sel = crate::select::Select::new();
    // Each pipe with its operation in `sel`; `None` once it has ended (or if absent).
    let mut pipes = [
        stdout.as_ref().map(|p| (&p.inner, sel.readable(p))),
        stderr.as_ref().map(|p| (&p.inner, sel.readable(p))),
    ];
    let mut bufs = [Vec::new(), Vec::new()];
    let mut chunk = vec![0u8; 32 * 1024];
    while pipes.iter().any(Option::is_some) {
        for (pipe, buf) in pipes.iter_mut().zip(&mut bufs) {
            while let Some((inner, op)) = *pipe {
                match inner.try_read(&mut chunk) {
                    Ok(0) => {
                        sel.remove(op);
                        *pipe = None;
                    }
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if pipes.iter().any(Option::is_some) && sel.ready_timeout(Duration::MAX).is_err() {
            // Only a cancelled wait gives up without a deadline.
            return Err(io::Error::other(crate::Cancelled));
        }
    }
    let [out, err] = bufs;
    Ok((out, err))
}

/// The write end of a child's standard input. Dropping it closes the pipe: the child reads
/// the end of its input.
pub struct ChildStdin {
    inner: Arc<StreamInner<mio::unix::pipe::Sender>>,
    _not_sync: NotSync,
}

impl ChildStdin {
    /// Takes over std's pipe end, making it non-blocking.
    pub fn from_std(s: std::process::ChildStdin) -> io::Result<ChildStdin> {
        let io = mio::unix::pipe::Sender::from(s);
        io.set_nonblocking(true)?;
        Ok(ChildStdin {
            inner: StreamInner::new(io),
            _not_sync: NotSync::default(),
        })
    }

    /// Writes what fits now; `WouldBlock` if nothing does. Never parks.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.try_write(buf)
    }

    /// Makes blocking writes give up with `TimedOut` after `d` (`None`: wait forever).
    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        self.inner.write_timeout.set(d)
    }

    /// The write timeout.
    pub fn write_timeout(&self) -> Option<Duration> {
        self.inner.write_timeout.get()
    }

    pub(crate) fn write_direction(&self) -> &Direction {
        self.inner.slot.select_direction(true)
    }
}

impl Write for ChildStdin {
    /// Writes what fits, parking while the pipe is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsRawFd for ChildStdin {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.io.as_raw_fd()
    }
}

impl fmt::Debug for ChildStdin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildStdin")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

macro_rules! read_pipe {
    ($name:ident, $std:ty, $what:literal) => {
        #[doc = concat!("The read end of a child's ", $what, ".")]
        pub struct $name {
            inner: Arc<StreamInner<mio::unix::pipe::Receiver>>,
            _not_sync: NotSync,
        }

        impl $name {
            /// Takes over std's pipe end, making it non-blocking.
            pub fn from_std(s: $std) -> io::Result<$name> {
                let io = mio::unix::pipe::Receiver::from(s);
                io.set_nonblocking(true)?;
                Ok($name {
                    inner: StreamInner::new(io),
                    _not_sync: NotSync::default(),
                })
            }

            /// Reads what is there now; `WouldBlock` if nothing is. Never parks.
            pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.try_read(buf)
            }

            /// Makes blocking reads give up with `TimedOut` after `d` (`None`: wait
            /// forever).
            pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
                self.inner.read_timeout.set(d)
            }

            /// The read timeout.
            pub fn read_timeout(&self) -> Option<Duration> {
                self.inner.read_timeout.get()
            }

            pub(crate) fn read_direction(&self) -> &Direction {
                self.inner.slot.select_direction(false)
            }
        }

        impl Read for $name {
            /// Returns as soon as any bytes are there (0 at the end: the child closed its
            /// end, usually by exiting); parks while there are none.
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                self.inner.read(buf)
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.inner.io.as_raw_fd()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", &self.as_raw_fd())
                    .finish()
            }
        }
    };
}

read_pipe!(ChildStdout, std::process::ChildStdout, "standard output");
read_pipe!(ChildStderr, std::process::ChildStderr, "standard error");

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Select` on a child watched through `SIGCHLD` wakes for other children's exits too,
    /// but only once per signal: it does not spin.
    #[test]
    fn a_select_on_a_sigchld_watch_wakes_once_per_signal() {
        crate::run(|| {
            let mut child = Command::new("sh")
                .args(["-c", "read x; exit 2"])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            child.watch = OnceCell::from(ExitWatch::Sigchld(Signals::new([SIGCHLD]).unwrap()));
            let mut stdin = child.stdin.take().unwrap();
            let mut sel = crate::select::Select::new();
            sel.readable(&child);
            let mut idle = 0;
            for _ in 0..3 {
                // Another child's exit raises SIGCHLD: one wake, then nothing.
                assert!(Command::new("true").status().unwrap().success());
                sel.ready_timeout(Duration::from_secs(30))
                    .expect("woken by SIGCHLD");
                assert_eq!(child.try_wait().unwrap(), None);
                idle += 1;
            }
            assert_eq!(idle, 3);
            stdin.write_all(b"x\n").unwrap();
            let status = loop {
                sel.ready_timeout(Duration::from_secs(30))
                    .expect("the exit");
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                idle += 1;
                assert!(idle < 10, "the select spins");
            };
            assert_eq!(status.code(), Some(2));
        });
    }

    /// The `SIGCHLD` path, which Linux machines with process descriptors never take.
    #[test]
    fn the_sigchld_fallback_waits_for_the_exit() {
        crate::run(|| {
            let mut child = Command::new("sh")
                .args(["-c", "read x; exit 5"])
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            child.watch = OnceCell::from(ExitWatch::Sigchld(Signals::new([SIGCHLD]).unwrap()));
            let mut stdin = child.stdin.take().unwrap();
            assert_eq!(child.wait_timeout(Duration::from_millis(20)).unwrap(), None);
            stdin.write_all(b"go\n").unwrap();
            let status = child.wait().unwrap();
            assert_eq!(status.code(), Some(5));
        });
    }
}
