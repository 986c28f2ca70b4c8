//! `coact::process`: child processes whose waits park only the calling coroutine. `output`
//! collects both streams and the status (1, 2 and 4 workers); a coroutine waiting for a child
//! leaves its worker to the others; a read of a child's output returns as soon as any bytes
//! are there (lesson 1); a megabyte through `cat` with a writer and a reader coroutine;
//! `wait_timeout` gives up, `kill` ends the child; 64 children at once, exit codes summed
//! exactly; a `Select` on a child's output and a channel; a coroutine parked in `wait` when
//! its runtime ends is unwound, and with `kill_on_drop` its child is killed (without, a
//! dropped child runs on). The children are `sh`, `cat` and `sleep`.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use coact::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use coact::select::Select;
use coact::sync::mpsc::channel;
use common::{bounded, on_workers, DropCounter, WORKER_COUNTS};

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.args(["-c", script]);
    c
}

/// Starts `cmd` with its standard input and output piped, and takes both pipes out.
fn with_pipes(cmd: &mut Command) -> (Child, ChildStdin, ChildStdout) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    (child, stdin, stdout)
}

#[test]
fn output_collects_stdout_stderr_and_the_exit_code() {
    for &n in &WORKER_COUNTS {
        let out = on_workers(n, || {
            sh("echo out; echo err >&2; printf more; exit 3")
                .output()
                .unwrap()
        });
        assert_eq!(out.stdout, b"out\nmore", "workers={n}");
        assert_eq!(out.stderr, b"err\n", "workers={n}");
        assert_eq!(out.status.code(), Some(3), "workers={n}");
    }
}

#[test]
fn output_of_streams_larger_than_a_pipe_does_not_stall() {
    // 1 MiB on each stream, written alternately: a reader of one stream at a time would leave
    // the other's pipe full and the child stuck.
    let out = on_workers(2, || {
        sh("i=0; while [ $i -lt 16 ]; do head -c 65536 /dev/zero; head -c 65536 /dev/zero >&2; i=$((i+1)); done")
            .output()
            .unwrap()
    });
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), 1 << 20);
    assert_eq!(out.stderr.len(), 1 << 20);
}

#[test]
fn a_coroutine_waiting_for_a_child_leaves_its_worker_to_the_others() {
    let code = on_workers(1, || {
        let mut child = sh("read line; exit 7")
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let (ready_tx, ready_rx) = channel();
        let waiter = coact::spawn(move || {
            ready_tx.send(()).unwrap();
            child.wait().unwrap() // parks: the child waits for a line
        });
        // One worker: the waiter ran up to its park before this coroutine runs again.
        ready_rx.recv().unwrap();
        stdin.write_all(b"go\n").unwrap();
        waiter.join().unwrap().code()
    });
    assert_eq!(code, Some(7));
}

#[test]
fn a_read_of_a_childs_output_returns_as_soon_as_bytes_arrive() {
    let (first, rest, status) = on_workers(1, || {
        let (mut child, mut stdin, mut stdout) =
            with_pipes(&mut sh("echo first; read x; echo second"));
        let mut buf = [0u8; 64];
        // The child now waits for input: the read must return what is there, not wait for
        // the buffer to fill or the pipe to close.
        let n = stdout.read(&mut buf).unwrap();
        let first = buf[..n].to_vec();
        stdin.write_all(b"x\n").unwrap();
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        (first, rest, child.wait().unwrap())
    });
    assert_eq!(first, b"first\n");
    assert_eq!(rest, b"second\n");
    assert!(status.success());
}

#[test]
fn a_megabyte_through_cat_with_a_writer_and_a_reader_coroutine() {
    const LEN: usize = 1 << 20;
    for &n in &WORKER_COUNTS {
        let (echoed, status) = on_workers(n, || {
            let (mut child, mut stdin, mut stdout) = with_pipes(&mut Command::new("cat"));
            let writer = coact::spawn(move || {
                let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
                stdin.write_all(&data).unwrap();
            });
            let reader = coact::spawn(move || {
                let mut v = Vec::new();
                stdout.read_to_end(&mut v).unwrap();
                v
            });
            writer.join().unwrap();
            let echoed = reader.join().unwrap();
            (echoed, child.wait().unwrap())
        });
        assert!(status.success(), "workers={n}");
        assert_eq!(echoed.len(), LEN, "workers={n}");
        assert!(
            echoed
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i % 251) as u8),
            "workers={n}: bytes out of order"
        );
    }
}

