//! How a read in the multi-process mode learns that another process has
//! committed: by looking at the first bytes of the file, where redb keeps
//! its header.
//!
//! Every commit, of any process, rewrites redb's header (320 bytes in redb
//! 4: the new roots and transaction id) before it is acknowledged, so bytes
//! equal to an earlier reading mean nothing was committed since. The bytes
//! are compared whole, without parsing redb's format; a change that is not
//! a commit only costs a new read transaction.
//!
//! Where the page cache and shared mappings are one (Linux, Android and
//! Apple's systems), the bytes are read through a read-only shared mapping
//! of the file's first page: a few loads, where a `pread` costs a syscall
//! that two threads reading at once also contend on (it halved `get_hit` at
//! 64 tasks). Elsewhere, and for a file too short to map safely, they are
//! read with `pread`.

use std::fs::File;
use std::io;
use std::path::Path;

/// How many bytes are compared: redb's header and then some.
const LEN: usize = 512;

/// The first [`LEN`] bytes of the file, as read at one moment.
pub(super) type Header = [u8; LEN];

/// The file's header, readable at any time without locks.
pub(super) struct HeaderView {
    source: Source,
}

enum Source {
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    Mapped(memmap2::Mmap),
    Read(File),
}

impl HeaderView {
    /// Opens the file at `path` once more, read-only, to look at its header.
    pub(super) fn open(path: &Path) -> io::Result<HeaderView> {
        let file = File::open(path)?;
        #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
        if file.metadata()?.len() >= LEN as u64 {
            // SAFETY: the mapping is read-only and shared, and we read it
            // only with atomic loads (`read`), so other processes writing
            // the file meanwhile change what we read but break nothing.
            // What Rust cannot check is that the mapped bytes stay in the
            // file: a read of a page past its end raises SIGBUS. They do:
            // they are redb's header, which redb never truncates (it only
            // grows or shrinks the file past its first region), and the
            // length was checked just now. Only a file cut short by
            // something other than redb while open would fault; DESIGN.md
            // ("FileStore reads") takes that as the worst case.
            let map = unsafe { memmap2::MmapOptions::new().len(LEN).map(&file)? };
            return Ok(HeaderView {
                source: Source::Mapped(map),
            });
        }
        Ok(HeaderView {
            source: Source::Read(file),
        })
    }

    /// Whether the header is now what it was when `earlier` was read.
    pub(super) fn matches(&self, earlier: &Header) -> io::Result<bool> {
        #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
        if let Source::Mapped(map) = &self.source {
            // Word by word from the mapping, without a copy.
            return Ok(words(map)
                .zip(earlier.chunks_exact(8))
                .all(|(word, bytes)| word.to_ne_bytes() == bytes));
        }
        Ok(self.read()? == *earlier)
    }

    /// The header as it is now.
    pub(super) fn read(&self) -> io::Result<Header> {
        let mut header = [0; LEN];
        match &self.source {
            #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
            Source::Mapped(map) => {
                for (word, bytes) in words(map).zip(header.chunks_exact_mut(8)) {
                    bytes.copy_from_slice(&word.to_ne_bytes());
                }
            }
            Source::Read(file) => read_at(file, &mut header)?,
        }
        Ok(header)
    }
}

/// The mapped header's words, each loaded atomically at the moment the
/// iterator reaches it.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn words(map: &memmap2::Mmap) -> impl Iterator<Item = u64> + '_ {
    use std::sync::atomic::{AtomicU64, Ordering};
    let start = map.as_ptr().cast::<u64>();
    (0..LEN / 8).map(move |i| {
        // SAFETY: the mapping is page-aligned and `LEN` bytes long, so word
        // `i < LEN / 8` is aligned, in bounds and lives as long as `map`,
        // which the iterator borrows. This process only ever loads it,
        // atomically; other processes write it through the kernel
        // (`pwrite`), whose completion is ordered before any
        // acknowledgement of theirs we could have seen.
        let word = unsafe { AtomicU64::from_ptr(start.add(i).cast_mut()) };
        word.load(Ordering::Acquire)
    })
}

#[cfg(unix)]
fn read_at(file: &File, header: &mut Header) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, header, 0)
}

#[cfg(windows)]
fn read_at(file: &File, header: &mut Header) -> io::Result<()> {
    let mut read = 0;
    while read < header.len() {
        match std::os::windows::fs::FileExt::seek_read(file, &mut header[read..], read as u64)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => read += n,
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn reads_what_another_handle_wrote_at_once() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("file");
        let mut file = File::create(&path).unwrap();
        file.write_all(&[1; 4096]).unwrap();
        let view = HeaderView::open(&path).unwrap();
        assert_eq!(view.read().unwrap(), [1; LEN]);
        // Written through another descriptor, as another process would.
        std::os::unix::fs::FileExt::write_all_at(&file, &[2; 8], 100).unwrap();
        let header = view.read().unwrap();
        assert_eq!(header[100..108], [2; 8]);
        assert_eq!(header[..100], [1; 100]);
    }

    #[test]
    fn a_short_file_is_read_not_mapped() {
        let dir = tempfile::TempDir::new().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, [1; 100]).unwrap();
        let view = HeaderView::open(&path).unwrap();
        assert!(matches!(view.source, Source::Read(_)));
        let e = view.read().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }
}
