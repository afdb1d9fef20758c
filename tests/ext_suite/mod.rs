//! The extension suite: every rule of `AtomicStore` and `BatchStore`,
//! written once and run on every backend by `tests/ext.rs`:
//!
//! ```ignore
//! mod ext_suite;
//! ext_suite!(async { MemoryStore::new() });
//! ```
//!
//! The concurrency checks would fail if an operation were not atomic: a
//! lost update leaves the counter short of the total, and a check-then-set
//! lets two callers win. Time is handled as in the contract suite: minutes
//! for what must live, 150 ms and a wait of several times that for what
//! must expire.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use kvstores::{AtomicStore, BatchStore, Bytes, Error, NamespacedStore, Store, StoreStats};

/// Stamps every behaviour below as a `#[tokio::test]` for one backend.
/// `$make` is an expression (usually an `async` block) giving a fresh,
/// empty store.
#[macro_export]
macro_rules! ext_suite {
    ($make:expr) => {
        $crate::ext_suite!(@each $make;
            increment_creates_a_missing_counter_holding_delta, increment_adds_and_subtracts,
            a_value_set_as_decimal_text_is_a_counter, increment_sets_the_expiry_only_on_creation,
            an_expired_counter_starts_again_from_delta,
            increment_refuses_a_value_that_is_not_a_counter,
            increment_refuses_to_overflow, zero_expiry_is_refused_by_every_write,
            set_if_absent_stores_only_when_the_key_is_absent,
            set_if_absent_treats_an_expired_key_as_absent,
            counters_are_isolated_by_namespace,
            increments_from_64_tasks_add_up_exactly, exactly_one_of_64_concurrent_claims_wins,
            get_many_returns_values_in_order, set_many_sets_every_entry_with_the_expiry,
            delete_many_deletes_only_those_keys, empty_batches_do_nothing,
            batches_accept_any_key_and_repeated_keys, extensions_work_behind_dyn_arc_and_box);
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            $crate::ext_suite::$name($make.await).await;
        }
    )*};
}

const SHORT: Duration = Duration::from_millis(150);
const LONG: Duration = Duration::from_secs(600);
/// Long enough past `SHORT` that the key has expired on any machine.
const PAST_SHORT: Duration = Duration::from_millis(600);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn is_invalid(result: kvstores::Result<impl std::fmt::Debug>) -> bool {
    matches!(result, Err(Error::InvalidArgument { .. }))
}

/// increment on a missing key creates it holding delta, as ASCII decimal.
pub async fn increment_creates_a_missing_counter_holding_delta<S: Store + AtomicStore>(store: S) {
    assert_eq!(store.increment("c", 5, None).await.unwrap(), 5);
    assert_eq!(store.get("c", None).await.unwrap(), Some(b("5")));
    assert_eq!(store.increment("neg", -3, None).await.unwrap(), -3);
    assert_eq!(store.get("neg", None).await.unwrap(), Some(b("-3")));
    assert_eq!(store.increment("zero", 0, None).await.unwrap(), 0);
    assert_eq!(store.get("zero", None).await.unwrap(), Some(b("0")));
}

/// increment returns the new value, up or down, through zero.
pub async fn increment_adds_and_subtracts<S: AtomicStore>(store: S) {
    assert_eq!(store.increment("c", 1, None).await.unwrap(), 1);
    assert_eq!(store.increment("c", 10, None).await.unwrap(), 11);
    assert_eq!(store.increment("c", -20, None).await.unwrap(), -9);
    assert_eq!(store.get("c", None).await.unwrap(), Some(b("-9")));
}

/// A value written by set as canonical decimal text is a counter.
pub async fn a_value_set_as_decimal_text_is_a_counter<S: AtomicStore>(store: S) {
    store.set("c", b("10"), None).await.unwrap();
    assert_eq!(store.increment("c", 5, None).await.unwrap(), 15);
    store
        .set("min", b("-9223372036854775807"), None)
        .await
        .unwrap();
    assert_eq!(store.increment("min", -1, None).await.unwrap(), i64::MIN);
}

/// The expiry is set when the counter is created and never changed after.
pub async fn increment_sets_the_expiry_only_on_creation<S: AtomicStore>(store: S) {
    store.increment("windowed", 1, Some(LONG)).await.unwrap();
    let left = store.expires_in("windowed").await.unwrap().unwrap();
    assert!(
        left > LONG - Duration::from_secs(60) && left <= LONG,
        "{left:?}"
    );
    // A later increment with another expiry keeps the first one.
    store.increment("windowed", 1, Some(SHORT)).await.unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get("windowed", None).await.unwrap(), Some(b("2")));
    let left = store.expires_in("windowed").await.unwrap().unwrap();
    assert!(left > LONG - Duration::from_secs(60), "{left:?}");

    // A counter without expiry does not gain one.
    store.increment("forever", 1, None).await.unwrap();
    store.increment("forever", 1, Some(LONG)).await.unwrap();
    assert_eq!(store.expires_in("forever").await.unwrap(), None);
    store.set("set-forever", b("7"), None).await.unwrap();
    assert_eq!(
        store.increment("set-forever", 1, Some(LONG)).await.unwrap(),
        8
    );
    assert_eq!(store.expires_in("set-forever").await.unwrap(), None);
}

