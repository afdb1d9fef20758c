//! A peer for MemoryStore's `get_hit`: a bare `dashmap::DashMap` doing the same
//! lookups (N keys `key-{i}`, 100-byte values) on two OS threads, with no
//! async runtime and no `Store` trait in the way. Prints the workload
//! runner's JSON line, `system` `dashmap-bare`, so the two line up.
//!
//! ```text
//! cargo run --release --example dashmap_baseline -- [--ops 20000] [--threads 2]
//! ```

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dashmap::DashMap;

fn main() {
    let mut ops = 20_000usize;
    let mut threads = 2usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (flag.as_str(), value) {
            ("--ops", Some(v)) => ops = v,
            ("--threads", Some(v)) => threads = v,
            _ => {
                eprintln!("usage: dashmap_baseline [--ops N] [--threads T]");
                std::process::exit(2);
            }
        }
    }
    let map: Arc<DashMap<String, Bytes>> = Arc::new(DashMap::new());
    let keys: Arc<[String]> = (0..ops).map(|i| format!("key-{i}")).collect();
    for key in keys.iter() {
        map.insert(key.clone(), Bytes::from(vec![7u8; 100]));
    }
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (map, keys) = (map.clone(), keys.clone());
            std::thread::spawn(move || {
                for i in (t..keys.len()).step_by(threads) {
                    let value = map.get(&keys[i]).map(|v| v.value().clone());
                    assert!(value.is_some());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{{\"system\":\"dashmap-bare\",\"op\":\"get_hit\",\"concurrency\":{threads},\"ops\":{ops},\"value_size\":100,\"secs\":{secs:.6},\"ops_per_s\":{:.1}}}",
        ops as f64 / secs
    );
}
