//! A link's outbound queue: encoded frames appended to one byte buffer.
//!
//! Senders copy their frame into the buffer under a short lock; the link's writer swaps the
//! whole buffer out and writes it with one system call. A frame costs no allocation and no
//! channel operation of its own, and however many senders there are, the writer wakes once
//! per batch (the bell rings only when the queue goes from empty to not).
//!
//! The queue is bounded by a frame count: a sender that finds it full waits (or fails, for a
//! non-waiting push) until the writer takes the batch. The wait registers under the same lock
//! that the writer takes the batch under, so a wake-up cannot be missed.

use std::time::Instant;

use coact_runtime::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use coact_runtime::sync::FastLock;

/// How long a push may wait for room.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Not at all.
    No,
    /// For as long as it takes.
    Forever,
    /// Until this instant.
    Until(Instant),
}

/// Why a push failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PushError {
    /// The queue is full (a push that does not wait).
    Full,
    /// No room came before the deadline.
    Timeout,
    /// The queue takes no more frames: the session is closing or its writer is gone.
    Closed,
}

struct State {
    buf: Vec<u8>,
    frames: u64,
    /// No more frames are taken.
    closed: bool,
    /// The writer should write what is queued and then shut the connection's write side.
    finish: bool,
    /// Senders waiting for room; each gets a message (or its channel dropped) when the writer
    /// takes a batch.
    waiting: Vec<SyncSender<()>>,
}

/// What the writer took: the frames to write, and whether to finish after them.
pub(crate) struct Batch {
    /// How many frames `bytes` holds.
    pub(crate) frames: u64,
    /// Whether the queue was told to finish (write this, then shut down).
    pub(crate) finish: bool,
}

/// The queue.
pub(crate) struct OutQueue {
    state: FastLock<State>,
    bell: SyncSender<()>,
    limit: u64,
}

impl OutQueue {
    /// A queue of at most `limit` frames, and the bell its writer waits on.
    pub(crate) fn new(limit: usize) -> (OutQueue, Receiver<()>) {
        let (bell, rings) = sync_channel(1);
        let q = OutQueue {
            state: FastLock::new(State {
                buf: Vec::new(),
                frames: 0,
                closed: false,
                finish: false,
                waiting: Vec::new(),
            }),
            bell,
            limit: limit.max(1) as u64,
        };
        (q, rings)
    }

    /// Appends one encoded frame (length prefix included), waiting for room as `wait` allows.
    pub(crate) fn push(&self, frame: &[u8], wait: Wait) -> Result<(), PushError> {
        loop {
            let room = {
                let mut st = self.state.lock();
                if st.closed || st.finish {
                    return Err(PushError::Closed);
                }
                if st.frames < self.limit {
                    let was_empty = st.frames == 0;
                    st.buf.extend_from_slice(frame);
                    st.frames += 1;
                    drop(st);
                    if was_empty {
                        let _ = self.bell.try_send(());
                    }
                    return Ok(());
                }
                if matches!(wait, Wait::No) {
                    return Err(PushError::Full);
                }
                let (tx, rx) = sync_channel(1);
                st.waiting.push(tx);
                rx
            };
            // Woken (or the channel dropped) when the writer takes a batch or the queue
            // closes: look again either way.
            match wait {
                Wait::No => unreachable!("a push that does not wait returned above"),
                Wait::Forever => {
                    let _ = room.recv();
                }
                Wait::Until(d) => {
                    if let Err(RecvTimeoutError::Timeout) = room.recv_deadline(d) {
                        return Err(PushError::Timeout);
                    }
                }
            }
        }
    }

    /// Takes everything queued into `into` (which the caller has emptied, keeping its
    /// capacity: the queue fills that buffer next): `None` if nothing is queued and the queue
    /// is not finishing.
    pub(crate) fn take(&self, into: &mut Vec<u8>) -> Option<Batch> {
        let (batch, waiting) = {
            let mut st = self.state.lock();
            if st.frames == 0 && !st.finish {
                return None;
            }
            std::mem::swap(&mut st.buf, into);
            let batch = Batch {
                frames: std::mem::take(&mut st.frames),
                finish: st.finish,
            };
            if st.finish {
                st.closed = true;
            }
            (batch, std::mem::take(&mut st.waiting))
        };
        for w in waiting {
            let _ = w.try_send(());
        }
        Some(batch)
    }

