//! The extension traits (`AtomicStore`, `BatchStore`) on every backend: the
//! extension suite once per backend, then atomicity across what a backend
//! can be shared by — two processes on one FileStore file, two connections
//! (store instances) on one Redis or Valkey server.
//!
//! Child processes are this test binary run again with `KVSTORES_EXT_CHILD`
//! set, which turns the `child_process` test into the child's main.

mod ext_suite;
mod support;

/// Waits for `done` (a background effect) for up to 20 seconds, polling.
#[cfg(any(feature = "memory", feature = "file"))]
fn wait_until(done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

#[cfg(feature = "memory")]
mod memory {
    use std::time::Duration;

    use kvstores::{AtomicStore, Bytes, ManualClock, MemoryStore, NamespacedStore, Store};

    crate::ext_suite!(async { MemoryStore::new() });

    #[tokio::test]
    async fn stats_count_what_the_store_did() {
        crate::ext_suite::stats_count_what_the_store_did(MemoryStore::new(), MemoryStore::stats)
            .await;
    }

    #[tokio::test]
    async fn stats_count_the_expired_entries_removed() {
        let clock = ManualClock::new();
        let store = MemoryStore::builder().clock(clock.clone()).build();
        let child = store.with_namespace("child");
        let second = Some(Duration::from_secs(1));
        store.set("a", Bytes::new(), second).await.unwrap();
        child.set("b", Bytes::new(), second).await.unwrap();
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.delete_expired().await, 2);
        assert_eq!(child.stats().expirations, 2);
    }

    /// The sweeper removes expired entries of every namespace, more than one
    /// tick's worth, and leaves live ones; its work shows in the stats.
    #[tokio::test]
    async fn the_sweeper_removes_expired_entries_in_the_background() {
        let clock = ManualClock::new();
        let store = MemoryStore::builder()
            .clock(clock.clone())
            .sweep_every(Duration::from_millis(5))
            .build();
        let child = store.with_namespace("child");
        let second = Some(Duration::from_secs(1));
        for i in 0..12_500 {
            store
                .set(&i.to_string(), Bytes::new(), second)
                .await
                .unwrap();
            child
                .set(&i.to_string(), Bytes::new(), second)
                .await
                .unwrap();
        }
        store.set("live", Bytes::new(), None).await.unwrap();
        clock.advance(Duration::from_secs(1));
        // Only the namespace handle is left: the sweeper must keep going.
        drop(store);
        crate::wait_until(|| child.stats().expirations == 25_000);
        assert_eq!(child.delete_expired().await, 0);
    }

    /// The concurrency check has teeth: a counter done as get, then set
    /// (with a yield between, as any real await would allow) loses updates.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_concurrency_check_catches_a_get_then_set_counter() {
        #[derive(Clone)]
        struct GetThenSet(MemoryStore);

        #[async_trait::async_trait]
        impl Store for GetThenSet {
            async fn set(&self, k: &str, v: Bytes, e: Option<Duration>) -> kvstores::Result<()> {
                self.0.set(k, v, e).await
            }
            async fn get(&self, k: &str, r: Option<Duration>) -> kvstores::Result<Option<Bytes>> {
                self.0.get(k, r).await
            }
            async fn delete(&self, k: &str) -> kvstores::Result<()> {
                self.0.delete(k).await
            }
            async fn delete_all(&self) -> kvstores::Result<()> {
                self.0.delete_all().await
            }
            async fn exists(&self, k: &str) -> kvstores::Result<bool> {
                self.0.exists(k).await
            }
            async fn expires_in(&self, k: &str) -> kvstores::Result<Option<Duration>> {
                self.0.expires_in(k).await
            }
        }

        #[async_trait::async_trait]
        impl AtomicStore for GetThenSet {
            async fn increment(
                &self,
                k: &str,
                delta: i64,
                e: Option<Duration>,
            ) -> kvstores::Result<i64> {
                let old = self.0.get(k, None).await?;
                let old: i64 = old.map_or(0, |v| std::str::from_utf8(&v).unwrap().parse().unwrap());
                tokio::task::yield_now().await;
                self.0
                    .set(k, Bytes::from((old + delta).to_string()), e)
                    .await?;
                Ok(old + delta)
            }
            async fn set_if_absent(
                &self,
                k: &str,
                v: Bytes,
                e: Option<Duration>,
            ) -> kvstores::Result<bool> {
                self.0.set_if_absent(k, v, e).await
            }
        }

        let naive = GetThenSet(MemoryStore::new());
        let total = crate::ext_suite::increment_concurrently(&[naive], 64, 1000).await;
        assert!(total < 64_000, "{total}");
    }

    /// How many of `keys` are live in `store`.
    async fn live(store: &MemoryStore, keys: impl IntoIterator<Item = String>) -> usize {
        let mut n = 0;
        for key in keys {
            n += usize::from(store.exists(&key).await.unwrap());
        }
        n
    }

    /// A store bounded by entries holds at most that many, counting every
    /// namespace, and counts what it evicted.
    #[tokio::test]
    async fn a_bound_on_entries_is_kept_across_namespaces() {
        let store = MemoryStore::builder().max_entries(100).build();
        let child = store.with_namespace("child");
        for i in 0..500 {
            store
                .set(&format!("k{i}"), Bytes::new(), None)
                .await
                .unwrap();
            child
                .set(&format!("k{i}"), Bytes::new(), None)
                .await
                .unwrap();
        }
        let keys = || (0..500).map(|i| format!("k{i}"));
        assert_eq!(live(&store, keys()).await + live(&child, keys()).await, 100);
        assert_eq!(store.stats().evictions, 900);
        // Whatever was written last is there.
        assert!(child.exists("k499").await.unwrap());
    }

    /// A store bounded by bytes counts keys and values.
    #[tokio::test]
    async fn a_bound_on_bytes_counts_keys_and_values() {
        let store = MemoryStore::builder().max_bytes(1_000).build();
        for i in 0..100 {
            // 4 + 96 = 100 bytes each: ten fit.
            let value = Bytes::from(vec![0u8; 96]);
            store.set(&format!("k{i:03}"), value, None).await.unwrap();
        }
        assert_eq!(live(&store, (0..100).map(|i| format!("k{i:03}"))).await, 10);
        // Shrinking values frees room without evicting.
        let evicted = store.stats().evictions;
        store.set("k099", Bytes::new(), None).await.unwrap();
        store
            .set("x", Bytes::from(vec![0u8; 90]), None)
            .await
            .unwrap();
        assert_eq!(store.stats().evictions, evicted);
    }

    /// Expired entries are evicted before any live one.
    #[tokio::test]
    async fn eviction_takes_expired_entries_first() {
        let clock = ManualClock::new();
        let store = MemoryStore::builder()
            .clock(clock.clone())
            .max_entries(20)
            .build();
        for i in 0..10 {
            let key = format!("old{i}");
            store
                .set(&key, Bytes::new(), Some(Duration::from_secs(1)))
                .await
                .unwrap();
            store
                .set(&format!("keep{i}"), Bytes::new(), None)
                .await
                .unwrap();
        }
        clock.advance(Duration::from_secs(1));
        for i in 0..10 {
            store
                .set(&format!("new{i}"), Bytes::new(), None)
                .await
                .unwrap();
        }
        assert_eq!(live(&store, (0..10).map(|i| format!("keep{i}"))).await, 10);
        assert_eq!(live(&store, (0..10).map(|i| format!("new{i}"))).await, 10);
        let stats = store.stats();
        assert_eq!((stats.expirations, stats.evictions), (10, 0));
    }

    /// A key read between writes survives a flood of new keys (CLOCK gives
    /// it a second chance every time the hand comes round).
    #[tokio::test]
    async fn a_key_in_use_survives_a_flood_of_new_keys() {
        let store = MemoryStore::builder().max_entries(1_000).build();
        store
            .set("hot", Bytes::from_static(b"v"), None)
            .await
            .unwrap();
        for i in 0..20_000 {
            store
                .set(&format!("cold{i}"), Bytes::new(), None)
                .await
                .unwrap();
            assert!(
                store.get("hot", None).await.unwrap().is_some(),
                "evicted after {i}"
            );
        }
        assert_eq!(store.stats().evictions, 20_001 - 1_000);
    }

    /// Under concurrent writers every entry is accounted for: what was set
    /// is either live or counted as evicted, and the bound holds up to a
    /// little slack for shards that were busy when a writer evicted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writers_keep_the_bound_and_the_accounts() {
        let store = MemoryStore::builder().max_entries(1_000).build();
        let tasks: Vec<_> = (0..64)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0..200 {
                        store
                            .set(&format!("{t}-{i}"), Bytes::new(), None)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let keys = (0..64).flat_map(|t| (0..200).map(move |i| format!("{t}-{i}")));
        let live = live(&store, keys).await as u64;
        let stats = store.stats();
        assert_eq!(live + stats.evictions, 12_800, "{stats:?}");
        assert!(live <= 1_000 + 64, "{live}");
    }

    /// After stop_sweeper nothing is swept; delete_expired still works.
    #[tokio::test]
    async fn a_stopped_sweeper_sweeps_no_more() {
        let clock = ManualClock::new();
        let store = MemoryStore::builder()
            .clock(clock.clone())
            .sweep_every(Duration::from_millis(1))
            .build();
        store.stop_sweeper();
        store
            .set("k", Bytes::new(), Some(Duration::from_secs(1)))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(1));
        // Many intervals: a running sweeper would have removed it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(store.stats().expirations, 0);
        assert_eq!(store.delete_expired().await, 1);
    }
}

