//! Files and directories without stalling a worker: std's `fs` calls, each run on the
//! runtime's [offload pool](crate::offload()) while only the calling coroutine waits.
//!
//! epoll cannot watch a regular file, so a file read made on a worker blocks the worker (and
//! every coroutine on it) for as long as the disk takes. The functions here are std's, run
//! where blocking is harmless; from a plain thread they run right there, as std's would.
//!
//! ```
//! use std::io::{Read, Seek, SeekFrom, Write};
//! use coact_runtime::fs;
//!
//! let dir = std::env::temp_dir().join(format!("coact-fs-doc-{}", std::process::id()));
//! coact_runtime::run(move || {
//!     fs::create_dir_all(&dir)?;
//!     let path = dir.join("greeting.txt");
//!     fs::write(&path, "hello")?;
//!     assert_eq!(fs::read_to_string(&path)?, "hello");
//!
//!     let mut file = fs::OpenOptions::new().read(true).append(true).open(&path)?;
//!     file.write_all(b", world")?;
//!     file.seek(SeekFrom::Start(7))?;
//!     let mut rest = String::new();
//!     file.read_to_string(&mut rest)?;
//!     assert_eq!(rest, "world");
//!
//!     let names: Vec<_> = fs::read_dir(&dir)?.map(|e| e.unwrap().file_name()).collect();
//!     assert_eq!(names, ["greeting.txt"]);
//!     fs::remove_dir_all(&dir)
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Cost
//!
//! Each call is one hand-over to a pool thread and back: a few microseconds on top of the
//! system call. [`File`]'s `read_to_end`, `read_to_string` and `write_all` are one hand-over
//! each, whatever the size; for many small reads or writes, wrap a [`File`] in a
//! `std::io::BufReader` or `BufWriter` so that each hand-over moves a buffer's worth. A
//! [`File`]'s reads and writes copy through a buffer of their own (the pool thread cannot
//! borrow the caller's, which a cancelled caller would abandon).

use std::fmt;
use std::fs::{Metadata, Permissions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::offload;

/// Runs `f` on the offload pool with an owned copy of `path`.
fn with_path<T, F>(path: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Path) -> io::Result<T> + Send + 'static,
{
    let path = path.to_path_buf();
    offload(move || f(&path))
}

/// Runs `f` on the offload pool with owned copies of two paths.
fn with_paths<T, F>(from: &Path, to: &Path, f: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Path, &Path) -> io::Result<T> + Send + 'static,
{
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    offload(move || f(&from, &to))
}

/// Reads a whole file; see [`std::fs::read`].
pub fn read<P: AsRef<Path>>(path: P) -> io::Result<Vec<u8>> {
    with_path(path.as_ref(), |p| std::fs::read(p))
}

/// Reads a whole file as UTF-8; see [`std::fs::read_to_string`].
pub fn read_to_string<P: AsRef<Path>>(path: P) -> io::Result<String> {
    with_path(path.as_ref(), |p| std::fs::read_to_string(p))
}

/// Writes `contents` as the whole file, creating or truncating it; see [`std::fs::write`].
/// The bytes are copied once, for the pool thread.
pub fn write<P: AsRef<Path>, C: AsRef<[u8]>>(path: P, contents: C) -> io::Result<()> {
    let contents = contents.as_ref().to_vec();
    with_path(path.as_ref(), move |p| std::fs::write(p, contents))
}

/// Copies a file's contents and permissions; see [`std::fs::copy`].
pub fn copy<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<u64> {
    with_paths(from.as_ref(), to.as_ref(), |f, t| std::fs::copy(f, t))
}

/// Renames a file or directory, replacing `to` if it is a file; see [`std::fs::rename`].
pub fn rename<P: AsRef<Path>, Q: AsRef<Path>>(from: P, to: Q) -> io::Result<()> {
    with_paths(from.as_ref(), to.as_ref(), |f, t| std::fs::rename(f, t))
}

/// Makes a hard link `link` to `original`; see [`std::fs::hard_link`].
pub fn hard_link<P: AsRef<Path>, Q: AsRef<Path>>(original: P, link: Q) -> io::Result<()> {
    with_paths(original.as_ref(), link.as_ref(), |o, l| {
        std::fs::hard_link(o, l)
    })
}

/// Removes a file; see [`std::fs::remove_file`].
pub fn remove_file<P: AsRef<Path>>(path: P) -> io::Result<()> {
    with_path(path.as_ref(), |p| std::fs::remove_file(p))
}

/// Removes an empty directory; see [`std::fs::remove_dir`].
pub fn remove_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    with_path(path.as_ref(), |p| std::fs::remove_dir(p))
}

