//! A message pipeline of actors with bounded mailboxes: generate → tokenize → count → merge.
//!
//! A generator makes a large deterministic pseudo-random text (50 MB by default, in 64 KiB
//! chunks, never held whole in memory) and deals the chunks round-robin to `lanes` tokenizers.
//! Each tokenizer normalises its chunk's words and hands them to its counter; each counter
//! counts a chunk's words and sends the partial counts to a single merger, which folds them
//! into the final, ordered word counts. The merger is the one serial stage and the slowest, so
//! it sets the pace: every mailbox holds at most 4 messages, full mailboxes park their senders
//! all the way back to the generator, and memory stays flat however large the text is.
//!
//! At the end the counts are checked against a plain single-threaded count of the same text.
//!
//! ```text
//! cargo run --release --example pipeline -- [--mb N] [--lanes N] [--workers N]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use coact::actor::{spawn_with_capacity, Actor, Addr, Ctx};
use coact::sync::mpsc::{sync_channel, SyncSender};

const CHUNK_BYTES: usize = 64 * 1024;
const MAILBOX: usize = 4;
const VOCABULARY: usize = 50_000;

// ---------------------------------------------------------------------------------------------
// The text
// ---------------------------------------------------------------------------------------------

/// xorshift64*: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// The text, chunk by chunk: words from a fixed vocabulary (common ones far more often),
/// sometimes capitalised, with punctuation and line breaks.
struct Text {
    rng: Rng,
    vocabulary: Vec<String>,
    remaining: usize,
}

impl Text {
    fn new(bytes: usize) -> Text {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let vocabulary = (0..VOCABULARY)
            .map(|_| {
                let len = 2 + (rng.next() % 10) as usize;
                (0..len)
                    .map(|_| char::from(b'a' + (rng.next() % 26) as u8))
                    .collect()
            })
            .collect();
        Text {
            rng,
            vocabulary,
            remaining: bytes,
        }
    }
}

impl Iterator for Text {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        if self.remaining == 0 {
            return None;
        }
        let target = CHUNK_BYTES.min(self.remaining);
        let mut s = String::with_capacity(target + 16);
        while s.len() < target {
            let r = self.rng.next();
            let a = (r & 0xFFFF) as usize % VOCABULARY;
            let b = ((r >> 16) & 0xFFFF) as usize % VOCABULARY;
            let word = &self.vocabulary[a * b / VOCABULARY]; // skewed towards low indices
            if (r >> 40) & 7 == 0 {
                s.push(char::from(word.as_bytes()[0].to_ascii_uppercase()));
                s.push_str(&word[1..]);
            } else {
                s.push_str(word);
            }
            match (r >> 44) & 15 {
                0 => s.push_str(". "),
                1 => s.push_str(", "),
                2 => s.push('\n'),
                _ => s.push(' '),
            }
        }
        self.remaining = self.remaining.saturating_sub(s.len());
        Some(s)
    }
}

/// A token as counted: lower case, without surrounding punctuation.
fn normalize(token: &str) -> Option<String> {
    let t = token.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!t.is_empty()).then(|| t.to_ascii_lowercase())
}

// ---------------------------------------------------------------------------------------------
// The stages
// ---------------------------------------------------------------------------------------------

/// What a stage reports at the end: messages handled and time spent working (time parked on a
/// full downstream mailbox not included).
#[derive(Debug, Clone, Copy, Default)]
struct Busy {
    messages: u64,
    work: Duration,
}

enum TokenizeMsg {
    Chunk(String),
    End,
}

struct Tokenizer {
    next: Addr<CountMsg>,
    busy: Busy,
}

impl Actor for Tokenizer {
    type Msg = TokenizeMsg;
    fn handle(&mut self, msg: TokenizeMsg, ctx: &mut Ctx<'_, TokenizeMsg>) {
        match msg {
            TokenizeMsg::Chunk(text) => {
                let start = Instant::now();
                let words: Vec<String> = text
                    .split_ascii_whitespace()
                    .filter_map(normalize)
                    .collect();
                self.busy.work += start.elapsed();
                self.busy.messages += 1;
                self.next
                    .send(CountMsg::Words(words))
                    .expect("the counter is alive");
            }
            TokenizeMsg::End => {
                self.next
                    .send(CountMsg::End(vec![("tokenize", self.busy)]))
                    .expect("the counter is alive");
                ctx.stop();
            }
        }
    }
}

