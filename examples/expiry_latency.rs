//! The latency probe of issue 16: how long concurrent `get` and `set` wait
//! while `delete_expired` removes many expired entries from a large store.
//!
//! ```text
//! cargo run --release --example expiry_latency -- [--backend file|memory] \
//!     [--keys 1000000] [--expired 100000] [--readers 4] [--writers 4] [--repeat 3] [--exclusive]
//! ```
//!
//! The store holds `--keys` entries, of which `--expired` (`victim-{i}`,
//! spread through the key order) expire after 1 s on a `ManualClock` and
//! the rest (`key-{i}`) after an hour. Once the clock has been advanced past
//! the victims' expiry, `--readers` tasks get random live keys and
//! `--writers` tasks overwrite random live keys, each one operation at a
//! time, for one second (the `idle` phase: latency without a purge), then
//! while one `delete_expired()` call runs (the `purge` phase; every
//! operation started before it returned counts). FileStore runs in its
//! default configuration (durable, multi-process; `--exclusive` for this
//! process alone); its entries are loaded beforehand in the fast one.
//!
//! One JSON line per phase and run, the workload runner's fields plus the
//! store's size and the latency quantiles in milliseconds:
//!
//! ```text
//! {"system":"kvstores-file","op":"delete_expired_latency","phase":"purge","store_keys":1000000,"expired":100000,
//!  "secs":0.41,"get_ops":9000,"get_p50_ms":0.1,"get_p99_ms":3.2,"get_max_ms":9.0,"set_ops":300,...}
//! ```

#[path = "../benches/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kvstores::{Bytes, FileDurability, FileStore, ManualClock, MemoryStore, Store};

const LIVE_TTL: Option<Duration> = Some(Duration::from_secs(3600));
const VICTIM_TTL: Option<Duration> = Some(Duration::from_secs(1));