/// Removes a directory and everything in it; see [`std::fs::remove_dir_all`].
pub fn remove_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    with_path(path.as_ref(), |p| std::fs::remove_dir_all(p))
}

/// Makes a directory; see [`std::fs::create_dir`].
pub fn create_dir<P: AsRef<Path>>(path: P) -> io::Result<()> {
    with_path(path.as_ref(), |p| std::fs::create_dir(p))
}

/// Makes a directory and any missing parents; see [`std::fs::create_dir_all`].
pub fn create_dir_all<P: AsRef<Path>>(path: P) -> io::Result<()> {
    with_path(path.as_ref(), |p| std::fs::create_dir_all(p))
}

/// A path's metadata, following symbolic links; see [`std::fs::metadata`].
pub fn metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    with_path(path.as_ref(), |p| std::fs::metadata(p))
}

/// A path's metadata, not following a final symbolic link; see
/// [`std::fs::symlink_metadata`].
pub fn symlink_metadata<P: AsRef<Path>>(path: P) -> io::Result<Metadata> {
    with_path(path.as_ref(), |p| std::fs::symlink_metadata(p))
}

/// Whether `path` exists, with an error where that cannot be told; see
/// [`std::fs::exists`](https://doc.rust-lang.org/std/fs/fn.exists.html).
pub fn exists<P: AsRef<Path>>(path: P) -> io::Result<bool> {
    with_path(path.as_ref(), |p| p.try_exists())
}

/// The absolute form of `path`, with every symbolic link resolved; see
/// [`std::fs::canonicalize`].
pub fn canonicalize<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    with_path(path.as_ref(), |p| std::fs::canonicalize(p))
}

/// Where a symbolic link points; see [`std::fs::read_link`].
pub fn read_link<P: AsRef<Path>>(path: P) -> io::Result<PathBuf> {
    with_path(path.as_ref(), |p| std::fs::read_link(p))
}

/// Sets a file's permissions; see [`std::fs::set_permissions`].
pub fn set_permissions<P: AsRef<Path>>(path: P, perm: Permissions) -> io::Result<()> {
    with_path(path.as_ref(), move |p| std::fs::set_permissions(p, perm))
}

/// The entries of a directory, read in one go (one hand-over to the pool for the whole
/// listing, not one per entry); see [`std::fs::read_dir`]. An entry that could not be read
/// is an `Err` item, as with std.
pub fn read_dir<P: AsRef<Path>>(path: P) -> io::Result<ReadDir> {
    with_path(path.as_ref(), |p| {
        let entries: Vec<io::Result<std::fs::DirEntry>> = std::fs::read_dir(p)?.collect();
        Ok(ReadDir {
            entries: entries.into_iter(),
        })
    })
}

/// The entries of a directory, from [`read_dir`]: std's [`DirEntry`](std::fs::DirEntry)s,
/// already read. (A `DirEntry`'s `metadata` and `file_type` may make a system call of their
/// own; `path` and `file_name` do not.)
pub struct ReadDir {
    entries: std::vec::IntoIter<io::Result<std::fs::DirEntry>>,
}

impl Iterator for ReadDir {
    type Item = io::Result<std::fs::DirEntry>;
    fn next(&mut self) -> Option<Self::Item> {
        self.entries.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl fmt::Debug for ReadDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadDir")
            .field("remaining", &self.entries.len())
            .finish()
    }
}

/// An open file whose calls run on the offload pool. Implements `Read`, `Write` and `Seek`
/// like std's; see the [module docs](self) for what each call costs.
pub struct File {
    std: Arc<std::fs::File>,
}

