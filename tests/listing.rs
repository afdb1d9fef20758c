//! Listing and importing entries, on a FileStore and on a real
//! redis-server: pages beyond the first, expired entries, key prefixes and
//! namespaces that extend each other's names.
#![cfg(all(feature = "file", feature = "redis"))]

mod support;

use std::time::Duration;

use kvstores::{
    Bytes, Entries, Entry, Error, FileStore, ListOptions, ManualClock, NamespacedStore, RedisStore,
    Store,
};
use support::{Kind, Options, Server, unique};

async fn collect(mut listing: Entries) -> Vec<Entry> {
    let mut all = Vec::new();
    while let Some(page) = listing.next_page().await.unwrap() {
        assert!(!page.is_empty(), "pages are never empty");
        all.extend(page);
    }
    all
}

/// `n` entries `key:00000`… in `namespace`, every other one expiring at
/// `expires_at`.
fn entries(namespace: &[&str], n: usize, expires_at: u64) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let at = (i % 2 == 1).then_some(expires_at);
            let mut entry = Entry::new(format!("key:{i:05}"), Bytes::from(vec![b'v'; i % 7]), at);
            entry.namespace = namespace.iter().map(|s| s.to_string()).collect();
            entry
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_lists_every_page_in_order_and_hides_what_expired() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = FileStore::builder(dir.path().join("s.redb"))
        .clock(clock.clone())
        .open()
        .unwrap();
    let at = clock.now_millis() + 1000;
    assert_eq!(
        store.import_entries(entries(&[], 2500, at)).await.unwrap(),
        2500
    );
    store.import_entries(entries(&["c"], 10, at)).await.unwrap();
    store
        .import_entries(entries(&["c2"], 10, at))
        .await
        .unwrap();

    let own = collect(store.entries(ListOptions::new().values(true))).await;
    assert_eq!(own.len(), 2500);
    assert!(
        own.windows(2).all(|w| w[0].key < w[1].key),
        "stored-key order"
    );
    assert_eq!(own[3].expires_at, Some(at));
    assert_eq!(own[3].value.as_deref(), Some(&b"vvv"[..]));
    let all = collect(store.entries(ListOptions::new().descendants(true))).await;
    assert_eq!(all.len(), 2520);
    assert!(all.iter().all(|e| e.value.is_none() && e.size < 7));

    let child = store.with_namespace("c");
    let listed = collect(child.entries(ListOptions::new().descendants(true))).await;
    assert_eq!(listed.len(), 10, "c2 is not a child of c");
    assert!(listed.iter().all(|e| e.namespace.is_empty()));
    let prefixed = collect(store.entries(ListOptions::new().key_prefix("key:001"))).await;
    assert_eq!(prefixed.len(), 100);

    clock.advance(Duration::from_secs(1));
    let own = collect(store.entries(ListOptions::new())).await;
    assert_eq!(own.len(), 1250, "expired entries are never listed");
    let usage = store.usage().await.unwrap();
    assert_eq!((usage.live, usage.expired), (1260, 1260));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_refuses_entries_without_values_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("s.redb")).unwrap();
    let mut entries = entries(&[], 3, u64::MAX);
    entries[2].value = None;
    let err = store.import_entries(entries).await.unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(!store.exists("key:00000").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_lists_exactly_its_namespace_with_exact_expiries() {
    let server = Server::shared(Kind::Redis);
    let root = unique("listing");
    let store: RedisStore = Options::namespace(Some(&root))
        .connect(&server.url())
        .await
        .unwrap();
    let glob = store.with_namespace("a*[:%");
    let sibling = store.with_namespace("a*[:%2");
    let at = 4_102_444_800_123; // 2100, to the millisecond
    assert_eq!(
        glob.import_entries(entries(&[], 2500, at)).await.unwrap(),
        2500
    );
    glob.import_entries(entries(&["child:x"], 10, at))
        .await
        .unwrap();
    sibling.import_entries(entries(&[], 10, at)).await.unwrap();
    glob.set("odd:key%3A", Bytes::from_static(b"v"), None)
        .await
        .unwrap();

    let own = collect(glob.entries(ListOptions::new().values(true))).await;
    assert_eq!(own.len(), 2501);
    let third = own.iter().find(|e| e.key == "key:00003").unwrap();
    assert_eq!(third.expires_at, Some(at));
    assert_eq!(third.value.as_deref(), Some(&b"vvv"[..]));
    assert!(own.iter().any(|e| e.key == "odd:key%3A"));
    let all = collect(glob.entries(ListOptions::new().descendants(true))).await;
    assert_eq!(all.len(), 2511, "the sibling a*[:%2 is not listed");
    assert!(all.iter().any(|e| e.namespace == ["child:x"]));
    let prefixed = collect(glob.entries(ListOptions::new().key_prefix("key:001"))).await;
    assert_eq!(prefixed.len(), 100);

    let raw: RedisStore = Options::namespace(None)
        .connect(&server.url())
        .await
        .unwrap();
    let err = raw
        .entries(ListOptions::new())
        .next_page()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NamespaceRequired), "{err:?}");
}
