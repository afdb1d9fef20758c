//! The behaviour suite: every rule of the `Store` contract, written once.
//!
//! Each function takes a fresh, empty store and checks one behaviour.
//! A backend's test file runs all of them with one line:
//!
//! ```ignore
//! mod suite;
//! contract_suite!(async { MemoryStore::new() });
//! ```
//!
//! Time-based checks use the real clock without racing it: a key meant to
//! stay alive gets minutes, a key meant to expire gets 150 ms and is checked
//! after waiting several times that.
#![allow(dead_code)]

pub mod clocked;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kvstores::{Bytes, Error, NamespacedStore, Store};

/// Stamps every behaviour below as a `#[tokio::test]` for one backend.
/// `$make` is an expression (usually an `async` block) giving a fresh,
/// empty store.
#[macro_export]
macro_rules! contract_suite {
    ($make:expr) => {
        $crate::contract_suite!(@each $make;
            set_then_get_returns_the_value, get_of_a_missing_key_is_none,
            set_overwrites_value_and_expiry, zero_expiry_is_refused_and_writes_nothing,
            zero_renewal_is_refused_and_changes_nothing, an_expired_value_is_never_returned,
            expires_in_reports_what_is_left, renewal_extends_or_shortens_the_expiry,
            renewal_can_make_a_key_expire_sooner, renewal_never_adds_an_expiry,
            renewal_of_a_missing_key_is_none, sub_millisecond_expiry_counts_as_one_millisecond,
            delete_removes_only_that_key, delete_of_a_missing_key_is_a_no_op,
            keys_may_be_any_string, values_of_any_size_round_trip,
            namespaces_are_isolated_from_parent_children_and_siblings,
            delete_all_covers_the_namespace_and_its_descendants_only,
            delete_all_spares_a_sibling_whose_name_extends_it,
            namespace_names_may_be_any_string, nesting_and_keys_never_collide,
            clones_and_repeated_namespaces_share_data, works_behind_dyn_store_arc_and_box,
            concurrent_mixed_operations_lose_nothing);
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            suite::$name($make.await).await;
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

/// set, then get: the same bytes come back.
pub async fn set_then_get_returns_the_value<S: Store>(store: S) {
    store.set("k", b("v"), None).await.unwrap();
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("v")));
    assert!(store.exists("k").await.unwrap());
}

/// A key never set reads as absent everywhere.
pub async fn get_of_a_missing_key_is_none<S: Store>(store: S) {
    assert_eq!(store.get("missing", None).await.unwrap(), None);
    assert_eq!(store.get("missing", Some(LONG)).await.unwrap(), None);
    assert!(!store.exists("missing").await.unwrap());
    assert_eq!(store.expires_in("missing").await.unwrap(), None);
}

/// set replaces both the value and the expiry.
pub async fn set_overwrites_value_and_expiry<S: Store>(store: S) {
    store.set("k", b("one"), Some(LONG)).await.unwrap();
    store.set("k", b("two"), None).await.unwrap();
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("two")));
    assert_eq!(store.expires_in("k").await.unwrap(), None);

    store.set("k", b("three"), Some(LONG)).await.unwrap();
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("three")));
    assert!(store.expires_in("k").await.unwrap().is_some());
}

/// A zero expires_in is an InvalidArgument and leaves the old value alone.
pub async fn zero_expiry_is_refused_and_writes_nothing<S: Store>(store: S) {
    store.set("k", b("old"), None).await.unwrap();
    let err = store
        .set("k", b("new"), Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("expires_in"), "{err}");
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("old")));

    let err = store
        .set("fresh", b("new"), Some(Duration::ZERO))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(!store.exists("fresh").await.unwrap());
}