/// An expired counter counts as absent: it starts again, with the new expiry.
pub async fn an_expired_counter_starts_again_from_delta<S: AtomicStore>(store: S) {
    assert_eq!(store.increment("c", 7, Some(SHORT)).await.unwrap(), 7);
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.increment("c", 2, Some(LONG)).await.unwrap(), 2);
    let left = store.expires_in("c").await.unwrap().unwrap();
    assert!(left > LONG - Duration::from_secs(60), "{left:?}");

    assert_eq!(store.increment("d", 7, Some(SHORT)).await.unwrap(), 7);
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.increment("d", 1, None).await.unwrap(), 1);
    assert_eq!(store.expires_in("d").await.unwrap(), None);
}

/// A value that is not a canonical decimal i64 is refused and left as it was.
pub async fn increment_refuses_a_value_that_is_not_a_counter<S: AtomicStore>(store: S) {
    for text in [
        "alice",
        "",
        "1.5",
        " 1",
        "1 ",
        "+1",
        "01",
        "9223372036854775808",
    ] {
        store.set("v", b(text), Some(LONG)).await.unwrap();
        let result = store.increment("v", 1, None).await;
        assert!(
            matches!(result, Err(Error::NotACounter)),
            "{text:?}: {result:?}"
        );
        assert_eq!(
            store.get("v", None).await.unwrap(),
            Some(b(text)),
            "{text:?}"
        );
    }
    let err = store.increment("v", 1, None).await.unwrap_err();
    assert!(err.to_string().contains("not a counter"), "{err}");
}

/// Overflowing an i64 either way is refused and changes nothing.
pub async fn increment_refuses_to_overflow<S: AtomicStore>(store: S) {
    store.increment("max", i64::MAX, None).await.unwrap();
    assert!(matches!(
        store.increment("max", 1, None).await,
        Err(Error::CounterOverflow {
            value: i64::MAX,
            delta: 1
        })
    ));
    assert_eq!(
        store.get("max", None).await.unwrap(),
        Some(b(&i64::MAX.to_string()))
    );
    store.increment("min", i64::MIN, None).await.unwrap();
    assert!(matches!(
        store.increment("min", -1, None).await,
        Err(Error::CounterOverflow {
            value: i64::MIN,
            delta: -1
        })
    ));
    assert_eq!(store.increment("min", 0, None).await.unwrap(), i64::MIN);
}

/// A zero expiry is refused by increment, set_if_absent and set_many, and
/// nothing is written.
pub async fn zero_expiry_is_refused_by_every_write<S: AtomicStore + BatchStore>(store: S) {
    let zero = Some(Duration::ZERO);
    assert!(is_invalid(store.increment("c", 1, zero).await));
    assert!(is_invalid(store.set_if_absent("s", b("v"), zero).await));
    assert!(is_invalid(store.set_many(&[("m", b("v"))], zero).await));
    assert!(is_invalid(store.set_many(&[], zero).await));
    assert_eq!(
        store.get_many(&["c", "s", "m"]).await.unwrap(),
        [None, None, None]
    );
}

/// set_if_absent writes a missing key only, leaving a live one's value and
/// expiry alone.
pub async fn set_if_absent_stores_only_when_the_key_is_absent<S: AtomicStore>(store: S) {
    assert!(
        store
            .set_if_absent("k", b("first"), Some(LONG))
            .await
            .unwrap()
    );
    assert!(!store.set_if_absent("k", b("second"), None).await.unwrap());
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("first")));
    assert!(store.expires_in("k").await.unwrap().is_some());

    store.set("plain", b("v"), None).await.unwrap();
    assert!(
        !store
            .set_if_absent("plain", b("w"), Some(LONG))
            .await
            .unwrap()
    );
    assert_eq!(store.expires_in("plain").await.unwrap(), None);

    assert!(
        store
            .set_if_absent("no-expiry", b("v"), None)
            .await
            .unwrap()
    );
    assert_eq!(store.expires_in("no-expiry").await.unwrap(), None);
}

/// An expired key is absent to set_if_absent.
pub async fn set_if_absent_treats_an_expired_key_as_absent<S: AtomicStore>(store: S) {
    store.set("k", b("old"), Some(SHORT)).await.unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert!(store.set_if_absent("k", b("new"), None).await.unwrap());
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("new")));
    assert_eq!(store.expires_in("k").await.unwrap(), None);
}

