//! What the criterion benches share: keys, values, and loading a store.
#![allow(dead_code)] // each bench uses part of it

use std::time::Duration;

use bytes::Bytes;
use kvstores::Store;
use tokio::runtime::Runtime;

/// `n` keys `{prefix}-{i}`, as the standard workload names them.
pub fn keys(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A 100-byte value, the standard workload's size.
pub fn value() -> Bytes {
    Bytes::from(vec![7u8; 100])
}

/// A multi-threaded tokio runtime, as the standard workload uses.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Sets every key of `keys` in `store` on 64 tasks (setup, not measured).
pub async fn load<S: Store + Clone + 'static>(store: &S, keys: &[String], ttl: Option<Duration>) {
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let store = store.clone();
            let keys: Vec<String> = keys.iter().skip(t).step_by(64).cloned().collect();
            tokio::spawn(async move {
                for key in keys {
                    store.set(&key, value(), ttl).await.expect("a set");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a loader task");
    }
}