/// A zero renew_for is an InvalidArgument and keeps the expiry.
pub async fn zero_renewal_is_refused_and_changes_nothing<S: Store>(store: S) {
    store.set("k", b("v"), Some(LONG)).await.unwrap();
    let err = store.get("k", Some(Duration::ZERO)).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("renew_for"), "{err}");
    let left = store.expires_in("k").await.unwrap().unwrap();
    assert!(left > LONG - Duration::from_secs(60), "{left:?}");
}

/// Once its time is up, a key is absent to get, exists and expires_in.
pub async fn an_expired_value_is_never_returned<S: Store>(store: S) {
    store.set("k", b("v"), Some(SHORT)).await.unwrap();
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get("k", None).await.unwrap(), None);
    assert_eq!(store.get("k", Some(LONG)).await.unwrap(), None);
    assert!(!store.exists("k").await.unwrap());
    assert_eq!(store.expires_in("k").await.unwrap(), None);
    // An expired key does not come back to life by renewing it.
    assert_eq!(store.get("k", None).await.unwrap(), None);
}

/// expires_in is Some(0 < left <= set) with an expiry and None without.
pub async fn expires_in_reports_what_is_left<S: Store>(store: S) {
    store.set("ttl", b("v"), Some(LONG)).await.unwrap();
    let left = store.expires_in("ttl").await.unwrap().unwrap();
    assert!(left > Duration::ZERO && left <= LONG, "{left:?}");
    assert!(left > LONG - Duration::from_secs(60), "{left:?}");

    store.set("forever", b("v"), None).await.unwrap();
    assert_eq!(store.expires_in("forever").await.unwrap(), None);
}

/// get with renew_for sets the expiry to now + renew_for, up or down.
pub async fn renewal_extends_or_shortens_the_expiry<S: Store>(store: S) {
    let hour = Duration::from_secs(3600);
    store.set("k", b("v"), Some(LONG)).await.unwrap();
    assert_eq!(store.get("k", Some(hour)).await.unwrap(), Some(b("v")));
    let left = store.expires_in("k").await.unwrap().unwrap();
    assert!(left > LONG && left <= hour, "extended: {left:?}");

    let minute = Duration::from_secs(60);
    assert_eq!(store.get("k", Some(minute)).await.unwrap(), Some(b("v")));
    let left = store.expires_in("k").await.unwrap().unwrap();
    assert!(
        left <= minute && left > Duration::ZERO,
        "shortened: {left:?}"
    );
}

/// A short renewal makes a long-lived key expire soon.
pub async fn renewal_can_make_a_key_expire_sooner<S: Store>(store: S) {
    store.set("k", b("v"), Some(LONG)).await.unwrap();
    assert_eq!(store.get("k", Some(SHORT)).await.unwrap(), Some(b("v")));
    tokio::time::sleep(PAST_SHORT).await;
    assert!(!store.exists("k").await.unwrap());
}

/// Renewing a key without expiry just reads it.
pub async fn renewal_never_adds_an_expiry<S: Store>(store: S) {
    store.set("k", b("v"), None).await.unwrap();
    assert_eq!(store.get("k", Some(SHORT)).await.unwrap(), Some(b("v")));
    assert_eq!(store.expires_in("k").await.unwrap(), None);
    tokio::time::sleep(PAST_SHORT).await;
    assert_eq!(store.get("k", None).await.unwrap(), Some(b("v")));
}

/// Renewing a missing key creates nothing.
pub async fn renewal_of_a_missing_key_is_none<S: Store>(store: S) {
    assert_eq!(store.get("k", Some(LONG)).await.unwrap(), None);
    assert!(!store.exists("k").await.unwrap());
}