struct Args {
    backend: String,
    keys: usize,
    expired: usize,
    readers: usize,
    writers: usize,
    repeat: usize,
    exclusive: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        backend: "file".to_owned(),
        keys: 1_000_000,
        expired: 100_000,
        readers: 4,
        writers: 4,
        repeat: 3,
        exclusive: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--exclusive" {
            args.exclusive = true;
            continue;
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<usize>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--backend" => args.backend = value.clone(),
            "--keys" => args.keys = number()?,
            "--expired" => args.expired = number()?,
            "--readers" => args.readers = number()?,
            "--writers" => args.writers = number()?,
            "--repeat" => args.repeat = number()?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if args.expired == 0 || args.expired >= args.keys || args.repeat == 0 {
        return Err("--expired must be positive and below --keys; --repeat positive".into());
    }
    if args.readers + args.writers == 0 {
        return Err("at least one reader or writer".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse_args().map_err(|message| {
        format!(
            "{message}\nusage: expiry_latency [--backend file|memory] [--keys 1000000] [--expired 100000] \
             [--readers 4] [--writers 4] [--repeat 3] [--exclusive]"
        )
    })?;
    let live = common::keys(args.keys - args.expired, "key");
    let victims = common::keys(args.expired, "victim");
    let clock = ManualClock::new();
    match args.backend.as_str() {
        "memory" => {
            let store = MemoryStore::builder().clock(clock.clone()).build();
            load(&store, &live, LIVE_TTL).await?;
            for _ in 0..args.repeat {
                load(&store, &victims, VICTIM_TTL).await?;
                let purge = |s: MemoryStore| async move { Ok(s.delete_expired().await) };
                probe("kvstores-memory", &store, &clock, &live, &args, purge).await?;
            }
        }
        "file" => {
            let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
            let path = dir.path().join("expiry_latency.redb");
            let fast = || {
                FileStore::builder(&path)
                    .exclusive(true)
                    .durability(FileDurability::Periodic(Duration::from_secs(1)))
                    .clock(clock.clone())
                    .open()
                    .map_err(|e| e.to_string())
            };
            load(&fast()?, &live, LIVE_TTL).await?;
            let system = if args.exclusive {
                "kvstores-file-exclusive"
            } else {
                "kvstores-file"
            };
            for _ in 0..args.repeat {
                // Each handle is dropped before the next opens: a path open
                // in this process must be reopened with the same options.
                load(&fast()?, &victims, VICTIM_TTL).await?;
                let store = FileStore::builder(&path)
                    .exclusive(args.exclusive)
                    .clock(clock.clone())
                    .open()
                    .map_err(|e| e.to_string())?;
                let purge = |s: FileStore| async move {
                    s.delete_expired().await.map_err(|e| e.to_string())
                };
                probe(system, &store, &clock, &live, &args, purge).await?;
            }
        }
        other => return Err(format!("unknown backend {other:?}: file or memory")),
    }
    Ok(())
}

/// Sets every key of `keys` on 64 tasks (setup, not measured).
async fn load<S: Store + Clone + 'static>(
    store: &S,
    keys: &Arc<[String]>,
    ttl: Option<Duration>,
) -> Result<(), String> {
    common::timed(64, keys.len(), |indices| {
        let (store, keys) = (store.clone(), keys.clone());
        async move {
            for i in indices {
                store
                    .set(&keys[i], Bytes::from(vec![7u8; 100]), ttl)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
    })
    .await
    .map(drop)
}

/// When each get and set of one phase started, and how long it took.
#[derive(Default)]
struct Samples {
    gets: Vec<(Instant, Duration)>,
    sets: Vec<(Instant, Duration)>,
}

impl Samples {
    /// Only the operations that started at `start` or later.
    fn since(mut self, start: Instant) -> Self {
        self.gets.retain(|s| s.0 >= start);
        self.sets.retain(|s| s.0 >= start);
        self
    }
}

/// Runs the readers and writers until `stop` is set, and returns their
/// latencies. Keys are drawn with a xorshift per task: reproducible, and
/// spread over the whole store so reads hit cold pages too.
async fn traffic<S: Store + Clone + 'static>(
    store: &S,
    live: &Arc<[String]>,
    (readers, writers): (usize, usize),
    stop: &Arc<AtomicBool>,
) -> Result<Samples, String> {
    let tasks: Vec<_> = (0..readers + writers)
        .map(|task| {
            let (store, live, stop) = (store.clone(), live.clone(), stop.clone());
            let reader = task < readers;
            tokio::spawn(async move {
                let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ (task as u64 + 1);
                let mut latencies = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    let key = &live[state as usize % live.len()];
                    let start = Instant::now();
                    if reader {
                        match store.get(key, None).await {
                            Ok(Some(_)) => {}
                            Ok(None) => return Err(format!("live key {key} missing")),
                            Err(e) => return Err(e.to_string()),
                        }
                    } else {
                        store
                            .set(key, Bytes::from(vec![8u8; 100]), LIVE_TTL)
                            .await
                            .map_err(|e| e.to_string())?;
                    }
                    latencies.push((start, start.elapsed()));
                    // MemoryStore's futures never wait: without this, the
                    // tasks would hold both worker threads and starve the
                    // timer and the purge.
                    tokio::task::yield_now().await;
                }
                Ok::<_, String>((reader, latencies))
            })
        })
        .collect();
    let mut samples = Samples::default();
    for task in tasks {
        let (reader, latencies) = task.await.map_err(|e| e.to_string())??;
        if reader {
            samples.gets.extend(latencies);
        } else {
            samples.sets.extend(latencies);
        }
    }
    Ok(samples)
}

/// One run: the idle phase, then the purge phase, each printed.
async fn probe<S, P, F>(
    system: &str,
    store: &S,
    clock: &ManualClock,
    live: &Arc<[String]>,
    args: &Args,
    purge: P,
) -> Result<(), String>
where
    S: Store + Clone + 'static,
    P: FnOnce(S) -> F,
    F: Future<Output = Result<usize, String>>,
{
    clock.advance(Duration::from_secs(2));

    let stop = Arc::new(AtomicBool::new(false));
    let idle = tokio::spawn({
        let (store, live, stop) = (store.clone(), live.clone(), stop.clone());
        let tasks = (args.readers, args.writers);
        async move { traffic(&store, &live, tasks, &stop).await }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = idle.await.map_err(|e| e.to_string())??;
    print(system, "idle", 1.0, &samples, args);

    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn({
        let (store, live, stop) = (store.clone(), live.clone(), stop.clone());
        let tasks = (args.readers, args.writers);
        async move { traffic(&store, &live, tasks, &stop).await }
    });
    // The traffic is under way when the purge starts; only what starts
    // after it counts.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let start = Instant::now();
    let removed = purge(store.clone()).await;
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let samples = during.await.map_err(|e| e.to_string())??.since(start);
    let removed = removed?;
    if removed != args.expired {
        return Err(format!(
            "delete_expired removed {removed}, expected {}",
            args.expired
        ));
    }
    print(system, "purge", secs, &samples, args);
    Ok(())
}

fn print(system: &str, phase: &str, secs: f64, samples: &Samples, args: &Args) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut fields = String::new();
    for (op, samples) in [("get", &samples.gets), ("set", &samples.sets)] {
        let latencies = &mut samples.iter().map(|s| s.1).collect::<Vec<_>>();
        fields.push_str(&format!(
            ",\"{op}_ops\":{},\"{op}_p50_ms\":{:.3},\"{op}_p99_ms\":{:.3},\"{op}_max_ms\":{:.3}",
            latencies.len(),
            ms(common::quantile(latencies, 0.5)),
            ms(common::quantile(latencies, 0.99)),
            ms(common::quantile(latencies, 1.0)),
        ));
    }
    println!(
        "{{\"system\":\"{system}\",\"op\":\"delete_expired_latency\",\"phase\":\"{phase}\",\"store_keys\":{},\"expired\":{},\"readers\":{},\"writers\":{},\"secs\":{secs:.6}{fields}}}",
        args.keys, args.expired, args.readers, args.writers
    );
}
