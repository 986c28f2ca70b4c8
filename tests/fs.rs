//! `coact::fs`: std's file calls run on the offload pool. Whole-file read and write, a `File`
//! written, sought and read back in parts, directories listed and removed, errors as std's
//! (1, 2 and 4 workers); a coroutine blocked opening a FIFO leaves its worker to the
//! coroutine that opens the other end (on one worker, a call made on the worker would hang);
//! 32 coroutines writing and reading their own files at once. Each test works in a fresh
//! directory under the system's temporary directory, removed at the end.

mod common;

use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};

use coact::fs;
use coact::sync::mpsc::channel;
use common::{on_workers, TempDir, WORKER_COUNTS};

#[test]
fn whole_files_directories_and_errors_behave_as_std() {
    for &n in &WORKER_COUNTS {
        let dir = TempDir::new("fs");
        let root = dir.path().to_path_buf();
        on_workers(n, move || {
            let sub = root.join("a/b");
            fs::create_dir_all(&sub).unwrap();
            let file = sub.join("data.bin");
            let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
            fs::write(&file, &bytes).unwrap();
            assert_eq!(fs::read(&file).unwrap(), bytes);
            assert_eq!(fs::metadata(&file).unwrap().len(), 100_000);
            assert!(fs::exists(&file).unwrap());

            fs::write(sub.join("text.txt"), "héllo").unwrap();
            assert_eq!(fs::read_to_string(sub.join("text.txt")).unwrap(), "héllo");
            let err = fs::read_to_string(&file).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidData);

            assert_eq!(fs::copy(&file, sub.join("copy.bin")).unwrap(), 100_000);
            fs::rename(sub.join("copy.bin"), sub.join("moved.bin")).unwrap();
            let mut names: Vec<String> = fs::read_dir(&sub)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            assert_eq!(names, ["data.bin", "moved.bin", "text.txt"]);

            fs::remove_file(sub.join("moved.bin")).unwrap();
            assert!(!fs::exists(sub.join("moved.bin")).unwrap());
            let err = fs::read(sub.join("moved.bin")).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::NotFound);
            let err = fs::remove_dir(root.join("a")).unwrap_err();
            assert_ne!(
                err.kind(),
                ErrorKind::NotFound,
                "a non-empty directory stays"
            );
            fs::remove_dir_all(root.join("a")).unwrap();
            assert!(!fs::exists(root.join("a")).unwrap());
        });
    }
}

#[test]
fn a_file_written_sought_and_read_back_in_parts() {
    let dir = TempDir::new("fs");
    let path = dir.path().join("parts.txt");
    on_workers(2, move || {
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(b"0123456789").unwrap();
        assert_eq!(f.write(b"abc").unwrap(), 3);
        drop(f);

        let mut f = fs::File::open(&path).unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(f.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf, b"0123");
        assert_eq!(f.seek(SeekFrom::Start(8)).unwrap(), 8);
        let mut rest = String::new();
        f.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "89abc");
        assert_eq!(f.read(&mut buf).unwrap(), 0, "at the end");
        assert_eq!(f.metadata().unwrap().len(), 13);

        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(5).unwrap();
        f.sync_all().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"01234");

        let err = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    });
}

#[test]
fn a_coroutine_blocked_opening_a_fifo_leaves_its_worker_free() {
    let dir = TempDir::new("fs");
    let fifo = dir.path().join("fifo");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
    let got = on_workers(1, move || {
        let (ready_tx, ready_rx) = channel();
        let reader_path = fifo.clone();
        let reader = coact::spawn(move || {
            ready_tx.send(()).unwrap();
            // Opening a FIFO for reading waits for a writer: on the pool, not the worker.
            fs::read(&reader_path).unwrap()
        });
        ready_rx.recv().unwrap();
        // One worker: had the read blocked it, this coroutine would never run.
        let mut w = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        w.write_all(b"through the fifo").unwrap();
        drop(w);
        reader.join().unwrap()
    });
    assert_eq!(got, b"through the fifo");
}

#[test]
fn many_coroutines_write_and_read_their_own_files_at_once() {
    const FILES: u32 = 32;
    let dir = TempDir::new("fs");
    let root = dir.path().to_path_buf();
    let total = on_workers(2, move || {
        let handles: Vec<_> = (0..FILES)
            .map(|i| {
                let path = root.join(format!("f{i}"));
                coact::spawn(move || {
                    let body = format!("{i}\n").repeat(1000);
                    fs::write(&path, &body).unwrap();
                    let back = fs::read_to_string(&path).unwrap();
                    assert_eq!(back, body);
                    back.lines().map(|l| l.parse::<u64>().unwrap()).sum::<u64>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, (0..FILES as u64).map(|i| i * 1000).sum::<u64>());
}

#[test]
fn calls_from_a_plain_thread_run_in_place() {
    let dir = TempDir::new("fs");
    let path = dir.path().join("plain.txt");
    fs::write(&path, "plain").unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "plain");
    let mut f = fs::File::open(&path).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "plain");
    assert_eq!(f.into_std().unwrap().metadata().unwrap().len(), 5);
}
