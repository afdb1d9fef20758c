//! One function per subcommand. Each prints its result to stdout (a table
//! or a sentence for people, JSON with `--json`) and returns a `Failure`
//! for anything that went wrong.
//!
//! The runtime runs this one command and nothing else, so the few blocking
//! reads and writes of stdin, stdout and export files here (all buffered)
//! hold up no one; the stores' own disk work runs on their threads.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kvstores::{Bytes, Clock, Entry, ListOptions, export};
use serde_json::json;

use crate::output::{
    BOLD, Stream, format_bytes, format_count, format_duration, paint, printable, progress,
};
use crate::target::{Create, Target};
use crate::{Cli, Command, Failure, chain};

/// Entries an import hands to the store at once: large batches let a
/// FileStore put thousands of writes in each commit (100,000 entries of 100
/// bytes imported about twice as fast as with batches of 1,000, in key
/// order or not)...
const IMPORT_BATCH: usize = 10_000;
/// ...unless their values add up to this many bytes first, which bounds
/// the memory an import of large values takes.
const IMPORT_BATCH_BYTES: u64 = 64 << 20;

pub async fn run(cli: Cli) -> Result<(), Failure> {
    let create = match cli.command {
        Command::Set { .. } | Command::Import { .. } => Create::Yes,
        _ => Create::No,
    };
    let target = Target::open(&cli, create).await?;
    let json = cli.json;
    match cli.command {
        Command::Get { key, renew } => get(&target, &key, renew, json).await,
        Command::Set { key, value, ttl } => set(&target, &key, value, ttl).await,
        Command::Del { keys } => {
            for key in keys {
                target.store().delete(&key).await?;
            }
            Ok(())
        }
        Command::Exists { key } => {
            let exists = target.store().exists(&key).await?;
            println!("{exists}");
            Ok(())
        }
        Command::Ttl { key } => ttl(&target, &key, json).await,
        Command::Keys { prefix, recursive } => keys(&target, prefix, recursive, json).await,
        Command::Clear { yes } => clear(&target, yes, json).await,
        Command::PurgeExpired => purge_expired(&target, json).await,
        Command::Stats => stats(&target, json).await,
        Command::Export { output } => export(&target, output, json).await,
        Command::Import { input } => import(&target, input, json).await,
        Command::Backup { destination } => backup(&target, &destination, json).await,
        Command::Compact => compact(&target, json).await,
    }
}

fn not_found(key: &str, target: &Target) -> Failure {
    Failure::NotFound(format!("no key {key:?} in {target}"))
}

fn now_millis() -> u64 {
    Clock::system().unix_millis()
}

async fn get(
    target: &Target,
    key: &str,
    renew: Option<Duration>,
    json: bool,
) -> Result<(), Failure> {
    let store = target.store();
    let value = store
        .get(key, renew)
        .await?
        .ok_or_else(|| not_found(key, target))?;
    if json {
        // The store reports time left; the line carries the absolute time.
        let left = store.expires_in(key).await?;
        let expires_at = left.map(|d| now_millis() + d.as_millis() as u64);
        println!("{}", export::to_line(&Entry::new(key, value, expires_at))?);
        return Ok(());
    }
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(&value)?;
    // On a terminal, end the line so the prompt starts on its own; in a
    // pipe the bytes go out exactly as stored.
    if stdout.is_terminal() && !value.ends_with(b"\n") {
        stdout.write_all(b"\n")?;
    }
    stdout.flush()?;
    Ok(())
}

async fn set(
    target: &Target,
    key: &str,
    value: Option<String>,
    ttl: Option<Duration>,
) -> Result<(), Failure> {
    let value = match value.as_deref() {
        Some("-") | None => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut bytes)
                .map_err(|e| Failure::Error(format!("cannot read the value from stdin: {e}")))?;
            Bytes::from(bytes)
        }
        Some(value) => Bytes::from(value.to_owned()),
    };
    target.store().set(key, value, ttl).await?;
    Ok(())
}

