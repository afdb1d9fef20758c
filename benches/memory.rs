//! MemoryStore micro-benchmarks (`cargo bench --bench memory`).
//!
//! - `memory/lookup_2_threads`: why MemoryStore has its own sharded map —
//!   the same lookups on two threads through MemoryStore, a bare DashMap, and
//!   one global `RwLock`/`Mutex` around a `HashMap`.
//! - `memory/op`: each Store operation on a store of 10,000 keys.
//! - `memory/delete_expired` and `memory/delete_all_namespace`: removing
//!   10,000 entries from stores of 10k, 100k and 1M, to show the cost follows
//!   what is removed, not the size of the store.
//!
//! MemoryStore's futures complete on their first poll, so they are polled
//! directly here: what is measured is the store, not an executor.

mod common;

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Mutex, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::value;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dashmap::DashMap;
use kvstores::{ManualClock, MemoryStore, NamespacedStore, Store};

const KEYS: usize = 10_000;
const REMOVED: usize = 10_000;

fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("MemoryStore never waits"),
    }
}

/// Times `iters` lookups split over two threads.
fn two_threads(iters: u64, lookup: impl Fn(usize) + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let lookup = &lookup;
            s.spawn(move || {
                for i in 0..iters as usize / 2 {
                    lookup((i * 2 + t) % KEYS);
                }
            });
        }
    });
    start.elapsed()
}

fn lookups(c: &mut Criterion) {
    let keys = common::keys(KEYS, "key");
    let mut group = c.benchmark_group("memory/lookup_2_threads");
    group.throughput(Throughput::Elements(1));

    let store = MemoryStore::new();
    for key in keys.iter() {
        ready(store.set(key, value(), None)).unwrap();
    }
    group.bench_function("kvstores_memory", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |i| {
                assert!(ready(store.get(&keys[i], None)).unwrap().is_some())
            })
        })
    });

    let dashmap: DashMap<String, Bytes> = keys.iter().map(|k| (k.clone(), value())).collect();
    group.bench_function("dashmap", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |i| {
                assert!(dashmap.get(&keys[i]).map(|v| v.clone()).is_some())
            })
        })
    });

    let rwlock: RwLock<HashMap<String, Bytes>> =
        RwLock::new(keys.iter().map(|k| (k.clone(), value())).collect());
    group.bench_function("global_rwlock_hashmap", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |i| {
                assert!(rwlock.read().unwrap().get(&keys[i]).cloned().is_some())
            })
        })
    });

    let mutex: Mutex<HashMap<String, Bytes>> =
        Mutex::new(keys.iter().map(|k| (k.clone(), value())).collect());
    group.bench_function("global_mutex_hashmap", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, |i| {
                assert!(mutex.lock().unwrap().get(&keys[i]).cloned().is_some())
            })
        })
    });
    group.finish();
}

fn operations(c: &mut Criterion) {
    let keys = common::keys(KEYS, "key");
    let missing = common::keys(KEYS, "missing");
    let store = MemoryStore::new();
    let ttl = Some(Duration::from_secs(300));
    for key in keys.iter() {
        ready(store.set(key, value(), ttl)).unwrap();
    }
    let mut group = c.benchmark_group("memory/op");
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    let mut next = || {
        i = (i + 1) % KEYS;
        i
    };
    group.bench_function("get_hit", |b| {
        b.iter(|| ready(store.get(&keys[next()], None)).unwrap())
    });
    group.bench_function("get_miss", |b| {
        b.iter(|| ready(store.get(&missing[next()], None)).unwrap())
    });
    group.bench_function("get_renew", |b| {
        b.iter(|| ready(store.get(&keys[next()], ttl)).unwrap())
    });
    group.bench_function("exists", |b| {
        b.iter(|| ready(store.exists(&keys[next()])).unwrap())
    });
    group.bench_function("set_overwrite", |b| {
        b.iter(|| ready(store.set(&keys[next()], value(), None)).unwrap())
    });
    group.bench_function("set_ttl_overwrite", |b| {
        b.iter(|| ready(store.set(&keys[next()], value(), ttl)).unwrap())
    });
    group.bench_function("delete_then_set", |b| {
        b.iter(|| {
            let key = &keys[next()];
            ready(store.delete(key)).unwrap();
            ready(store.set(key, value(), ttl)).unwrap();
        })
    });
    group.finish();
}

fn scaling(c: &mut Criterion) {
    let victims = common::keys(REMOVED, "victim");
    let mut group = c.benchmark_group("memory/delete_expired");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(REMOVED as u64));
    for total in [10_000, 100_000, 1_000_000] {
        let clock = ManualClock::new();
        let store = MemoryStore::builder().clock(clock.clone()).build();
        for key in common::keys(total - REMOVED, "kept").iter() {
            ready(store.set(key, value(), Some(Duration::from_secs(3600)))).unwrap();
        }
        group.bench_with_input(BenchmarkId::from_parameter(total), &total, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    for key in victims.iter() {
                        ready(store.set(key, value(), Some(Duration::from_secs(1)))).unwrap();
                    }
                    clock.advance(Duration::from_secs(1));
                    let start = Instant::now();
                    let removed = ready(store.delete_expired());
                    spent += start.elapsed();
                    assert_eq!(black_box(removed), REMOVED);
                }
                spent
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("memory/delete_all_namespace");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(REMOVED as u64));
    for total in [10_000, 100_000, 1_000_000] {
        let root = MemoryStore::new();
        let others: Vec<_> = (0..10)
            .map(|i| root.with_namespace(&format!("other-{i}")))
            .collect();
        for (i, key) in common::keys(total - REMOVED, "kept").iter().enumerate() {
            ready(others[i % others.len()].set(key, value(), None)).unwrap();
        }
        let victim = root.with_namespace("victim");
        group.bench_with_input(BenchmarkId::from_parameter(total), &total, |b, _| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    for key in victims.iter() {
                        ready(victim.set(key, value(), None)).unwrap();
                    }
                    let start = Instant::now();
                    ready(victim.delete_all()).unwrap();
                    spent += start.elapsed();
                }
                spent
            })
        });
    }
    group.finish();
}

criterion_group!(benches, lookups, operations, scaling);
criterion_main!(benches);
