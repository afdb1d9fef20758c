//! The store the command line names, and the few things that differ
//! between a file and a server. Everything else goes through `Store`.

use std::fmt;

use kvstores::{Entries, Entry, FileStore, ListOptions, NamespacedStore, RedisStore, Store};

use crate::{Cli, Failure};

/// An open store, already inside the namespace the options name.
pub enum Target {
    File(FileStore),
    Server { store: RedisStore, server: String },
}

/// Whether the command may create the database file if it is missing.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Yes,
    No,
}

impl Target {
    /// Opens what `--file` or `--url` names and descends into `--namespace`.
    pub async fn open(cli: &Cli, create: Create) -> Result<Target, Failure> {
        let path: Vec<&str> = cli
            .namespace
            .iter()
            .flat_map(|names| names.split('/'))
            .collect();
        match (&cli.file, &cli.url) {
            (Some(_), Some(_)) => Err(Failure::Error(
                "give either --file or --url, not both".to_owned(),
            )),
            (None, None) => Err(Failure::Error(
                "no store given: use --file PATH for a FileStore or --url URL for \
                 Redis/Valkey (or set KVSTORES_FILE or KVSTORES_URL)"
                    .to_owned(),
            )),
            (Some(file), None) => {
                // FileStore::open creates a missing file; only the commands
                // that write may, so a mistyped path is an error elsewhere.
                if create == Create::No && !file.exists() {
                    return Err(Failure::Error(format!(
                        "no such file: {} (only set and import create a new database)",
                        file.display()
                    )));
                }
                let file = file.clone();
                // Opening a file left by a crash repairs it, which reads the
                // whole file: not on an async worker.
                let store = tokio::task::spawn_blocking(move || FileStore::open(file))
                    .await
                    .map_err(|e| Failure::Error(format!("opening the file panicked: {e}")))??;
                Ok(Target::File(
                    path.iter().fold(store, |s, name| s.with_namespace(name)),
                ))
            }
            (None, Some(url)) => {
                let store = RedisStore::builder(url)
                    .namespace(Some(&cli.root))
                    .connect()
                    .await?;
                let server = store.server().to_owned();
                let store = path.iter().fold(store, |s, name| s.with_namespace(name));
                Ok(Target::Server { server, store })
            }
        }
    }

    pub fn store(&self) -> &dyn Store {
        match self {
            Target::File(store) => store,
            Target::Server { store, .. } => store,
        }
    }

    pub fn entries(&self, options: ListOptions) -> Entries {
        match self {
            Target::File(store) => store.entries(options),
            Target::Server { store, .. } => store.entries(options),
        }
    }

    pub async fn import(&self, entries: Vec<Entry>) -> kvstores::Result<usize> {
        match self {
            Target::File(store) => store.import_entries(entries).await,
            Target::Server { store, .. } => store.import_entries(entries).await,
        }
    }

    pub fn file(&self) -> Option<&FileStore> {
        match self {
            Target::File(store) => Some(store),
            Target::Server { .. } => None,
        }
    }

    /// The file, or an error saying that `command` needs one.
    pub fn require_file(&self, command: &str, instead: &str) -> Result<&FileStore, Failure> {
        self.file().ok_or_else(|| {
            Failure::Error(format!(
                "{command} works on a FileStore (--file); {instead}"
            ))
        })
    }
}

/// Says where the target is, for messages: `file /x/store.redb (namespace
/// a/b)` or `server 127.0.0.1:6379 (namespace kvstores/a)`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (place, path) = match self {
            Target::File(store) => (
                format!("file {}", store.path().display()),
                store.namespace().to_vec(),
            ),
            Target::Server { store, server } => {
                (format!("server {server}"), store.namespace().to_vec())
            }
        };
        if path.is_empty() {
            write!(f, "{place} (root namespace)")
        } else {
            write!(f, "{place} (namespace {})", path.join("/"))
        }
    }
}
