//! `Cache` and `Typed` on every backend: the cache suite once per backend,
//! then single flight across what a backend can be shared by — two
//! processes on one FileStore file (and a SIGKILLed lock holder), two store
//! instances (connections) on one Redis or Valkey server.
//!
//! Child processes are this test binary run again with
//! `KVSTORES_CACHE_CHILD` set, which turns `file::child_process` into the
//! child's main. Loader runs across processes are counted in the shared
//! store itself, with `increment`.

mod cache_suite;
mod support;

use std::time::Duration;

use kvstores::{AtomicStore, Bytes, Cache, Error, Store};

/// How long a cross-process load takes: long enough that the callers of
/// both sides overlap it.
const LOAD: Duration = Duration::from_millis(300);

/// `callers` concurrent loads of `key` through `cache`; each loader run
/// counts itself in `counter` (a shared store, so other processes count in
/// the same place) and sleeps `LOAD`.
async fn load_concurrently<S, C>(cache: &Cache<S>, counter: &C, key: &str, callers: usize)
where
    S: Store + Clone + 'static,
    C: AtomicStore + Clone + 'static,
{
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (cache, counter, key) = (cache.clone(), counter.clone(), key.to_owned());
            tokio::spawn(async move {
                cache
                    .get_or_set_with(&key, Some(Duration::from_secs(600)), || async {
                        counter.increment("loads", 1, None).await?;
                        tokio::time::sleep(LOAD).await;
                        Ok::<_, Error>(Bytes::from_static(b"computed"))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), "computed");
    }
}

#[cfg(feature = "memory")]
mod memory {
    use std::sync::Arc;

    use kvstores::{Cache, FullStore, MemoryStore, Store, StoreRegistry};

    crate::cache_suite!(async { MemoryStore::new() });

    /// `Cache` works over the `Arc<dyn Store>` and `Arc<dyn FullStore>` a
    /// registry hands out, with single flight (and the lock, on the latter).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cache_over_dyn_store_has_single_flight() {
        let registry = StoreRegistry::new();
        let cache = Cache::new(registry.get("responses"));
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let values = crate::cache_suite::stampede(
            &cache,
            "k",
            100,
            std::time::Duration::from_millis(50),
            &runs,
        )
        .await;
        assert_eq!(values.len(), 100);
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        let values: Arc<dyn FullStore> = registry.get_full("values").unwrap();
        let cache = Cache::new(values)
            .lock_across_processes(registry.get_full("locks").unwrap(), super::LOAD);
        let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        crate::cache_suite::stampede(&cache, "k", 10, std::time::Duration::ZERO, &runs).await;
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(cache.store().exists("k").await.unwrap());
    }
}

#[cfg(feature = "file")]
mod file {
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::Duration;

    use kvstores::{Bytes, Cache, Error, FileStore, NamespacedStore, Store};

    /// A store on a new file under cargo's scratch space for tests (kept:
    /// the suite's functions take only the store).
    async fn fresh() -> FileStore {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        FileStore::open(dir.join("store.redb")).unwrap()
    }

    crate::cache_suite!(fresh());

    /// The cache of a role, over the file at `path`, with the lock on.
    fn locked_cache(store: &FileStore, lock_for: Duration) -> Cache<FileStore> {
        Cache::new(store.with_namespace("values"))
            .lock_across_processes(store.with_namespace("locks"), lock_for)
    }

