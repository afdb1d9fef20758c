//! The one workload code every measurement shares: the criterion benches
//! (`mod common;`) and the JSON-lines runners `examples/workload.rs` and
//! `examples/ext_workload.rs` (`#[path = "../benches/common/mod.rs"]`).
//!
//! Stores are handled as `Arc<dyn Store>`, so one copy serves every backend;
//! the timing helper takes a closure, so it serves other clients too.
#![allow(dead_code)] // each bench and example uses part of it

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::iter::StepBy;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use kvstores::{FullStore, Store};
use tokio::runtime::Runtime;

/// `n` keys `{prefix}-{i}`, as the standard workload names them.
pub fn keys(n: usize, prefix: &str) -> Arc<[String]> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// A 100-byte value, the standard workload's size.
pub fn value() -> Bytes {
    Bytes::from(vec![7u8; 100])
}

/// `count` values of `size` pseudo-random bytes (xorshift: reproducible, and
/// no dependency for something this small).
pub fn random_values(count: usize, size: usize) -> Arc<[Bytes]> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..count)
        .map(|_| {
            (0..size)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect::<Vec<u8>>()
                .into()
        })
        .collect()
}

/// A multi-threaded tokio runtime, as the standard workload uses.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A shared handle on `store`, as the helpers here take it.
pub fn shared<S: Store + Clone + 'static>(store: &S) -> Arc<dyn Store> {
    Arc::new(store.clone())
}

/// The indices one task handles: task `t` of `c` gets `t`, `t + c`,
/// `t + 2c`, … below `n`.
pub type Share = StepBy<Range<usize>>;

/// Splits the indices `0..n` over `concurrency` tokio tasks, runs `work` on
/// each task's [`Share`], and returns the seconds from the first spawn to
/// the end of the last task. `work` is called once per task, so whatever it
/// clones for its task (a store handle) is cloned outside the per-operation
/// loop.
///
/// # Errors
///
/// The first task's error, in task order, or a panic's message.
pub async fn timed<F, Fut>(concurrency: usize, n: usize, work: F) -> Result<f64, String>
where
    F: Fn(Share) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| tokio::spawn(work((task..n).step_by(concurrency))))
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Stores `keys[i]` with the value and expiry `entry(i)` gives, on 64 tasks
/// (setup, not measured: loading one set at a time would make a durable
/// FileStore spend its time here, one fsync per key, measuring nothing).
///
/// # Errors
///
/// The first failed `set`, with its key.
pub async fn load<E>(store: &Arc<dyn Store>, keys: &Arc<[String]>, entry: E) -> Result<(), String>
where
    E: Fn(usize) -> (Bytes, Option<Duration>) + Clone + Send + 'static,
{
    timed(64, keys.len(), |share| {
        let (store, keys, entry) = (store.clone(), keys.clone(), entry.clone());
        async move {
            for i in share {
                let (value, ttl) = entry(i);
                store
                    .set(&keys[i], value, ttl)
                    .await
                    .map_err(|e| format!("set {}: {e}", keys[i]))?;
            }
            Ok(())
        }
    })
    .await
    .map(drop)
}

