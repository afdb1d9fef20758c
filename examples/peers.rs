//! The standard workload of `BENCH.md` on what a Rust user would pick
//! instead of kvstores, printing the workload runner's JSON lines so that
//! the figures line up with `examples/workload.rs` in one table (timing, keys and values come from
//! `benches/common/mod.rs`, which they share).
//!
//! ```text
//! cargo run --release --example peers -- --system NAME \
//!     [--ops 20000] [--value-size 100] [--concurrency 1,64] [--op set,get_hit,...]
//! ```
//!
//! | `--system` | what runs | concurrency C is |
//! | --- | --- | --- |
//! | `dashmap-bare` | a bare `DashMap<String, Bytes>`, no expiry | C OS threads |
//! | `moka-future` | `moka::future::Cache` with a per-entry `Expiry` | C tokio tasks |
//! | `sqlite-wal-full` | SQLite (`rusqlite`, bundled): one key/value table, WAL, `synchronous=FULL` (durable) | C OS threads, one connection each |
//! | `sqlite-wal-normal` | the same with `synchronous=NORMAL` (no fsync per commit) | the same |
//! | `fjall` | fjall, one keyspace, journal written to the OS per write, not synced | C OS threads |
//! | `fjall-durable` | the same with `persist(PersistMode::SyncAll)` after every write | the same |
//! | `redb-one-commit-per-set` | raw redb, every set its own durable write transaction | C OS threads queueing on redb's one writer |
//! | `redb-one-commit-per-set-multi-writer` | the same in redb's multi-process mode, FileStore's default | the same |
//! | `redb-read-txn-per-get` | raw redb, one read transaction per get | C OS threads |
//! | `redb-one-read-txn` | raw redb, each thread's gets in one read transaction | C OS threads |
//!
//! The ops are the workload's (`set`, `set_ttl`, `get_hit`, `get_miss`,
//! `get_renew`, `delete`) where the peer has them; each system lists its own
//! below and skips the others. A store is made new, in a temporary directory
//! for the embedded ones, for every op and concurrency; loading the keys an
//! op needs is not timed; every answer is checked. Peers without expiry of
//! their own (fjall, redb) keep an 8-byte absolute expiry in front of each
//! value and check it on every get, as a cache built on them would; SQLite
//! keeps it in a column. Threads are the natural unit for the synchronous
//! engines: a program would call them from blocking threads, not tasks.

#[path = "../benches/common/mod.rs"]
mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{Line, on_threads, timed};

const TTL: Duration = Duration::from_secs(300);

const SYSTEMS: [(&str, &[&str]); 10] = [
    ("dashmap-bare", &["set", "get_hit", "get_miss", "delete"]),
    (
        "moka-future",
        &[
            "set",
            "set_ttl",
            "get_hit",
            "get_miss",
            "get_renew",
            "delete",
        ],
    ),
    (
        "sqlite-wal-full",
        &[
            "set",
            "set_ttl",
            "get_hit",
            "get_miss",
            "get_renew",
            "delete",
        ],
    ),
    (
        "sqlite-wal-normal",
        &[
            "set",
            "set_ttl",
            "get_hit",
            "get_miss",
            "get_renew",
            "delete",
        ],
    ),
    (
        "fjall",
        &["set", "set_ttl", "get_hit", "get_miss", "delete"],
    ),
    (
        "fjall-durable",
        &["set", "set_ttl", "get_hit", "get_miss", "delete"],
    ),
    ("redb-one-commit-per-set", &["set"]),
    ("redb-one-commit-per-set-multi-writer", &["set"]),
    ("redb-read-txn-per-get", &["get_hit"]),
    ("redb-one-read-txn", &["get_hit"]),
];

struct Args {
    system: &'static str,
    ops: usize,
    value_size: usize,
    concurrency: Vec<usize>,
    op: Vec<&'static str>,
}

/// What every peer gets: the workload's keys, missing keys and values.
struct Data {
    keys: Arc<[String]>,
    missing: Arc<[String]>,
    values: Arc<[Bytes]>,
}

