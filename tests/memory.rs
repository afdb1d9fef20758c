//! MemoryStore: the behaviour suite, then what only an in-process store does.
#![cfg(feature = "memory")]

mod suite;

use kvstores::{Bytes, ManualClock, MemoryStore, NamespacedStore, Store};

contract_suite!(async { MemoryStore::new() });
clocked_suite!(|clock: ManualClock| async move { MemoryStore::builder().clock(clock).build() });

impl suite::clocked::Expiring for MemoryStore {
    async fn purge(&self) -> usize {
        self.delete_expired().await
    }
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

/// A namespace's entries outlive every handle to it: a namespace is freed
/// when it is empty, never while it holds entries.
#[tokio::test]
async fn a_namespace_keeps_its_entries_after_its_handles_are_dropped() {
    let root = MemoryStore::new();
    let session = root.with_namespace("sessions").with_namespace("abc");
    session
        .set("user", Bytes::from_static(b"ada"), None)
        .await
        .unwrap();
    drop(session);
    let again = root.with_namespace("sessions").with_namespace("abc");
    assert_eq!(
        again.get("user", None).await.unwrap(),
        Some(Bytes::from_static(b"ada"))
    );
    // Emptied and dropped, then written again through a new handle.
    again.delete("user").await.unwrap();
    drop(again);
    let third = root.with_namespace("sessions").with_namespace("abc");
    assert_eq!(third.get("user", None).await.unwrap(), None);
    third
        .set("k", Bytes::from_static(b"v"), None)
        .await
        .unwrap();
    root.with_namespace("sessions").delete_all().await.unwrap();
    assert!(!third.exists("k").await.unwrap());
}

mod listing {
    use std::time::Duration;

    use kvstores::prelude::*;
    use kvstores::{Bytes, Entries, Entry, Error, ListOptions, ManualClock, MemoryStore};

    async fn collect(mut listing: Entries) -> Vec<Entry> {
        let mut all = Vec::new();
        while let Some(page) = listing.next_page().await.unwrap() {
            assert!(!page.is_empty() && page.len() <= 1000);
            all.extend(page);
        }
        all
    }

    fn names(entries: &[Entry]) -> Vec<(String, String)> {
        (entries.iter())
            .map(|e| (e.namespace.join("/"), e.key.clone()))
            .collect()
    }

    /// Listing sees the namespace (and with `descendants` its subtree) in
    /// order, never an expired entry, never a sibling whose name extends it.
    #[tokio::test]
    async fn a_memory_store_lists_in_order_and_hides_what_expired() {
        let clock = ManualClock::new();
        let root = MemoryStore::builder().clock(clock.clone()).build();
        let store = root.with_namespace("app");
        for i in (0..2500).rev() {
            store
                .set(&format!("k{i:04}"), Bytes::from_static(b"v"), None)
                .await
                .unwrap();
        }
        let second = Some(Duration::from_secs(1));
        store.set("gone", Bytes::new(), second).await.unwrap();
        store
            .with_namespace("c")
            .set("x", Bytes::new(), None)
            .await
            .unwrap();
        root.with_namespace("app2")
            .set("y", Bytes::new(), None)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(1));

        let own = collect(store.entries(ListOptions::new())).await;
        assert_eq!(own.len(), 2500);
        assert!(own.windows(2).all(|w| w[0].key < w[1].key));
        assert!(own.iter().all(|e| e.value.is_none() && e.size == 1));

        let all = collect(store.entries(ListOptions::new().descendants(true))).await;
        assert_eq!(all.len(), 2501);
        assert_eq!(names(&all[2500..]), [("c".to_owned(), "x".to_owned())]);

        let some = collect(store.entries(ListOptions::new().key_prefix("k000"))).await;
        assert_eq!(some.len(), 10);
    }

    /// Entries listed with values import into another store with their
    /// namespaces and absolute expiries; expired ones are skipped, and an
    /// entry without a value is refused before anything is written.
    #[tokio::test]
    async fn a_memory_store_imports_what_it_lists() {
        let clock = ManualClock::new();
        let from = MemoryStore::builder().clock(clock.clone()).build();
        let hour = Duration::from_secs(3600);
        from.set("a", Bytes::from_static(b"1"), Some(hour))
            .await
            .unwrap();
        from.with_namespace("n")
            .set("b", Bytes::from_static(b"2"), None)
            .await
            .unwrap();
        let listed = collect(from.entries(ListOptions::new().descendants(true).values(true))).await;
        assert_eq!(listed.len(), 2);

        let to = MemoryStore::builder().clock(clock.clone()).build();
        let mut expired = Entry::new("old", Bytes::new(), Some(clock.now_millis()));
        expired.namespace = vec!["n".to_owned()];
        let mut all = listed.clone();
        all.push(expired);
        assert_eq!(to.import_entries(all).await.unwrap(), 2);
        assert_eq!(to.expires_in("a").await.unwrap(), Some(hour));
        assert_eq!(
            to.with_namespace("n").get("b", None).await.unwrap(),
            Some(Bytes::from_static(b"2"))
        );
        assert!(!to.with_namespace("n").exists("old").await.unwrap());

        let no_value = collect(from.entries(ListOptions::new())).await;
        let err = to.import_entries(no_value).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    }
}
