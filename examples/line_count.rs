//! Counts the lines of every `.rs` file under a directory, a coroutine per file, with the file
//! I/O on the runtime's offload pool: epoll cannot watch a regular file, so a read made in a
//! coroutine would stall its whole worker (and the watchdog would report it).
//!
//! A coroutine walks the tree with `coact::fs::read_dir` and sends the paths down a bounded
//! channel; a coroutine per file reads it with `coact::fs::read_to_string` and reports its
//! count to the collector. (`coact::fs` runs std's calls on the offload pool; for a blocking
//! call it does not cover, `coact::offload` takes any closure.) Run it with `cargo run --release --example line_count -- [dir]` (default:
//! this crate's directory).

use std::path::{Path, PathBuf};
use std::time::Instant;

use coact::sync::mpsc::{channel, sync_channel, SyncSender};

/// Sends every `.rs` file under `dir` (directories read on the offload pool).
fn walk(dir: PathBuf, out: &SyncSender<PathBuf>) {
    let Ok(entries) = coact::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        // The entry's type comes with the listing on Linux (no further system call).
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let path = entry.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if is_dir && !name.starts_with('.') && name != "target" {
            walk(path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            // Parks while the channel is full: the walk never runs far ahead of the readers.
            if out.send(path).is_err() {
                return;
            }
        }
    }
}

fn main() {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let start = Instant::now();
    let (files, lines, threads) = coact::run(move || {
        let (paths_tx, paths_rx) = sync_channel::<PathBuf>(64);
        let (counts_tx, counts_rx) = channel::<(PathBuf, usize)>();
        let r = root.clone();
        coact::spawn_detached(move || walk(r, &paths_tx));
        // A coroutine per file; each waits for its own read while the others go on.
        let spawner = coact::spawn(move || {
            for path in paths_rx {
                let counts = counts_tx.clone();
                coact::spawn_detached(move || {
                    if let Ok(text) = coact::fs::read_to_string(&path) {
                        let _ = counts.send((path, text.lines().count()));
                    }
                });
            }
        });
        let mut all: Vec<(PathBuf, usize)> = counts_rx.iter().collect();
        spawner.join().expect("the spawner finished");
        let threads = coact::Handle::current()
            .expect("inside the runtime")
            .offload_threads();
        all.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        for (path, n) in all.iter().take(5) {
            let shown = path.strip_prefix(&root).unwrap_or(Path::new(path));
            println!("{n:>7}  {}", shown.display());
        }
        let lines: usize = all.iter().map(|(_, n)| n).sum();
        (all.len(), lines, threads)
    });
    println!(
        "{files} .rs files, {lines} lines, in {:.1} ms ({threads} offload threads still up)",
        start.elapsed().as_secs_f64() * 1e3
    );
}