async fn ttl(target: &Target, key: &str, json: bool) -> Result<(), Failure> {
    let store = target.store();
    if !store.exists(key).await? {
        return Err(not_found(key, target));
    }
    let left = store.expires_in(key).await?;
    if json {
        let ms = left.map(|d| d.as_millis() as u64);
        println!("{}", json!({ "key": key, "expires_in_ms": ms }));
    } else {
        match left {
            Some(left) => println!("{}", format_duration(left)),
            None => println!("no expiry"),
        }
    }
    Ok(())
}

/// Rows the `keys` table holds back to size its namespace column; after
/// them it streams, so a listing of millions never sits in memory.
const TABLE_SAMPLE: usize = 1000;

async fn keys(
    target: &Target,
    prefix: Option<String>,
    recursive: bool,
    json: bool,
) -> Result<(), Failure> {
    let options = ListOptions::new()
        .key_prefix(prefix.unwrap_or_default())
        .descendants(recursive);
    let mut listing = target.store().entries(options);
    let mut stdout = BufWriter::new(std::io::stdout().lock());
    let mut table = Table {
        recursive,
        width: None,
        held: Vec::new(),
        count: 0,
    };
    while let Some(page) = listing.next_page().await? {
        if json {
            for entry in page {
                let line = json!({
                    "namespace": entry.namespace,
                    "key": entry.key,
                    "size": entry.size,
                    "expires_at": entry.expires_at,
                });
                writeln!(stdout, "{line}")?;
            }
        } else {
            table.add(page, &mut stdout)?;
        }
    }
    if !json {
        table.finish(&mut stdout)?;
    }
    stdout.flush()?;
    Ok(())
}

/// The `keys` table: rows are held until [`TABLE_SAMPLE`] of them (or the
/// end) size the namespace column, then written as they come; a later,
/// wider namespace overflows the column rather than wait for the last page
/// (a SCAN hands out a few keys per page).
struct Table {
    recursive: bool,
    width: Option<usize>,
    held: Vec<Entry>,
    count: u64,
}

impl Table {
    fn add(&mut self, page: Vec<Entry>, out: &mut impl Write) -> std::io::Result<()> {
        self.held.extend(page);
        if self.width.is_some() || self.held.len() >= TABLE_SAMPLE {
            self.flush(out)?;
        }
        Ok(())
    }

    fn finish(mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.flush(out)?;
        let noun = if self.count == 1 { "key" } else { "keys" };
        writeln!(out, "{} {noun}", format_count(self.count))
    }

    fn flush(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let width = match self.width {
            Some(width) => width,
            None => {
                let width = self
                    .held
                    .iter()
                    .map(|e| namespace_label(&e.namespace).chars().count())
                    .max()
                    .unwrap_or(0)
                    .max("NAMESPACE".len());
                let last = if self.recursive {
                    format!("{:<width$}  KEY", "NAMESPACE")
                } else {
                    "KEY".to_owned()
                };
                let header = format!("{:>10}  {:<12}  {last}", "SIZE", "EXPIRES IN");
                writeln!(out, "{}", paint(&header, BOLD, Stream::Stdout))?;
                *self.width.insert(width)
            }
        };
        let now = now_millis();
        for entry in self.held.drain(..) {
            self.count += 1;
            let expires = match entry.expires_at {
                Some(at) => format_duration(Duration::from_millis(at.saturating_sub(now).max(1))),
                None => "never".to_owned(),
            };
            let size = format_bytes(entry.size);
            let key = printable(&entry.key);
            if self.recursive {
                let namespace = namespace_label(&entry.namespace);
                writeln!(out, "{size:>10}  {expires:<12}  {namespace:<width$}  {key}")?;
            } else {
                writeln!(out, "{size:>10}  {expires:<12}  {key}")?;
            }
        }
        Ok(())
    }
}

/// A namespace path as the `keys` table shows it: `a/b`, or `.` for the
/// listed namespace itself.
fn namespace_label(path: &[String]) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path.iter()
            .map(|n| printable(n))
            .collect::<Vec<_>>()
            .join("/")
    }
}

async fn clear(target: &Target, yes: bool, json: bool) -> Result<(), Failure> {
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::Error(format!(
                "clear would delete every key of {target} and of its child namespaces; \
                 stdin is not a terminal to ask, so pass --yes to confirm"
            )));
        }
        eprint!("Delete every key of {target} and of its child namespaces? [y/N] ");
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            return Err(Failure::Error(
                "not confirmed; nothing was deleted".to_owned(),
            ));
        }
    }
    target.store().delete_all().await?;
    if json {
        println!("{}", json!({ "cleared": true }));
    } else {
        println!("Deleted every key of {target} and of its child namespaces.");
    }
    Ok(())
}