/// A duration under a millisecond is accepted as one millisecond.
pub async fn sub_millisecond_expiry_counts_as_one_millisecond<S: Store>(store: S) {
    store
        .set("k", b("v"), Some(Duration::from_micros(1)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!store.exists("k").await.unwrap());

    store.set("r", b("v"), Some(LONG)).await.unwrap();
    store.get("r", Some(Duration::from_nanos(1))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!store.exists("r").await.unwrap());
}

/// delete removes its key and no other.
pub async fn delete_removes_only_that_key<S: Store>(store: S) {
    store.set("a", b("1"), None).await.unwrap();
    store.set("b", b("2"), Some(LONG)).await.unwrap();
    store.delete("b").await.unwrap();
    assert!(!store.exists("b").await.unwrap());
    assert_eq!(store.expires_in("b").await.unwrap(), None);
    assert_eq!(store.get("a", None).await.unwrap(), Some(b("1")));
}

/// delete of a key that is not there succeeds and changes nothing.
pub async fn delete_of_a_missing_key_is_a_no_op<S: Store>(store: S) {
    store.delete("never-set").await.unwrap();
    store.set("k", b("v"), None).await.unwrap();
    store.delete("k").await.unwrap();
    store.delete("k").await.unwrap();
    assert!(!store.exists("k").await.unwrap());
}

/// Keys with separators, glob characters, NUL and non-ASCII are all distinct keys.
pub async fn keys_may_be_any_string<S: Store>(store: S) {
    let keys = [
        "", ":", "::", "*", "?", "[", "]", "[a-z]", "\\", "/", "..", "../etc", "\0", "a\0b",
        "ключ", "鍵", "🗝️", "a:b", "a%3Ab", "%", "%25", " ", "a*b?", "\u{FEFF}",
    ];
    for (i, key) in keys.iter().enumerate() {
        store
            .set(key, Bytes::from(i.to_string()), None)
            .await
            .unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            store.get(key, None).await.unwrap(),
            Some(Bytes::from(i.to_string())),
            "key {key:?}"
        );
    }
    store.delete("*").await.unwrap();
    assert!(!store.exists("*").await.unwrap());
    assert!(
        store.exists("a*b?").await.unwrap(),
        "deleting `*` is not a pattern"
    );
    assert!(store.exists("").await.unwrap());
}

/// Empty, binary and large values come back byte for byte.
pub async fn values_of_any_size_round_trip<S: Store>(store: S) {
    let binary: Bytes = (0..=255u8).collect::<Vec<_>>().into();
    let large: Bytes = (0..1 << 20)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    for (key, value) in [
        ("empty", Bytes::new()),
        ("binary", binary),
        ("large", large),
    ] {
        store.set(key, value.clone(), Some(LONG)).await.unwrap();
        assert_eq!(store.get(key, None).await.unwrap(), Some(value), "{key}");
    }
    assert!(store.exists("empty").await.unwrap());
}

/// Parent, child and sibling namespaces each see only their own keys.
pub async fn namespaces_are_isolated_from_parent_children_and_siblings<S: NamespacedStore>(
    root: S,
) {
    let child = root.with_namespace("child");
    let sibling = root.with_namespace("sibling");
    let grandchild = child.with_namespace("grandchild");
    for (i, store) in [&root, &child, &sibling, &grandchild]
        .into_iter()
        .enumerate()
    {
        store
            .set("k", Bytes::from(i.to_string()), Some(LONG))
            .await
            .unwrap();
    }
    for (i, store) in [&root, &child, &sibling, &grandchild]
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            store.get("k", None).await.unwrap(),
            Some(Bytes::from(i.to_string()))
        );
    }
    child.delete("k").await.unwrap();
    assert!(!child.exists("k").await.unwrap());
    assert!(root.exists("k").await.unwrap());
    assert!(grandchild.exists("k").await.unwrap());
    assert!(sibling.exists("k").await.unwrap());
    assert_eq!(child.get("grandchild", None).await.unwrap(), None);
}