/// The same suite on a bounded MemoryStore (a bound never reached), which
/// takes the accounting paths on every write.
#[cfg(feature = "memory")]
mod memory_bounded {
    use kvstores::MemoryStore;

    crate::ext_suite!(async {
        MemoryStore::builder()
            .max_entries(1 << 20)
            .max_bytes(1 << 30)
            .build()
    });
}

#[cfg(feature = "file")]
mod file {
    use std::path::Path;
    use std::process::{Command, Stdio};

    use std::time::Duration;

    use kvstores::{
        AtomicStore, BatchStore, Bytes, FileStore, ManualClock, NamespacedStore, Store,
    };

    use crate::ext_suite::{claim_concurrently, increment_concurrently};

    /// A store on a new file under cargo's scratch space for tests (kept:
    /// the suite's functions take only the store).
    async fn fresh() -> FileStore {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        FileStore::open(dir.join("store.redb")).unwrap()
    }

    crate::ext_suite!(fresh());

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stats_count_what_the_store_did() {
        crate::ext_suite::stats_count_what_the_store_did(fresh().await, FileStore::stats).await;
    }

    /// Stats belong to the open database: a second open of the same path in
    /// this process shares them, and expired entries removed are counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stats_are_shared_by_opens_of_one_file_and_count_expirations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let clock = ManualClock::new();
        let store = FileStore::builder(&path)
            .clock(clock.clone())
            .open()
            .unwrap();
        let again = FileStore::open(&path).unwrap();
        store
            .set("k", Bytes::new(), Some(Duration::from_secs(1)))
            .await
            .unwrap();
        clock.advance(Duration::from_secs(1));
        assert_eq!(store.delete_expired().await.unwrap(), 1);
        assert_eq!((again.stats().sets, again.stats().expirations), (1, 1));
    }

    /// The sweeper removes expired entries of every namespace, over several
    /// bounded ticks, and leaves live ones.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sweeper_removes_expired_entries_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let store = FileStore::builder(dir.path().join("store.redb"))
            .clock(clock.clone())
            .sweep_every(Duration::from_millis(5))
            .open()
            .unwrap();
        let child = store.with_namespace("child");
        let keys: Vec<String> = (0..1_250).map(|i| i.to_string()).collect();
        let entries: Vec<(&str, Bytes)> = keys.iter().map(|k| (k.as_str(), Bytes::new())).collect();
        let second = Some(Duration::from_secs(1));
        store.set_many(&entries, second).await.unwrap();
        child.set_many(&entries, second).await.unwrap();
        store.set("live", Bytes::new(), None).await.unwrap();
        clock.advance(Duration::from_secs(1));
        crate::wait_until(|| store.stats().expirations == 2_500);
        assert_eq!(store.delete_expired().await.unwrap(), 0);
        assert!(store.exists("live").await.unwrap());
        store.stop_sweeper();
    }

    /// This test binary, run as a child doing `role` on the file at `path`.
    fn child(role: &str, path: &Path) -> Command {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["file::child_process", "--exact", "--nocapture", "--quiet"])
            .env("KVSTORES_EXT_CHILD", role)
            .env("KVSTORES_EXT_CHILD_PATH", path)
            .stdout(Stdio::piped());
        command
    }

    /// The number the child printed on its own line among the harness's.
    fn child_number(stdout: &[u8]) -> i64 {
        let text = String::from_utf8_lossy(stdout);
        text.lines()
            .find_map(|line| line.strip_prefix("result ")?.parse().ok())
            .unwrap_or_else(|| panic!("no result in the child's output: {text}"))
    }

    /// Two processes, 32 tasks × 500 increments each, end at exactly 32,000.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn increments_from_two_processes_add_up_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = FileStore::open(&path).unwrap();
        let other = child("increment", &path).spawn().unwrap();
        increment_concurrently(std::slice::from_ref(&store), 32, 500).await;
        let output = other.wait_with_output().unwrap();
        assert!(output.status.success(), "{:?}", output.status);
        assert!(child_number(&output.stdout) > 0);
        assert_eq!(store.increment("counter", 0, None).await.unwrap(), 32_000);
    }

    /// Of 32 claims in each of two processes, exactly one wins overall.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exactly_one_claim_of_two_processes_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.redb");
        let store = FileStore::open(&path).unwrap();
        let other = child("claim", &path).spawn().unwrap();
        let here = claim_concurrently(&[store], 32).await.len() as i64;
        let output = other.wait_with_output().unwrap();
        assert!(output.status.success(), "{:?}", output.status);
        assert_eq!(here + child_number(&output.stdout), 1);
    }

    /// The main of a child process when `KVSTORES_EXT_CHILD` is set;
    /// otherwise a test that does nothing. Prints `result N`: the counter
    /// after its increments (`increment`), or how many claims it won
    /// (`claim`).
    #[test]
    fn child_process() {
        let Ok(role) = std::env::var("KVSTORES_EXT_CHILD") else {
            return;
        };
        let path = std::env::var("KVSTORES_EXT_CHILD_PATH").unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let result = runtime.block_on(async {
            let store = FileStore::open(&path).unwrap();
            match role.as_str() {
                "increment" => increment_concurrently(&[store], 32, 500).await,
                "claim" => claim_concurrently(&[store], 32).await.len() as i64,
                other => panic!("unknown child role {other}"),
            }
        });
        println!("result {result}");
    }
}