    /// Tells the writer to write what is queued and then shut the write side; no more frames
    /// are taken.
    pub(crate) fn finish(&self) {
        self.state.lock().finish = true;
        let _ = self.bell.try_send(());
    }

    /// Takes no more frames and wakes everyone: the writer (to exit) and waiting senders (to
    /// fail). What is queued is dropped.
    pub(crate) fn close(&self) {
        let waiting = {
            let mut st = self.state.lock();
            st.closed = true;
            st.buf = Vec::new();
            st.frames = 0;
            std::mem::take(&mut st.waiting)
        };
        drop(waiting);
        let _ = self.bell.try_send(());
    }

    /// Whether the queue takes no more frames.
    pub(crate) fn is_closed(&self) -> bool {
        let st = self.state.lock();
        st.closed || st.finish
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// A queue of one frame, holding one (its bell is dropped: nothing waits on it).
    fn full_queue() -> Arc<OutQueue> {
        let (q, _bell) = OutQueue::new(1);
        q.push(b"a", Wait::No).unwrap();
        Arc::new(q)
    }

    /// A coroutine pushing `frame` into the full `q` with `Wait::Forever`, returned once its
    /// wait is registered (under the lock the writer's `take` and `close` take).
    fn parked_pusher(
        q: &Arc<OutQueue>,
        frame: &'static [u8],
    ) -> coact_runtime::JoinHandle<Result<(), PushError>> {
        let q2 = q.clone();
        let h = coact_runtime::spawn(move || q2.push(frame, Wait::Forever));
        while q.state.lock().waiting.is_empty() {
            coact_runtime::yield_now();
        }
        h
    }

    #[test]
    fn frames_queue_up_to_the_limit_and_leave_in_one_batch() {
        let (q, bell) = OutQueue::new(3);
        for f in [&b"ab"[..], b"c", b"def"] {
            q.push(f, Wait::No).unwrap();
        }
        assert_eq!(q.push(b"x", Wait::No), Err(PushError::Full));
        assert_eq!(bell.try_recv(), Ok(()), "rung once, on the first frame");
        assert!(bell.try_recv().is_err());
        let mut out = Vec::new();
        let b = q.take(&mut out).unwrap();
        assert_eq!((b.frames, b.finish, &out[..]), (3, false, &b"abcdef"[..]));
        assert!(q.take(&mut Vec::new()).is_none());
        q.push(b"x", Wait::No).unwrap();
    }

    #[test]
    fn a_full_push_waits_for_the_writer_or_times_out() {
        coact_runtime::run(|| {
            let q = full_queue();
            let soon = Instant::now() + Duration::from_millis(20);
            assert_eq!(q.push(b"b", Wait::Until(soon)), Err(PushError::Timeout));
            let h = parked_pusher(&q, b"c");
            let mut out = Vec::new();
            assert_eq!(q.take(&mut out).unwrap().frames, 1);
            assert_eq!(h.join().unwrap(), Ok(()));
            let mut out = Vec::new();
            q.take(&mut out).unwrap();
            assert_eq!(out, b"c");
        });
    }

    #[test]
    fn closing_fails_waiting_and_later_pushes() {
        coact_runtime::run(|| {
            let q = full_queue();
            let h = parked_pusher(&q, b"b");
            q.close();
            assert_eq!(h.join().unwrap(), Err(PushError::Closed));
            assert_eq!(q.push(b"c", Wait::No), Err(PushError::Closed));
        });
    }

    #[test]
    fn finishing_hands_over_what_is_queued_then_closes() {
        let (q, _bell) = OutQueue::new(4);
        q.push(b"ab", Wait::No).unwrap();
        q.finish();
        assert_eq!(q.push(b"c", Wait::No), Err(PushError::Closed));
        let mut out = Vec::new();
        let b = q.take(&mut out).unwrap();
        assert_eq!((b.frames, b.finish, &out[..]), (1, true, &b"ab"[..]));
        assert!(q.is_closed());
    }
}
