//! RedisStore in cluster mode on real local clusters — three `redis-server`
//! primaries, and three `valkey-server` primaries — started once per kind
//! for this binary: the behaviour and extension suites, then what only a
//! cluster does (keys over every primary, sweeps and listings over every
//! node, scripts after SCRIPT FLUSH, a slot moved mid-test, a primary
//! killed with SIGKILL and replaced by its replica, and clear errors).
#![cfg(feature = "cluster")]

mod ext_suite;
mod suite;
mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kvstores::{
    AtomicStore, BatchStore, Bytes, Entries, Error, ListOptions, NamespacedStore, RedisStore,
    Store, StoreRegistry,
};
use support::cluster::{Cluster, slot, slots_of};
use support::{Kind, Server, unique};

const LONG: Duration = Duration::from_secs(600);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Stamps every behaviour below as a `#[tokio::test]` for one kind.
macro_rules! cluster_suite {
    ($kind:expr) => {
        cluster_suite!(@each $kind;
            keys_spread_and_sweeps_and_listings_cover_every_primary,
            scripts_are_reloaded_after_script_flush_on_every_node,
            a_slot_moved_mid_test_is_followed, mismatched_modes_and_databases_are_clear_errors,
            a_registry_hands_out_a_cluster_store, a_killed_primary_fails_over_and_the_store_recovers);
    };
    (@each $kind:expr; $($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            crate::$name($kind).await;
        }
    )*};
}

mod redis_cluster {
    use crate::suite;
    use crate::support::{self, Kind};

    crate::contract_suite!(async { support::fresh_cluster(Kind::Redis).await });
    crate::ext_suite!(async { support::fresh_cluster(Kind::Redis).await });
    cluster_suite!(Kind::Redis);
}

mod valkey_cluster {
    use crate::suite;
    use crate::support::{self, Kind};

    crate::contract_suite!(async { support::fresh_cluster(Kind::Valkey).await });
    crate::ext_suite!(async { support::fresh_cluster(Kind::Valkey).await });
    cluster_suite!(Kind::Valkey);
}

async fn connect(cluster: &Cluster, namespace: Option<&str>) -> RedisStore {
    RedisStore::cluster_builder(cluster.seeds())
        .namespace(namespace)
        .connect()
        .await
        .expect("connect to the test cluster")
}

async fn collect(mut entries: Entries) -> Vec<kvstores::Entry> {
    let mut all = Vec::new();
    while let Some(page) = entries.next_page().await.unwrap() {
        all.extend(page);
    }
    all
}

/// The stored keys matching `pattern` on node `i`.
fn keys_on(cluster: &Cluster, i: usize, pattern: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut cluster.nodes[i].sync())
        .unwrap()
}

/// A namespace's keys land on every primary; `delete_all` and listing
/// cover every node, in more than one SCAN batch each, and leave foreign
/// keys alone; `set_many` writes across slots.
async fn keys_spread_and_sweeps_and_listings_cover_every_primary(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let root = unique("sweep");
    let store = connect(cluster, Some(&root)).await;
    let child = store.with_namespace("child");
    // About 1,500 keys per primary: more than one SCAN batch (COUNT 1000).
    let names: Vec<String> = (0..4500).map(|i| format!("k{i}")).collect();
    let entries: Vec<(&str, Bytes)> = names.iter().map(|k| (&k[..], b(k))).collect();
    store.set_many(&entries, Some(LONG)).await.unwrap();
    child.set_many(&entries[..500], None).await.unwrap();
    let raw = connect(cluster, None).await;
    let foreign: Vec<String> = (0..30)
        .flat_map(|i| {
            [
                format!("{root}2:k{i}"),
                format!("{root}x{i}"),
                format!("x{root}:k{i}"),
            ]
        })
        .collect();
    for key in &foreign {
        raw.set(key, b("foreign"), None).await.unwrap();
    }
    for p in 0..cluster.primaries {
        let mine = keys_on(cluster, p, &format!("{root}:*")).len();
        assert!(
            mine > 1000,
            "primary {p} holds {mine} of the namespace's keys"
        );
    }

    let own = collect(store.entries(ListOptions::new())).await;
    let own: HashSet<String> = own.into_iter().map(|e| e.key).collect();
    assert_eq!(own.len(), 4500);
    let all = collect(store.entries(ListOptions::new().descendants(true))).await;
    let all: HashSet<(Vec<String>, String)> =
        all.into_iter().map(|e| (e.namespace, e.key)).collect();
    assert_eq!(all.len(), 5000);

    store.delete_all().await.unwrap();
    for p in 0..cluster.primaries {
        assert_eq!(
            keys_on(cluster, p, &format!("{root}:*")),
            Vec::<String>::new()
        );
    }
    assert!(collect(store.entries(ListOptions::new())).await.is_empty());
    for key in &foreign {
        assert_eq!(
            raw.get(key, None).await.unwrap(),
            Some(b("foreign")),
            "{key}"
        );
        raw.delete(key).await.unwrap();
    }
}