/// Redis and Valkey: the suite on the shared test server, and atomicity
/// across two store instances, each with its own connection.
macro_rules! server_ext_tests {
    ($module:ident, $kind:expr) => {
        #[cfg(feature = "redis")]
        mod $module {
            use kvstores::{AtomicStore, RedisStore};

            use crate::ext_suite::{claim_concurrently, increment_concurrently};
            use crate::support::{self, Kind, Options, Server};

            crate::ext_suite!(async { support::fresh($kind).await });

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stats_count_what_the_store_did() {
                let store = support::fresh($kind).await;
                crate::ext_suite::stats_count_what_the_store_did(store, RedisStore::stats).await;
            }

            /// Two store instances on one namespace, each with a connection
            /// of its own.
            async fn two_instances() -> [RedisStore; 2] {
                let url = Server::shared($kind).url();
                let namespace = support::unique("ext-two");
                let options = Options::namespace(Some(&namespace));
                let first = options.connect(&url).await.unwrap();
                let second = options.connect(&url).await.unwrap();
                [first, second]
            }

            /// 64 tasks × 1,000 increments over two connections end at 64,000.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn increments_over_two_instances_add_up_exactly() {
                let stores = two_instances().await;
                assert_eq!(increment_concurrently(&stores, 64, 1000).await, 64_000);
                assert_eq!(
                    stores[1].increment("counter", 0, None).await.unwrap(),
                    64_000
                );
            }

            /// Of 64 claims over two connections, exactly one wins.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn exactly_one_claim_over_two_instances_wins() {
                let stores = two_instances().await;
                assert_eq!(claim_concurrently(&stores, 64).await.len(), 1);
            }
        }
    };
}

server_ext_tests!(redis, Kind::Redis);
server_ext_tests!(valkey, Kind::Valkey);
