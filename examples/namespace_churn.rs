//! A namespace per session: the resident memory of a `MemoryStore` that
//! hands out 1,000,000 short-lived namespaces, each written, read and
//! emptied in turn.
//!
//! ```text
//! cargo run --release --example namespace_churn -- [--sessions 1000000] \
//!     [--keys 3] [--end delete|expire]
//! ```
//!
//! Each session takes `root.with_namespace("session-{i}")`, writes `--keys`
//! keys of 100 bytes, reads them back and drops its handle. With `--end
//! delete` the session then deletes its keys; with `--end expire` its keys
//! carry a one-second expiry on a manual clock that is moved on, and
//! `delete_expired` is called on the root, every 1,000 sessions. A line of
//! JSON gives the resident set size (Linux, `/proc/self/statm`) after the
//! first 10,000 sessions and after every tenth of the run.

use std::time::Duration;

use kvstores::{Bytes, ManualClock, MemoryStore, NamespacedStore, Store};

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

fn main() {
    let mut sessions = 1_000_000usize;
    let mut keys = 3usize;
    let mut expire = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().expect("every flag takes a value");
        match flag.as_str() {
            "--sessions" => sessions = value.parse().expect("--sessions"),
            "--keys" => keys = value.parse().expect("--keys"),
            "--end" => expire = value == "expire",
            other => panic!("unknown flag {other}"),
        }
    }
    let clock = ManualClock::new();
    let root = MemoryStore::builder().clock(clock.clone()).build();
    let value = Bytes::from(vec![7u8; 100]);
    let ttl = expire.then_some(Duration::from_secs(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let report = |done: usize| {
        println!(
            "{{\"sessions\":{done},\"end\":\"{}\",\"rss_kib\":{}}}",
            if expire { "expire" } else { "delete" },
            rss_kib()
        );
    };
    runtime.block_on(async {
        for i in 0..sessions {
            let session = root.with_namespace(&format!("session-{i}"));
            for k in 0..keys {
                session
                    .set(&format!("k{k}"), value.clone(), ttl)
                    .await
                    .unwrap();
            }
            for k in 0..keys {
                assert!(session.get(&format!("k{k}"), None).await.unwrap().is_some());
            }
            if expire {
                if i % 1_000 == 999 {
                    clock.advance(Duration::from_secs(2));
                    root.delete_expired().await;
                }
            } else {
                for k in 0..keys {
                    session.delete(&format!("k{k}")).await.unwrap();
                }
            }
            let done = i + 1;
            if done == 10_000.min(sessions) || done % (sessions / 10).max(1) == 0 {
                report(done);
            }
        }
    });
}