/// A counter in one namespace is not seen by its parent or a sibling.
pub async fn counters_are_isolated_by_namespace<S>(store: S)
where
    S: AtomicStore + BatchStore + NamespacedStore,
{
    let (a, b_ns) = (store.with_namespace("a"), store.with_namespace("b"));
    assert_eq!(a.increment("c", 1, None).await.unwrap(), 1);
    assert_eq!(b_ns.increment("c", 10, None).await.unwrap(), 10);
    assert_eq!(store.increment("c", 100, None).await.unwrap(), 100);
    assert_eq!(a.increment("c", 1, None).await.unwrap(), 2);
    assert!(a.set_if_absent("s", b("v"), None).await.unwrap());
    assert!(b_ns.set_if_absent("s", b("v"), None).await.unwrap());
    assert_eq!(
        a.get_many(&["c", "s"]).await.unwrap(),
        [Some(b("2")), Some(b("v"))]
    );
    store.delete_many(&["c", "s"]).await.unwrap();
    assert_eq!(a.get("c", None).await.unwrap(), Some(b("2")));
}

/// 64 tasks × 1,000 increments of one counter end at exactly 64,000.
pub async fn increments_from_64_tasks_add_up_exactly<S>(store: S)
where
    S: AtomicStore + Clone + 'static,
{
    assert_eq!(
        increment_concurrently(std::slice::from_ref(&store), 64, 1000).await,
        64_000
    );
    assert_eq!(store.get("counter", None).await.unwrap(), Some(b("64000")));
}

