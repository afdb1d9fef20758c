//! Every operation sequence, run on MemoryStore and FileStore under a manual
//! clock and compared step by step with a plain in-memory model of the
//! contract (a map from (namespace path, key) to value and deadline).
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use kvstores::{
    Error, FileDurability, FileStore, ManualClock, MemoryStore, NamespacedStore, Store,
};
use libfuzzer_sys::fuzz_target;

/// Namespace paths chosen to collide if the encoding or the isolation were
/// wrong: prefixes, separators and glob characters.
const PATHS: &[&[&str]] = &[
    &[],
    &["a"],
    &["a", "b"],
    &["a", "b", "c"],
    &["ab"],
    &["a:b"],
    &["a", ""],
    &["*"],
    &["a", "b:c"],
];
const KEYS: &[&str] = &["", "k", "b", "a:b", "b:c", "*", "\0", "ключ"];

#[derive(Arbitrary, Debug)]
enum Op {
    Set {
        path: u8,
        key: u8,
        value: u8,
        ttl_ms: Option<u16>,
    },
    Get {
        path: u8,
        key: u8,
        renew_ms: Option<u16>,
    },
    Delete {
        path: u8,
        key: u8,
    },
    DeleteAll {
        path: u8,
    },
    Exists {
        path: u8,
        key: u8,
    },
    ExpiresIn {
        path: u8,
        key: u8,
    },
    DeleteExpired {
        path: u8,
    },
    Advance {
        ms: u16,
    },
}

#[derive(Clone, Debug, PartialEq)]
struct Entry {
    value: Bytes,
    deadline: Option<u64>,
}

/// The contract, written as plainly as possible.
#[derive(Default)]
struct Model {
    entries: BTreeMap<(Vec<String>, String), Entry>,
}

impl Model {
    fn live(&self, at: &(Vec<String>, String), now: u64) -> Option<&Entry> {
        self.entries
            .get(at)
            .filter(|e| e.deadline.is_none_or(|d| now < d))
    }
}

enum Backend {
    Memory(MemoryStore),
    File(FileStore),
}

impl Backend {
    fn store(&self, path: &[&str]) -> Box<dyn Store> {
        match self {
            Backend::Memory(root) => {
                Box::new(path.iter().fold(root.clone(), |s, n| s.with_namespace(n)))
            }
            Backend::File(root) => {
                Box::new(path.iter().fold(root.clone(), |s, n| s.with_namespace(n)))
            }
        }
    }

    async fn delete_expired(&self, path: &[&str]) -> usize {
        match self {
            Backend::Memory(root) => {
                path.iter()
                    .fold(root.clone(), |s, n| s.with_namespace(n))
                    .delete_expired()
                    .await
            }
            Backend::File(root) => path
                .iter()
                .fold(root.clone(), |s, n| s.with_namespace(n))
                .delete_expired()
                .await
                .expect("delete_expired"),
        }
    }
}

struct World {
    runtime: tokio::runtime::Runtime,
    clock: ManualClock,
    backends: Vec<(&'static str, Backend)>,
    _dir: tempfile::TempDir,
}

/// One world for the whole run: opening a database per input would cost
/// more than the input. Each input starts by emptying every store.
fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let clock = ManualClock::new();
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Exclusive and periodically durable: the model checks semantics,
        // not fsync, and a durable commit per step would make each input
        // take milliseconds.
        let file = FileStore::builder(dir.path().join("model.redb"))
            .clock(clock.clone())
            .exclusive(true)
            .durability(FileDurability::Periodic(Duration::from_secs(1)))
            .open()
            .expect("a FileStore");
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            backends: vec![
                (
                    "memory",
                    Backend::Memory(MemoryStore::builder().clock(clock.clone()).build()),
                ),
                ("file", Backend::File(file)),
            ],
            clock,
            _dir: dir,
        }
    })
}

fn pick<T: Copy>(items: &[T], i: u8) -> T {
    items[usize::from(i) % items.len()]
}

fn owned(path: &[&str]) -> Vec<String> {
    path.iter().map(|s| s.to_string()).collect()
}

fuzz_target!(|ops: Vec<Op>| {
    let world = world();
    world.runtime.block_on(async {
        for (_, backend) in &world.backends {
            backend.store(&[]).delete_all().await.unwrap();
        }
        let mut model = Model::default();
        for op in ops.iter().take(64) {
            let now = world.clock.now_millis();
            for (name, backend) in &world.backends {
                step(name, backend, &model, op, now).await;
            }
            apply(&mut model, op, now, &world.clock);
        }
    });
});