enum CountMsg {
    Words(Vec<String>),
    /// The end of the input, with the busy reports of the stages upstream.
    End(Vec<(&'static str, Busy)>),
}

struct Counter {
    next: Addr<MergeMsg>,
    busy: Busy,
}

impl Actor for Counter {
    type Msg = CountMsg;
    fn handle(&mut self, msg: CountMsg, ctx: &mut Ctx<'_, CountMsg>) {
        match msg {
            CountMsg::Words(words) => {
                let start = Instant::now();
                let mut counts: HashMap<String, u64> = HashMap::new();
                for w in words {
                    *counts.entry(w).or_insert(0) += 1;
                }
                self.busy.work += start.elapsed();
                self.busy.messages += 1;
                self.next
                    .send(MergeMsg::Partial(counts))
                    .expect("the merger is alive");
            }
            CountMsg::End(mut busy) => {
                busy.push(("count", self.busy));
                self.next
                    .send(MergeMsg::End(busy))
                    .expect("the merger is alive");
                ctx.stop();
            }
        }
    }
}

enum MergeMsg {
    Partial(HashMap<String, u64>),
    End(Vec<(&'static str, Busy)>),
}

struct Report {
    counts: BTreeMap<String, u64>,
    busy: Vec<(&'static str, Busy)>,
}

/// The serial stage: folds partial counts into one ordered map (a `BTreeMap`, so the result
/// comes out sorted; ordered inserts cost more than the counters' hashing, which is what
/// makes this the slow stage).
struct Merger {
    counts: BTreeMap<String, u64>,
    lanes_left: usize,
    busy: Busy,
    upstream: Vec<(&'static str, Busy)>,
    done: Option<SyncSender<Report>>,
}

impl Actor for Merger {
    type Msg = MergeMsg;
    fn handle(&mut self, msg: MergeMsg, ctx: &mut Ctx<'_, MergeMsg>) {
        match msg {
            MergeMsg::Partial(partial) => {
                let start = Instant::now();
                for (w, n) in partial {
                    *self.counts.entry(w).or_insert(0) += n;
                }
                self.busy.work += start.elapsed();
                self.busy.messages += 1;
            }
            MergeMsg::End(busy) => {
                self.upstream.extend(busy);
                self.lanes_left -= 1;
                if self.lanes_left == 0 {
                    let mut busy = std::mem::take(&mut self.upstream);
                    busy.push(("merge", self.busy));
                    let report = Report {
                        counts: std::mem::take(&mut self.counts),
                        busy,
                    };
                    let done = self.done.take().expect("one report");
                    done.send(report).expect("main is waiting");
                    ctx.stop();
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn arg(name: &str) -> Option<usize> {
    let args: Vec<String> = std::env::args().collect();
    let i = args.iter().position(|a| a == name)?;
    let v = args
        .get(i + 1)
        .unwrap_or_else(|| panic!("{name} needs a value"));
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}: not a number: {v}")),
    )
}

fn main() {
    let mb = arg("--mb").unwrap_or(50);
    let lanes = arg("--lanes").unwrap_or(2).max(1);
    let workers = arg("--workers")
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let bytes = mb * 1024 * 1024;

    let rt = coact::Runtime::builder()
        .workers(workers)
        .build()
        .expect("start the runtime");
    let start = Instant::now();
    let (report, words, generator_parked) = rt.block_on(move || {
        let (done_tx, done_rx) = sync_channel(1);
        let merger = spawn_with_capacity(
            MAILBOX,
            Merger {
                counts: BTreeMap::new(),
                lanes_left: lanes,
                busy: Busy::default(),
                upstream: Vec::new(),
                done: Some(done_tx),
            },
        );
        let tokenizers: Vec<Addr<TokenizeMsg>> = (0..lanes)
            .map(|_| {
                let counter = spawn_with_capacity(
                    MAILBOX,
                    Counter {
                        next: merger.clone(),
                        busy: Busy::default(),
                    },
                );
                spawn_with_capacity(
                    MAILBOX,
                    Tokenizer {
                        next: counter,
                        busy: Busy::default(),
                    },
                )
            })
            .collect();
        drop(merger);

        // The generator: this coroutine. Time in `send` is time parked on a full mailbox.
        let mut parked = Duration::ZERO;
        for (i, chunk) in Text::new(bytes).enumerate() {
            let t = Instant::now();
            tokenizers[i % lanes]
                .send(TokenizeMsg::Chunk(chunk))
                .expect("the tokenizer is alive");
            parked += t.elapsed();
        }
        for t in &tokenizers {
            t.send(TokenizeMsg::End).expect("the tokenizer is alive");
        }
        let report: Report = done_rx.recv().expect("the merger reports");
        let words: u64 = report.counts.values().sum();
        (report, words, parked)
    });
    let elapsed = start.elapsed();
    let rss_pipeline = peak_rss_kb();
    drop(rt);

    let secs = elapsed.as_secs_f64();
    println!(
        "pipeline: {mb} MB, {lanes} lane(s) of tokenize → count, 1 merge, mailboxes of {MAILBOX}, {workers} worker(s)"
    );
    println!(
        "  {:.2} s: {:.1} MB/s, {:.2} M words/s ({} words, {} distinct)",
        secs,
        bytes as f64 / (1024.0 * 1024.0) / secs,
        words as f64 / secs / 1e6,
        words,
        report.counts.len()
    );
    println!(
        "  generator parked on full mailboxes for {:.2} s ({:.0} % of the run): backpressure",
        generator_parked.as_secs_f64(),
        100.0 * generator_parked.as_secs_f64() / secs
    );
    for (stage, busy) in &report.busy {
        println!(
            "  {stage:<9} {:>5} messages, working {:.2} s ({:.0} % of the run)",
            busy.messages,
            busy.work.as_secs_f64(),
            100.0 * busy.work.as_secs_f64() / secs
        );
    }
    let mut top: Vec<(&String, &u64)> = report.counts.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = top
        .iter()
        .take(5)
        .map(|(w, n)| format!("{w}={n}"))
        .collect();
    println!("  most frequent: {}", top.join(", "));
    match rss_pipeline {
        Some(kb) => println!(
            "  peak RSS (VmHWM): {:.1} MB for {mb} MB of text",
            kb as f64 / 1024.0
        ),
        None => println!("  peak RSS: unknown (no /proc/self/status)"),
    }

    // The check: a direct single-threaded count of the same text.
    let t = Instant::now();
    let mut direct: HashMap<String, u64> = HashMap::new();
    for chunk in Text::new(bytes) {
        for w in chunk.split_ascii_whitespace().filter_map(normalize) {
            *direct.entry(w).or_insert(0) += 1;
        }
    }
    let direct_secs = t.elapsed().as_secs_f64();
    assert_eq!(direct.len(), report.counts.len(), "distinct words differ");
    for (w, n) in &report.counts {
        assert_eq!(direct.get(w), Some(n), "the count of {w:?} differs");
    }
    println!(
        "  verified against a single-threaded count ({direct_secs:.2} s): all {} counts match",
        direct.len()
    );
}
