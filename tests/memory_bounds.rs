//! A bounded MemoryStore holds its bound across every namespace of its root,
//! and chooses its victims store-wide.
#![cfg(feature = "memory")]

use kvstores::{Bytes, MemoryStore, NamespacedStore, Store};

/// How many of `keys` are live in `store`.
async fn live(store: &MemoryStore, keys: impl IntoIterator<Item = String>) -> usize {
    let mut n = 0;
    for key in keys {
        n += usize::from(store.exists(&key).await.unwrap());
    }
    n
}

/// Live keys over namespaces `ns-0..namespaces`, keys `k-0..keys` in each.
async fn live_everywhere(root: &MemoryStore, namespaces: usize, keys: usize) -> usize {
    let mut n = 0;
    for i in 0..namespaces {
        let ns = root.with_namespace(&format!("ns-{i}"));
        n += live(&ns, (0..keys).map(|k| format!("k-{k}"))).await;
    }
    n
}

#[tokio::test]
async fn one_key_namespaces_share_the_entry_bound() {
    let root = MemoryStore::builder().max_entries(500).build();
    for i in 0..2_000 {
        let ns = root.with_namespace(&format!("ns-{i}"));
        ns.set("k-0", Bytes::from_static(b"v"), None).await.unwrap();
    }
    assert_eq!(live_everywhere(&root, 2_000, 1).await, 500);
    assert_eq!(root.stats().evictions, 1_500);
}

#[tokio::test]
async fn namespaces_share_the_byte_bound() {
    // 100 namespaces of 20 keys "k-NN" (4 bytes) with 96-byte values: 200 KB
    // written under a 10,000-byte bound, so at most 100 entries fit.
    let root = MemoryStore::builder().max_bytes(10_000).build();
    for i in 0..100 {
        let ns = root.with_namespace(&format!("ns-{i}"));
        for k in 0..20 {
            let key = format!("k-{k:02}");
            ns.set(&key, Bytes::from(vec![1u8; 96]), None)
                .await
                .unwrap();
        }
    }
    let mut live = 0;
    for i in 0..100 {
        let ns = root.with_namespace(&format!("ns-{i}"));
        for k in 0..20 {
            live += usize::from(ns.exists(&format!("k-{k:02}")).await.unwrap());
        }
    }
    assert!(
        (90..=100).contains(&live),
        "{live} entries of 100 bytes live"
    );
    assert_eq!(root.stats().evictions as usize, 2_000 - live);
}

#[tokio::test]
async fn fresh_keys_of_one_namespace_evict_cold_keys_of_another() {
    let root = MemoryStore::builder().max_entries(1_000).build();
    let (cold, fresh) = (root.with_namespace("cold"), root.with_namespace("fresh"));
    let keys = |n: usize| (0..n).map(|i| format!("key-{i}"));
    for key in keys(1_000) {
        cold.set(&key, Bytes::from_static(b"never read"), None)
            .await
            .unwrap();
    }
    for key in keys(500) {
        fresh
            .set(&key, Bytes::from_static(b"new"), None)
            .await
            .unwrap();
    }
    // CLOCK is approximate per shard: a shard whose cold entries ran out
    // evicts its own fresh ones before other shards', so allow a few.
    let fresh_live = live(&fresh, keys(500)).await;
    assert!(
        fresh_live >= 450,
        "only {fresh_live} of 500 fresh keys kept"
    );
    assert_eq!(live(&cold, keys(1_000)).await + fresh_live, 1_000);
}

#[tokio::test]
async fn read_keys_of_one_namespace_outlive_unread_keys_of_another() {
    let root = MemoryStore::builder().max_entries(1_000).build();
    let (hot, other) = (root.with_namespace("hot"), root.with_namespace("other"));
    let keys = |n: usize| (0..n).map(|i| format!("key-{i}"));
    for key in keys(500) {
        hot.set(&key, Bytes::from_static(b"read"), None)
            .await
            .unwrap();
    }
    for key in keys(500) {
        other
            .set(&key, Bytes::from_static(b"unread"), None)
            .await
            .unwrap();
        assert!(hot.get(&key, None).await.unwrap().is_some());
    }
    for key in keys(500) {
        root.with_namespace("third")
            .set(&key, Bytes::from_static(b"new"), None)
            .await
            .unwrap();
    }
    // The hot keys were written first but read since: their second chance
    // sends the hand on to the unread keys of `other`.
    assert!(live(&hot, keys(500)).await >= 450);
    assert!(live(&other, keys(500)).await <= 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_over_many_namespaces_end_within_the_bound() {
    const MAX: usize = 2_000;
    const TASKS: usize = 64;
    const PER_TASK: usize = 200;
    let root = MemoryStore::builder().max_entries(MAX).build();
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let root = root.clone();
            tokio::spawn(async move {
                for i in 0..PER_TASK {
                    let ns = root.with_namespace(&format!("ns-{}", (t * PER_TASK + i) % 100));
                    let key = format!("k-{t}-{i}");
                    ns.set(&key, Bytes::from_static(b"v"), None).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut live = 0;
    for t in 0..TASKS {
        for i in 0..PER_TASK {
            let ns = root.with_namespace(&format!("ns-{}", (t * PER_TASK + i) % 100));
            live += usize::from(ns.exists(&format!("k-{t}-{i}")).await.unwrap());
        }
    }
    // Each write evicts until the store is within its bound, waiting for no
    // other shard's lock: the slack is the writers caught mid-write, at
    // most one entry per thread (documented on MemoryStoreBuilder::max_bytes).
    assert!((MAX - 4..=MAX + 4).contains(&live), "{live} live for {MAX}");
    let stats = root.stats();
    assert_eq!(stats.sets - stats.evictions, live as u64);
}