/// One result line of `BENCH.md`'s format:
///
/// ```text
/// {"system":"kvstores-memory","op":"get_hit","concurrency":64,"ops":20000,"value_size":100,"secs":0.012300,"ops_per_s":1626016.3}
/// ```
///
/// `value_size` appears when known; `keys_per_s` (after `ops_per_s`) when
/// each operation handles `keys_per_op` keys.
pub struct Line<'a> {
    /// `kvstores-memory`, `kvstores-file-exclusive`, a peer's name…
    pub system: &'a str,
    pub op: &'a str,
    pub concurrency: usize,
    pub ops: usize,
    pub value_size: Option<usize>,
    pub secs: f64,
    pub keys_per_op: Option<usize>,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug quotes a name and escapes `"` and `\` as JSON does; names
        // are the runners' own and hold no control characters, the one
        // thing Debug would escape otherwise.
        let per_s = self.ops as f64 / self.secs;
        write!(
            f,
            "{{\"system\":{:?},\"op\":{:?},\"concurrency\":{},\"ops\":{}",
            self.system, self.op, self.concurrency, self.ops
        )?;
        if let Some(size) = self.value_size {
            write!(f, ",\"value_size\":{size}")?;
        }
        write!(f, ",\"secs\":{:.6},\"ops_per_s\":{per_s:.1}", self.secs)?;
        if let Some(keys) = self.keys_per_op {
            write!(f, ",\"keys_per_s\":{:.1}", per_s * keys as f64)?;
        }
        f.write_str("}")
    }
}

/// [`load`] with the 100-byte [`value`] and one expiry for every key, for
/// the benches.
///
/// # Panics
///
/// If a `set` fails: a bench has nothing to measure then.
pub async fn fill(store: &Arc<dyn Store>, keys: &Arc<[String]>, ttl: Option<Duration>) {
    load(store, keys, move |_| (value(), ttl))
        .await
        .expect("loading the store");
}

/// The criterion group `name` of each `Store` operation, one at a time, on
/// `store` holding `keys` (each expiring after `ttl`, which `set` keeps):
/// `get_hit`, `get_miss` (of `missing`), `get_renew`, `exists`,
/// `set_overwrite` and `delete_then_set`, cycling through the keys.
pub fn bench_ops(
    c: &mut Criterion,
    name: &str,
    rt: &Runtime,
    store: &dyn Store,
    keys: &[String],
    missing: &[String],
    ttl: Option<Duration>,
) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(1));
    let i = Cell::new(0);
    let next = || {
        i.set((i.get() + 1) % keys.len());
        i.get()
    };
    group.bench_function("get_hit", |b| {
        b.to_async(rt).iter(|| {
            let key = &keys[next()];
            async move { assert!(store.get(key, None).await.unwrap().is_some()) }
        })
    });
    group.bench_function("get_miss", |b| {
        b.to_async(rt).iter(|| {
            let key = &missing[next()];
            async move { assert!(store.get(key, None).await.unwrap().is_none()) }
        })
    });
    group.bench_function("get_renew", |b| {
        b.to_async(rt).iter(|| {
            let key = &keys[next()];
            async move { assert!(store.get(key, ttl).await.unwrap().is_some()) }
        })
    });
    group.bench_function("exists", |b| {
        b.to_async(rt).iter(|| {
            let key = &keys[next()];
            async move { assert!(store.exists(key).await.unwrap()) }
        })
    });
    group.bench_function("set_overwrite", |b| {
        b.to_async(rt).iter(|| {
            let key = &keys[next()];
            async move { store.set(key, value(), ttl).await.unwrap() }
        })
    });
    group.bench_function("delete_then_set", |b| {
        b.to_async(rt).iter(|| {
            let key = &keys[next()];
            async move {
                store.delete(key).await.unwrap();
                store.set(key, value(), ttl).await.unwrap();
            }
        })
    });
    group.finish();
}

/// The body of a removal bench's `iter_custom`: `iters` times, refills
/// `victim` with `victims` (expiring after `ttl`) and calls `prepare`, both
/// untimed, then times `remove` alone. Returns the time spent removing.
pub fn time_removals<P, F, Fut>(
    rt: &Runtime,
    iters: u64,
    victim: &Arc<dyn Store>,
    victims: &Arc<[String]>,
    ttl: Option<Duration>,
    mut prepare: P,
    remove: F,
) -> Duration
where
    P: FnMut(),
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    rt.block_on(async {
        let mut spent = Duration::ZERO;
        for _ in 0..iters {
            fill(victim, victims, ttl).await;
            prepare();
            let start = Instant::now();
            remove().await;
            spent += start.elapsed();
        }
        spent
    })
}

/// Connects a runner to the Redis or Valkey server `url` (or the backend's
/// default URL), with its keys under the root segment `root`, which the
/// runner empties with `delete_all` and nothing else shares.
///
/// # Errors
///
/// An unknown or not compiled-in `backend`, or the connection's error.
pub async fn connect_server(
    backend: &str,
    url: Option<&str>,
    root: &str,
) -> Result<Arc<dyn FullStore>, String> {
    let _ = (url, root); // unused without a server backend
    match backend {
        #[cfg(feature = "redis")]
        "redis" | "valkey" => {
            let url = url.unwrap_or(if backend == "redis" {
                kvstores::RedisStore::DEFAULT_URL
            } else {
                kvstores::RedisStore::VALKEY_DEFAULT_URL
            });
            // A comma-separated list of URLs names a cluster's nodes.
            #[cfg(feature = "cluster")]
            let builder = if url.contains(',') {
                kvstores::RedisStore::cluster_builder(url.split(','))
            } else {
                kvstores::RedisStore::builder(url)
            };
            #[cfg(not(feature = "cluster"))]
            let builder = kvstores::RedisStore::builder(url);
            builder
                .namespace(Some(root))
                .connect()
                .await
                .map(|store| Arc::new(store) as Arc<dyn FullStore>)
                .map_err(|e| e.to_string())
        }
        other => Err(format!(
            "backend {other:?} is unknown or not compiled in (build with --features full)"
        )),
    }
}
