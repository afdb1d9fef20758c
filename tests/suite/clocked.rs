//! Expiry on a manual clock, for stores that take a `Clock` and can remove
//! what has expired (MemoryStore, FileStore): exact to the millisecond, with
//! no waiting. A backend joins with its `Expiring` impl and one line:
//!
//! ```ignore
//! clocked_suite!(|clock| async move { MemoryStore::builder().clock(clock).build() });
//! ```

use std::future::Future;
use std::time::Duration;

use kvstores::{Bytes, ManualClock, NamespacedStore};

/// A store whose expired entries can be removed on demand.
pub trait Expiring: NamespacedStore + Clone + 'static {
    /// The backend's `delete_expired`, returning how many it removed.
    fn purge(&self) -> impl Future<Output = usize> + Send;
}

/// Stamps every clocked behaviour as a test; `$make` turns a `ManualClock`
/// into a future of a fresh, empty store on that clock.
#[macro_export]
macro_rules! clocked_suite {
    ($make:expr) => {
        $crate::clocked_suite!(@each $make;
            a_key_expires_exactly_at_its_deadline,
            renewal_moves_the_deadline_to_now_plus_renew_for,
            delete_expired_removes_and_counts_only_what_has_expired,
            delete_expired_on_a_namespace_covers_it_and_its_descendants_only);
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let clock = kvstores::ManualClock::new();
            let store = ($make)(clock.clone()).await;
            suite::clocked::$name(store, clock).await;
        }
    )*};
}

/// A key is live until the millisecond of its deadline, then gone everywhere.
pub async fn a_key_expires_exactly_at_its_deadline<S: Expiring>(store: S, clock: ManualClock) {
    let v = Bytes::from_static(b"v");
    store
        .set("k", v, Some(Duration::from_millis(1000)))
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
    assert_eq!(
        store.get("k", Some(Duration::from_secs(5))).await.unwrap(),
        None
    );
    assert_eq!(store.expires_in("k").await.unwrap(), None);
}

/// A renewal sets the deadline to now + renew_for, and that is what is indexed.
pub async fn renewal_moves_the_deadline_to_now_plus_renew_for<S: Expiring>(
    store: S,
    clock: ManualClock,
) {
    let v = Bytes::from_static(b"v");
    store
        .set("k", v, Some(Duration::from_secs(10)))
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
    assert_eq!(store.purge().await, 0);
    clock.advance(Duration::from_secs(1));
    assert!(!store.exists("k").await.unwrap());
    assert_eq!(store.purge().await, 1);
}

/// delete_expired removes exactly the expired entries and says how many;
/// overwritten and deleted keys leave nothing behind for it.
pub async fn delete_expired_removes_and_counts_only_what_has_expired<S: Expiring>(
    store: S,
    clock: ManualClock,
) {
    for i in 0..100 {
        let ttl = match i % 4 {
            0 => None,
            1 => Some(Duration::from_secs(1)),
            2 => Some(Duration::from_secs(2)),
            _ => Some(Duration::from_secs(60)),
        };
        store
            .set(&format!("k{i}"), Bytes::new(), ttl)
            .await
            .unwrap();
    }
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

    assert_eq!(store.purge().await, 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(store.purge().await, 25);
    clock.advance(Duration::from_secs(1));
    assert_eq!(store.purge().await, 25);
    assert_eq!(store.purge().await, 0);
    for i in 0..100 {
        let live = i % 4 == 0 || i % 4 == 3;
        assert_eq!(store.exists(&format!("k{i}")).await.unwrap(), live, "k{i}");
    }
    assert!(store.exists("overwritten").await.unwrap());
}

/// delete_expired on a namespace covers it and its descendants, not a
/// sibling whose name extends it nor the parent.
pub async fn delete_expired_on_a_namespace_covers_it_and_its_descendants_only<S: Expiring>(
    root: S,
    clock: ManualClock,
) {
    let parent = root.with_namespace("parent");
    let child = parent.with_namespace("child");
    let sibling = root.with_namespace("parent2");
    for store in [&root, &parent, &child, &sibling] {
        store
            .set("k", Bytes::new(), Some(Duration::from_secs(1)))
            .await
            .unwrap();
    }
    clock.advance(Duration::from_secs(1));
    assert_eq!(parent.purge().await, 2);
    assert_eq!(sibling.purge().await, 1, "parent2 is not a child of parent");
    assert_eq!(root.purge().await, 1);
}
