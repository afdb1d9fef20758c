//! How far a bounded `MemoryStore` goes over its bound while 64 tasks on a
//! multi-threaded runtime write new keys into 100 namespaces of one root.
//!
//! ```text
//! cargo run --release --example bound_overshoot -- [--max-entries 10000] \
//!     [--tasks 64] [--namespaces 100] [--writes 2000000] [--threads 2]
//! ```
//!
//! Every write is of a new key, so the store holds `sets - evictions`
//! entries. A monitor thread samples that from [`StoreStats`] as fast as it
//! can while the writers run (a sample can be off by the writes in flight);
//! the final count is exact. One JSON line gives the bound, the largest
//! sample, the final count and the rate.
//!
//! [`StoreStats`]: kvstores::StoreStats

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kvstores::{Bytes, MemoryStore, NamespacedStore, Store};

fn main() {
    let (mut max_entries, mut tasks, mut namespaces, mut writes, mut threads) =
        (10_000usize, 64usize, 100usize, 2_000_000usize, 2usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value: usize = args.next().and_then(|v| v.parse().ok()).expect("a number");
        match flag.as_str() {
            "--max-entries" => max_entries = value,
            "--tasks" => tasks = value,
            "--namespaces" => namespaces = value,
            "--writes" => writes = value,
            "--threads" => threads = value,
            other => panic!("unknown flag {other}"),
        }
    }
    let root = MemoryStore::builder().max_entries(max_entries).build();
    let held = |store: &MemoryStore| {
        let stats = store.stats();
        stats.sets.saturating_sub(stats.evictions)
    };
    let done = Arc::new(AtomicBool::new(false));
    let monitor = {
        let (root, done) = (root.clone(), done.clone());
        std::thread::spawn(move || {
            let mut worst = 0;
            while !done.load(Ordering::Relaxed) {
                worst = worst.max(held(&root));
            }
            worst
        })
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .build()
        .expect("a runtime");
    let start = Instant::now();
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let root = root.clone();
                tokio::spawn(async move {
                    let value = Bytes::from(vec![7u8; 100]);
                    for i in (t..writes).step_by(tasks) {
                        let ns = root.with_namespace(&format!("tenant-{}", i % namespaces));
                        ns.set(&format!("key-{i}"), value.clone(), None)
                            .await
                            .unwrap();
                        if i % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    });
    let secs = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let worst = monitor.join().unwrap();
    println!(
        "{{\"max_entries\":{max_entries},\"tasks\":{tasks},\"namespaces\":{namespaces},\
         \"threads\":{threads},\"writes\":{writes},\"worst_sampled\":{worst},\
         \"final\":{},\"worst_overshoot\":{},\"writes_per_s\":{:.0}}}",
        held(&root),
        worst.saturating_sub(max_entries as u64),
        writes as f64 / secs
    );
}