/// Renewal and increment scripts run again after every node forgot them.
async fn scripts_are_reloaded_after_script_flush_on_every_node(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let store = connect(cluster, Some(&unique("scripts"))).await;
    for i in 0..30 {
        let key = format!("k{i}");
        store.set(&key, b("v"), Some(LONG)).await.unwrap();
        assert_eq!(store.get(&key, Some(LONG)).await.unwrap(), Some(b("v")));
        assert_eq!(store.increment(&format!("c{i}"), 1, None).await.unwrap(), 1);
    }
    for node in &cluster.nodes {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut node.sync())
            .unwrap();
    }
    for i in 0..30 {
        let key = format!("k{i}");
        assert_eq!(store.get(&key, Some(LONG)).await.unwrap(), Some(b("v")));
        assert_eq!(store.increment(&format!("c{i}"), 1, None).await.unwrap(), 2);
    }
    store.delete_all().await.unwrap();
}

/// A slot moved to another primary while the store uses it: reads, writes
/// and counters in it keep working, before, during and after the move.
async fn a_slot_moved_mid_test_is_followed(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let root = unique("moving");
    let store = connect(cluster, Some(&root)).await;
    // `{tag}` keys share one slot: the hash tag picks it.
    let moving = slot("tag");
    assert_eq!(slot(&format!("{root}:{{tag}}a")), moving);
    let owner_port = slot_owner_port(cluster, 0, moving);
    let source = (0..cluster.primaries)
        .find(|&p| cluster.nodes[p].port() == owner_port)
        .expect("a primary owns the slot");
    let target = (source + 1) % cluster.primaries;
    for i in 0..20 {
        store
            .set(&format!("{{tag}}{i}"), b("before"), None)
            .await
            .unwrap();
    }
    assert_eq!(store.increment("{tag}counter", 1, None).await.unwrap(), 1);

    let (source_id, target_id) = (cluster.id(source), cluster.id(target));
    let setslot = |node: usize, state: &str, id: &str| {
        let _: () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(moving)
            .arg(state)
            .arg(id)
            .query(&mut cluster.nodes[node].sync())
            .unwrap();
    };
    setslot(target, "IMPORTING", &source_id);
    setslot(source, "MIGRATING", &target_id);
    let keys: Vec<String> = redis::cmd("CLUSTER")
        .arg("GETKEYSINSLOT")
        .arg(moving)
        .arg(1000)
        .query(&mut cluster.nodes[source].sync())
        .unwrap();
    assert!(keys.len() >= 21, "{keys:?}");
    // Half the keys moved: the slot is split between the two primaries.
    let (moved_first, moved_later) = keys.split_at(keys.len() / 2);
    // A node that has not yet heard of the IMPORTING state from gossip
    // answers CLUSTERDOWN for a moment: try again for up to 10 s.
    let migrate = |keys: &[String]| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let done: redis::RedisResult<()> = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(cluster.nodes[target].port())
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(keys)
                .query(&mut cluster.nodes[source].sync());
            match done {
                Ok(()) => break,
                Err(err) if Instant::now() < deadline => {
                    eprintln!("MIGRATE: {err}; trying again");
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(err) => panic!("MIGRATE: {err}"),
            }
        }
    };
    migrate(moved_first);
    for i in 0..20 {
        let key = format!("{{tag}}{i}");
        assert_eq!(
            store.get(&key, None).await.unwrap(),
            Some(b("before")),
            "{key}"
        );
    }
    assert_eq!(store.increment("{tag}counter", 1, None).await.unwrap(), 2);
    migrate(moved_later);
    for node in 0..cluster.primaries {
        setslot(node, "NODE", &target_id);
    }

    for i in 0..20 {
        let key = format!("{{tag}}{i}");
        assert_eq!(store.get(&key, None).await.unwrap(), Some(b("before")));
        store.set(&key, b("after"), None).await.unwrap();
    }
    assert_eq!(store.increment("{tag}counter", 1, None).await.unwrap(), 3);
    let on_target = keys_on(cluster, target, &format!("{root}:*"));
    assert_eq!(on_target.len(), 21, "{on_target:?}");
    assert!(keys_on(cluster, source, &format!("{root}:*")).is_empty());
    store.delete_all().await.unwrap();
    assert!(keys_on(cluster, target, &format!("{root}:*")).is_empty());
}

