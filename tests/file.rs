//! FileStore: the behaviour suite, then what only a persistent store does:
//! persistence, expiry on a controlled clock, bad paths and files, sharing
//! with real child processes, surviving SIGKILL, backup and compaction.
//!
//! Child processes are this test binary run again with `KVSTORES_CHILD` set,
//! which turns the `child_process` test into the child's main (see there).
#![cfg(feature = "file")]

mod suite;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kvstores::{
    Bytes, Error, FileDurability, FileStore, ManualClock, MemoryStore, NamespacedStore, Store,
};
use proptest::prelude::*;
use tempfile::TempDir;

/// A store on a new file in its own directory under cargo's scratch space
/// for tests (the suite's functions take only the store, so the directory
/// cannot be tied to it and is kept).
async fn fresh() -> FileStore {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    FileStore::open(dir.join("store.redb")).unwrap()
}

contract_suite!(fresh());
clocked_suite!(|clock: ManualClock| async move {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    FileStore::builder(dir.join("store.redb"))
        .clock(clock)
        .open()
        .unwrap()
});

impl suite::clocked::Expiring for FileStore {
    async fn purge(&self) -> usize {
        self.delete_expired().await.unwrap()
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn on_clock(path: &Path, clock: &ManualClock) -> FileStore {
    FileStore::builder(path)
        .clock(clock.clone())
        .open()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_and_expiries_survive_closing_and_reopening() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let clock = ManualClock::new();
    {
        let root = on_clock(&path, &clock);
        let sessions = root.with_namespace("sessions");
        let nested = sessions.with_namespace("nested");
        root.set("forever", b("root"), None).await.unwrap();
        sessions
            .set("ttl", b("session"), Some(Duration::from_secs(10)))
            .await
            .unwrap();
        nested.set("forever", b("nested"), None).await.unwrap();
    }

    let root = on_clock(&path, &clock);
    let sessions = root.with_namespace("sessions");
    let nested = sessions.with_namespace("nested");
    assert_eq!(root.get("forever", None).await.unwrap(), Some(b("root")));
    assert_eq!(sessions.get("ttl", None).await.unwrap(), Some(b("session")));
    assert_eq!(
        sessions.expires_in("ttl").await.unwrap(),
        Some(Duration::from_secs(10)),
        "the deadline is persisted as it was"
    );
    assert_eq!(
        nested.get("forever", None).await.unwrap(),
        Some(b("nested"))
    );
    assert!(!root.exists("ttl").await.unwrap());

    clock.advance(Duration::from_secs(10));
    assert!(!sessions.exists("ttl").await.unwrap());
    assert_eq!(root.delete_expired().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_path_twice_in_one_process_shares_the_data() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let first = FileStore::open(&path).unwrap();
    // Another spelling of the same file.
    let second = FileStore::open(dir.path().join(".").join("store.redb")).unwrap();
    first.set("k", b("v"), None).await.unwrap();
    assert_eq!(second.get("k", None).await.unwrap(), Some(b("v")));
    second.delete("k").await.unwrap();
    assert!(!first.exists("k").await.unwrap());
    assert_eq!(first.path(), second.path());

    let err = FileStore::builder(&path)
        .exclusive(true)
        .open()
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyOpen { .. }), "{err:?}");
    assert!(
        err.to_string().contains("already open in this process"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_tasks_writing_at_once_lose_nothing() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let store = FileStore::open(&path).unwrap();
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let store = store.with_namespace(&format!("t{t}"));
            tokio::spawn(async move {
                for i in 0..50 {
                    store
                        .set(&i.to_string(), Bytes::from(vec![t as u8; 10]), None)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    drop(store);
    let store = FileStore::open(&path).unwrap();
    for t in 0..64u8 {
        let ns = store.with_namespace(&format!("t{t}"));
        for i in 0..50 {
            assert_eq!(
                ns.get(&i.to_string(), None).await.unwrap(),
                Some(Bytes::from(vec![t; 10]))
            );
        }
    }
}

/// `delete_expired` removes in chunks, reading the time-ordered index
/// through other namespaces' expired entries: a namespace's call removes
/// exactly its own expired entries however many there are, and only them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_expired_in_chunks_removes_exactly_the_namespaces_expired_entries() {
    use kvstores::BatchStore;
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let root = on_clock(&dir.path().join("store.redb"), &clock);
    let (ns_a, ns_b) = (root.with_namespace("a"), root.with_namespace("b"));
    // Interleaved in the expiry index: 2,500 of `a`, 5,000 of `b`.
    for i in 0..50u64 {
        let ttl = Some(Duration::from_millis(1000 + i));
        let keys: Vec<_> = (0..150).map(|k| (format!("{i}-{k}"), b("v"))).collect();
        let entries: Vec<_> = keys.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        ns_a.set_many(&entries[..50], ttl).await.unwrap();
        ns_b.set_many(&entries[50..], ttl).await.unwrap();
    }
    ns_a.set("kept", b("v"), None).await.unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(ns_a.delete_expired().await.unwrap(), 2_500);
    assert_eq!(ns_a.usage().await.unwrap().expired, 0);
    assert_eq!(ns_b.usage().await.unwrap().expired, 5_000);
    assert_eq!(root.delete_expired().await.unwrap(), 5_000);
    assert_eq!(root.usage().await.unwrap().live, 1);
    assert!(ns_a.exists("kept").await.unwrap());
}

/// A batch holding a value too large for the file is refused for its own
/// caller, whole, while the writes of 64 other tasks queued beside it all
/// commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_too_large_fails_alone_and_writes_nothing() {
    use kvstores::BatchStore;
    let dir = TempDir::new().unwrap();
    let store = FileStore::open(dir.path().join("store.redb")).unwrap();
    // Zeroed memory is mapped lazily: 3 GiB of it costs nothing until read.
    let huge = Bytes::from(vec![0u8; 3 << 30]);
    let others: Vec<_> = (0..64)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.set(&format!("k{i}"), b("v"), None).await })
        })
        .collect();
    let err = store
        .set_many(&[("small", b("v")), ("huge", huge.clone())], None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { size } if size > 3 << 30),
        "{err:?}"
    );
    let err = store.set("huge", huge, None).await.unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { size } if size > 3 << 30),
        "{err:?}"
    );
    for task in others {
        task.await.unwrap().unwrap();
    }
    assert_eq!(store.get("small", None).await.unwrap(), None);
    for i in 0..64 {
        assert_eq!(
            store.get(&format!("k{i}"), None).await.unwrap(),
            Some(b("v"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_durability_is_visible_at_once_and_durable_after_close() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let fast = || {
        FileStore::builder(&path)
            .exclusive(true)
            .durability(FileDurability::Periodic(Duration::from_millis(50)))
    };
    {
        let store = fast().open().unwrap();
        for i in 0..100 {
            store.set(&i.to_string(), b("v"), None).await.unwrap();
            assert!(store.exists(&i.to_string()).await.unwrap());
        }
    }
    let store = FileStore::open(&path).unwrap();
    for i in 0..100 {
        assert!(store.exists(&i.to_string()).await.unwrap(), "{i}");
    }
    drop(store);

    let err = FileStore::builder(&path)
        .durability(FileDurability::Periodic(Duration::from_secs(1)))
        .open()
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("exclusive"), "{err}");
}

#[test]
fn debug_names_the_file_and_namespace() {
    let dir = TempDir::new().unwrap();
    let store = FileStore::open(dir.path().join("s.redb"))
        .unwrap()
        .with_namespace("a");
    let debug = format!("{store:?}");
    assert!(debug.starts_with("FileStore { path: "), "{debug}");
    assert!(debug.contains("s.redb"), "{debug}");
    assert!(debug.ends_with(r#"namespace: ["a"], .. }"#), "{debug}");
}

/// One step of the model test: namespaces 0..4 are the root, `a`, `a/b`
/// and `ab`; keys are a handful of names so that steps collide.
#[derive(Clone, Debug)]
enum Step {
    Set(usize, u8, Option<u16>),
    Get(usize, u8, Option<u16>),
    Delete(usize, u8),
    DeleteAll(usize),
    DeleteExpired(usize),
    ExpiresIn(usize, u8),
    Advance(u16),
}

fn step() -> impl Strategy<Value = Step> {
    let ns = 0..4usize;
    let key = 0..5u8;
    let ttl = prop::option::of(1..3000u16);
    prop_oneof![
        4 => (ns.clone(), key.clone(), ttl.clone()).prop_map(|(n, k, t)| Step::Set(n, k, t)),
        3 => (ns.clone(), key.clone(), ttl).prop_map(|(n, k, t)| Step::Get(n, k, t)),
        1 => (ns.clone(), key.clone()).prop_map(|(n, k)| Step::Delete(n, k)),
        1 => ns.clone().prop_map(Step::DeleteAll),
        1 => ns.clone().prop_map(Step::DeleteExpired),
        1 => (ns, key).prop_map(|(n, k)| Step::ExpiresIn(n, k)),
        2 => (1..2000u16).prop_map(Step::Advance),
    ]
}

fn namespaces<S: NamespacedStore>(root: S) -> Vec<S> {
    let a = root.with_namespace("a");
    let ab = a.with_namespace("b");
    let ab_flat = root.with_namespace("ab");
    vec![root, a, ab, ab_flat]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// FileStore agrees with MemoryStore, step by step on one manual clock,
    /// and after closing and reopening the file. `delete_expired` counts
    /// agreeing shows the expiry index stayed exact.
    #[test]
    fn agrees_with_the_memory_store(steps in prop::collection::vec(step(), 1..40)) {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("model.redb");
        let clock = ManualClock::new();
        let open = || {
            FileStore::builder(&path)
                .clock(clock.clone())
                .exclusive(true)
                .durability(FileDurability::Periodic(Duration::from_secs(1)))
                .open()
                .unwrap()
        };
        let model = namespaces(MemoryStore::builder().clock(clock.clone()).build());
        runtime().block_on(async {
            let file = namespaces(open());
            let ms = |t: u16| Duration::from_millis(u64::from(t));
            for step in &steps {
                match *step {
                    Step::Set(n, k, t) => {
                        let value = Bytes::from(format!("{step:?}"));
                        let key = k.to_string();
                        file[n].set(&key, value.clone(), t.map(ms)).await.unwrap();
                        model[n].set(&key, value, t.map(ms)).await.unwrap();
                    }
                    Step::Get(n, k, t) => assert_eq!(
                        file[n].get(&k.to_string(), t.map(ms)).await.unwrap(),
                        model[n].get(&k.to_string(), t.map(ms)).await.unwrap(),
                        "{step:?}"
                    ),
                    Step::Delete(n, k) => {
                        file[n].delete(&k.to_string()).await.unwrap();
                        model[n].delete(&k.to_string()).await.unwrap();
                    }
                    Step::DeleteAll(n) => {
                        file[n].delete_all().await.unwrap();
                        model[n].delete_all().await.unwrap();
                    }
                    Step::DeleteExpired(n) => assert_eq!(
                        file[n].delete_expired().await.unwrap(),
                        model[n].delete_expired().await,
                        "{step:?}"
                    ),
                    Step::ExpiresIn(n, k) => assert_eq!(
                        file[n].expires_in(&k.to_string()).await.unwrap(),
                        model[n].expires_in(&k.to_string()).await.unwrap(),
                        "{step:?}"
                    ),
                    Step::Advance(t) => clock.advance(ms(t)),
                }
            }
            drop(file);
            let file = namespaces(open());
            for n in 0..4 {
                for k in 0..5u8 {
                    let key = k.to_string();
                    assert_eq!(
                        file[n].expires_in(&key).await.unwrap(),
                        model[n].expires_in(&key).await.unwrap()
                    );
                    assert_eq!(
                        file[n].get(&key, None).await.unwrap(),
                        model[n].get(&key, None).await.unwrap()
                    );
                }
            }
            assert_eq!(
                file[0].delete_expired().await.unwrap(),
                model[0].delete_expired().await
            );
        });
    }
}

// ---------------------------------------------------------------- bad input

#[test]
fn a_directory_is_refused_by_name() {
    let dir = TempDir::new().unwrap();
    let err = FileStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&*dir.path().to_string_lossy()),
        "{message}"
    );
    // The operating system's reason is the source, printed once by
    // whoever walks the chain, not repeated in the message.
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(cause.contains("directory"), "{cause}");
    assert!(!message.contains(&cause), "{message}");
}

#[test]
fn a_missing_directory_is_an_error_unless_asked_to_create_it() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("a/b/store.redb");
    let err = FileStore::open(&path).unwrap_err();
    match &err {
        Error::Io {
            path: p, source, ..
        } => {
            assert_eq!(p, &path);
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("create_directories"), "{err}");
    assert!(!dir.path().join("a").exists(), "nothing was created");

    FileStore::builder(&path)
        .create_directories(true)
        .open()
        .unwrap();
    assert!(path.is_file());
}

#[test]
fn a_file_of_random_bytes_is_refused_and_left_unchanged() {
    let dir = TempDir::new().unwrap();
    for len in [1usize, 9, 4096, 100_000] {
        let path = dir.path().join(format!("random-{len}"));
        // A fixed xorshift stream: arbitrary bytes, the same every run.
        let mut x = 0x2545_f491_4f6c_dd1d_u64 ^ len as u64;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(&path, &bytes).unwrap();

        let err = FileStore::open(&path).unwrap_err();
        assert!(matches!(err, Error::Database { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
        assert!(message.contains("not a kvstores database"), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "{len} bytes");
    }
}

#[test]
fn another_programs_redb_file_is_refused_and_left_unchanged() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let table: redb::TableDefinition<&str, &str> = redb::TableDefinition::new("theirs");
        txn.open_table(table).unwrap().insert("a", "b").unwrap();
        txn.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert!(err.to_string().contains("another program"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_kvstores_file_of_another_format_version_is_refused_and_left_unchanged() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("future.redb");
    drop(FileStore::open(&path).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("kvstores.meta");
        txn.open_table(meta).unwrap().insert("format", 2).unwrap();
        txn.commit().unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = FileStore::open(&path).unwrap_err();
    assert!(matches!(err, Error::Database { .. }), "{err:?}");
    assert!(err.to_string().contains("format version 2"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn a_file_without_write_permission_is_refused_and_left_unchanged() {
    let dir = TempDir::new().unwrap();
    // Readable by everyone, writable by nobody but its owner.
    let path = dir.path().join("store.redb");
    drop(FileStore::open(&path).unwrap());
    set_mode(dir.path(), 0o755);
    set_mode(&path, 0o444);
    let before = std::fs::read(&path).unwrap();

    let outcome = if is_root() {
        // Root ignores file modes, so the open runs in a child process as
        // the unprivileged user `nobody` (uid 65534), for whom they hold.
        let output = child("open", &path, "shared")
            .uid(65534)
            .gid(65534)
            .output()
            .expect("root can start a process as nobody");
        lines(&output.stdout).join("\n")
    } else {
        outcome_of(FileStore::open(&path))
    };
    assert!(outcome.starts_with("Io PermissionDenied"), "{outcome}");
    assert!(outcome.contains(&*path.to_string_lossy()), "{outcome}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

// ---------------------------------------------------- processes and crashes

#[test]
fn processes_writing_at_once_see_all_of_each_others_writes() {
    const CHILDREN: usize = 4;
    const KEYS: usize = 300;
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let store = FileStore::open(&path).unwrap();
    let children: Vec<Child> = (0..CHILDREN)
        .map(|c| {
            child("write", &path, &format!("c{c} {KEYS}"))
                .spawn()
                .unwrap()
        })
        .collect();
    // This process writes too, while the children do.
    let rt = runtime();
    rt.block_on(async {
        for i in 0..KEYS {
            store
                .set(&format!("parent-{i}"), b("p"), None)
                .await
                .unwrap();
        }
    });
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{:?}", output.status);
        assert_eq!(lines(&output.stdout), ["done"]);
    }
    rt.block_on(async {
        for c in 0..CHILDREN {
            for i in 0..KEYS {
                let key = format!("c{c}-{i}");
                assert_eq!(store.get(&key, None).await.unwrap(), Some(b(&key)));
            }
        }
        for i in 0..KEYS {
            assert!(store.exists(&format!("parent-{i}")).await.unwrap());
        }
    });
}

/// Reads are served from a snapshot kept open while nothing is committed;
/// another process's commits must end it before the next read.
#[test]
fn a_reader_sees_each_write_another_process_acknowledged() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let store = FileStore::open(&path).unwrap();
    let mut writer = child("serve-writes", &path, "").spawn().unwrap();
    let mut to_writer = writer.stdin.take().unwrap();
    let mut from_writer = BufReader::new(writer.stdout.take().unwrap());
    let mut command = |line: String| {
        writeln!(to_writer, "{line}").unwrap();
        to_writer.flush().unwrap();
        // The first lines are the test harness's.
        let mut reply = String::new();
        while reply.trim_end().is_empty() || reply.starts_with("running ") {
            reply.clear();
            assert!(
                from_writer.read_line(&mut reply).unwrap() > 0,
                "the writer exited"
            );
        }
        assert_eq!(reply.trim_end(), "ok", "after {line}");
    };
    let rt = runtime();
    for i in 0..300 {
        // Reads before the write keep the snapshot open and in use.
        let before = rt.block_on(store.get("k", None)).unwrap();
        if i > 0 {
            assert_eq!(before, Some(b(&format!("{}", i - 1))));
        }
        command(format!("set k {i}"));
        assert_eq!(
            rt.block_on(store.get("k", None)).unwrap(),
            Some(b(&format!("{i}"))),
            "write {i}"
        );
        // A write of another key changes nothing this process reads.
        command(format!("set other-{i} x"));
        assert!(rt.block_on(store.exists(&format!("other-{i}"))).unwrap());
    }
    command("delete k".into());
    assert_eq!(rt.block_on(store.get("k", None)).unwrap(), None);
    drop(to_writer);
    assert!(writer.wait().unwrap().success());
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let mut writer = child("write-forever", &path, "").spawn().unwrap();
    let mut acked = Vec::new();
    let mut out = BufReader::new(writer.stdout.take().unwrap());
    let mut line = String::new();
    while acked.len() < 400 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the child exited");
        if let Some(key) = line.trim_end().strip_prefix("ack ") {
            acked.push(key.to_owned());
        }
    }
    writer.kill().unwrap(); // SIGKILL
    writer.wait().unwrap();
    // Acknowledgements already in the pipe count too.
    for line in out.lines() {
        if let Some(key) = line.unwrap().strip_prefix("ack ") {
            acked.push(key.to_owned());
        }
    }

    let store = FileStore::open(&path).unwrap();
    runtime().block_on(async {
        for key in &acked {
            assert_eq!(store.get(key, None).await.unwrap(), Some(b(key)), "{key}");
        }
    });
}

#[test]
fn an_exclusive_store_keeps_other_processes_out() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");

    // Another process holds the file exclusively: every open here fails.
    let mut holder = child("hold-exclusive", &path, "").spawn().unwrap();
    let mut out = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    while line.trim_end() != "ready" {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "the holder exited");
    }
    for exclusive in [false, true] {
        let err = FileStore::builder(&path)
            .exclusive(exclusive)
            .open()
            .unwrap_err();
        assert!(matches!(err, Error::InUse { .. }), "{err:?}");
        assert!(
            err.to_string().contains("in use by another process"),
            "{err}"
        );
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }
    drop(holder.stdin.take()); // tells it to close the store and exit
    assert!(holder.wait().unwrap().success());

    // This process has it open, shared: an exclusive opener elsewhere fails.
    let _store = FileStore::open(&path).unwrap();
    let output = child("open", &path, "exclusive").output().unwrap();
    assert_eq!(lines(&output.stdout), ["InUse"]);
}

// -------------------------------------------------- backup and compaction

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_is_a_consistent_snapshot_taken_while_writers_go_on() {
    let dir = TempDir::new().unwrap();
    let store = FileStore::open(dir.path().join("store.redb")).unwrap();
    let ns = store.with_namespace("ns");
    store.set("root", b("r"), None).await.unwrap();

    // One writer, in order, so that any snapshot holds k0..kn and no more.
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (ns, acked, stop) = (ns.clone(), acked.clone(), stop.clone());
        async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                ns.set(&format!("k{i}"), b("v"), Some(Duration::from_secs(600)))
                    .await
                    .unwrap();
                i += 1;
                acked.store(i, Ordering::Release);
            }
        }
    });
    while acked.load(Ordering::Acquire) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let before = acked.load(Ordering::Acquire);
    let dest = dir.path().join("backup.redb");
    store.backup_to(&dest).await.unwrap();
    let after = acked.load(Ordering::Acquire);
    // Writes go on after the backup, and are not in it.
    while acked.load(Ordering::Acquire) < after + 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let err = store.backup_to(&dest).await.unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "never overwrites: {err:?}");

    let copy = FileStore::open(&dest).unwrap();
    let copy_ns = copy.with_namespace("ns");
    assert_eq!(copy.get("root", None).await.unwrap(), Some(b("r")));
    let mut n = 0;
    while copy_ns.exists(&format!("k{n}")).await.unwrap() {
        n += 1;
    }
    assert!(
        before <= n && n <= after + 1,
        "{before} <= {n} <= {after} + 1"
    );
    for i in n..after + 20 {
        assert!(
            !copy_ns.exists(&format!("k{i}")).await.unwrap(),
            "gap at k{n}"
        );
    }
    assert!(copy_ns.expires_in("k0").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_returns_the_space_of_deleted_entries() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("store.redb");
    let store = FileStore::open(&path).unwrap();
    let value = Bytes::from(vec![7u8; 64 * 1024]);
    for i in 0..200 {
        store
            .set(&i.to_string(), value.clone(), None)
            .await
            .unwrap();
    }
    store.set("kept", b("v"), None).await.unwrap();
    for i in 0..200 {
        store.delete(&i.to_string()).await.unwrap();
    }
    let full = std::fs::metadata(&path).unwrap().len();
    assert!(full > 10 << 20, "{full}");

    assert!(store.compact().await.unwrap());
    let compacted = std::fs::metadata(&path).unwrap().len();
    assert!(compacted < full / 4, "{full} -> {compacted}");
    assert_eq!(store.get("kept", None).await.unwrap(), Some(b("v")));
    store.set("after", b("v"), None).await.unwrap();
    assert!(store.exists("after").await.unwrap());
}

/// Reads go on during a compaction, which holds the database to itself:
/// they are then served by the reader thread instead of inline (an inline
/// read would stall the caller's runtime worker), and answer correctly on
/// both paths, before, during and after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_a_compaction_answer_correctly() {
    let dir = TempDir::new().unwrap();
    // Exclusive: the mode in which a lone read is served inline.
    let store = FileStore::builder(dir.path().join("store.redb"))
        .exclusive(true)
        .open()
        .unwrap();
    let value = Bytes::from(vec![7u8; 16 * 1024]);
    let gone: Vec<(String, Bytes)> = (0..400)
        .map(|i| (format!("gone{i}"), value.clone()))
        .collect();
    let gone_refs: Vec<(&str, Bytes)> = gone.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    kvstores::BatchStore::set_many(&store, &gone_refs, None)
        .await
        .unwrap();
    for i in 0..50 {
        store
            .set(&format!("k{i}"), b(&format!("v{i}")), None)
            .await
            .unwrap();
    }
    kvstores::BatchStore::delete_many(
        &store,
        &gone.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
    )
    .await
    .unwrap();

    let compacting = tokio::spawn({
        let store = store.clone();
        async move { store.compact().await }
    });
    let mut rounds = 0;
    while rounds < 3 || !compacting.is_finished() {
        for i in 0..50 {
            let got = store.get(&format!("k{i}"), None).await.unwrap();
            assert_eq!(got, Some(b(&format!("v{i}"))));
        }
        assert_eq!(store.get("gone0", None).await.unwrap(), None);
        rounds += 1;
    }
    assert!(compacting.await.unwrap().unwrap());
    assert_eq!(store.get("k7", None).await.unwrap(), Some(b("v7")));
}

/// `get_many` of an exclusive store answers the same whether its keys are
/// few enough to be read inline (64 or fewer) or go to the reader thread,
/// missing and expired keys included.
#[tokio::test]
async fn get_many_answers_alike_inline_and_on_the_reader_thread() {
    use kvstores::BatchStore;
    let dir = TempDir::new().unwrap();
    let clock = ManualClock::new();
    let store = FileStore::builder(dir.path().join("store.redb"))
        .exclusive(true)
        .clock(clock.clone())
        .open()
        .unwrap();
    for i in 0..100usize {
        let ttl = i.is_multiple_of(3).then_some(Duration::from_secs(1));
        store
            .set(&format!("k{i}"), b(&format!("v{i}")), ttl)
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(1));
    // k0, k3, k6.. have expired; k100 and later were never set.
    let keys: Vec<String> = (0..130).map(|i| format!("k{i}")).collect();
    let expected = |i: usize| (i < 100 && !i.is_multiple_of(3)).then(|| b(&format!("v{i}")));
    for n in [1, 64, 65, 130] {
        let refs: Vec<&str> = keys[..n].iter().map(String::as_str).collect();
        let got = store.get_many(&refs).await.unwrap();
        let want: Vec<_> = (0..n).map(expected).collect();
        assert_eq!(got, want, "{n} keys");
    }
    assert_eq!(store.get("k3", None).await.unwrap(), None);
    assert_eq!(store.get("k4", None).await.unwrap(), Some(b("v4")));
}

// ------------------------------------------------------------ child processes

/// The main of a child process, when this binary runs with `KVSTORES_CHILD`
/// set; otherwise a test that does nothing. It reports on stdout, one line
/// per event, each written only once the event has happened.
///
/// - `write`, arg `PREFIX N`: 8 tasks set `PREFIX-i` to itself for i < N;
///   prints `done`.
/// - `write-forever`: 8 tasks set keys until killed, printing `ack KEY` after
///   each set has returned.
/// - `serve-writes`: for each line `set KEY VALUE` or `delete KEY` on stdin,
///   writes it and prints `ok`; returns when stdin closes.
/// - `hold-exclusive`: opens the file exclusively, prints `ready`, and keeps
///   it until stdin closes.
/// - `open`, arg `shared|exclusive`: opens the file and prints the outcome
///   (`opened`, or the error's variant and details).
#[test]
fn child_process() {
    let Ok(role) = std::env::var("KVSTORES_CHILD") else {
        return;
    };
    let path = PathBuf::from(std::env::var("KVSTORES_CHILD_PATH").unwrap());
    let arg = std::env::var("KVSTORES_CHILD_ARG").unwrap();
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").unwrap();
        out.flush().unwrap();
    };
    runtime().block_on(async {
        match role.as_str() {
            "write" => {
                let (prefix, n) = arg.split_once(' ').unwrap();
                let n: usize = n.parse().unwrap();
                let store = FileStore::open(&path).unwrap();
                let tasks: Vec<_> = (0..8)
                    .map(|t| {
                        let (store, prefix) = (store.clone(), prefix.to_owned());
                        tokio::spawn(async move {
                            for i in (t..n).step_by(8) {
                                let key = format!("{prefix}-{i}");
                                store.set(&key, b(&key), None).await.unwrap();
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
                say("done");
            }
            "write-forever" => {
                let store = FileStore::open(&path).unwrap();
                let tasks: Vec<_> = (0..8)
                    .map(|t| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            for i in 0.. {
                                let key = format!("t{t}-{i}");
                                store.set(&key, b(&key), None).await.unwrap();
                                say(&format!("ack {key}"));
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.unwrap();
                }
            }
            "serve-writes" => {
                let store = FileStore::open(&path).unwrap();
                for line in std::io::stdin().lines() {
                    let line = line.unwrap();
                    match line.split(' ').collect::<Vec<_>>()[..] {
                        ["set", key, value] => store.set(key, b(value), None).await.unwrap(),
                        ["delete", key] => {
                            store.delete(key).await.unwrap();
                        }
                        _ => panic!("unknown command {line}"),
                    }
                    say("ok");
                }
            }
            "hold-exclusive" => {
                let store = FileStore::builder(&path).exclusive(true).open().unwrap();
                say("ready");
                let mut rest = String::new();
                let _ = std::io::stdin().read_line(&mut rest);
                drop(store);
            }
            "open" => {
                let opened = FileStore::builder(&path)
                    .exclusive(arg == "exclusive")
                    .open();
                say(&outcome_of(opened));
            }
            other => panic!("unknown child role {other}"),
        }
    });
}

fn outcome_of(opened: kvstores::Result<FileStore>) -> String {
    match opened {
        Ok(_) => "opened".into(),
        Err(Error::InUse { .. }) => "InUse".into(),
        Err(e @ Error::Io { .. }) => {
            let Error::Io { source, .. } = &e else {
                unreachable!()
            };
            format!("Io {:?}: {e}", source.kind())
        }
        Err(e) => format!("{e:?}"),
    }
}

/// This test binary, run as a child with `role` on the file at `path`.
fn child(role: &str, path: &Path, arg: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["child_process", "--exact", "--nocapture", "--quiet"])
        .env("KVSTORES_CHILD", role)
        .env("KVSTORES_CHILD_PATH", path)
        .env("KVSTORES_CHILD_ARG", arg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    command
}

/// The child's own lines, without the test harness's.
fn lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with("running ") && !l.starts_with("test "))
        .filter(|l| !l.starts_with('.') && !l.contains("test result:"))
        .map(str::to_owned)
        .collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn is_root() -> bool {
    // The owner of a file this process has just created is its effective uid.
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::NamedTempFile::new().unwrap();
    probe.as_file().metadata().unwrap().uid() == 0
}