/// Runs `tasks` tasks, spread over `stores`, each incrementing "counter"
/// `each` times; returns the final value as the last increment saw it.
pub async fn increment_concurrently<S>(stores: &[S], tasks: usize, each: usize) -> i64
where
    S: AtomicStore + Clone + 'static,
{
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = stores[t % stores.len()].clone();
            tokio::spawn(async move {
                for _ in 0..each {
                    store.increment("counter", 1, Some(LONG)).await.unwrap();
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    stores[0].increment("counter", 0, None).await.unwrap()
}

/// Of 64 concurrent set_if_absent calls on one key, exactly one wins, and
/// its value is the one stored.
pub async fn exactly_one_of_64_concurrent_claims_wins<S>(store: S)
where
    S: AtomicStore + Clone + 'static,
{
    let winners = claim_concurrently(std::slice::from_ref(&store), 64).await;
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = store.get("claim", None).await.unwrap();
    assert_eq!(stored, Some(b(&format!("task-{}", winners[0]))));
}

/// Runs `tasks` tasks, spread over `stores`, each trying to claim the key
/// "claim" with its own number; returns the numbers of those that won.
pub async fn claim_concurrently<S>(stores: &[S], tasks: usize) -> Vec<usize>
where
    S: AtomicStore + Clone + 'static,
{
    // Every task waits at the barrier, so that the claims really overlap.
    let barrier = Arc::new(tokio::sync::Barrier::new(tasks));
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let (store, barrier) = (stores[t % stores.len()].clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let value = b(&format!("task-{t}"));
                store
                    .set_if_absent("claim", value, Some(LONG))
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (t, handle) in handles.into_iter().enumerate() {
        if handle.await.unwrap() {
            winners.push(t);
        }
    }
    winners
}

/// get_many returns one answer per key, in order, None for missing and
/// expired keys.
pub async fn get_many_returns_values_in_order<S: BatchStore>(store: S) {
    store.set("a", b("1"), None).await.unwrap();
    store.set("b", b("2"), Some(LONG)).await.unwrap();
    store.set("gone", b("3"), Some(SHORT)).await.unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    let got = store
        .get_many(&["b", "missing", "a", "gone"])
        .await
        .unwrap();
    assert_eq!(got, [Some(b("2")), None, Some(b("1")), None]);
    // Reading renews nothing.
    let left = store.expires_in("b").await.unwrap().unwrap();
    assert!(left <= LONG, "{left:?}");
}

/// set_many stores every entry with the one expiry, overwriting old values
/// and expiries as set does.
pub async fn set_many_sets_every_entry_with_the_expiry<S: BatchStore>(store: S) {
    store.set("old", b("x"), Some(LONG)).await.unwrap();
    let entries: Vec<(String, Bytes)> = (0..20)
        .map(|i| (format!("k{i}"), b(&i.to_string())))
        .collect();
    let mut refs: Vec<(&str, Bytes)> = entries
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    refs.push(("old", b("new")));
    store.set_many(&refs, None).await.unwrap();
    let keys: Vec<&str> = refs.iter().map(|(k, _)| *k).collect();
    let got = store.get_many(&keys).await.unwrap();
    assert_eq!(
        got,
        refs.iter()
            .map(|(_, v)| Some(v.clone()))
            .collect::<Vec<_>>()
    );
    assert_eq!(store.expires_in("old").await.unwrap(), None);

    store
        .set_many(&[("t1", b("1")), ("t2", b("2"))], Some(SHORT))
        .await
        .unwrap();
    assert!(store.expires_in("t2").await.unwrap().is_some());
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get_many(&["t1", "t2"]).await.unwrap(), [None, None]);
}

/// delete_many deletes the given keys only; missing keys are no error.
pub async fn delete_many_deletes_only_those_keys<S: BatchStore>(store: S) {
    for key in ["a", "b", "c"] {
        store.set(key, b(key), Some(LONG)).await.unwrap();
    }
    store.delete_many(&["a", "c", "never"]).await.unwrap();
    let got = store.get_many(&["a", "b", "c"]).await.unwrap();
    assert_eq!(got, [None, Some(b("b")), None]);
}

/// Empty batches succeed and touch nothing.
pub async fn empty_batches_do_nothing<S: BatchStore>(store: S) {
    store.set("k", b("v"), None).await.unwrap();
    assert_eq!(
        store.get_many(&[]).await.unwrap(),
        Vec::<Option<Bytes>>::new()
    );
    store.set_many(&[], None).await.unwrap();
    store.delete_many(&[]).await.unwrap();
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("v")));
}

/// Keys of any string work in batches; a repeated key is answered each
/// time, and the last of its set_many entries wins.
pub async fn batches_accept_any_key_and_repeated_keys<S: BatchStore>(store: S) {
    let keys = ["", ":", "*", "a:b", "[x]", "\\", "\0", "ключ", "a b"];
    let entries: Vec<(&str, Bytes)> = keys.iter().map(|k| (*k, b(&format!("<{k}>")))).collect();
    store.set_many(&entries, None).await.unwrap();
    for key in keys {
        assert_eq!(
            store.get(key, None).await.unwrap(),
            Some(b(&format!("<{key}>")))
        );
    }
    store
        .set_many(&[("r", b("1")), ("r", b("2"))], None)
        .await
        .unwrap();
    assert_eq!(
        store.get_many(&["r", "r"]).await.unwrap(),
        [Some(b("2")), Some(b("2"))]
    );
    store.delete_many(&keys).await.unwrap();
    assert!(
        store
            .get_many(&keys)
            .await
            .unwrap()
            .iter()
            .all(Option::is_none)
    );
}

/// Both traits work through `Arc<dyn …>` and `Box<S>`.
pub async fn extensions_work_behind_dyn_arc_and_box<S>(store: S)
where
    S: AtomicStore + BatchStore + Clone + 'static,
{
    let counters: Arc<dyn AtomicStore> = Arc::new(store.clone());
    assert_eq!(counters.increment("c", 2, None).await.unwrap(), 2);
    let boxed: Box<S> = Box::new(store.clone());
    assert_eq!(boxed.increment("c", 2, None).await.unwrap(), 4);
    let batches: Arc<dyn BatchStore> = Arc::new(store);
    assert_eq!(batches.get_many(&["c"]).await.unwrap(), [Some(b("4"))]);
}

/// Stats count hits, misses, sets and deletes of the root store and every
/// namespace of it. Not stamped by `ext_suite!`: `stats` is a method of each
/// store type, passed in as `stats`.
pub async fn stats_count_what_the_store_did<S>(store: S, stats: fn(&S) -> StoreStats)
where
    S: AtomicStore + BatchStore + NamespacedStore,
{
    let before = stats(&store);
    assert_eq!(before, StoreStats::default());
    let child = store.with_namespace("child");
    store.set("a", b("1"), None).await.unwrap(); // set
    child
        .set_many(&[("x", b("1")), ("y", b("2"))], None)
        .await
        .unwrap(); // 2 sets
    store.increment("n", 1, None).await.unwrap(); // set
    assert!(store.set_if_absent("s", b("v"), None).await.unwrap()); // set
    assert!(!store.set_if_absent("s", b("v"), None).await.unwrap()); // nothing
    store.get("a", None).await.unwrap(); // hit
    store.get("missing", None).await.unwrap(); // miss
    child.get_many(&["x", "nope", "y"]).await.unwrap(); // 2 hits, 1 miss
    store.exists("a").await.unwrap(); // not counted
    store.delete("a").await.unwrap(); // delete
    child.delete_many(&["x", "never"]).await.unwrap(); // 2 deletes
    let after = stats(&child);
    assert_eq!(
        (after.sets, after.hits, after.misses, after.deletes),
        (5, 3, 2, 3),
        "{after:?}"
    );
    assert_eq!((after.expirations, after.evictions), (0, 0));
    assert_eq!(stats(&store), after);
}