/// The port of the primary that `nodes[asked]` says owns `slot`.
fn slot_owner_port(cluster: &Cluster, asked: usize, slot: u16) -> u16 {
    let shards: Vec<redis::Value> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query(&mut cluster.nodes[asked].sync())
        .unwrap();
    for shard in shards {
        let redis::Value::Array(parts) = shard else {
            continue;
        };
        let (redis::Value::Int(first), redis::Value::Int(last)) = (&parts[0], &parts[1]) else {
            continue;
        };
        if (*first..=*last).contains(&i64::from(slot))
            && let redis::Value::Array(primary) = &parts[2]
            && let redis::Value::Int(port) = primary[1]
        {
            return port as u16;
        }
    }
    panic!("no primary owns slot {slot}")
}

/// A cluster builder on a single server, a single-server store on a
/// cluster node, and a database number in cluster mode are argument
/// errors that say what to do.
async fn mismatched_modes_and_databases_are_clear_errors(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let single = Server::shared(kind);
    let err = RedisStore::cluster_builder([single.url()])
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("RedisStore::builder"), "{err}");

    let err = RedisStore::connect(&cluster.nodes[0].url())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("cluster_builder"), "{err}");

    let err = RedisStore::cluster_builder(cluster.seeds())
        .database(2)
        .connect()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(err.to_string().contains("database"), "{err}");
    let err = RedisStore::cluster_builder([format!("{}/3", cluster.nodes[0].url())])
        .connect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("database"), "{err}");
}

/// A registry whose factory hands out namespaces of one cluster store.
async fn a_registry_hands_out_a_cluster_store(kind: Kind) {
    let cluster = Cluster::shared(kind);
    let root = connect(cluster, Some(&unique("registry"))).await;
    let shared = root.clone();
    let registry = StoreRegistry::with_default_factory(move |name| shared.with_namespace(name));
    registry
        .get("sessions")
        .set("k", b("v"), None)
        .await
        .unwrap();
    assert_eq!(
        root.with_namespace("sessions")
            .get("k", None)
            .await
            .unwrap(),
        Some(b("v"))
    );
    registry.register("root", root.clone(), false).unwrap();
    registry.get("root").delete_all().await.unwrap();
    assert!(!root.with_namespace("sessions").exists("k").await.unwrap());
}

/// What one operation of the failover test saw.
struct Outcome {
    /// When it started and ended, from the kill.
    start: Duration,
    end: Duration,
    on_victim: bool,
    ok: bool,
    /// The error's chain, for the timeline printed on failure.
    error: Option<String>,
}

