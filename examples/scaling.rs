//! The scaling figure: whether removing 10,000 entries costs what is
//! removed or grows with the size of the store. For MemoryStore and
//! FileStore, and for both ways of removing many entries at once —
//! `delete_expired` and `delete_all` on a namespace — it times removing
//! 10,000 entries from stores of 10k, 100k and 1M keys.
//!
//! ```text
//! cargo run --release --example scaling -- [--sizes 10000,100000,1000000] [--removed 10000] [--repeat 3]
//! ```
//!
//! Each store holds `size - removed` entries `key-{i}` spread over ten
//! namespaces, all with a one-hour expiry (so the expiry index is as large
//! as the store). Each run then stores `removed` victims and times one call:
//! - `delete_expired`: the victims, `key-{i}-victim` for `i` spread evenly
//!   over the kept keys and in the same namespaces, so that they lie
//!   scattered through the key order as expiring entries do, expire after
//!   1 s on a `ManualClock` that is then advanced (no sleeping);
//! - `delete_all`: the victims, with no expiry, fill the namespace `victim`,
//!   whose `delete_all()` is timed.
//!
//! FileStore runs in its default (durable, multi-process) configuration; its
//! kept entries are loaded beforehand in the fast one, since loading a
//! million keys durably is slow and not what is measured. Prints one JSON
//! line per backend, op and size, the workload runner's line with the
//! store's size added: `secs` is the median of `--repeat` runs, `runs` lists
//! them all.

#[path = "../benches/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kvstores::{FileDurability, FileStore, Maintenance, ManualClock, MemoryStore, NamespacedStore};

const KEPT_TTL: Option<Duration> = Some(Duration::from_secs(3600));

struct Args {
    sizes: Vec<usize>,
    removed: usize,
    repeat: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sizes: vec![10_000, 100_000, 1_000_000],
        removed: 10_000,
        repeat: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--sizes" => args.sizes = value.split(',').map(number).collect::<Result<_, _>>()?,
            "--removed" => args.removed = number(&value)?,
            "--repeat" => args.repeat = number(&value)?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    if args.removed == 0 || args.repeat == 0 || args.sizes.iter().any(|&s| s < args.removed) {
        return Err(
            "--removed and --repeat must be positive, every size at least --removed".into(),
        );
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> kvstores::Result<()> {
    let args = parse_args().unwrap_or_else(|message| {
        eprintln!(
            "{message}\nusage: scaling [--sizes 10000,100000,1000000] [--removed 10000] [--repeat 3]"
        );
        std::process::exit(2);
    });
    let kept_keys = |size: usize| -> Vec<String> {
        (0..size - args.removed)
            .map(|i| format!("key-{i}"))
            .collect()
    };
    let victims = common::keys(args.removed, "victim");

    for &size in &args.sizes {
        let clock = ManualClock::new();
        let store = MemoryStore::builder().clock(clock.clone()).build();
        load(&store, &kept_keys(size), KEPT_TTL).await;
        measure("kvstores-memory", &store, &clock, size, &victims, &args).await?;
    }

    for &size in &args.sizes {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("scaling.redb");
        let clock = ManualClock::new();
        {
            let loader = FileStore::builder(&path)
                .exclusive(true)
                .durability(FileDurability::Periodic(Duration::from_secs(1)))
                .clock(clock.clone())
                .open()?;
            load(&loader, &kept_keys(size), KEPT_TTL).await;
        }
        let store = FileStore::builder(&path).clock(clock.clone()).open()?;
        measure("kvstores-file", &store, &clock, size, &victims, &args).await?;
    }
    Ok(())
}

/// Spreads `keys` over ten namespaces of `store` (key `i` into the
/// namespace `other-{i % 10}`), loaded on 64 tasks each.
async fn load<S: NamespacedStore + Clone + 'static>(
    store: &S,
    keys: &[String],
    ttl: Option<Duration>,
) {
    for n in 0..10 {
        let share: Arc<[String]> = keys.iter().skip(n).step_by(10).cloned().collect();
        let namespace = store.with_namespace(&format!("other-{n}"));
        common::fill(&common::shared(&namespace), &share, ttl).await;
    }
}

async fn measure<S: NamespacedStore + Maintenance + Clone + 'static>(
    system: &str,
    store: &S,
    clock: &ManualClock,
    size: usize,
    victims: &Arc<[String]>,
    args: &Args,
) -> kvstores::Result<()> {
    let every = size / args.removed;
    let expiring: Vec<String> = (0..args.removed)
        .map(|j| format!("key-{}-victim", j * every))
        .collect();
    let victim = common::shared(&store.with_namespace("victim"));
    let mut expired = Vec::new();
    for _ in 0..args.repeat {
        load(store, &expiring, Some(Duration::from_secs(1))).await;
        clock.advance(Duration::from_secs(1));
        let start = Instant::now();
        let removed = store.delete_expired().await?;
        expired.push(start.elapsed().as_secs_f64());
        assert_eq!(
            removed, args.removed,
            "delete_expired removed the victims only"
        );
    }
    report(system, "delete_expired", size, args.removed, expired);

    let mut deleted = Vec::new();
    for _ in 0..args.repeat {
        common::fill(&victim, victims, None).await;
        let start = Instant::now();
        victim.delete_all().await?;
        deleted.push(start.elapsed().as_secs_f64());
    }
    report(system, "delete_all", size, args.removed, deleted);
    Ok(())
}

fn report(system: &str, op: &str, size: usize, removed: usize, mut runs: Vec<f64>) {
    let all = runs
        .iter()
        .map(|s| format!("{s:.6}"))
        .collect::<Vec<_>>()
        .join(",");
    runs.sort_by(f64::total_cmp);
    let median = runs[runs.len() / 2];
    println!(
        "{{\"system\":\"{system}\",\"op\":\"{op}\",\"concurrency\":1,\"ops\":{removed},\"value_size\":100,\"store_keys\":{size},\"secs\":{median:.6},\"ops_per_s\":{:.1},\"runs\":[{all}]}}",
        removed as f64 / median
    );
}
