//! The peer for FileStore's `set`: raw redb committing every set in its own
//! durable write transaction, the way a program without group commit would.
//! N keys `key-{i}`, 100-byte values, C threads sharing the sets (redb runs
//! one write transaction at a time, so they queue on it). Prints the workload
//! runner's JSON line, `system` `redb-one-commit-per-set` (with
//! `-multi-writer` in redb's multi-process mode, FileStore's default), so the
//! two line up.
//!
//! ```text
//! cargo run --release --example redb_baseline -- [--ops 2000] [--concurrency 1,64] [--multi-writer]
//! ```

use std::sync::Arc;
use std::time::Instant;

use redb::{ConcurrencyMode, Database, TableDefinition};

const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("baseline");

fn main() {
    let mut ops = 2_000usize;
    let mut concurrency = vec![1usize, 64];
    let mut multi_writer = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--ops" => ops = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--concurrency" => {
                concurrency = args
                    .next()
                    .map(|v| v.split(',').filter_map(|c| c.parse().ok()).collect())
                    .unwrap_or_default()
            }
            "--multi-writer" => multi_writer = true,
            _ => ops = 0,
        }
    }
    if ops == 0 || concurrency.is_empty() || concurrency.contains(&0) {
        eprintln!("usage: redb_baseline [--ops N] [--concurrency 1,64] [--multi-writer]");
        std::process::exit(2);
    }
    let system = if multi_writer {
        "redb-one-commit-per-set-multi-writer"
    } else {
        "redb-one-commit-per-set"
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    for c in concurrency {
        let path = dir.path().join(format!("baseline-{c}.redb"));
        let mut builder = Database::builder();
        if multi_writer {
            builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
        }
        let db = Arc::new(builder.create(&path).expect("a database"));
        let keys: Arc<[String]> = (0..ops).map(|i| format!("key-{i}")).collect();
        let start = Instant::now();
        let threads: Vec<_> = (0..c)
            .map(|t| {
                let (db, keys) = (db.clone(), keys.clone());
                std::thread::spawn(move || {
                    let value = [7u8; 100];
                    for key in keys.iter().skip(t).step_by(c) {
                        let txn = db.begin_write().unwrap();
                        txn.open_table(TABLE)
                            .unwrap()
                            .insert(key.as_str(), &value[..])
                            .unwrap();
                        txn.commit().unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"system\":\"{system}\",\"op\":\"set\",\"concurrency\":{c},\"ops\":{ops},\"value_size\":100,\"secs\":{secs:.6},\"ops_per_s\":{:.1}}}",
            ops as f64 / secs
        );
    }
}
