//! MemoryStore: the behaviour suite, then what only an in-process store does.
#![cfg(feature = "memory")]

mod suite;

use std::time::Duration;

use kvstores::{Bytes, ManualClock, MemoryStore, NamespacedStore, Store};

contract_suite!(async { MemoryStore::new() });

fn store_on(clock: &ManualClock) -> MemoryStore {
    MemoryStore::builder().clock(clock.clone()).build()
}

#[tokio::test]
async fn a_key_expires_exactly_at_its_deadline() {
    let clock = ManualClock::new();
    let store = store_on(&clock);
    store
        .set(
            "k",
            Bytes::from_static(b"v"),
            Some(Duration::from_millis(1000)),
        )
        .await
        .unwrap();

    clock.advance(Duration::from_millis(999));
    assert_eq!(
        store.expires_in("k").await.unwrap(),
        Some(Duration::from_millis(1))
    );
    assert!(store.exists("k").await.unwrap());

    clock.advance(Duration::from_millis(1));
    assert!(!store.exists("k").await.unwrap());
    assert_eq!(store.get("k", None).await.unwrap(), None);
    assert_eq!(store.expires_in("k").await.unwrap(), None);
}

#[tokio::test]
async fn renewal_moves_the_deadline_to_now_plus_renew_for() {
    let clock = ManualClock::new();
    let store = store_on(&clock);
    store
        .set("k", Bytes::from_static(b"v"), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(8));
    store.get("k", Some(Duration::from_secs(5))).await.unwrap();
    assert_eq!(
        store.expires_in("k").await.unwrap(),
        Some(Duration::from_secs(5))
    );
    clock.advance(Duration::from_secs(4));
    assert!(
        store.exists("k").await.unwrap(),
        "the old deadline has passed, the new one not"
    );
    clock.advance(Duration::from_secs(1));
    assert!(!store.exists("k").await.unwrap());
    assert_eq!(
        store.delete_expired().await,
        1,
        "the renewed deadline is the one indexed"
    );
}

#[tokio::test]
async fn delete_expired_removes_and_counts_only_what_has_expired() {
    let clock = ManualClock::new();
    let store = store_on(&clock);
    for i in 0..100 {
        let ttl = match i % 4 {
            0 => None,
            1 => Some(Duration::from_secs(1)),
            2 => Some(Duration::from_secs(2)),
            _ => Some(Duration::from_secs(60)),
        };
        store
            .set(&format!("k{i}"), Bytes::from_static(b"v"), ttl)
            .await
            .unwrap();
    }
    assert_eq!(store.delete_expired().await, 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(store.delete_expired().await, 25);
    clock.advance(Duration::from_secs(1));
    assert_eq!(store.delete_expired().await, 25);
    assert_eq!(store.delete_expired().await, 0);
    for i in (0..100).filter(|i| i % 4 == 0 || i % 4 == 3) {
        assert!(store.exists(&format!("k{i}")).await.unwrap(), "k{i}");
    }
}

#[tokio::test]
async fn overwritten_and_deleted_keys_leave_nothing_for_delete_expired() {
    let clock = ManualClock::new();
    let store = store_on(&clock);
    store
        .set("overwritten", Bytes::new(), Some(Duration::from_secs(1)))
        .await
        .unwrap();
    store.set("overwritten", Bytes::new(), None).await.unwrap();
    store
        .set("deleted", Bytes::new(), Some(Duration::from_secs(1)))
        .await
        .unwrap();
    store.delete("deleted").await.unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(store.delete_expired().await, 0);
    assert!(store.exists("overwritten").await.unwrap());
}

#[tokio::test]
async fn delete_expired_on_a_namespace_covers_it_and_its_descendants_only() {
    let clock = ManualClock::new();
    let root = store_on(&clock);
    let parent = root.with_namespace("parent");
    let child = parent.with_namespace("child");
    let sibling = root.with_namespace("sibling");
    for store in [&root, &parent, &child, &sibling] {
        store
            .set("k", Bytes::new(), Some(Duration::from_secs(1)))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(parent.delete_expired().await, 2);
    assert_eq!(root.delete_expired().await, 2);
}

#[tokio::test]
async fn many_clones_on_many_threads_agree() {
    let store = MemoryStore::new();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    for i in 0..1000 {
                        store
                            .set(&format!("{t}-{i}"), Bytes::from(vec![t as u8]), None)
                            .await
                            .unwrap();
                    }
                });
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    for t in 0..4u8 {
        for i in 0..1000 {
            assert_eq!(
                store.get(&format!("{t}-{i}"), None).await.unwrap(),
                Some(Bytes::from(vec![t]))
            );
        }
    }
}

#[test]
fn debug_names_the_namespace() {
    let store = MemoryStore::new().with_namespace("a").with_namespace("b");
    assert_eq!(
        format!("{store:?}"),
        r#"MemoryStore { namespace: ["a", "b"], .. }"#
    );
}