async fn purge_expired(target: &Target, json: bool) -> Result<(), Failure> {
    let bar = progress("purging", None);
    bar.set_message("removing expired entries");
    let removed = target.store().delete_expired().await?;
    bar.finish_and_clear();
    if json {
        println!("{}", json!({ "removed": removed }));
    } else if target.file().is_some() {
        let noun = if removed == 1 { "entry" } else { "entries" };
        println!("Removed {} expired {noun}.", format_count(removed as u64));
    } else {
        // Redis and Valkey delete a key the moment it expires, as far as
        // any client can tell: there is nothing left to purge.
        println!("Removed 0 expired entries: the server removes expired keys itself.");
    }
    Ok(())
}

async fn stats(target: &Target, json: bool) -> Result<(), Failure> {
    let (live, expired, bytes, file_size) = match target.file() {
        Some(store) => {
            let usage = store.usage().await?;
            (
                usage.live,
                Some(usage.expired),
                usage.live_bytes,
                Some(usage.file_size),
            )
        }
        None => {
            let bar = progress("scanned", None);
            let mut listing = target.store().entries(ListOptions::new().descendants(true));
            let (mut live, mut bytes) = (0, 0);
            while let Some(page) = listing.next_page().await? {
                bar.inc(page.len() as u64);
                live += page.len() as u64;
                bytes += page
                    .iter()
                    .map(|e| e.key.len() as u64 + e.size)
                    .sum::<u64>();
            }
            bar.finish_and_clear();
            (live, None, bytes, None)
        }
    };
    if json {
        let line = json!({
            "live": live,
            "expired": expired,
            "live_bytes": bytes,
            "file_size": file_size,
        });
        println!("{line}");
        return Ok(());
    }
    println!("{}", paint(&target.to_string(), BOLD, Stream::Stdout));
    println!("  live entries     {}", format_count(live));
    match expired {
        Some(expired) => println!(
            "  expired entries  {} (not yet purged)",
            format_count(expired)
        ),
        None => println!("  expired entries  - (the server removes them itself)"),
    }
    println!(
        "  live bytes       {} ({} bytes of keys and values)",
        format_bytes(bytes),
        format_count(bytes)
    );
    if let Some(size) = file_size {
        println!(
            "  file size        {} (the whole database)",
            format_bytes(size)
        );
    }
    Ok(())
}

/// Prints the one-line summary of an export or import: to stdout when the
/// data went to or came from a file, else to stderr, so that a pipe carries
/// only the data.
fn summary(to_stdout: bool, json: bool, text: String, value: serde_json::Value) {
    let text = if json { value.to_string() } else { text };
    if to_stdout {
        println!("{text}");
    } else {
        eprintln!("{text}");
    }
}

/// `in 1.2s (81,234/s)`.
fn rate(count: u64, elapsed: Duration) -> String {
    let per_second = count as f64 / elapsed.as_secs_f64().max(1e-9);
    format!(
        "in {} ({}/s)",
        format_duration(elapsed.max(Duration::from_millis(1))),
        format_count(per_second as u64)
    )
}

async fn export(target: &Target, output: Option<PathBuf>, json: bool) -> Result<(), Failure> {
    let started = Instant::now();
    let (mut out, file): (Box<dyn Write>, Option<(File, &Path)>) = match &output {
        Some(path) => {
            let file = File::options()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| Failure::Error(format!("cannot create {}: {e}", path.display())))?;
            let writer = BufWriter::with_capacity(1 << 20, file.try_clone()?);
            (Box::new(writer), Some((file, path.as_path())))
        }
        None => (Box::new(BufWriter::new(std::io::stdout().lock())), None),
    };
    let bar = progress("exported", None);
    let mut listing = target
        .store()
        .entries(ListOptions::new().descendants(true).values(true));
    let mut count = 0u64;
    while let Some(page) = listing.next_page().await? {
        for entry in &page {
            out.write_all(export::to_line(entry)?.as_bytes())?;
            out.write_all(b"\n")?;
        }
        count += page.len() as u64;
        bar.inc(page.len() as u64);
    }
    out.flush()?;
    drop(out);
    if let Some((file, path)) = &file {
        file.sync_all()
            .map_err(|e| Failure::Error(format!("cannot sync {}: {e}", path.display())))?;
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    summary(
        file.is_some(),
        json,
        format!(
            "Exported {} entries from {target} {}.",
            format_count(count),
            rate(count, elapsed)
        ),
        json!({ "exported": count, "seconds": elapsed.as_secs_f64() }),
    );
    Ok(())
}

