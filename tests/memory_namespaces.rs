//! A MemoryStore that hands out a namespace per session does not grow with
//! the number of sessions. Alone in its file so that its process's resident
//! memory is its own.
#![cfg(all(feature = "memory", target_os = "linux"))]

use std::time::Duration;

use kvstores::{Bytes, ManualClock, MemoryStore, NamespacedStore, Store};

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

/// Runs sessions `range`, each writing three keys in a namespace of its
/// own: with expiries that a manual clock then passes, every other session,
/// or deleted by the session itself.
async fn sessions(root: &MemoryStore, clock: &ManualClock, range: std::ops::Range<usize>) {
    let value = Bytes::from(vec![7u8; 100]);
    for i in range {
        let session = root.with_namespace(&format!("session-{i}"));
        let expire = i % 2 == 0;
        let ttl = expire.then_some(Duration::from_secs(1));
        for key in ["user", "cart", "csrf"] {
            session.set(key, value.clone(), ttl).await.unwrap();
        }
        assert!(session.get("cart", None).await.unwrap().is_some());
        if !expire {
            for key in ["user", "cart", "csrf"] {
                session.delete(key).await.unwrap();
            }
        }
        if i % 1_000 == 999 {
            clock.advance(Duration::from_secs(2));
            assert_eq!(root.delete_expired().await, 1_500);
        }
    }
}

/// 1,000,000 sessions in a release build, 50,000 in a debug one (a few
/// seconds); either way far more than it would take to see a per-
/// namespace leak (the old node per namespace cost over a kilobyte: 50 MB).
#[tokio::test]
async fn resident_memory_stays_flat_over_short_lived_namespaces() {
    let count = if cfg!(debug_assertions) {
        50_000
    } else {
        1_000_000
    };
    let clock = ManualClock::new();
    let root = MemoryStore::builder().clock(clock.clone()).build();
    sessions(&root, &clock, 0..10_000).await;
    let warm = rss_kib();
    sessions(&root, &clock, 10_000..10_000 + count).await;
    let grown = rss_kib().saturating_sub(warm);
    assert!(
        grown < 8 * 1024,
        "resident memory grew by {grown} KiB over {count} sessions"
    );
}