fn usage() -> String {
    let names: Vec<&str> = SYSTEMS.iter().map(|(name, _)| *name).collect();
    format!(
        "usage: peers --system {} [--ops 20000] [--value-size 100] [--concurrency 1,64] [--op set,get_hit,...]",
        names.join("|")
    )
}

fn parse_args() -> Result<Args, String> {
    let (mut system, mut ops, mut value_size) = (None, 20_000, 100);
    let (mut concurrency, mut op) = (vec![1, 64], None::<Vec<String>>);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Err(usage());
        }
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let number = |v: &str| {
            v.trim()
                .parse::<usize>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--system" => system = Some(value),
            "--ops" => ops = number(&value)?,
            "--value-size" => value_size = number(&value)?,
            "--concurrency" => {
                concurrency = value.split(',').map(number).collect::<Result<_, _>>()?
            }
            "--op" => op = Some(value.split(',').map(|s| s.trim().to_owned()).collect()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    let system = system.ok_or_else(usage)?;
    let &(system, supported) = SYSTEMS
        .iter()
        .find(|(name, _)| *name == system)
        .ok_or_else(|| format!("unknown system {system:?}\n{}", usage()))?;
    let op = match op {
        None => supported.to_vec(),
        Some(wanted) => {
            if let Some(bad) = wanted.iter().find(|w| !supported.contains(&w.as_str())) {
                return Err(format!(
                    "{system} has no op {bad:?}; it has {}",
                    supported.join(",")
                ));
            }
            supported
                .iter()
                .copied()
                .filter(|s| wanted.iter().any(|w| w == s))
                .collect()
        }
    };
    if ops == 0 || concurrency.is_empty() || concurrency.contains(&0) {
        return Err("--ops and --concurrency must be positive".to_owned());
    }
    Ok(Args {
        system,
        ops,
        value_size,
        concurrency,
        op,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let data = Data {
        keys: common::keys(args.ops, "key"),
        missing: common::keys(args.ops, "missing"),
        values: common::random_values(args.ops, args.value_size),
    };
    for &concurrency in &args.concurrency {
        for &op in &args.op {
            let secs = match args.system {
                "dashmap-bare" => dashmap(op, concurrency, &data),
                "moka-future" => tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| e.to_string())
                    .and_then(|runtime| runtime.block_on(moka(op, concurrency, &data))),
                "sqlite-wal-full" => sqlite::run(op, concurrency, &data, "FULL"),
                "sqlite-wal-normal" => sqlite::run(op, concurrency, &data, "NORMAL"),
                "fjall" => fjall::run(op, concurrency, &data, false),
                "fjall-durable" => fjall::run(op, concurrency, &data, true),
                "redb-one-commit-per-set" => redb::commit_per_set(concurrency, &data, false),
                "redb-one-commit-per-set-multi-writer" => {
                    redb::commit_per_set(concurrency, &data, true)
                }
                "redb-read-txn-per-get" => redb::reads(concurrency, &data, false),
                "redb-one-read-txn" => redb::reads(concurrency, &data, true),
                _ => unreachable!("parse_args accepts only SYSTEMS"),
            };
            match secs {
                Ok(secs) => println!(
                    "{}",
                    Line {
                        system: args.system,
                        op,
                        concurrency,
                        ops: args.ops,
                        value_size: Some(args.value_size),
                        secs,
                        keys_per_op: None,
                    }
                ),
                Err(message) => {
                    eprintln!(
                        "peers: {} {op} at concurrency {concurrency}: {message}",
                        args.system
                    );
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

/// The check every get makes: a hit where one is expected, a miss otherwise.
fn expect(found: bool, op: &str, key: &str) -> Result<(), String> {
    if found == (op != "get_miss") {
        Ok(())
    } else {
        Err(format!("{op} of {key} answered wrongly"))
    }
}

/// A bare DashMap on OS threads: the floor under MemoryStore's costs (no
/// expiry, no trait, no runtime).
fn dashmap(op: &str, concurrency: usize, data: &Data) -> Result<f64, String> {
    let map: dashmap::DashMap<String, Bytes> = dashmap::DashMap::new();
    if matches!(op, "get_hit" | "delete") {
        for (key, value) in data.keys.iter().zip(data.values.iter()) {
            map.insert(key.clone(), value.clone());
        }
    }
    on_threads(
        concurrency,
        data.keys.len(),
        |_| Ok(()),
        |_, i| {
            let key = &data.keys[i];
            match op {
                "set" => drop(map.insert(key.clone(), data.values[i].clone())),
                "get_hit" => expect(map.get(key).map(|v| v.value().clone()).is_some(), op, key)?,
                "get_miss" => expect(map.get(&data.missing[i]).is_some(), op, key)?,
                "delete" => drop(map.remove(key)),
                _ => unreachable!(),
            }
            Ok(())
        },
    )
}

/// A moka entry: the value and the expiry it was set with.
#[derive(Clone)]
struct MokaEntry {
    value: Bytes,
    ttl: Option<Duration>,
}

/// Per-entry expiry as the `Store` contract has it: set with a TTL or none,
/// and, in the cache the `get_renew` op uses, every read renews it.
struct MokaExpiry {
    renew_on_read: bool,
}

impl moka::Expiry<String, MokaEntry> for MokaExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        entry: &MokaEntry,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_update(
        &self,
        _key: &String,
        entry: &MokaEntry,
        _updated_at: std::time::Instant,
        _remaining: Option<Duration>,
    ) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_read(
        &self,
        _key: &String,
        entry: &MokaEntry,
        _read_at: std::time::Instant,
        remaining: Option<Duration>,
        _last_modified_at: std::time::Instant,
    ) -> Option<Duration> {
        match entry.ttl {
            Some(ttl) if self.renew_on_read => Some(ttl),
            _ => remaining,
        }
    }
}

/// moka's future cache on tokio tasks, the way MemoryStore is measured.
async fn moka(op: &'static str, concurrency: usize, data: &Data) -> Result<f64, String> {
    let cache: moka::future::Cache<String, MokaEntry> = moka::future::Cache::builder()
        .expire_after(MokaExpiry {
            renew_on_read: op == "get_renew",
        })
        .build();
    let ttl = matches!(op, "set_ttl" | "get_renew").then_some(TTL);
    if matches!(op, "get_hit" | "get_renew" | "delete") {
        for (key, value) in data.keys.iter().zip(data.values.iter()) {
            let entry = MokaEntry {
                value: value.clone(),
                ttl,
            };
            cache.insert(key.clone(), entry).await;
        }
    }
    timed(concurrency, data.keys.len(), |indices| {
        let cache = cache.clone();
        let (keys, missing, values) =
            (data.keys.clone(), data.missing.clone(), data.values.clone());
        async move {
            for i in indices {
                let key = &keys[i];
                match op {
                    "set" | "set_ttl" => {
                        let entry = MokaEntry {
                            value: values[i].clone(),
                            ttl,
                        };
                        cache.insert(key.clone(), entry).await
                    }
                    "get_hit" | "get_renew" => {
                        expect(cache.get(key).await.map(|e| e.value).is_some(), op, key)?
                    }
                    "get_miss" => expect(cache.get(&missing[i]).await.is_some(), op, key)?,
                    "delete" => cache.invalidate(key).await,
                    _ => unreachable!(),
                }
            }
            Ok(())
        }
    })
    .await
}

/// An 8-byte big-endian absolute expiry in ms (0: none) before the value,
/// for the engines that have no expiry of their own.
fn with_expiry(ttl: Option<Duration>, value: &[u8]) -> Vec<u8> {
    let deadline = ttl.map_or(0, common::deadline_ms);
    let mut record = Vec::with_capacity(8 + value.len());
    record.extend_from_slice(&deadline.to_be_bytes());
    record.extend_from_slice(value);
    record
}

/// The value of a record made by `with_expiry`, or `None` once expired.
fn live_value(record: &[u8]) -> Option<Bytes> {
    let (deadline, value) = record.split_first_chunk::<8>()?;
    let deadline = u64::from_be_bytes(*deadline);
    (deadline == 0 || deadline > common::now_ms()).then(|| Bytes::copy_from_slice(value))
}

mod sqlite {
    //! SQLite as a key/value table, one connection per thread.

    use rusqlite::{Connection, OptionalExtension, params};

    use super::{Data, TTL, common, expect, on_threads};

    const UPSERT: &str = "INSERT INTO kv (key, value, expires_at) VALUES (?1, ?2, ?3) \
                          ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at";
    const GET: &str =
        "SELECT value FROM kv WHERE key = ?1 AND (expires_at IS NULL OR expires_at > ?2)";
    // Renews only keys that have an expiry, as the contract says; the op
    // runs on keys that all have one.
    const RENEW: &str =
        "UPDATE kv SET expires_at = ?3 WHERE key = ?1 AND expires_at > ?2 RETURNING value";
    const DELETE: &str = "DELETE FROM kv WHERE key = ?1";

    fn open(path: &std::path::Path, synchronous: &str) -> Result<Connection, String> {
        let conn = Connection::open(path).map_err(|e| e.to_string())?;
        // Writers on other connections wait for the write lock instead of
        // failing with SQLITE_BUSY.
        conn.busy_timeout(std::time::Duration::from_secs(120))
            .map_err(|e| e.to_string())?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous};"
        ))
        .map_err(|e| e.to_string())?;
        Ok(conn)
    }

    pub fn run(
        op: &str,
        concurrency: usize,
        data: &Data,
        synchronous: &str,
    ) -> Result<f64, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("peers.sqlite");
        let mut conn = open(&path, synchronous)?;
        conn.execute_batch(
            "CREATE TABLE kv (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, expires_at INTEGER) WITHOUT ROWID",
        )
        .map_err(|e| e.to_string())?;
        let ttl = matches!(op, "set_ttl" | "get_renew").then(|| common::deadline_ms(TTL) as i64);
        if matches!(op, "get_hit" | "get_renew" | "delete") {
            let txn = conn.transaction().map_err(|e| e.to_string())?;
            for (key, value) in data.keys.iter().zip(data.values.iter()) {
                txn.prepare_cached(UPSERT)
                    .and_then(|mut s| s.execute(params![key, &value[..], ttl]))
                    .map_err(|e| e.to_string())?;
            }
            txn.commit().map_err(|e| e.to_string())?;
        }
        on_threads(
            concurrency,
            data.keys.len(),
            |_| open(&path, synchronous),
            |conn, i| {
                let key = &data.keys[i];
                let now = common::now_ms() as i64;
                let result = match op {
                    "set" | "set_ttl" => conn
                        .prepare_cached(UPSERT)
                        .and_then(|mut s| s.execute(params![key, &data.values[i][..], ttl]))
                        .map(drop),
                    "get_hit" | "get_miss" => {
                        let key = if op == "get_hit" {
                            key
                        } else {
                            &data.missing[i]
                        };
                        let value = conn
                            .prepare_cached(GET)
                            .and_then(|mut s| {
                                s.query_row(params![key, now], |r| r.get::<_, Vec<u8>>(0))
                                    .optional()
                            })
                            .map_err(|e| e.to_string())?;
                        return expect(value.is_some(), op, key);
                    }
                    "get_renew" => {
                        let value = conn
                            .prepare_cached(RENEW)
                            .and_then(|mut s| {
                                s.query_row(params![key, now, ttl], |r| r.get::<_, Vec<u8>>(0))
                                    .optional()
                            })
                            .map_err(|e| e.to_string())?;
                        return expect(value.is_some(), op, key);
                    }
                    "delete" => conn
                        .prepare_cached(DELETE)
                        .and_then(|mut s| s.execute(params![key]))
                        .map(drop),
                    _ => unreachable!(),
                };
                result.map_err(|e| e.to_string())
            },
        )
    }
}

mod fjall {
    //! fjall, one keyspace shared by the threads.

    use fjall::{Database, KeyspaceCreateOptions, PersistMode};

    use super::{Data, TTL, expect, live_value, on_threads, with_expiry};

    pub fn run(op: &str, concurrency: usize, data: &Data, durable: bool) -> Result<f64, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let db = Database::builder(dir.path())
            .open()
            .map_err(|e| e.to_string())?;
        let kv = db
            .keyspace("kv", KeyspaceCreateOptions::default)
            .map_err(|e| e.to_string())?;
        let ttl = (op == "set_ttl").then_some(TTL);
        if matches!(op, "get_hit" | "delete") {
            for (key, value) in data.keys.iter().zip(data.values.iter()) {
                kv.insert(key.as_str(), with_expiry(None, value))
                    .map_err(|e| e.to_string())?;
            }
            db.persist(PersistMode::SyncAll)
                .map_err(|e| e.to_string())?;
        }
        // Durable: every write waits for the journal's fsync, as FileStore's
        // default does; otherwise the journal reaches the OS only.
        let persist = || {
            if durable {
                db.persist(PersistMode::SyncAll).map_err(|e| e.to_string())
            } else {
                Ok(())
            }
        };
        on_threads(
            concurrency,
            data.keys.len(),
            |_| Ok(()),
            |_, i| {
                let key = data.keys[i].as_str();
                match op {
                    "set" | "set_ttl" => {
                        kv.insert(key, with_expiry(ttl, &data.values[i]))
                            .map_err(|e| e.to_string())?;
                        persist()
                    }
                    "get_hit" | "get_miss" => {
                        let key = if op == "get_hit" {
                            key
                        } else {
                            &data.missing[i]
                        };
                        let record = kv.get(key).map_err(|e| e.to_string())?;
                        expect(record.and_then(|r| live_value(&r)).is_some(), op, key)
                    }
                    "delete" => {
                        kv.remove(key).map_err(|e| e.to_string())?;
                        persist()
                    }
                    _ => unreachable!(),
                }
            },
        )
    }
}

mod redb {
    //! Raw redb: the engine under FileStore, with nothing of ours around it.

    use redb::{ConcurrencyMode, Database, ReadableDatabase, TableDefinition};

    use super::{Data, expect, live_value, on_threads, with_expiry};

    const TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("peers");

    fn create(path: &std::path::Path, multi_writer: bool) -> Result<Database, String> {
        let mut builder = Database::builder();
        if multi_writer {
            builder.set_concurrency_mode(ConcurrencyMode::MultiWriter);
        }
        builder.create(path).map_err(|e| e.to_string())
    }

    /// Every set in its own durable write transaction, as a program
    /// without group commit would do; the threads queue on redb's writer.
    pub fn commit_per_set(
        concurrency: usize,
        data: &Data,
        multi_writer: bool,
    ) -> Result<f64, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let db = create(&dir.path().join("peers.redb"), multi_writer)?;
        on_threads(
            concurrency,
            data.keys.len(),
            |_| Ok(()),
            |_, i| {
                let txn = db.begin_write().map_err(|e| e.to_string())?;
                txn.open_table(TABLE)
                    .map_err(|e| e.to_string())?
                    .insert(
                        data.keys[i].as_str(),
                        &with_expiry(None, &data.values[i])[..],
                    )
                    .map_err(|e| e.to_string())?;
                txn.commit().map_err(|e| e.to_string())
            },
        )
    }

    /// Gets of present keys, each in its own read transaction or all of a
    /// thread's in one.
    pub fn reads(concurrency: usize, data: &Data, one_txn: bool) -> Result<f64, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let db = create(&dir.path().join("peers.redb"), false)?;
        let txn = db.begin_write().map_err(|e| e.to_string())?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| e.to_string())?;
            for (key, value) in data.keys.iter().zip(data.values.iter()) {
                table
                    .insert(key.as_str(), &with_expiry(None, value)[..])
                    .map_err(|e| e.to_string())?;
            }
        }
        txn.commit().map_err(|e| e.to_string())?;
        let open = || {
            let txn = db.begin_read().map_err(|e| e.to_string())?;
            txn.open_table(TABLE).map_err(|e| e.to_string())
        };
        on_threads(
            concurrency,
            data.keys.len(),
            |_| if one_txn { open().map(Some) } else { Ok(None) },
            |table, i| {
                let key = data.keys[i].as_str();
                let fresh;
                let table = match table {
                    Some(table) => &*table,
                    None => {
                        fresh = open()?;
                        &fresh
                    }
                };
                let record = table.get(key).map_err(|e| e.to_string())?;
                expect(
                    record.and_then(|r| live_value(r.value())).is_some(),
                    "get_hit",
                    key,
                )
            },
        )
    }
}
