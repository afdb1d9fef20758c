//! `kvstores`: inspect, maintain, export and back up a kvstores store from
//! the shell — a `FileStore` database file or a namespace of a Redis/Valkey
//! server.
//!
//! Built only with the `cli` feature (`cargo install kvstores --features
//! cli`), so that library users never compile clap.
//!
//! - `main.rs` — the command line (clap derive) and exit codes.
//! - `target.rs` — opening the store the options name, and what differs
//!   between a file and a server.
//! - `commands.rs` — one function per subcommand.
//! - `output.rs` — tables, sizes, durations, colour and progress bars.

mod commands;
mod output;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Inspect, maintain, export and back up a kvstores store: a FileStore
/// database file (--file) or a Redis/Valkey server (--url).
///
/// Exit status: 0 on success, 1 on failure (one line on stderr), 2 for a
/// usage error, 3 when `get` or `ttl` finds no such key.
#[derive(Debug, Parser)]
#[command(name = "kvstores", version, max_term_width = 100)]
pub struct Cli {
    /// The FileStore database file.
    #[arg(
        long,
        global = true,
        value_name = "PATH",
        env = "KVSTORES_FILE",
        hide_env_values = true
    )]
    file: Option<PathBuf>,

    /// The Redis/Valkey server, e.g. redis://127.0.0.1:6379/0 or
    /// valkey://:password@host:6379; for a cluster, some of its nodes' URLs
    /// separated by commas. Prefer the KVSTORES_URL variable for a
    /// URL with a password: arguments are visible to other users.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        env = "KVSTORES_URL",
        hide_env_values = true
    )]
    url: Option<String>,

    /// The root namespace segment on the server (the library's
    /// RedisStore::connect uses "kvstores").
    #[arg(long, global = true, value_name = "NAME", default_value = "kvstores")]
    root: String,

    /// The namespace to work in, as a path: `-n app/sessions` is the same
    /// as `-n app -n sessions` (repeat the option to go deeper). Each name
    /// is split at `/`, so names that contain a `/` cannot be given here.
    #[arg(short, long, global = true, value_name = "NAME[/NAME…]")]
    namespace: Vec<String>,

    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print a key's value (raw bytes; with --json, an export line).
    Get {
        /// The key.
        key: String,
        /// Also reset the key's expiry, if it has one, to now + DURATION.
        #[arg(long, value_name = "DURATION", value_parser = output::parse_duration)]
        renew: Option<Duration>,
    },
    /// Store a value under a key.
    Set {
        /// The key.
        key: String,
        /// The value; read from stdin when absent or `-`.
        value: Option<String>,
        /// Expire the key after DURATION (e.g. 500ms, 30s, 10m, 2h, 7d; a
        /// bare number is seconds). Without it the key never expires.
        #[arg(long, value_name = "DURATION", value_parser = output::parse_duration)]
        ttl: Option<Duration>,
    },
    /// Delete keys (missing keys are fine).
    Del {
        /// The keys.
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Print whether a key exists (true or false).
    Exists {
        /// The key.
        key: String,
    },
    /// Print how long a key has left to live.
    Ttl {
        /// The key.
        key: String,
    },
    /// List the namespace's keys, with their size and expiry.
    Keys {
        /// Only keys that start with PREFIX.
        prefix: Option<String>,
        /// Also list the keys of every child namespace.
        #[arg(short, long)]
        recursive: bool,
    },
    /// Delete every key of the namespace and of its children.
    Clear {
        /// Do not ask for confirmation (needed when stdin is not a
        /// terminal).
        #[arg(short, long)]
        yes: bool,
    },
    /// Remove expired entries from the file now (a server removes them
    /// itself).
    PurgeExpired,
    /// Count live and expired entries and their bytes; the file's size.
    Stats,
    /// Write every entry of the namespace and its children as JSON lines.
    ///
    /// One object per line: {"namespace":[…],"key":"…","value":"<base64>",
    /// "expires_at":<unix ms or null>}; namespaces are relative to the
    /// exported one. See the kvstores::export documentation.
    Export {
        /// Write to FILE instead of stdout (refuses to overwrite).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Read JSON lines written by export into the namespace, expiries
    /// intact; already expired entries are skipped.
    Import {
        /// Read from FILE; stdin when absent or `-`.
        input: Option<PathBuf>,
    },
    /// Copy the database file, consistently, while it is in use (FileStore).
    Backup {
        /// The new file; never overwritten.
        destination: PathBuf,
    },
    /// Give the file's free space back to the file system (FileStore).
    Compact,
}

/// How a command ended other than with success.
#[derive(Debug)]
pub enum Failure {
    /// Anything that went wrong: one line for stderr.
    Error(String),
    /// `get` or `ttl` found no such key.
    NotFound(String),
}

/// One line: the error, then each of its causes after a colon, since the
/// library keeps a cause's text out of its own message.
impl<E: std::error::Error> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Error(chain(&e))
    }
}

/// `error: cause: its cause…` on one line. A cause whose text already ends
/// the line is left out: some dependencies' errors (the redis client's)
/// print their own source inside their message as well.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(error) = cause {
        let text = error.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = error.source();
    }
    // stderr gets one line per failure, whatever a cause's text holds.
    line.replace('\n', " ")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&format!("cannot start the async runtime: {e}"), 1),
    };
    let result = runtime.block_on(commands::run(cli));
    // A store's last handle is dropped inside `run`, so its file is closed
    // (and its writes durable) before the process exits.
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Error(message)) => fail(&message, 1),
        Err(Failure::NotFound(message)) => fail(&message, 3),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    let prefix = output::paint("error:", output::RED, output::Stream::Stderr);
    eprintln!("{prefix} {message}");
    ExitCode::from(code)
}
