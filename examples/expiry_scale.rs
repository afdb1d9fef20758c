//! That `FileStore::delete_expired` costs what has expired, not the size of
//! the store: N keys `key-{i}` with 100-byte values, E of them (spread
//! evenly) expiring after 1 s, the rest never, and one timed
//! `delete_expired()` once they have expired, on the default
//! (durable, multi-process) configuration. The keys are loaded in the fast
//! configuration first, since loading a million keys with one durable commit
//! per batch of 64 would take minutes and is not what is measured. Prints the
//! workload runner's JSON line for the `delete_expired` op.
//!
//! ```text
//! cargo run --release --example expiry_scale -- [--ops 1000000] [--expired 10000]
//! ```

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use kvstores::{FileDurability, FileStore};

#[tokio::main]
async fn main() -> kvstores::Result<()> {
    let mut ops = 1_000_000usize;
    let mut expired = 10_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match (flag.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--ops", Some(n)) if n > 0 => ops = n,
            ("--expired", Some(n)) if n > 0 => expired = n,
            _ => {
                eprintln!("usage: expiry_scale [--ops N] [--expired E]");
                std::process::exit(2);
            }
        }
    }
    let expired = expired.min(ops);
    let every = ops / expired;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("scale.redb");
    {
        let loader = FileStore::builder(&path)
            .exclusive(true)
            .durability(FileDurability::Periodic(Duration::from_secs(1)))
            .open()?;
        let keys = common::keys(ops, "key");
        common::load(&common::shared(&loader), &keys, move |i| {
            let expires = i % every == 0 && i / every < expired;
            (common::value(), expires.then_some(Duration::from_secs(1)))
        })
        .await
        .expect("loading the store");
    }
    let store = FileStore::open(&path)?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let start = Instant::now();
    let removed = store.delete_expired().await?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(removed, expired);
    println!(
        "{{\"system\":\"kvstores-file\",\"op\":\"delete_expired\",\"concurrency\":1,\"ops\":{ops},\"expired\":{expired},\"value_size\":100,\"secs\":{secs:.6}}}"
    );
    Ok(())
}