    /// Two processes, 50 callers each, on one cold key of one file: one
    /// loader run in all.
    #[test]
    fn two_processes_load_a_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = FileStore::open(&path).unwrap();
        let mut other = child("load", &path).spawn().unwrap();
        let mut stdin = other.stdin.take().unwrap();
        let mut stdout = std::io::BufReader::new(other.stdout.take().unwrap());
        assert_eq!(read_line(&mut stdout), "ready");
        stdin.write_all(b"go\n").unwrap();
        runtime().block_on(async {
            let cache = locked_cache(&store, Duration::from_secs(10));
            crate::load_concurrently(&cache, &store, "report", 50).await;
        });
        assert_eq!(read_line(&mut stdout), "done");
        assert!(other.wait().unwrap().success());
        runtime().block_on(async {
            assert_eq!(
                store.get("loads", None).await.unwrap(),
                Some(Bytes::from_static(b"1"))
            );
        });
    }

    /// A process SIGKILLed while holding the lock delays the others by at
    /// most the lock's expiry; then one of them loads.
    #[test]
    fn a_killed_lock_holder_blocks_others_only_until_the_lock_expires() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = FileStore::open(&path).unwrap();
        let mut holder = child("hold", &path).spawn().unwrap();
        let mut stdout = std::io::BufReader::new(holder.stdout.take().unwrap());
        assert_eq!(read_line(&mut stdout), "loading");
        holder.kill().unwrap(); // SIGKILL: nothing of it runs any more
        holder.wait().unwrap();
        let locks = store.with_namespace("locks");
        let runtime = runtime();
        assert!(
            runtime.block_on(locks.exists("report")).unwrap(),
            "the dead holder's lock"
        );
        let value = runtime.block_on(async {
            let cache = locked_cache(&store, HOLD_LOCK_FOR);
            tokio::time::timeout(
                Duration::from_secs(30),
                cache.get_or_set_with("report", None, || async {
                    Ok::<_, Error>(Bytes::from_static(b"recovered"))
                }),
            )
            .await
            .unwrap()
            .unwrap()
        });
        assert_eq!(value, "recovered");
        assert!(
            !runtime.block_on(locks.exists("report")).unwrap(),
            "released"
        );
    }

    /// The lock expiry of the `hold` child: long enough to be seen waiting,
    /// short enough for a quick test.
    const HOLD_LOCK_FOR: Duration = Duration::from_millis(700);

    /// The main of a child process when `KVSTORES_CACHE_CHILD` is set;
    /// otherwise a test that does nothing.
    ///
    /// - `load`: prints `ready`, waits for a line on stdin, runs 50
    ///   concurrent loads of `report` with the lock, prints `done`.
    /// - `hold`: takes the lock of `report` in a load whose loader prints
    ///   `loading` and never returns, to be killed.
    #[test]
    fn child_process() {
        let Ok(role) = std::env::var("KVSTORES_CACHE_CHILD") else {
            return;
        };
        let path = PathBuf::from(std::env::var("KVSTORES_CACHE_CHILD_PATH").unwrap());
        let say = |line: &str| {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        };
        runtime().block_on(async {
            let store = FileStore::open(&path).unwrap();
            match role.as_str() {
                "load" => {
                    let cache = locked_cache(&store, Duration::from_secs(10));
                    say("ready");
                    let mut go = String::new();
                    std::io::stdin().read_line(&mut go).unwrap();
                    crate::load_concurrently(&cache, &store, "report", 50).await;
                    say("done");
                }
                "hold" => {
                    let cache = locked_cache(&store, HOLD_LOCK_FOR);
                    let _ = cache
                        .get_or_set_with("report", None, || async {
                            say("loading");
                            std::future::pending::<()>().await;
                            Ok::<_, Error>(Bytes::new())
                        })
                        .await;
                }
                other => panic!("unknown child role {other}"),
            }
        });
    }

    fn child(role: &str, path: &Path) -> Command {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["file::child_process", "--exact", "--nocapture", "--quiet"])
            .env("KVSTORES_CACHE_CHILD", role)
            .env("KVSTORES_CACHE_CHILD_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        command
    }

    /// The child's next own line, skipping the test harness's.
    fn read_line(stdout: &mut impl std::io::BufRead) -> String {
        loop {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "the child exited");
            let line = line.trim();
            if !line.is_empty() && !line.starts_with("running ") && !line.starts_with("test ") {
                return line.to_owned();
            }
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }
}

/// Redis and Valkey: the suite on the shared test server, and single flight
/// across two store instances, each with its own connection.
macro_rules! server_cache_tests {
    ($module:ident, $kind:expr) => {
        #[cfg(feature = "redis")]
        mod $module {
            use std::time::Duration;

            use kvstores::{Bytes, Cache, NamespacedStore, Store};

            use crate::support::{self, Kind, Options, Server};

            crate::cache_suite!(async { support::fresh($kind).await });

            /// Two store instances, 50 callers each, on one cold key: one
            /// loader run in all.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_instances_load_a_key_once() {
                let url = Server::shared($kind).url();
                let namespace = support::unique("cache-two");
                let options = Options::namespace(Some(&namespace));
                let first = options.connect(&url).await.unwrap();
                let second = options.connect(&url).await.unwrap();
                let lock_for = Duration::from_secs(10);
                let caches = [&first, &second].map(|store| {
                    Cache::new(store.with_namespace("values"))
                        .lock_across_processes(store.with_namespace("locks"), lock_for)
                });
                tokio::join!(
                    crate::load_concurrently(&caches[0], &first, "report", 50),
                    crate::load_concurrently(&caches[1], &second, "report", 50),
                );
                assert_eq!(
                    first.get("loads", None).await.unwrap(),
                    Some(Bytes::from_static(b"1"))
                );
            }
        }
    };
}

server_cache_tests!(redis, Kind::Redis);
server_cache_tests!(valkey, Kind::Valkey);
