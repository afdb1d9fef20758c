//! The standard workload of `BENCHMARKS.md`: every performance figure we
//! publish comes from this runner, so it lines up with the same workload run
//! against other systems.
//!
//! ```text
//! cargo run --release --features full --example workload -- \
//!     --backend memory|file|redis|valkey [--path FILE] [--url URL] \
//!     [--ops 20000] [--value-size 100] [--concurrency 1,64] [--op set,get_hit,...]
//! ```
//!
//! The file backend runs in its default configuration (durable, shared
//! between processes) on a new file in a temporary directory unless `--path`
//! is given. `--exclusive` opens it for this process alone, and
//! `--flush-every MS` (with `--exclusive`) makes commits non-durable with a
//! durable one at least every MS milliseconds; either adds a suffix to the
//! system name (`kvstores-file-exclusive`, `kvstores-file-exclusive-flush1000ms`).
//!
//! It prints one JSON object per line and operation:
//!
//! ```text
//! {"system":"kvstores-memory","op":"get_hit","concurrency":64,"ops":20000,"value_size":100,"secs":0.0123,"ops_per_s":1626016.3}
//! ```
//!
//! N = `--ops` distinct keys `key-{i}`. Concurrency C is C tokio tasks on a
//! multi-threaded runtime sharing the N operations, each on its own clone of
//! one store. Only the operations are timed; the store is emptied before
//! each one.

#[path = "../benches/common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvstores::{Bytes, FullStore, MemoryStore, Store};

const OPS: [&str; 7] = [
    "set",
    "set_ttl",
    "get_hit",
    "get_miss",
    "get_renew",
    "delete",
    "delete_expired",
];
const TTL: Duration = Duration::from_secs(300);

struct Args {
    backend: String,
    path: Option<String>,
    url: Option<String>,
    ops: usize,
    value_size: usize,
    concurrency: Vec<usize>,
    op: Vec<String>,
    system_suffix: String,
    exclusive: bool,
    flush_every_ms: Option<u64>,
}