fn chain(result: &kvstores::Result<impl Sized>) -> Option<String> {
    let err = result.as_ref().err()?;
    let source = std::error::Error::source(err).map(ToString::to_string);
    Some(format!("{err} ({})", source.unwrap_or_default()))
}

/// Three primaries with a replica each; 64 tasks work while one primary is
/// killed with SIGKILL. Its keys fail, each within a bounded time, while
/// the other primaries keep serving; its replica is promoted and the same
/// store recovers by itself; every acknowledged write to the surviving
/// primaries is there, and no counter was incremented twice.
async fn a_killed_primary_fails_over_and_the_store_recovers(kind: Kind) {
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(kind, 3, 1))
        .await
        .unwrap();
    let cluster = Arc::new(cluster);
    let seeds: Vec<String> = (0..3).map(|p| cluster.nodes[p].url()).collect();
    let store = RedisStore::cluster_builder(&seeds)
        .namespace(Some("failover"))
        .connect()
        .await
        .unwrap();
    let (first, last) = slots_of(0, 3).into_inner();
    let on_victim = move |key: &str| (first..=last).contains(&slot(&format!("failover:{key}")));

    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let killed_at = Arc::new(std::sync::OnceLock::<Instant>::new());
    let mut tasks = Vec::new();
    for t in 0..64 {
        let (store, stop, killed_at) = (store.clone(), stop.clone(), killed_at.clone());
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut acked = Vec::new();
            // Per attempt: Some(value) acknowledged, None failed.
            let mut counts = Vec::new();
            let since = |at: Instant| match killed_at.get() {
                Some(kill) => at.saturating_duration_since(*kill),
                None => Duration::ZERO,
            };
            let mut j = 0u64;
            while !stop.load(Ordering::Relaxed) {
                j += 1;
                let key = format!("t{t}-{j}");
                let start = Instant::now();
                let result = store.set(&key, b(&j.to_string()), None).await;
                outcomes.push(Outcome {
                    start: since(start),
                    end: since(Instant::now()),
                    on_victim: on_victim(&key),
                    ok: result.is_ok(),
                    error: chain(&result),
                });
                match result {
                    Ok(()) => acked.push((key, j)),
                    Err(err) => assert!(
                        matches!(err, Error::Connection { .. } | Error::Server { .. }),
                        "{err:?}"
                    ),
                }
                let counter = format!("c{t}");
                let start = Instant::now();
                let result = store.increment(&counter, 1, None).await;
                outcomes.push(Outcome {
                    start: since(start),
                    end: since(Instant::now()),
                    on_victim: on_victim(&counter),
                    ok: result.is_ok(),
                    error: chain(&result),
                });
                counts.push(result.ok());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (outcomes, acked, counts)
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let kill = Instant::now();
    killed_at.set(kill).unwrap();
    cluster.nodes[0].stop(); // SIGKILL
    let watcher = cluster.clone();
    let replica_port = cluster.nodes[3].port();
    tokio::task::spawn_blocking(move || {
        watcher.wait("the replica's promotion", |node| {
            let nodes: String = redis::cmd("CLUSTER").arg("NODES").query(node).unwrap();
            nodes
                .lines()
                .any(|line| line.contains(&format!(":{replica_port}@")) && line.contains("master"))
        })
    })
    .await
    .unwrap();
    let promoted = kill.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut outcomes = Vec::new();
    let mut acked = Vec::new();
    let mut counters = Vec::new();
    for (t, task) in tasks.into_iter().enumerate() {
        let (o, a, c) = task.await.unwrap();
        outcomes.extend(o);
        acked.extend(a);
        counters.push((format!("c{t}"), c));
    }

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok).collect();
    let mut errors = std::collections::BTreeMap::<&str, (usize, u128, u128)>::new();
    for o in &failed {
        let e = errors
            .entry(o.error.as_deref().unwrap_or_default())
            .or_insert((0, u128::MAX, 0));
        e.0 += 1;
        e.1 = e.1.min(o.start.as_millis());
        e.2 = e.2.max(o.end.as_millis());
    }
    for (error, (n, first, last)) in &errors {
        println!("{n} failures from {first} ms to {last} ms: {error}");
    }
    let slowest = outcomes.iter().map(|o| o.end - o.start).max().unwrap();
    assert!(
        slowest < Duration::from_secs(5),
        "an operation took {slowest:?}"
    );
    let first_error = failed.iter().map(|o| o.start).min();
    let last_error = failed.iter().map(|o| o.end).max();
    let served_meanwhile = (outcomes.iter())
        .filter(|o| o.ok && !o.on_victim && o.start > Duration::ZERO && o.end < promoted)
        .count();
    assert!(served_meanwhile > 0, "the other primaries kept serving");
    let recovered = (outcomes.iter())
        .filter(|o| o.ok && o.on_victim && Some(o.start) > last_error)
        .map(|o| o.end)
        .min();
    assert!(recovered.is_some(), "the victim's keys work again");
    println!(
        "{{\"kind\":\"{kind:?}\",\"ops\":{},\"failed\":{},\"first_error_ms\":{:?},\
         \"last_error_ms\":{:?},\"promoted_ms\":{},\"recovered_ms\":{:?},\"slowest_ms\":{},\
         \"served_by_others_during_outage\":{served_meanwhile},\"ran_ms\":{}}}",
        outcomes.len(),
        failed.len(),
        first_error.map(|d| d.as_millis()),
        last_error.map(|d| d.as_millis()),
        promoted.as_millis(),
        recovered.map(|d| d.as_millis()),
        slowest.as_millis(),
        began.elapsed().as_millis(),
    );

    let mut lost_on_victim = 0;
    for (key, value) in &acked {
        let found = store.get(key, None).await.unwrap();
        if on_victim(key) {
            // Replication is asynchronous: the victim may have acknowledged
            // a write its replica never saw.
            lost_on_victim += usize::from(found.is_none());
        } else {
            assert_eq!(found, Some(b(&value.to_string())), "{key}");
        }
    }
    println!("acknowledged writes lost with the killed primary: {lost_on_victim}");
    for (counter, attempts) in counters {
        // Between two acknowledged increments the counter grew by one per
        // attempt at most: a retried increment would add two.
        let mut last: Option<i64> = None;
        let mut failed_since = 0;
        for attempt in &attempts {
            match (attempt, last) {
                (Some(value), Some(previous)) => {
                    assert!(
                        *value <= previous + 1 + failed_since,
                        "{counter}: {previous} then {value} after {failed_since} failures"
                    );
                    last = Some(*value);
                    failed_since = 0;
                }
                (Some(value), None) => last = Some(*value),
                (None, _) => failed_since += 1,
            }
        }
        let stored = store.get(&counter, None).await.unwrap().unwrap();
        let stored: i64 = std::str::from_utf8(&stored).unwrap().parse().unwrap();
        assert!(stored <= attempts.len() as i64, "{counter}: {stored}");
    }
}

/// The `kvstores` command on a cluster given as a list of URLs: what it
/// sets, the library reads, and `keys` lists every primary's keys.
#[cfg(feature = "cli")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_works_on_a_cluster_given_as_a_url_list() {
    let cluster = Cluster::shared(Kind::Redis);
    let urls = cluster.seeds().join(",");
    let root = unique("cli");
    let kv = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvstores"))
            .args(["--url", &urls, "--root", &root])
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("KVSTORES_FILE")
            .env_remove("KVSTORES_URL")
            .output()
            .expect("run the kvstores binary");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    for i in 0..30 {
        kv(&["set", &format!("k{i}"), "v"]);
    }
    let store = connect(cluster, Some(&root)).await;
    assert_eq!(store.get("k7", None).await.unwrap(), Some(b("v")));
    assert_eq!(kv(&["get", "k7"]).trim(), "v");
    assert_eq!(kv(&["--json", "keys"]).lines().count(), 30);
    store.delete_all().await.unwrap();
}
