//! FileStore under real faults: a small tmpfs that the test mounts, fills
//! until writes fail, then grows with `mount -o remount,size=...`. Needs
//! root (CI and the test machine run as root); a test that cannot mount
//! fails and says so.
#![cfg(feature = "file")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use kvstores::{Bytes, Error, FileStore, Store};
use tempfile::TempDir;

/// A tmpfs mounted on a fresh directory; unmounted on drop, also when the
/// test fails.
struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = TempDir::new().unwrap();
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            dir.path(),
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, options: &str) {
        mount(&["-o", &format!("remount,{options}")], self.path());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a store still open (a test that failed) must not keep the
        // mount alive.
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn mount(args: &[&str], dir: &Path) {
    let out = Command::new("mount").args(args).arg(dir).output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`mount {} {}` failed: {}. These tests mount a small tmpfs and need \
             root (run them as root, or in a container with CAP_SYS_ADMIN).",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("cannot run `mount` ({e}): install util-linux's mount"),
    }
}

/// 4 KiB values, each different, so that a corrupted one shows.
fn value(i: usize) -> Bytes {
    Bytes::from(format!("{i:08}").repeat(512))
}

/// Writes `k0`, `k1`, ... until a set fails; returns how many were
/// acknowledged and the error.
async fn fill(store: &FileStore) -> (usize, Error) {
    for i in 0.. {
        if let Err(e) = store.set(&format!("k{i}"), value(i), None).await {
            return (i, e);
        }
        assert!(i < 100_000, "a 4 MiB file system took 400 MB");
    }
    unreachable!()
}

async fn assert_all_there(store: &FileStore, written: impl IntoIterator<Item = usize>) {
    for i in written {
        let got = store.get(&format!("k{i}"), None).await;
        assert_eq!(got.unwrap(), Some(value(i)), "k{i}");
    }
}

/// The error of a write on a full disk: an I/O error that names the file
/// and says the file system is full, its source the operating system's.
fn assert_no_space(e: &Error, path: &Path) {
    let Error::Io { source, .. } = e else {
        panic!("expected an I/O error, got {e:?}")
    };
    assert_eq!(source.kind(), std::io::ErrorKind::StorageFull, "{e:?}");
    let message = e.to_string();
    assert!(message.contains(&*path.to_string_lossy()), "{message}");
    assert!(message.contains("full file system"), "{message}");
}

/// Runs `f` with a generous deadline: "nothing hangs" made an assertion.
async fn answered<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} got no answer in 60 s"))
}

/// The whole story of a full disk, on one handle: writes fail with a clear
/// error, nothing hangs, every acknowledged write stays readable, and once
/// there is space again the same handle takes writes, with everything
/// still there after reopening.
async fn survives_a_full_disk(exclusive: bool) {
    let fs = Tmpfs::mount("4m");
    let path: PathBuf = fs.path().join("store.redb");
    let store = FileStore::builder(&path)
        .exclusive(exclusive)
        .open()
        .unwrap();
    let (written, e) = answered("filling", fill(&store)).await;
    assert!(written > 100, "only {written} writes fit in 4 MiB");
    assert_no_space(&e, store.path());

    // Full: reads work, every write gets an answer (an error), nothing
    // acknowledged is lost.
    let reading = Instant::now();
    assert_all_there(&store, 0..written).await;
    let reading = reading.elapsed();
    let failing = Instant::now();
    let e = answered("a write on a full disk", store.set("more", value(0), None)).await;
    let failing = failing.elapsed();
    assert_no_space(&e.unwrap_err(), store.path());
    let writers: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move { store.set(&format!("c{t}"), value(t), None).await })
        })
        .collect();
    let mut concurrent_ok = Vec::new();
    for (t, writer) in writers.into_iter().enumerate() {
        match answered("a concurrent writer", writer).await.unwrap() {
            Ok(()) => concurrent_ok.push(t),
            Err(e) => assert_no_space(&e, store.path()),
        }
    }
    assert_all_there(&store, 0..written).await;

    // Space again: the same handle takes writes.
    fs.remount("size=16m");
    let freed = Instant::now();
    answered("the first write after space was freed", async {
        while store.set("after", value(1), None).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Figures for the docs, not assertions.
    eprintln!(
        "exclusive={exclusive}: {written} writes filled the disk; reading them all \
         back while full took {reading:?}, a write refused while full {failing:?}; \
         the same handle wrote again {:?} after space was freed",
        freed.elapsed()
    );
    for i in written..written + 100 {
        store.set(&format!("k{i}"), value(i), None).await.unwrap();
    }
    drop(store);

    let store = FileStore::builder(&path)
        .exclusive(exclusive)
        .open()
        .unwrap();
    assert_all_there(&store, 0..written + 100).await;
    assert_eq!(store.get("after", None).await.unwrap(), Some(value(1)));
    for t in concurrent_ok {
        let got = store.get(&format!("c{t}"), None).await.unwrap();
        assert_eq!(got, Some(value(t)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_writes_clearly_and_the_same_handle_recovers() {
    survives_a_full_disk(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusive_store_recovers_from_a_full_disk_too() {
    survives_a_full_disk(true).await;
}

/// Linux refuses to remount a file system read-only while a file on it is
/// open for writing, as a FileStore's is: the store goes on, and the
/// refusal is the administrator's to see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_remount_is_refused_while_the_store_is_open() {
    let fs = Tmpfs::mount("4m");
    let store = FileStore::open(fs.path().join("store.redb")).unwrap();
    store.set("k", value(1), None).await.unwrap();
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(fs.path())
        .output()
        .unwrap();
    assert!(!remount.status.success(), "the read-only remount succeeded");
    store.set("k2", value(2), None).await.unwrap();
    assert_eq!(store.get("k", None).await.unwrap(), Some(value(1)));
}

/// Dropping the last handle inside the runtime hands the closing to a
/// thread of its own; an open of the same path right after waits for it and
/// finds every write.
#[tokio::test(flavor = "current_thread")]
async fn dropping_the_last_handle_in_the_runtime_loses_nothing() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    for round in 0..3 {
        let store = FileStore::open(&path).unwrap();
        let writes: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let key = format!("r{round}k{i}");
                    store.set(&key, value(i), None).await
                })
            })
            .collect();
        for write in writes {
            write.await.unwrap().unwrap();
        }
        drop(store);
        let store = FileStore::open(&path).unwrap();
        for i in 0..64 {
            let got = store.get(&format!("r{round}k{i}"), None).await.unwrap();
            assert_eq!(got, Some(value(i)));
        }
    }
}
