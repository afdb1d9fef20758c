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
