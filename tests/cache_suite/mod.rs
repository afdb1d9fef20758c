//! The cache suite: `Cache::get_or_set_with` and `Typed`, written once and
//! run on every backend by `tests/cache.rs`:
//!
//! ```ignore
//! mod cache_suite;
//! cache_suite!(async { MemoryStore::new() });
//! ```
//!
//! Loader runs are counted, never timed. A count of one is robust to
//! scheduling: a caller that arrives after the value was stored finds it,
//! and one that missed just before re-reads the key before it loads.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kvstores::{AtomicStore, Bytes, Cache, Error, NamespacedStore, Store};

/// Stamps every behaviour below as a `#[tokio::test]` for one backend.
/// `$make` is an expression (usually an `async` block) giving a fresh,
/// empty store.
#[macro_export]
macro_rules! cache_suite {
    ($make:expr) => {
        $crate::cache_suite!(@each $make;
            a_hundred_concurrent_misses_run_the_loader_once,
            a_hit_returns_the_stored_value_without_loading,
            the_loaded_value_is_stored_with_the_expiry,
            a_zero_expiry_is_refused_before_loading,
            a_loader_error_reaches_every_caller_and_nothing_is_stored,
            a_panicking_loader_leaves_no_caller_waiting,
            a_cancelled_loader_leaves_no_caller_waiting,
            a_cancelled_lock_holder_releases_the_lock,
            a_stale_value_is_served_while_one_caller_refreshes,
            the_cross_process_lock_is_released_after_a_load,
            a_lock_left_by_a_dead_holder_delays_loading_until_it_expires,
            typed_values_round_trip_in_every_format,
            typed_values_of_an_older_struct_read_as_documented,
            typed_garbage_is_a_decode_error_naming_the_key,
            typed_get_or_set_with_loads_once);
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $crate::cache_suite::$name($make.await).await;
        }
    )*};
}

/// What the suite needs of a store: every backend here is one.
pub trait TestStore: AtomicStore + NamespacedStore + Clone + 'static {}
impl<S: AtomicStore + NamespacedStore + Clone + 'static> TestStore for S {}

