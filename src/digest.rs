//! SHA-256 while streaming: readers and writers that hash what passes through.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Read/write buffer size for streaming: bounded memory whatever the file size.
pub const CHUNK: usize = 256 * 1024;

/// A writer that hashes and counts every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// The wrapped writer, the SHA-256 and the byte count of what was written.
    pub fn finish(self) -> (W, [u8; 32], u64) {
        (self.inner, self.hasher.finalize().into(), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts every byte read through it, and
/// remembers whether the reader it wraps failed (so a copy that fails can
/// tell a bad source from a bad destination).
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    failed: bool,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
            failed: false,
        }
    }

    /// True if a read from the wrapped reader failed.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// The SHA-256 and the byte count of what was read.
    pub fn finish(self) -> ([u8; 32], u64) {
        (self.hasher.finalize().into(), self.read)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.read += n as u64;
                Ok(n)
            }
            Err(e) => {
                self.failed |= e.kind() != io::ErrorKind::Interrupted;
                Err(e)
            }
        }
    }
}

/// SHA-256 and length of everything `reader` yields.
pub fn sha256_reader(reader: impl Read) -> io::Result<([u8; 32], u64)> {
    let mut reader = HashingReader::new(reader);
    io::copy(&mut reader, &mut io::sink())?;
    Ok(reader.finish())
}

/// SHA-256 and length of a file.
pub fn sha256_file(path: &Path) -> io::Result<([u8; 32], u64)> {
    sha256_reader(File::open(path)?)
}

/// SHA-256 of a byte slice.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Parses 64 hex digits.
pub fn from_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Opens `path` with `options`, making its folders first if they are
/// missing: looked for only then, so opening in a folder that exists (nearly
/// always) costs no `mkdir` and no `stat`, and a folder removed while
/// running (staging, a store's date folder) is made again.
pub fn open_making_folders(options: &OpenOptions, path: &Path) -> io::Result<File> {
    open_making(options, path, path.parent().unwrap_or(Path::new(".")))
}

/// Like [`open_making_folders`], making `folder` (the one `path` needs):
/// for an open of a folder itself (`O_TMPFILE`).
pub fn open_making(options: &OpenOptions, path: &Path, folder: &Path) -> io::Result<File> {
    match options.open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(folder)?;
            options.open(path)
        }
        other => other,
    }
}

/// Makes a new file's directory entry durable (after create, rename or unlink).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
