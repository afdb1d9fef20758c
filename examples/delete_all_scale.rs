//! Times `delete_all` of a namespace of N keys on a Redis/Valkey server or
//! cluster (the issue-13 measurement; the standard workload has no such op).
//!
//! ```text
//! cargo run --release --features full --example delete_all_scale -- \
//!     --url redis://127.0.0.1:6379[,redis://127.0.0.1:7001...] [--keys 100000]
//! ```
//!
//! A comma-separated URL list is a cluster. Prints one JSON line. The keys
//! go under the root segment `kvstores-delete-all-scale`, which the run
//! empties; nothing else on the server is touched.

use std::time::Instant;

use kvstores::{BatchStore, Bytes, RedisStore, Store};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut url = RedisStore::DEFAULT_URL.to_owned();
    let mut keys = 100_000usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--url" => url = args.next().ok_or("--url needs a value")?,
            "--keys" => keys = args.next().ok_or("--keys needs a value")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let cluster = url.contains(',');
    let builder = if cluster {
        RedisStore::cluster_builder(url.split(','))
    } else {
        RedisStore::builder(&url)
    };
    let store = builder
        .namespace(Some("kvstores-delete-all-scale"))
        .connect()
        .await?;
    store.delete_all().await?;
    let names: Vec<String> = (0..keys).map(|i| format!("key-{i}")).collect();
    let value = Bytes::from(vec![b'v'; 100]);
    for chunk in names.chunks(1000) {
        let batch: Vec<(&str, Bytes)> = chunk.iter().map(|k| (&k[..], value.clone())).collect();
        store.set_many(&batch, None).await?;
    }
    let started = Instant::now();
    store.delete_all().await?;
    let secs = started.elapsed().as_secs_f64();
    assert!(!store.exists("key-0").await?);
    println!(
        "{{\"system\":\"kvstores-redis{}\",\"op\":\"delete_all\",\"keys\":{keys},\"secs\":{secs:.4},\"keys_per_s\":{:.1}}}",
        if cluster { "-cluster" } else { "" },
        keys as f64 / secs
    );
    Ok(())
}