impl File {
    /// Opens a file for reading; see [`std::fs::File::open`].
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new().read(true).open(path)
    }

    /// Opens a file for writing, creating or truncating it; see
    /// [`std::fs::File::create`].
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
    }

    /// Options to open a file with.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps an open std file.
    pub fn from_std(file: std::fs::File) -> File {
        File {
            std: Arc::new(file),
        }
    }

    /// The std file underneath (its calls block the thread).
    pub fn into_std(self) -> io::Result<std::fs::File> {
        match Arc::try_unwrap(self.std) {
            Ok(f) => Ok(f),
            // A job of a cancelled call still holds it: a second descriptor of the same file.
            Err(shared) => shared.try_clone(),
        }
    }

    /// Runs `f` with the file on the offload pool.
    fn call<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&std::fs::File) -> io::Result<T> + Send + 'static,
    {
        let file = self.std.clone();
        offload(move || f(&file))
    }

    /// Flushes data and metadata to the device; see [`std::fs::File::sync_all`].
    pub fn sync_all(&self) -> io::Result<()> {
        self.call(|f| f.sync_all())
    }

    /// Flushes data to the device; see [`std::fs::File::sync_data`].
    pub fn sync_data(&self) -> io::Result<()> {
        self.call(|f| f.sync_data())
    }

    /// Truncates or extends the file to `size` bytes; see [`std::fs::File::set_len`].
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        self.call(move |f| f.set_len(size))
    }

    /// The file's metadata; see [`std::fs::File::metadata`].
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.call(|f| f.metadata())
    }

    /// Sets the file's permissions; see [`std::fs::File::set_permissions`].
    pub fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        self.call(move |f| f.set_permissions(perm))
    }

    /// A second handle to the same open file (sharing its position); see
    /// [`std::fs::File::try_clone`].
    pub fn try_clone(&self) -> io::Result<File> {
        Ok(File::from_std(self.std.try_clone()?))
    }
}

impl Read for File {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = buf.len();
        let data = self.call(move |mut f| {
            let mut v = vec![0u8; len];
            let n = f.read(&mut v)?;
            v.truncate(n);
            Ok(v)
        })?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }

    /// Reads to the end in one hand-over to the pool.
    fn read_to_end(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        let data = self.call(|mut f| {
            let mut v = Vec::new();
            f.read_to_end(&mut v)?;
            Ok(v)
        })?;
        buf.extend_from_slice(&data);
        Ok(data.len())
    }

    /// Reads to the end in one hand-over to the pool; `buf` is unchanged if the bytes are not
    /// UTF-8 (`InvalidData`).
    fn read_to_string(&mut self, buf: &mut String) -> io::Result<usize> {
        let mut bytes = Vec::new();
        self.read_to_end(&mut bytes)?;
        let s = String::from_utf8(bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()))?;
        buf.push_str(&s);
        Ok(s.len())
    }
}

impl Write for File {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let data = buf.to_vec();
        self.call(move |mut f| f.write(&data))
    }

    /// Writes everything in one hand-over to the pool.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let data = buf.to_vec();
        self.call(move |mut f| f.write_all(&data))
    }

    /// Nothing to do: a `File` keeps no buffer (std's does not either).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.call(move |mut f| f.seek(pos))
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.std.fmt(f)
    }
}

/// How to open a [`File`]: std's [`OpenOptions`](std::fs::OpenOptions), opened on the pool
/// (an open may block too: a FIFO waits for its other end, a network file system for the
/// network).
#[derive(Clone, Debug)]
pub struct OpenOptions {
    std: std::fs::OpenOptions,
}

impl OpenOptions {
    /// All options off.
    pub fn new() -> OpenOptions {
        OpenOptions {
            std: std::fs::OpenOptions::new(),
        }
    }

    /// Open for reading.
    pub fn read(&mut self, on: bool) -> &mut OpenOptions {
        self.std.read(on);
        self
    }

    /// Open for writing.
    pub fn write(&mut self, on: bool) -> &mut OpenOptions {
        self.std.write(on);
        self
    }

    /// Every write goes to the end of the file.
    pub fn append(&mut self, on: bool) -> &mut OpenOptions {
        self.std.append(on);
        self
    }

    /// Empty an existing file on opening it.
    pub fn truncate(&mut self, on: bool) -> &mut OpenOptions {
        self.std.truncate(on);
        self
    }

    /// Create the file if it does not exist.
    pub fn create(&mut self, on: bool) -> &mut OpenOptions {
        self.std.create(on);
        self
    }

    /// Create the file, failing if it exists.
    pub fn create_new(&mut self, on: bool) -> &mut OpenOptions {
        self.std.create_new(on);
        self
    }

    /// The std options underneath, for what these do not mirror (std's `OpenOptionsExt`:
    /// mode, custom flags).
    pub fn as_std_mut(&mut self) -> &mut std::fs::OpenOptions {
        &mut self.std
    }

    /// Opens `path` with these options.
    pub fn open<P: AsRef<Path>>(&self, path: P) -> io::Result<File> {
        let opts = self.std.clone();
        with_path(path.as_ref(), move |p| opts.open(p)).map(File::from_std)
    }
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}