async fn import(target: &Target, input: Option<PathBuf>, json: bool) -> Result<(), Failure> {
    let started = Instant::now();
    let input = input.filter(|path| path.as_os_str() != "-");
    let (reader, name, total): (Box<dyn BufRead>, String, Option<u64>) = match &input {
        Some(path) => {
            let file = File::open(path)
                .map_err(|e| Failure::Error(format!("cannot open {}: {e}", path.display())))?;
            let size = file.metadata().ok().map(|m| m.len());
            let reader = BufReader::with_capacity(1 << 20, file);
            (Box::new(reader), path.display().to_string(), size)
        }
        None => (
            Box::new(BufReader::new(std::io::stdin().lock())),
            "stdin".to_owned(),
            None,
        ),
    };
    // By bytes read when the size is known, by entries otherwise.
    let bar = progress("imported", total);
    let (mut read, mut written) = (0u64, 0u64);
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let mut batch_bytes = 0;
    for (number, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Failure::Error(format!("cannot read {name}: {e}")))?;
        if total.is_some() {
            bar.inc(line.len() as u64 + 1);
        }
        if line.trim().is_empty() {
            continue;
        }
        let entry = export::from_line(&line)
            .map_err(|e| Failure::Error(format!("{name}, line {}: {}", number + 1, chain(&e))))?;
        batch_bytes += entry.size;
        batch.push(entry);
        read += 1;
        if batch.len() == IMPORT_BATCH || batch_bytes >= IMPORT_BATCH_BYTES {
            batch_bytes = 0;
            written += target
                .store()
                .import_entries(std::mem::take(&mut batch))
                .await? as u64;
            if total.is_none() {
                bar.set_position(written);
            }
        }
    }
    written += target.store().import_entries(batch).await? as u64;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let skipped = read - written;
    summary(
        input.is_some(),
        json,
        format!(
            "Imported {} entries into {target} {}; {} already expired, skipped.",
            format_count(written),
            rate(written, elapsed),
            format_count(skipped)
        ),
        json!({ "imported": written, "skipped": skipped, "seconds": elapsed.as_secs_f64() }),
    );
    Ok(())
}

async fn backup(target: &Target, destination: &Path, json: bool) -> Result<(), Failure> {
    let store = target.require_file(
        "backup",
        "for a Redis/Valkey store use export, or the server's own BGSAVE",
    )?;
    store.backup_to(destination).await?;
    let size = std::fs::metadata(destination).map_or(0, |m| m.len());
    if json {
        println!(
            "{}",
            json!({ "backup": destination.display().to_string(), "size": size })
        );
    } else {
        println!(
            "Backed up {} to {} ({}).",
            store.path().display(),
            destination.display(),
            format_bytes(size)
        );
    }
    Ok(())
}

async fn compact(target: &Target, json: bool) -> Result<(), Failure> {
    let store = target.require_file("compact", "a Redis/Valkey server manages its own memory")?;
    let size = || std::fs::metadata(store.path()).map_or(0, |m| m.len());
    let before = size();
    let bar = progress("compacting", None);
    let shrunk = store.compact().await?;
    bar.finish_and_clear();
    let after = size();
    if json {
        println!(
            "{}",
            json!({ "compacted": shrunk, "size_before": before, "size_after": after })
        );
    } else if shrunk {
        println!(
            "Compacted {}: {} -> {}.",
            store.path().display(),
            format_bytes(before),
            format_bytes(after)
        );
    } else {
        println!(
            "{} is already compact ({}).",
            store.path().display(),
            format_bytes(after)
        );
    }
    Ok(())
}