/// Runs `op` on one backend and checks its answer against the model before
/// the model applies it.
async fn step(name: &str, backend: &Backend, model: &Model, op: &Op, now: u64) {
    let ms = |v: u16| Duration::from_millis(u64::from(v));
    match *op {
        Op::Set {
            path,
            key,
            value,
            ttl_ms,
        } => {
            let store = backend.store(pick(PATHS, path));
            let result = store
                .set(pick(KEYS, key), Bytes::from(vec![value]), ttl_ms.map(ms))
                .await;
            assert_eq!(
                result.is_err(),
                ttl_ms == Some(0),
                "{name}: {op:?}: {result:?}"
            );
            if let Err(e) = result {
                assert!(matches!(e, Error::InvalidArgument { .. }), "{name}: {e:?}");
            }
        }
        Op::Get {
            path,
            key,
            renew_ms,
        } => {
            let at = (owned(pick(PATHS, path)), pick(KEYS, key).to_string());
            let got = backend
                .store(pick(PATHS, path))
                .get(&at.1, renew_ms.map(ms))
                .await;
            if renew_ms == Some(0) {
                assert!(
                    matches!(got, Err(Error::InvalidArgument { .. })),
                    "{name}: {op:?}: {got:?}"
                );
            } else {
                assert_eq!(
                    got.unwrap(),
                    model.live(&at, now).map(|e| e.value.clone()),
                    "{name}: {op:?}"
                );
            }
        }
        Op::Delete { path, key } => backend
            .store(pick(PATHS, path))
            .delete(pick(KEYS, key))
            .await
            .unwrap(),
        Op::DeleteAll { path } => backend.store(pick(PATHS, path)).delete_all().await.unwrap(),
        Op::Exists { path, key } => {
            let at = (owned(pick(PATHS, path)), pick(KEYS, key).to_string());
            let got = backend
                .store(pick(PATHS, path))
                .exists(&at.1)
                .await
                .unwrap();
            assert_eq!(got, model.live(&at, now).is_some(), "{name}: {op:?}");
        }
        Op::ExpiresIn { path, key } => {
            let at = (owned(pick(PATHS, path)), pick(KEYS, key).to_string());
            let got = backend
                .store(pick(PATHS, path))
                .expires_in(&at.1)
                .await
                .unwrap();
            let want = model
                .live(&at, now)
                .and_then(|e| e.deadline)
                .map(|d| Duration::from_millis(d - now));
            assert_eq!(got, want, "{name}: {op:?}");
        }
        Op::DeleteExpired { path } => {
            let namespace = owned(pick(PATHS, path));
            let want = model
                .entries
                .iter()
                .filter(|((p, _), e)| {
                    p.starts_with(&namespace) && e.deadline.is_some_and(|d| d <= now)
                })
                .count();
            assert_eq!(
                backend.delete_expired(pick(PATHS, path)).await,
                want,
                "{name}: {op:?}"
            );
        }
        Op::Advance { .. } => {}
    }
}

fn apply(model: &mut Model, op: &Op, now: u64, clock: &ManualClock) {
    match *op {
        Op::Set {
            ttl_ms: Some(0), ..
        }
        | Op::Get {
            renew_ms: Some(0), ..
        } => {}
        Op::Set {
            path,
            key,
            value,
            ttl_ms,
        } => {
            let deadline = ttl_ms.map(|ms| now + u64::from(ms));
            let at = (owned(pick(PATHS, path)), pick(KEYS, key).to_string());
            model.entries.insert(
                at,
                Entry {
                    value: Bytes::from(vec![value]),
                    deadline,
                },
            );
        }
        Op::Get {
            path,
            key,
            renew_ms: Some(ms),
        } => {
            let at = (owned(pick(PATHS, path)), pick(KEYS, key).to_string());
            if model.live(&at, now).is_some_and(|e| e.deadline.is_some()) {
                model.entries.get_mut(&at).unwrap().deadline = Some(now + u64::from(ms));
            }
        }
        Op::Delete { path, key } => {
            model
                .entries
                .remove(&(owned(pick(PATHS, path)), pick(KEYS, key).to_string()));
        }
        Op::DeleteAll { path } => {
            let namespace = owned(pick(PATHS, path));
            model.entries.retain(|(p, _), _| !p.starts_with(&namespace));
        }
        Op::DeleteExpired { path } => {
            let namespace = owned(pick(PATHS, path));
            model.entries.retain(|(p, _), e| {
                !(p.starts_with(&namespace) && e.deadline.is_some_and(|d| d <= now))
            });
        }
        Op::Advance { ms } => clock.advance(Duration::from_millis(u64::from(ms))),
        Op::Get { .. } | Op::Exists { .. } | Op::ExpiresIn { .. } => {}
    }
}