/// delete_all empties a namespace and its descendants, and nothing else.
pub async fn delete_all_covers_the_namespace_and_its_descendants_only<S: NamespacedStore>(root: S) {
    let parent = root.with_namespace("parent");
    let child = parent.with_namespace("child");
    let grandchild = child.with_namespace("grandchild");
    let sibling = parent.with_namespace("sibling");
    for store in [&root, &parent, &child, &grandchild, &sibling] {
        store.set("k", b("v"), None).await.unwrap();
        store.set("ttl", b("v"), Some(LONG)).await.unwrap();
    }

    child.delete_all().await.unwrap();
    for store in [&child, &grandchild] {
        assert!(!store.exists("k").await.unwrap());
        assert_eq!(store.expires_in("ttl").await.unwrap(), None);
    }
    for store in [&root, &parent, &sibling] {
        assert!(store.exists("k").await.unwrap());
        assert!(store.exists("ttl").await.unwrap());
    }

    parent.delete_all().await.unwrap();
    assert!(!sibling.exists("k").await.unwrap());
    assert!(!parent.exists("ttl").await.unwrap());
    assert!(root.exists("k").await.unwrap());

    // The namespace is usable again afterwards.
    child.set("k", b("again"), None).await.unwrap();
    assert_eq!(child.get("k", None).await.unwrap(), Some(b("again")));
}

/// `cache` never touches `cache2`, nor `cache2` `cache`.
pub async fn delete_all_spares_a_sibling_whose_name_extends_it<S: NamespacedStore>(root: S) {
    let cache = root.with_namespace("cache");
    let cache2 = root.with_namespace("cache2");
    let cach = root.with_namespace("cach");
    for store in [&cache, &cache2, &cach] {
        store.set("k", b("v"), None).await.unwrap();
    }
    root.set("cache", b("root key named like the namespace"), None)
        .await
        .unwrap();

    cache.delete_all().await.unwrap();
    assert!(!cache.exists("k").await.unwrap());
    assert!(cache2.exists("k").await.unwrap());
    assert!(cach.exists("k").await.unwrap());
    assert!(root.exists("cache").await.unwrap());
}

/// Namespace names with separators and glob characters select only themselves.
pub async fn namespace_names_may_be_any_string<S: NamespacedStore>(root: S) {
    let names = [
        "", ":", "a:b", "*", "a*", "ab", "?", "[", "]", "[ab]", "a", "\\", "/", "\0", "ns%3A",
        "名前",
    ];
    let stores: Vec<S> = names.iter().map(|n| root.with_namespace(n)).collect();
    for (i, store) in stores.iter().enumerate() {
        store
            .set("k", Bytes::from(i.to_string()), None)
            .await
            .unwrap();
    }
    for (i, store) in stores.iter().enumerate() {
        assert_eq!(
            store.get("k", None).await.unwrap(),
            Some(Bytes::from(i.to_string())),
            "{:?}",
            names[i]
        );
    }
    // Deleting each glob-looking namespace must leave every other one alone.
    for (i, store) in stores.iter().enumerate() {
        store.delete_all().await.unwrap();
        for (j, other) in stores.iter().enumerate() {
            assert_eq!(
                other.exists("k").await.unwrap(),
                j > i,
                "after deleting {:?}, {:?}",
                names[i],
                names[j]
            );
        }
    }
}

/// A key containing `:` never meets a nested namespace, nor `a:b` `a`→`b`.
pub async fn nesting_and_keys_never_collide<S: NamespacedStore>(root: S) {
    let a = root.with_namespace("a");
    let a_b = a.with_namespace("b");
    let a_colon_b = root.with_namespace("a:b");
    a.set("b:c", b("key with a colon"), None).await.unwrap();
    a_b.set("c", b("nested"), None).await.unwrap();
    a_colon_b
        .set("c", b("colon in the name"), None)
        .await
        .unwrap();
    root.set("a:b:c", b("flat"), None).await.unwrap();
    root.set("a", b("root key a"), None).await.unwrap();

    assert_eq!(
        a.get("b:c", None).await.unwrap(),
        Some(b("key with a colon"))
    );
    assert_eq!(a_b.get("c", None).await.unwrap(), Some(b("nested")));
    assert_eq!(
        a_colon_b.get("c", None).await.unwrap(),
        Some(b("colon in the name"))
    );
    assert_eq!(root.get("a:b:c", None).await.unwrap(), Some(b("flat")));

    a_b.delete_all().await.unwrap();
    assert!(a.exists("b:c").await.unwrap());
    assert!(a_colon_b.exists("c").await.unwrap());
    a.delete_all().await.unwrap();
    assert!(!a.exists("b:c").await.unwrap());
    assert!(a_colon_b.exists("c").await.unwrap());
    assert!(root.exists("a").await.unwrap());
    assert!(root.exists("a:b:c").await.unwrap());
}

