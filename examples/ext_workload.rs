//! Throughput of the extension operations, per backend: `increment` and
//! `get_many` of 20 keys, in the JSON-lines format of `examples/workload.rs`.
//!
//! ```text
//! cargo run --release --features full --example ext_workload -- \
//!     --backend memory|file|redis|valkey [--url URL] [--ops 20000] [--concurrency 1,64]
//! ```
//!
//! - `increment`: N increments, spread over 100 counters (`counter-{i % 100}`),
//!   as a rate limiter keyed by client would see them; the total is checked.
//! - `get_many20`: N keys of 100 bytes are set first; then N / 20 calls each
//!   read 20 consecutive keys, every value checked. `ops_per_s` counts calls;
//!   `keys_per_s` counts keys.
//!
//! Concurrency C is C tokio tasks sharing the work, each on a clone of one
//! store. The file backend runs in its default (durable, multi-process)
//! mode on a new temporary file; Redis/Valkey use the root segment
//! `kvstores-ext-workload`, emptied before each op.

#[path = "../benches/common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::sync::Arc;

use kvstores::{Bytes, FullStore, MemoryStore};

const COUNTERS: usize = 100;
const BATCH: usize = 20;

fn main() -> ExitCode {
    let mut backend = String::new();
    let mut url = None;
    let mut ops = 20_000usize;
    let mut concurrency = vec![1usize, 64];
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--backend" => backend = value,
            "--url" => url = Some(value),
            "--ops" => ops = value.parse().expect("--ops: a number"),
            "--concurrency" => {
                concurrency = value
                    .split(',')
                    .map(|c| c.parse().expect("--concurrency: numbers"))
                    .collect()
            }
            other => {
                eprintln!("unknown argument {other:?}");
                return ExitCode::from(2);
            }
        }
    }
    let runtime = common::runtime();
    runtime.block_on(async {
        let system = format!("kvstores-{backend}");
        match backend.as_str() {
            "memory" => run(&system, Arc::new(MemoryStore::new()), ops, &concurrency).await,
            #[cfg(feature = "file")]
            "file" => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let store = kvstores::FileStore::open(dir.path().join("ext.redb")).expect("open");
                run(&system, Arc::new(store), ops, &concurrency).await
            }
            backend => {
                let store =
                    match common::connect_server(backend, url.as_deref(), "kvstores-ext-workload")
                        .await
                    {
                        Ok(store) => store,
                        Err(message) => {
                            eprintln!("{message}");
                            return ExitCode::from(2);
                        }
                    };
                run(&system, store, ops, &concurrency).await
            }
        }
        ExitCode::SUCCESS
    })
}

async fn run(system: &str, store: Arc<dyn FullStore>, ops: usize, concurrency: &[usize]) {
    let keys = common::keys(ops, "key");
    let value = common::value();
    for &c in concurrency {
        store.delete_all().await.expect("delete_all");
        let secs = common::timed(c, ops, |share| {
            let store = store.clone();
            async move {
                for i in share {
                    let key = format!("counter-{}", i % COUNTERS);
                    store.increment(&key, 1, None).await.expect("increment");
                }
                Ok(())
            }
        })
        .await
        .expect("increments");
        let total: i64 = counters_sum(&*store).await;
        assert_eq!(total, ops as i64, "increments lost");
        print(system, "increment", c, ops, secs, None);

        store.delete_all().await.expect("delete_all");
        for chunk in keys.chunks(1000) {
            let entries: Vec<(&str, Bytes)> =
                chunk.iter().map(|k| (k.as_str(), value.clone())).collect();
            store.set_many(&entries, None).await.expect("set_many");
        }
        let calls = ops / BATCH;
        let secs = common::timed(c, calls, |share| {
            let (store, keys, value) = (store.clone(), keys.clone(), value.clone());
            async move {
                for i in share {
                    let batch: Vec<&str> = keys[i * BATCH..(i + 1) * BATCH]
                        .iter()
                        .map(String::as_str)
                        .collect();
                    let got = store.get_many(&batch).await.expect("get_many");
                    assert!(
                        got.iter().all(|v| v.as_ref() == Some(&value)),
                        "wrong values"
                    );
                }
                Ok(())
            }
        })
        .await
        .expect("get_many");
        print(system, "get_many20", c, calls, secs, Some(BATCH));
    }
    store.delete_all().await.expect("delete_all");
}

/// The sum of all counters, read back in one batch.
async fn counters_sum(store: &dyn FullStore) -> i64 {
    let names: Vec<String> = (0..COUNTERS).map(|i| format!("counter-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let values = store.get_many(&names).await.expect("get_many");
    values
        .iter()
        .flatten()
        .map(|v| std::str::from_utf8(v).unwrap().parse::<i64>().unwrap())
        .sum()
}

fn print(system: &str, op: &str, concurrency: usize, ops: usize, secs: f64, batch: Option<usize>) {
    let line = common::Line {
        system,
        op,
        concurrency,
        ops,
        value_size: None,
        secs,
        keys_per_op: batch,
    };
    println!("{line}");
}
