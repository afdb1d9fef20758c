//! The store the command line names. Opening it (`open_file`, `connect`) is
//! the one place that knows the backends' types; every command then goes
//! through [`FullStore`] (the `Store` methods and `Maintenance`: listing,
//! importing, purging), except `backup`, `compact` and a file's usage,
//! which only a file has.

use std::fmt;
use std::path::Path;

use kvstores::{FileStore, FullStore, NamespacedStore, RedisStore};

use crate::{Cli, Failure};

/// An open store, already inside the namespace the options name.
pub struct Target {
    store: Box<dyn FullStore>,
    /// The same store when it is a file, for what only a file can do.
    file: Option<FileStore>,
    /// `file /x/store.redb` or `server 127.0.0.1:6379`, for messages.
    place: String,
    /// The namespace path from the root (the server's root segment first).
    namespace: Vec<String>,
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
                let store = descend(open_file(file, create).await?, &path);
                Ok(Target {
                    place: format!("file {}", store.path().display()),
                    namespace: store.namespace().to_vec(),
                    file: Some(store.clone()),
                    store: Box::new(store),
                })
            }
            (None, Some(url)) => {
                let store = connect(url, &cli.root).await?;
                let place = format!("server {}", store.server());
                let store = descend(store, &path);
                Ok(Target {
                    place,
                    namespace: store.namespace().to_vec(),
                    file: None,
                    store: Box::new(store),
                })
            }
        }
    }

    pub fn store(&self) -> &dyn FullStore {
        &*self.store
    }

    pub fn file(&self) -> Option<&FileStore> {
        self.file.as_ref()
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

/// Opens the database file; only the commands that write may create it, so
/// a mistyped path is an error elsewhere.
async fn open_file(file: &Path, create: Create) -> Result<FileStore, Failure> {
    if create == Create::No && !file.exists() {
        return Err(Failure::Error(format!(
            "no such file: {} (only set and import create a new database)",
            file.display()
        )));
    }
    let file = file.to_owned();
    // Opening a file left by a crash repairs it, which reads the whole
    // file: not on an async worker.
    let store = tokio::task::spawn_blocking(move || FileStore::open(file))
        .await
        .map_err(|e| Failure::Error(format!("opening the file panicked: {e}")))??;
    Ok(store)
}

/// Connects to a Redis or Valkey server (`redis://`, `valkey://`), or to a
/// cluster given as a comma-separated list of its nodes' URLs, with `root`
/// as the root namespace segment.
async fn connect(url: &str, root: &str) -> Result<RedisStore, Failure> {
    let builder = if url.contains(',') {
        RedisStore::cluster_builder(url.split(',').map(str::trim))
    } else {
        RedisStore::builder(url)
    };
    Ok(builder.namespace(Some(root)).connect().await?)
}

fn descend<S: NamespacedStore>(store: S, path: &[&str]) -> S {
    path.iter().fold(store, |s, name| s.with_namespace(name))
}

/// Says where the target is, for messages: `file /x/store.redb (namespace
/// a/b)` or `server 127.0.0.1:6379 (namespace kvstores/a)`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} (root namespace)", self.place)
        } else {
            write!(f, "{} (namespace {})", self.place, self.namespace.join("/"))
        }
    }
}