/// Clones and a second with_namespace of the same name see the same data.
pub async fn clones_and_repeated_namespaces_share_data<S: NamespacedStore + Clone>(root: S) {
    let clone = root.clone();
    root.set("k", b("v"), None).await.unwrap();
    assert_eq!(clone.get("k", None).await.unwrap(), Some(b("v")));

    let first = root.with_namespace("ns");
    let second = clone.with_namespace("ns");
    first.set("k", b("ns"), None).await.unwrap();
    assert_eq!(second.get("k", None).await.unwrap(), Some(b("ns")));
    second.delete("k").await.unwrap();
    assert!(!first.exists("k").await.unwrap());
}

/// The store works as Arc<dyn Store>, Box<dyn Store>, Arc<S> and Box<S>.
pub async fn works_behind_dyn_store_arc_and_box<S: Store + Clone + 'static>(store: S) {
    let dynamic: Arc<dyn Store> = Arc::new(store.clone());
    dynamic.set("k", b("v"), None).await.unwrap();
    let boxed: Box<dyn Store> = Box::new(store.clone());
    assert_eq!(boxed.get("k", None).await.unwrap(), Some(b("v")));
    let arc = Arc::new(store.clone());
    assert!(arc.exists("k").await.unwrap());
    let boxed = Box::new(store);
    boxed.delete("k").await.unwrap();
    assert!(!dynamic.exists("k").await.unwrap());
}

/// 64 tasks doing mixed operations at once leave exactly the expected state.
pub async fn concurrent_mixed_operations_lose_nothing<S: NamespacedStore + Clone + 'static>(
    root: S,
) {
    const TASKS: usize = 64;
    const KEYS: usize = 50;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let store = if t % 2 == 0 {
            root.clone()
        } else {
            root.with_namespace("odd")
        };
        tasks.push(tokio::spawn(async move {
            for k in 0..KEYS {
                let key = format!("t{t}-k{k}");
                let ttl = (k % 3 == 0).then_some(LONG);
                store
                    .set(&key, Bytes::from(format!("{t}/{k}")), ttl)
                    .await
                    .unwrap();
                assert_eq!(
                    store.get(&key, Some(LONG)).await.unwrap(),
                    Some(Bytes::from(format!("{t}/{k}")))
                );
                if k % 5 == 0 {
                    store.delete(&key).await.unwrap();
                }
                assert_eq!(store.exists(&key).await.unwrap(), k % 5 != 0);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut expected = HashMap::new();
    for t in 0..TASKS {
        for k in (0..KEYS).filter(|k| k % 5 != 0) {
            expected.insert((t, k), format!("{t}/{k}"));
        }
    }
    let odd = root.with_namespace("odd");
    for t in 0..TASKS {
        let store = if t % 2 == 0 { &root } else { &odd };
        for k in 0..KEYS {
            let got = store.get(&format!("t{t}-k{k}"), None).await.unwrap();
            assert_eq!(
                got,
                expected.get(&(t, k)).map(|v| Bytes::from(v.clone())),
                "t{t} k{k}"
            );
            let ttl = store.expires_in(&format!("t{t}-k{k}")).await.unwrap();
            assert_eq!(ttl.is_some(), k % 5 != 0 && k % 3 == 0, "t{t} k{k}");
        }
    }
}