const MINUTE: Option<Duration> = Some(Duration::from_secs(60));
/// A generous bound for anything that must finish; hitting it is a hang.
const HANG: Duration = Duration::from_secs(30);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// `callers` concurrent `get_or_set_with` of `key`, each loader sleeping
/// `load_time` and counting its run in `runs`. Returns every caller's value.
pub async fn stampede<S: Store + Clone + 'static>(
    cache: &Cache<S>,
    key: &str,
    callers: usize,
    load_time: Duration,
    runs: &Arc<AtomicUsize>,
) -> Vec<Bytes> {
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (cache, key, runs) = (cache.clone(), key.to_owned(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_set_with(&key, MINUTE, || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(load_time).await;
                        Ok::<_, Error>(b("computed"))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut values = Vec::new();
    for task in tasks {
        values.push(tokio::time::timeout(HANG, task).await.unwrap().unwrap());
    }
    values
}

/// 100 concurrent callers of one missing key: one loader run, one value.
pub async fn a_hundred_concurrent_misses_run_the_loader_once(store: impl TestStore) {
    let cache = Cache::new(store.clone());
    let runs = Arc::new(AtomicUsize::new(0));
    let values = stampede(&cache, "hot", 100, Duration::from_millis(50), &runs).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(values.iter().all(|v| v == "computed"));
    assert_eq!(store.get("hot", None).await.unwrap(), Some(b("computed")));
}

/// A live value is returned as it is; the loader does not run.
pub async fn a_hit_returns_the_stored_value_without_loading(store: impl TestStore) {
    store.set("k", b("stored"), None).await.unwrap();
    let cache = Cache::new(store);
    let value = cache
        .get_or_set_with("k", MINUTE, || async {
            panic!("the loader ran on a hit");
            #[allow(unreachable_code)]
            Ok::<_, Error>(Bytes::new())
        })
        .await
        .unwrap();
    assert_eq!(value, "stored");
}

/// The value is stored with the given expiry, or none.
pub async fn the_loaded_value_is_stored_with_the_expiry(store: impl TestStore) {
    let cache = Cache::new(store.clone());
    let load = || async { Ok::<_, Error>(b("v")) };
    cache.get_or_set_with("a", MINUTE, load).await.unwrap();
    let left = store.expires_in("a").await.unwrap().unwrap();
    assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50));
    cache.get_or_set_with("b", None, load).await.unwrap();
    assert_eq!(store.expires_in("b").await.unwrap(), None);
    assert!(store.exists("b").await.unwrap());
}

/// A zero expiry is refused before the loader runs.
pub async fn a_zero_expiry_is_refused_before_loading(store: impl TestStore) {
    let cache = Cache::new(store.clone());
    let result = cache
        .get_or_set_with("k", Some(Duration::ZERO), || async {
            panic!("the loader ran");
            #[allow(unreachable_code)]
            Ok::<_, Error>(Bytes::new())
        })
        .await;
    assert!(matches!(result, Err(Error::InvalidArgument { .. })));
    assert!(!store.exists("k").await.unwrap());
}

/// Every concurrent caller gets the loader's error as `Error::Load`, with
/// the loader's error as source; nothing is stored, and the next call loads.
pub async fn a_loader_error_reaches_every_caller_and_nothing_is_stored(store: impl TestStore) {
    #[derive(Debug)]
    struct Down;
    impl std::fmt::Display for Down {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("backend down")
        }
    }
    impl std::error::Error for Down {}

    let cache = Cache::new(store.clone());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_set_with("k", MINUTE, || async {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Err::<Bytes, _>(Down)
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        let result = tokio::time::timeout(HANG, task).await.unwrap().unwrap();
        let Err(Error::Load { key, source }) = result else {
            panic!("expected a load error, got {result:?}");
        };
        assert_eq!(key, "k");
        assert!(source.downcast_ref::<Down>().is_some(), "{source:?}");
    }
    assert!(!store.exists("k").await.unwrap());
    let runs = Arc::new(AtomicUsize::new(0));
    stampede(&cache, "k", 5, Duration::ZERO, &runs).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Starts a caller whose loader signals that it runs, then never finishes
/// on its own: it panics when `release` fires (or never ends if `panics`
/// is false, for the caller to be cancelled).
fn start_doomed_leader<S: Store + Clone + 'static>(
    cache: &Cache<S>,
    panics: bool,
) -> (
    tokio::task::JoinHandle<kvstores::Result<Bytes>>,
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (started, running) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let cache = cache.clone();
    let leader = tokio::spawn(async move {
        cache
            .get_or_set_with("k", MINUTE, || async move {
                started.send(()).unwrap();
                let _ = released.await;
                if panics {
                    panic!("the loader panicked");
                }
                std::future::pending::<()>().await;
                Ok::<_, Error>(Bytes::new())
            })
            .await
    });
    (leader, running, release)
}

/// The callers waiting for a loader that panics go on: one loads, every one
/// gets its value; the panic reaches the caller whose loader it was.
pub async fn a_panicking_loader_leaves_no_caller_waiting(store: impl TestStore) {
    let cache = Cache::new(store.clone());
    let (leader, running, release) = start_doomed_leader(&cache, true);
    running.await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let waiters = {
        let (cache, runs) = (cache.clone(), runs.clone());
        tokio::spawn(async move { stampede(&cache, "k", 10, Duration::ZERO, &runs).await })
    };
    // Give the waiters a moment to join (the outcome is the same if they
    // come late: they then find no run in flight and load themselves).
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.send(()).unwrap();
    assert!(leader.await.unwrap_err().is_panic());
    let values = tokio::time::timeout(HANG, waiters).await.unwrap().unwrap();
    assert!(values.iter().all(|v| v == "computed"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("computed")));
}

/// The callers waiting for a caller that is cancelled mid-load go on.
pub async fn a_cancelled_loader_leaves_no_caller_waiting(store: impl TestStore) {
    let cache = Cache::new(store.clone());
    let (leader, running, _release) = start_doomed_leader(&cache, false);
    running.await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let waiters = {
        let (cache, runs) = (cache.clone(), runs.clone());
        tokio::spawn(async move { stampede(&cache, "k", 10, Duration::ZERO, &runs).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let values = tokio::time::timeout(HANG, waiters).await.unwrap().unwrap();
    assert!(values.iter().all(|v| v == "computed"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A caller cancelled while it holds the cross-process lock releases it:
/// the waiting callers go on long before the lock (an hour) would expire.
pub async fn a_cancelled_lock_holder_releases_the_lock(store: impl TestStore) {
    let locks = store.with_namespace("locks");
    let cache = Cache::new(store.with_namespace("values"))
        .lock_across_processes(locks.clone(), Duration::from_secs(3600));
    let (leader, running, _release) = start_doomed_leader(&cache, false);
    running.await.unwrap();
    assert!(
        locks.exists("k").await.unwrap(),
        "the leader holds the lock"
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let waiters = {
        let (cache, runs) = (cache.clone(), runs.clone());
        tokio::spawn(async move { stampede(&cache, "k", 10, Duration::ZERO, &runs).await })
    };
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    let values = tokio::time::timeout(HANG, waiters)
        .await
        .expect("the waiters went on without waiting for the lock to expire")
        .unwrap();
    assert!(values.iter().all(|v| v == "computed"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!locks.exists("k").await.unwrap());
}

/// Once a value is stale, one caller refreshes it while the others get the
/// stale value at once; then everyone gets the fresh one.
pub async fn a_stale_value_is_served_while_one_caller_refreshes(store: impl TestStore) {
    let cache = Cache::new(store.clone()).serve_stale_for(Duration::from_secs(60));
    let fresh_for = Some(Duration::from_millis(150));
    cache
        .get_or_set_with("k", fresh_for, || async { Ok::<_, Error>(b("old")) })
        .await
        .unwrap();
    // Kept for the fresh time plus the stale time.
    assert!(store.expires_in("k").await.unwrap().unwrap() > Duration::from_secs(59));
    tokio::time::sleep(Duration::from_millis(600)).await; // now stale

    let (started, running) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let refresher = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_set_with("k", fresh_for, || async move {
                    started.send(()).unwrap();
                    released.await.unwrap();
                    Ok::<_, Error>(b("new"))
                })
                .await
                .unwrap()
        })
    };
    running.await.unwrap();
    for _ in 0..10 {
        let served = cache
            .get_or_set_with("k", fresh_for, || async {
                panic!("a second refresh ran");
                #[allow(unreachable_code)]
                Ok::<_, Error>(Bytes::new())
            })
            .await
            .unwrap();
        assert_eq!(served, "old");
    }
    release.send(()).unwrap();
    assert_eq!(refresher.await.unwrap(), "new");
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("new")));
}

/// With the cross-process lock, a load takes and then deletes the lock key
/// in the locks store, and a hit never touches it.
pub async fn the_cross_process_lock_is_released_after_a_load(store: impl TestStore) {
    let locks = store.with_namespace("locks");
    let cache = Cache::new(store.with_namespace("values"))
        .lock_across_processes(locks.clone(), Duration::from_secs(10));
    let runs = Arc::new(AtomicUsize::new(0));
    let values = stampede(&cache, "k", 20, Duration::from_millis(20), &runs).await;
    assert!(values.iter().all(|v| v == "computed"));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(!locks.exists("k").await.unwrap(), "the lock was released");
}

/// A lock whose holder died (a lock key nobody will delete) holds loads off
/// until it expires; then one caller loads.
pub async fn a_lock_left_by_a_dead_holder_delays_loading_until_it_expires(store: impl TestStore) {
    let locks = store.with_namespace("locks");
    let lock_for = Duration::from_millis(300);
    assert!(
        locks
            .set_if_absent("k", b("dead holder"), Some(lock_for))
            .await
            .unwrap()
    );
    let cache = Cache::new(store.with_namespace("values"))
        .lock_across_processes(locks.clone(), Duration::from_secs(10));
    let value = tokio::time::timeout(
        HANG,
        cache.get_or_set_with("k", MINUTE, || async {
            // Loading only once the dead holder's lock has gone.
            let lock = locks.get("k", None).await?;
            assert_ne!(lock, Some(b("dead holder")));
            Ok::<_, Error>(b("loaded"))
        }),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(value, "loaded");
}

#[cfg(any(feature = "json", feature = "msgpack"))]
pub use typed::*;

#[cfg(not(any(feature = "json", feature = "msgpack")))]
pub use untyped::*;

/// Without a codec feature the typed behaviours have nothing to test; the
/// suite is run with `--all-features`.
#[cfg(not(any(feature = "json", feature = "msgpack")))]
mod untyped {
    pub async fn typed_values_round_trip_in_every_format(_: impl super::TestStore) {}
    pub async fn typed_values_of_an_older_struct_read_as_documented(_: impl super::TestStore) {}
    pub async fn typed_garbage_is_a_decode_error_naming_the_key(_: impl super::TestStore) {}
    pub async fn typed_get_or_set_with_loads_once(_: impl super::TestStore) {}
}

#[cfg(any(feature = "json", feature = "msgpack"))]
mod typed {
    use std::collections::{BTreeMap, HashMap};

    use kvstores::{Format, Typed};
    use serde::{Deserialize, Serialize};

    use super::*;

    fn formats() -> Vec<Format> {
        vec![
            #[cfg(feature = "json")]
            Format::Json,
            #[cfg(feature = "msgpack")]
            Format::MsgPack,
        ]
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    enum Shape {
        Point,
        Circle(f64),
        Rect { w: u32, h: u32 },
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Inner {
        tags: Vec<String>,
        shape: Shape,
        bytes: Vec<u8>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
    struct Outer {
        id: u64,
        name: String,
        nickname: Option<String>,
        inner: Inner,
        shapes: BTreeMap<String, Shape>,
        counts: HashMap<String, i64>,
        maybe_inner: Option<Box<Inner>>,
    }

    fn sample() -> Outer {
        Outer {
            id: u64::MAX,
            name: "Ünïcode \"quoted\"\n".into(),
            nickname: None,
            inner: Inner {
                tags: vec!["a".into(), String::new()],
                shape: Shape::Rect { w: 3, h: 4 },
                bytes: vec![0, 255, 1],
            },
            shapes: BTreeMap::from([("p".into(), Shape::Point), ("c".into(), Shape::Circle(1.5))]),
            counts: HashMap::from([("x".into(), -1)]),
            maybe_inner: Some(Box::new(Inner {
                tags: vec![],
                shape: Shape::Point,
                bytes: vec![],
            })),
        }
    }

    /// Nested structs, enums, maps and `Option`s read back equal in every
    /// format, and each value starts with its format byte.
    pub async fn typed_values_round_trip_in_every_format(store: impl TestStore) {
        for format in formats() {
            let typed = Typed::new(store.clone(), format);
            let key = format!("{format:?}");
            typed.set(&key, &sample(), MINUTE).await.unwrap();
            assert_eq!(
                typed.get::<Outer>(&key, None).await.unwrap(),
                Some(sample())
            );
            let first = store.get(&key, None).await.unwrap().unwrap()[0];
            assert_eq!(first, if key == "Json" { 1 } else { 2 });
            typed.set("unit-enum", &Shape::Point, None).await.unwrap();
            assert_eq!(
                typed.get::<Shape>("unit-enum", None).await.unwrap(),
                Some(Shape::Point)
            );
            let none: Option<u8> = None;
            typed.set("none", &none, None).await.unwrap();
            assert_eq!(
                typed.get::<Option<u8>>("none", None).await.unwrap(),
                Some(None)
            );
            assert_eq!(typed.get::<Outer>("missing", None).await.unwrap(), None);
        }
        // Whatever a Typed writes with, every format is read back.
        let all = formats();
        let (first, last) = (all[0], all[all.len() - 1]);
        Typed::new(store.clone(), first)
            .set("switched", &sample(), None)
            .await
            .unwrap();
        let read = Typed::new(store.clone(), last)
            .get::<Outer>("switched", None)
            .await
            .unwrap();
        assert_eq!(read, Some(sample()));
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V1 {
        name: String,
        old: u32,
    }

    /// V1 with `old` removed and three fields added.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct V2 {
        name: String,
        email: Option<String>,
        #[serde(default)]
        logins: u32,
    }

    #[derive(Serialize, Deserialize, Debug)]
    struct V2Required {
        name: String,
        email: String,
    }

    /// A struct that gained fields reads values written before it: an
    /// `Option` field as `None`, a `#[serde(default)]` one as its default,
    /// removed fields ignored; a gained required field is a decode error
    /// naming the field, never a made-up value.
    pub async fn typed_values_of_an_older_struct_read_as_documented(store: impl TestStore) {
        for format in formats() {
            let typed = Typed::new(store.clone(), format);
            let v1 = V1 {
                name: "ada".into(),
                old: 7,
            };
            typed.set("user", &v1, None).await.unwrap();
            let v2 = typed.get::<V2>("user", None).await.unwrap().unwrap();
            assert_eq!(
                v2,
                V2 {
                    name: "ada".into(),
                    email: None,
                    logins: 0
                }
            );
            let error = typed.get::<V2Required>("user", None).await.unwrap_err();
            let Error::Decode { what, source, .. } = &error else {
                panic!("expected a decode error, got {error:?}");
            };
            assert_eq!(what, "key \"user\"");
            let source = source.as_ref().expect("the decoder's error").to_string();
            assert!(source.contains("email"), "{format:?}: {source}");
        }
    }

    /// Bytes that are not a typed value — empty, written by a plain `set`,
    /// an unknown format byte, a truncated value, a value of another type —
    /// are `Error::Decode` naming the key, and stay as they were.
    pub async fn typed_garbage_is_a_decode_error_naming_the_key(store: impl TestStore) {
        let good = {
            let mut bytes = Vec::new();
            for format in formats() {
                let typed = Typed::new(store.clone(), format);
                typed.set("good", &sample(), None).await.unwrap();
                bytes.push(store.get("good", None).await.unwrap().unwrap());
            }
            bytes
        };
        let mut garbage: Vec<Bytes> = vec![
            Bytes::new(),
            b("{\"id\": 1}"),
            Bytes::from_static(b"\x7fwhatever"),
            Bytes::from_static(b"\x01\xff\xfe"),
            Bytes::from_static(b"\x02\xc1"),
        ];
        garbage.extend(good.iter().map(|g| g.slice(..g.len() / 2)));
        for format in formats() {
            let typed = Typed::new(store.clone(), format);
            for bytes in &garbage {
                store.set("bad key", bytes.clone(), None).await.unwrap();
                let error = typed.get::<Outer>("bad key", None).await.unwrap_err();
                assert!(
                    matches!(&error, Error::Decode { what, .. } if what == "key \"bad key\""),
                    "{bytes:?}: {error:?}"
                );
                assert!(error.to_string().contains("bad key"), "{error}");
                assert_eq!(
                    store.get("bad key", None).await.unwrap().as_ref(),
                    Some(bytes)
                );
                // get_or_set_with reports it too, without loading over it.
                let loaded = typed
                    .get_or_set_with("bad key", None, || async {
                        panic!("loaded over a value that did not decode");
                        #[allow(unreachable_code)]
                        Ok::<_, Error>(sample())
                    })
                    .await;
                assert!(matches!(loaded, Err(Error::Decode { .. })), "{loaded:?}");
            }
            // A value the format cannot represent is refused, not written.
            #[cfg(feature = "json")]
            if format == Format::Json {
                let tuple_keys = HashMap::from([((1u8, 2u8), 3u8)]);
                let error = typed
                    .set("unencodable", &tuple_keys, None)
                    .await
                    .unwrap_err();
                assert!(
                    matches!(&error, Error::Encode { what, source: Some(_), .. } if what.contains("unencodable")),
                    "{error:?}"
                );
                assert!(!store.exists("unencodable").await.unwrap());
            }
            // A value of another type.
            typed.set("number", &5u8, None).await.unwrap();
            let error = typed.get::<Outer>("number", None).await.unwrap_err();
            assert!(matches!(error, Error::Decode { .. }), "{error:?}");
        }
    }

    /// Typed `get_or_set_with` runs one loader for 50 concurrent callers and
    /// gives every one the decoded value.
    pub async fn typed_get_or_set_with_loads_once(store: impl TestStore) {
        for format in formats() {
            let typed = Typed::new(store.clone(), format);
            let runs = Arc::new(AtomicUsize::new(0));
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let (typed, runs) = (typed.clone(), runs.clone());
                    tokio::spawn(async move {
                        typed
                            .get_or_set_with(&format!("{format:?}"), MINUTE, || async move {
                                runs.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(30)).await;
                                Ok::<_, Error>(sample())
                            })
                            .await
                            .unwrap()
                    })
                })
                .collect();
            for task in tasks {
                assert_eq!(task.await.unwrap(), sample());
            }
            assert_eq!(runs.load(Ordering::SeqCst), 1);
        }
    }
}