fn usage() -> &'static str {
    "usage: workload --backend memory|file|redis|valkey [--path FILE] [--url URL] \
     [--ops 20000] [--value-size 100] [--concurrency 1,64] [--op set,get_hit,...] \
     [--system-suffix -name] [--exclusive] [--flush-every MS]"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        backend: String::new(),
        path: None,
        url: None,
        ops: 20_000,
        value_size: 100,
        concurrency: vec![1, 64],
        op: OPS.iter().map(|s| s.to_string()).collect(),
        system_suffix: String::new(),
        exclusive: false,
        flush_every_ms: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--backend" => args.backend = value()?,
            "--path" => args.path = Some(value()?),
            "--url" => args.url = Some(value()?),
            "--ops" => args.ops = value()?.parse().map_err(|e| format!("--ops: {e}"))?,
            "--value-size" => {
                args.value_size = value()?.parse().map_err(|e| format!("--value-size: {e}"))?
            }
            "--concurrency" => {
                args.concurrency = value()?
                    .split(',')
                    .map(|c| c.trim().parse().map_err(|e| format!("--concurrency: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--op" => {
                args.op = value()?.split(',').map(|s| s.trim().to_owned()).collect();
                if let Some(bad) = args.op.iter().find(|op| !OPS.contains(&op.as_str())) {
                    return Err(format!("unknown op {bad:?}; the ops are {}", OPS.join(",")));
                }
            }
            "--system-suffix" => args.system_suffix = value()?,
            "--exclusive" => args.exclusive = true,
            "--flush-every" => {
                args.flush_every_ms = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--flush-every: {e}"))?,
                )
            }
            "-h" | "--help" => return Err(usage().to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    if args.concurrency.contains(&0) || args.ops == 0 {
        return Err("--ops and --concurrency must be positive".to_owned());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = common::runtime();
    match runtime.block_on(run_backend(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("workload: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_backend(args: &Args) -> Result<(), String> {
    let system = format!("kvstores-{}{}", args.backend, args.system_suffix);
    match args.backend.as_str() {
        "memory" => run(args, &system, Arc::new(MemoryStore::new()), true).await,
        #[cfg(feature = "file")]
        "file" => {
            use kvstores::{FileDurability, FileStore};
            let mut system = system;
            if args.system_suffix.is_empty() {
                if args.exclusive {
                    system.push_str("-exclusive");
                }
                if let Some(ms) = args.flush_every_ms {
                    system.push_str(&format!("-flush{ms}ms"));
                }
            }
            // Kept until the run ends; removed with its file afterwards.
            let scratch = tempfile::tempdir().map_err(|e| e.to_string())?;
            let path = match &args.path {
                Some(path) => path.into(),
                None => scratch.path().join("workload.redb"),
            };
            let durability = match args.flush_every_ms {
                None => FileDurability::Immediate,
                Some(ms) => FileDurability::Periodic(Duration::from_millis(ms)),
            };
            let store = FileStore::builder(&path)
                .create_directories(true)
                .exclusive(args.exclusive)
                .durability(durability)
                .open()
                .map_err(|e| e.to_string())?;
            run(args, &system, Arc::new(store), true).await
        }
        // Redis and Valkey keep their keys under the root segment
        // `kvstores-workload`, which delete_all empties between ops; the
        // server's other keys are never touched. They expire keys
        // themselves: the workload's delete_expired is for memory and file
        // only.
        backend => {
            let store = common::connect_server(backend, args.url.as_deref(), "kvstores-workload")
                .await
                .map_err(|e| format!("{e}\n{}", usage()))?;
            run(args, &system, store, false).await
        }
    }
}

/// Runs every op at every concurrency; `delete_expired` only when `purges`.
async fn run(
    args: &Args,
    system: &str,
    store: Arc<dyn FullStore>,
    purges: bool,
) -> Result<(), String> {
    let keys = common::keys(args.ops, "key");
    let missing = common::keys(args.ops, "missing");
    let values = common::random_values(args.ops, args.value_size);
    let shared: Arc<dyn Store> = store.clone();
    for &concurrency in &args.concurrency {
        for op in &args.op {
            store.delete_all().await.map_err(|e| e.to_string())?;
            let secs = match op.as_str() {
                "delete_expired" => {
                    if !purges {
                        continue;
                    }
                    let values = values.clone();
                    common::load(&shared, &keys, move |i| {
                        (
                            values[i].clone(),
                            (i % 2 == 0).then_some(Duration::from_secs(1)),
                        )
                    })
                    .await?;
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                    let start = Instant::now();
                    let removed = store.delete_expired().await.map_err(|e| e.to_string())?;
                    let secs = start.elapsed().as_secs_f64();
                    if removed != args.ops.div_ceil(2) {
                        return Err(format!(
                            "delete_expired removed {removed}, expected {}",
                            args.ops.div_ceil(2)
                        ));
                    }
                    secs
                }
                op => {
                    let ttl = match op {
                        "get_hit" | "delete" => Some(None),
                        "get_renew" => Some(Some(TTL)),
                        _ => None,
                    };
                    if let Some(ttl) = ttl {
                        let values = values.clone();
                        common::load(&shared, &keys, move |i| (values[i].clone(), ttl)).await?;
                    }
                    timed(&shared, op, concurrency, &keys, &missing, &values).await?
                }
            };
            let line = common::Line {
                system,
                op,
                concurrency,
                ops: args.ops,
                value_size: Some(args.value_size),
                secs,
                keys_per_op: None,
            };
            println!("{line}");
        }
    }
    store.delete_all().await.map_err(|e| e.to_string())
}

/// Runs the N operations of `op` on `concurrency` tasks and returns the
/// seconds they took, checking every answer so that a fast wrong store does
/// not pass for a fast one.
async fn timed(
    store: &Arc<dyn Store>,
    op: &str,
    concurrency: usize,
    keys: &Arc<[String]>,
    missing: &Arc<[String]>,
    values: &Arc<[Bytes]>,
) -> Result<f64, String> {
    let op: &'static str = OPS.iter().find(|o| **o == op).expect("a known op");
    common::timed(concurrency, keys.len(), |share| {
        let (store, keys, missing, values) =
            (store.clone(), keys.clone(), missing.clone(), values.clone());
        async move {
            for i in share {
                let key = &keys[i];
                let ok = match op {
                    "set" => store.set(key, values[i].clone(), None).await.is_ok(),
                    "set_ttl" => store.set(key, values[i].clone(), Some(TTL)).await.is_ok(),
                    "get_hit" => store.get(key, None).await.is_ok_and(|v| v.is_some()),
                    "get_miss" => store
                        .get(&missing[i], None)
                        .await
                        .is_ok_and(|v| v.is_none()),
                    "get_renew" => store.get(key, Some(TTL)).await.is_ok_and(|v| v.is_some()),
                    "delete" => store.delete(key).await.is_ok(),
                    _ => unreachable!(),
                };
                if !ok {
                    return Err(format!("{op} of {key} failed"));
                }
            }
            Ok(())
        }
    })
    .await
}
