//! FileStore micro-benchmarks (`cargo bench --bench file`).
//!
//! A durable write waits for an fsync (about a millisecond here), which
//! would hide everything else a write costs; so these run in the fast
//! configuration — `exclusive` with `FileDurability::Periodic(1 s)` — except
//! `file/durable_set`, one write at a time in the default (durable,
//! multi-process) configuration, which measures the commit. The standard
//! workload (`examples/workload.rs`, `scripts/compare.sh`) reports both
//! configurations at concurrency 1 and 64.
//!
//! - `file/op/{1000,100000}`: each Store operation, one at a time, on a store
//!   of that many keys (100-byte values).
//! - `file/durable_set`: a durable `set`, one at a time.
//! - `file/delete_expired` and `file/delete_all_namespace`: removing 1,000
//!   entries from stores of 10k and 100k keys; `examples/scaling.rs` gives
//!   the same at 10k, 100k and 1M in the default configuration.
//!
//! Expiry runs on a `ManualClock`, so nothing here sleeps.

mod common;

use std::time::Duration;

use common::{fill, runtime, shared, time_removals, value};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kvstores::{FileDurability, FileStore, ManualClock, NamespacedStore, Store};

const REMOVED: usize = 1_000;
const TTL: Option<Duration> = Some(Duration::from_secs(300));

fn fast_store(path: &std::path::Path, clock: &ManualClock) -> FileStore {
    FileStore::builder(path)
        .exclusive(true)
        .durability(FileDurability::Periodic(Duration::from_secs(1)))
        .clock(clock.clone())
        .open()
        .expect("a FileStore")
}

fn operations(c: &mut Criterion) {
    let rt = runtime();
    for size in [1_000, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let store = fast_store(&dir.path().join("ops.redb"), &clock);
        let keys = common::keys(size, "key");
        let missing = common::keys(size, "missing");
        rt.block_on(fill(&shared(&store), &keys, TTL));

        let name = format!("file/op/{size}");
        common::bench_ops(c, &name, &rt, &store, &keys, &missing, TTL);
    }
}

fn durable_set(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path().join("durable.redb")).unwrap();
    let keys = common::keys(1_000, "key");
    let mut group = c.benchmark_group("file");
    group.throughput(Throughput::Elements(1)).sample_size(20);
    let mut i = 0;
    group.bench_function("durable_set", |b| {
        b.to_async(&rt).iter(|| {
            i = (i + 1) % keys.len();
            let (key, store) = (&keys[i], &store);
            async move { store.set(key, value(), None).await.unwrap() }
        })
    });
    group.finish();
}

fn scaling(c: &mut Criterion) {
    let rt = runtime();
    let victims = common::keys(REMOVED, "victim");

    let mut group = c.benchmark_group("file/delete_expired");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(REMOVED as u64));
    for total in [10_000, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let store = fast_store(&dir.path().join("expiry.redb"), &clock);
        rt.block_on(fill(
            &shared(&store),
            &common::keys(total - REMOVED, "kept"),
            None,
        ));
        let handle = shared(&store);
        let store = &store;
        group.bench_with_input(BenchmarkId::from_parameter(total), &total, |b, _| {
            b.iter_custom(|iters| {
                let expiring = Some(Duration::from_secs(1));
                let advance = || clock.advance(Duration::from_secs(1));
                time_removals(&rt, iters, &handle, &victims, expiring, advance, || async {
                    assert_eq!(store.delete_expired().await.unwrap(), REMOVED);
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("file/delete_all_namespace");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(REMOVED as u64));
    for total in [10_000, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new();
        let root = fast_store(&dir.path().join("namespaces.redb"), &clock);
        rt.block_on(fill(
            &shared(&root.with_namespace("other")),
            &common::keys(total - REMOVED, "kept"),
            None,
        ));
        let victim = root.with_namespace("victim");
        let handle = shared(&victim);
        group.bench_with_input(BenchmarkId::from_parameter(total), &total, |b, _| {
            b.iter_custom(|iters| {
                time_removals(
                    &rt,
                    iters,
                    &handle,
                    &victims,
                    None,
                    || {},
                    || async { handle.delete_all().await.unwrap() },
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, operations, durable_set, scaling);
criterion_main!(benches);