#[test]
fn wait_timeout_gives_up_and_kill_ends_the_child() {
    let (early, status) = on_workers(2, || {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let early = child.wait_timeout(Duration::from_millis(50)).unwrap();
        child.kill().unwrap();
        (early, child.wait().unwrap())
    });
    assert_eq!(early, None);
    assert_eq!(status.signal(), Some(9));
}

#[test]
fn many_children_at_once_exit_codes_add_up() {
    const CHILDREN: u32 = 64;
    let total = on_workers(2, || {
        let handles: Vec<_> = (0..CHILDREN)
            .map(|i| {
                coact::spawn(move || {
                    let status = sh(&format!("exit {}", i % 7)).status().unwrap();
                    status.code().unwrap() as u32
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
    });
    assert_eq!(total, (0..CHILDREN).map(|i| i % 7).sum::<u32>());
}

#[test]
fn a_select_waits_on_a_childs_output_and_a_channel() {
    let got = on_workers(2, || {
        let (mut child, mut stdin, stdout) = with_pipes(&mut sh("read x; echo \"$x\""));
        let (tx, rx) = channel::<&str>();
        let mut sel = Select::new();
        let out = sel.readable(&stdout);
        let msg = sel.recv(&rx);
        tx.send("first").unwrap();
        let mut got = Vec::new();
        let mut line = Vec::new();
        let mut buf = [0u8; 64];
        while !line.ends_with(b"\n") {
            let op = sel
                .select_timeout(Duration::from_secs(30))
                .expect("an event within 30 s");
            if op.index() == msg {
                let m = op.recv(&rx).unwrap();
                got.push(m.to_owned());
                // The channel's message makes the child speak.
                stdin.write_all(b"from the child\n").unwrap();
            } else {
                assert_eq!(op.index(), out);
                drop(op);
                match stdout.try_read(&mut buf) {
                    Ok(n) => line.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
        got.push(String::from_utf8(line).unwrap());
        assert!(child.wait().unwrap().success());
        got
    });
    assert_eq!(got, ["first", "from the child\n"]);
}

/// Parks a coroutine in `child.wait()`, ends the runtime meanwhile, and checks that the
/// coroutine was unwound (its destructors ran) and the runtime's end did not hang.
fn end_the_runtime_while_a_coroutine_waits_for(child: Child) {
    let drops = Arc::new(AtomicUsize::new(0));
    let counter = drops.clone();
    let rt = common::runtime(2);
    rt.block_on(move || {
        let mut child = child;
        let (ready_tx, ready_rx) = channel();
        coact::spawn_detached(move || {
            let _guard = DropCounter::new(&counter);
            ready_tx.send(()).unwrap();
            let _ = child.wait();
            unreachable!("the child does not end by itself");
        });
        ready_rx.recv().unwrap();
    });
    bounded(move || drop(rt));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn a_coroutine_parked_in_wait_is_unwound_when_its_runtime_ends() {
    let mut child = sh("read x").stdin(Stdio::piped()).spawn().unwrap();
    let stdin = child.stdin.take().unwrap();
    end_the_runtime_while_a_coroutine_waits_for(child);
    drop(stdin); // the child reads the end of its input and exits
}

#[test]
fn a_missing_program_is_an_error_not_a_hang() {
    let err = on_workers(1, || {
        Command::new("/nonexistent/coact-no-such-program")
            .output()
            .unwrap_err()
    });
    assert_eq!(err.kind(), ErrorKind::NotFound);
}

#[test]
fn kill_on_drop_ends_the_child_of_a_cancelled_wait() {
    // `exec`: the pipe's only writer is the `sleep` itself, so its end closes when it dies.
    let mut child = sh("exec sleep 60")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    end_the_runtime_while_a_coroutine_waits_for(child);
    // The cancelled coroutine dropped the child, which killed it: its output ends now, not in
    // a minute (the test's time limit would catch that).
    let rest = bounded(move || {
        let mut v = Vec::new();
        stdout.read_to_end(&mut v).unwrap();
        v
    });
    assert!(rest.is_empty());
}

#[test]
fn without_kill_on_drop_a_dropped_child_runs_on() {
    let out = on_workers(1, || {
        let (child, mut stdin, mut stdout) = with_pipes(&mut sh("read x; echo \"got $x\""));
        drop(child);
        stdin.write_all(b"on\n").unwrap();
        drop(stdin);
        let mut v = String::new();
        stdout.read_to_string(&mut v).unwrap();
        v
    });
    assert_eq!(out, "got on\n");
}

#[test]
fn a_persistent_select_waits_for_a_childs_exit_and_a_channel() {
    for &n in &WORKER_COUNTS {
        let (code, idle_wakes, registrations) = on_workers(n, || {
            let mut child = sh("read x; exit 4").stdin(Stdio::piped()).spawn().unwrap();
            let mut stdin = child.stdin.take().unwrap();
            let (tx, rx) = channel::<()>();
            let poker = coact::spawn(move || tx.send(()).unwrap());
            let mut sel = Select::new();
            let exit = sel.readable(&child);
            let msg = sel.recv(&rx);
            let mut idle_wakes = 0;
            let status = loop {
                let i = sel
                    .ready_timeout(Duration::from_secs(30))
                    .expect("an event within 30 s");
                if i == msg {
                    if rx.try_recv().is_ok() {
                        // The message lets the child finish.
                        stdin.write_all(b"x\n").unwrap();
                    } else {
                        sel.remove(msg); // the poker is gone
                    }
                } else {
                    assert_eq!(i, exit);
                    match child.try_wait().unwrap() {
                        Some(status) => break status,
                        None => idle_wakes += 1,
                    }
                    // A select that wakes for nothing would spin here (and, on one worker,
                    // starve the poker): fail rather than hang.
                    assert!(idle_wakes < 100, "the select spins");
                }
            };
            poker.join().unwrap();
            (status.code(), idle_wakes, sel.registrations())
        });
        assert_eq!(code, Some(4), "workers={n}");
        assert_eq!(
            idle_wakes, 0,
            "workers={n}: the select woke before the exit"
        );
        assert!(
            registrations <= 2,
            "workers={n}: {registrations} registrations"
        );
    }
}

#[test]
fn a_child_being_selected_on_can_be_killed() {
    let status = on_workers(2, || {
        let child = Command::new("sleep").arg("60").spawn().unwrap();
        let (tx, rx) = channel::<()>();
        let stopper = coact::spawn(move || tx.send(()).unwrap());
        let mut sel = Select::new();
        let exit = sel.readable(&child);
        let stop = sel.recv(&rx);
        let status = loop {
            let i = sel
                .ready_timeout(Duration::from_secs(30))
                .expect("an event within 30 s");
            if i == stop {
                match rx.try_recv() {
                    Ok(()) => child.kill().unwrap(), // through `&child`, held by the select
                    Err(_) => sel.remove(stop),      // the stopper is gone
                }
            } else if let Some(status) = child.try_wait().unwrap() {
                assert_eq!(i, exit);
                break status;
            }
        };
        stopper.join().unwrap();
        status
    });
    assert_eq!(status.signal(), Some(9));
}

#[test]
fn a_plain_thread_waits_for_a_child_and_reads_its_output() {
    let (out, status) = bounded(|| {
        let out = sh("echo plain; exit 6").output().unwrap();
        let status = sh("exit 2").status().unwrap();
        (out, status)
    });
    assert_eq!(out.stdout, b"plain\n");
    assert_eq!(out.status.code(), Some(6));
    assert_eq!(status.code(), Some(2));
}
