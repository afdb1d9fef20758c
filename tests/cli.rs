//! The `kvstores` command, run as a user runs it: the built binary against a
//! FileStore in a temporary directory and a real redis-server.
#![cfg(feature = "cli")]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{Kind, Server, unique};

/// Runs `kvstores` with `args`, feeding it `stdin`, without colour and with
/// no store given by the environment.
fn kv_with_input(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvstores"))
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("KVSTORES_FILE")
        .env_remove("KVSTORES_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the kvstores binary");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn kv(args: &[&str]) -> Output {
    kv_with_input(args, b"")
}

/// Runs `kvstores` and returns its stdout, failing the test on a non-zero
/// exit.
fn ok(args: &[&str]) -> String {
    let out = kv(args);
    assert!(
        out.status.success(),
        "kvstores {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `kvstores`, expects exit status `code` and one error line, and
/// returns that line.
fn fails(args: &[&str], code: i32) -> String {
    let out = kv(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(code), "kvstores {args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line expected: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr.trim_end().to_owned()
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

struct FileArgs {
    _dir: tempfile::TempDir,
    path: String,
}

fn new_file() -> FileArgs {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.redb").display().to_string();
    FileArgs { _dir: dir, path }
}

fn redis_url() -> String {
    Server::shared(Kind::Redis).url()
}

/// Sorted non-empty lines, for comparing exports whose order differs.
fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// `get`, `set`, `exists`, `ttl` and `del` on a FileStore, in a namespace.
#[test]
fn file_basic_commands_round_trip() {
    let f = new_file();
    let file = f.path.as_str();
    ok(&[
        "--file",
        file,
        "-n",
        "app/sessions",
        "set",
        "abc",
        "hello",
        "--ttl",
        "1h",
    ]);
    let ns = ["--file", file, "-n", "app", "-n", "sessions"];
    assert_eq!(ok(&[&ns[..], &["get", "abc"]].concat()), "hello");
    assert_eq!(ok(&[&ns[..], &["exists", "abc"]].concat()), "true\n");
    let left = ok(&[&ns[..], &["ttl", "abc"]].concat());
    assert!(left.starts_with("59m") || left.starts_with("1h"), "{left}");
    let line = json(&ok(&[&ns[..], &["--json", "get", "abc"]].concat()));
    assert_eq!(line["value"], "aGVsbG8=");
    assert!(line["expires_at"].as_u64().unwrap() > 1_700_000_000_000);
    // The root namespace does not see the key.
    assert_eq!(ok(&["--file", file, "exists", "abc"]), "false\n");
    ok(&[&ns[..], &["del", "abc", "missing-too"]].concat());
    assert_eq!(ok(&[&ns[..], &["exists", "abc"]].concat()), "false\n");
    ok(&["--file", file, "set", "forever", "v"]);
    assert_eq!(ok(&["--file", file, "ttl", "forever"]), "no expiry\n");
    let ttl = json(&ok(&["--file", file, "--json", "ttl", "forever"]));
    assert!(ttl["expires_in_ms"].is_null());
}

/// `set` without a value reads stdin, and `get` writes the bytes back
/// exactly, in a pipe.
#[test]
fn set_reads_stdin_and_get_writes_exact_bytes() {
    let f = new_file();
    let value = b"\x00\xffline\n\r\ttail";
    let out = kv_with_input(&["--file", &f.path, "set", "bin"], value);
    assert!(out.status.success());
    let out = kv_with_input(&["--file", &f.path, "set", "dash", "-"], b"from stdin");
    assert!(out.status.success());
    assert_eq!(kv(&["--file", &f.path, "get", "bin"]).stdout, value);
    assert_eq!(ok(&["--file", &f.path, "get", "dash"]), "from stdin");
}

/// `get --renew` moves the expiry.
#[test]
fn get_renew_resets_the_expiry() {
    let f = new_file();
    ok(&["--file", &f.path, "set", "k", "v", "--ttl", "10s"]);
    ok(&["--file", &f.path, "get", "k", "--renew", "2h"]);
    let ttl = json(&ok(&["--file", &f.path, "--json", "ttl", "k"]));
    assert!(ttl["expires_in_ms"].as_u64().unwrap() > 3_600_000, "{ttl}");
}

/// Durations read as people write them: compound, fractional, or a bare
/// number of seconds.
#[test]
fn durations_take_the_usual_forms() {
    let f = new_file();
    for (ttl, low, high) in [
        ("1h30m", 5_300_000, 5_400_000),
        ("1.5h", 5_300_000, 5_400_000),
        ("90", 80_000, 90_000),
        ("2d", 172_000_000, 172_800_000),
    ] {
        ok(&["--file", &f.path, "set", "k", "v", "--ttl", ttl]);
        let left = json(&ok(&["--file", &f.path, "--json", "ttl", "k"]));
        let ms = left["expires_in_ms"].as_u64().unwrap();
        assert!((low..=high).contains(&ms), "{ttl}: {ms} ms");
    }
    let usage = kv(&["--file", &f.path, "set", "k", "v", "--ttl", "5 parsecs"]);
    assert_eq!(usage.status.code(), Some(2));
    let stderr = String::from_utf8(usage.stderr).unwrap();
    assert!(stderr.contains("unknown time unit"), "{stderr}");
}

/// A line that does not import says where it is, what is wrong with it, and
/// the decoder's own words, on one line; nothing of the batch is written.
#[test]
fn a_bad_import_line_says_why() {
    let f = new_file();
    let lines = concat!(
        r#"{"namespace":[],"key":"good","value":"dg==","expires_at":null}"#,
        "\n",
        r#"{"namespace":[],"key":"k","value":"dg==","expires_at":-1}"#,
        "\n"
    );
    let out = kv_with_input(&["--file", &f.path, "import"], lines.as_bytes());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("stdin, line 2"), "{stderr}");
    assert!(stderr.contains("cannot decode export line"), "{stderr}");
    assert!(stderr.contains("expected u64"), "{stderr}");
    assert_eq!(ok(&["--file", &f.path, "exists", "good"]), "false\n");
}

/// `keys` lists the namespace's keys, by prefix, and with `-r` its
/// children's, with sizes and expiries.
#[test]
fn keys_lists_by_prefix_and_recursively() {
    let f = new_file();
    for key in ["user:1", "user:2", "job:1"] {
        ok(&["--file", &f.path, "set", key, "12345"]);
    }
    ok(&[
        "--file", &f.path, "-n", "child", "set", "user:3", "x", "--ttl", "1h",
    ]);
    let table = ok(&["--file", &f.path, "keys"]);
    assert!(
        table.starts_with("      SIZE  EXPIRES IN    KEY\n"),
        "{table}"
    );
    assert!(
        table.contains("       5 B  never         user:1\n"),
        "{table}"
    );
    assert!(table.ends_with("3 keys\n"), "{table}");
    let users = ok(&["--file", &f.path, "--json", "keys", "user:"]);
    let users: Vec<_> = users.lines().map(json).collect();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["key"], "user:1");
    assert_eq!(users[0]["size"], 5);
    let all = ok(&["--file", &f.path, "--json", "keys", "-r", "user:"]);
    let all: Vec<_> = all.lines().map(json).collect();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0]["namespace"], serde_json::json!(["child"]));
    assert!(all[0]["expires_at"].is_u64());
}

/// `clear` asks, refuses without a terminal unless given `--yes`, and then
/// deletes the namespace and its children but not its parent's keys.
#[test]
fn clear_needs_yes_without_a_terminal() {
    let f = new_file();
    ok(&["--file", &f.path, "set", "parent-key", "v"]);
    ok(&["--file", &f.path, "-n", "a", "set", "k", "v"]);
    ok(&["--file", &f.path, "-n", "a/b", "set", "k", "v"]);
    let error = fails(&["--file", &f.path, "-n", "a", "clear"], 1);
    assert!(error.contains("--yes"), "{error}");
    assert_eq!(ok(&["--file", &f.path, "-n", "a", "exists", "k"]), "true\n");
    ok(&["--file", &f.path, "-n", "a", "clear", "--yes"]);
    assert_eq!(
        ok(&["--file", &f.path, "-n", "a", "exists", "k"]),
        "false\n"
    );
    assert_eq!(
        ok(&["--file", &f.path, "-n", "a/b", "exists", "k"]),
        "false\n"
    );
    assert_eq!(ok(&["--file", &f.path, "exists", "parent-key"]), "true\n");
}

/// `stats` counts expired entries until `purge-expired` removes them.
#[test]
fn stats_and_purge_expired_on_a_file() {
    let f = new_file();
    ok(&["--file", &f.path, "set", "live", "12345"]);
    ok(&["--file", &f.path, "set", "brief", "x", "--ttl", "50ms"]);
    std::thread::sleep(Duration::from_millis(200));
    let stats = json(&ok(&["--file", &f.path, "--json", "stats"]));
    assert_eq!(stats["live"], 1);
    assert_eq!(stats["expired"], 1);
    assert_eq!(stats["live_bytes"], 4 + 5);
    assert!(stats["file_size"].as_u64().unwrap() > 0);
    let table = ok(&["--file", &f.path, "stats"]);
    assert!(table.contains("live entries     1\n"), "{table}");
    let purged = json(&ok(&["--file", &f.path, "--json", "purge-expired"]));
    assert_eq!(purged["removed"], 1);
    assert_eq!(
        ok(&["--file", &f.path, "purge-expired"]),
        "Removed 0 expired entries.\n"
    );
    let stats = json(&ok(&["--file", &f.path, "--json", "stats"]));
    assert_eq!(stats["expired"], 0);
}

/// `backup` writes a copy that opens, never overwrites; `compact` runs.
#[test]
fn backup_and_compact_a_file() {
    let f = new_file();
    ok(&["--file", &f.path, "set", "k", "v"]);
    ok(&["--file", &f.path, "set", "big", &"x".repeat(100_000)]);
    let copy = Path::new(&f.path).with_file_name("copy.redb");
    let copy = copy.to_str().unwrap();
    let said = ok(&["--file", &f.path, "backup", copy]);
    assert!(said.starts_with("Backed up "), "{said}");
    assert_eq!(ok(&["--file", copy, "get", "k"]), "v");
    let error = fails(&["--file", &f.path, "backup", copy], 1);
    assert!(error.contains("already exists"), "{error}");
    ok(&["--file", &f.path, "del", "big"]);
    let compacted = json(&ok(&["--file", &f.path, "--json", "compact"]));
    assert!(
        compacted["size_after"].as_u64() <= compacted["size_before"].as_u64(),
        "{compacted}"
    );
}

/// A FileStore exported, imported into Redis and exported back gives the
/// same lines: namespaces, awkward keys, binary values and absolute
/// expiries intact; and that export imports into a new file identically.
#[test]
fn export_file_import_redis_and_back_keeps_everything() {
    let f = new_file();
    let dir = Path::new(&f.path).parent().unwrap().to_owned();
    ok(&["--file", &f.path, "set", "plain", "v"]);
    ok(&["--file", &f.path, "set", "with ttl", "v", "--ttl", "1h"]);
    ok(&[
        "--file", &f.path, "-n", "a:b", "set", "k*?[", "v", "--ttl", "2d",
    ]);
    ok(&["--file", &f.path, "-n", "50%/deeper", "set", "é:%3A", "v"]);
    let out = kv_with_input(
        &["--file", &f.path, "-n", "bin", "set", "b"],
        b"\x00\xff\xfe",
    );
    assert!(out.status.success());
    ok(&["--file", &f.path, "set", "gone", "v", "--ttl", "50ms"]);
    std::thread::sleep(Duration::from_millis(150));

    let first = dir.join("first.jsonl");
    let said = ok(&["--file", &f.path, "export", "-o", first.to_str().unwrap()]);
    assert!(said.starts_with("Exported 5 entries from file "), "{said}");
    let first_text = std::fs::read_to_string(&first).unwrap();
    assert_eq!(first_text.lines().count(), 5, "{first_text}");
    assert!(!first_text.contains("gone"));

    let url = redis_url();
    let root = unique("cli-export");
    let said = ok(&[
        "--url",
        &url,
        "--root",
        &root,
        "import",
        first.to_str().unwrap(),
    ]);
    assert!(
        said.starts_with("Imported 5 entries into server "),
        "{said}"
    );
    // Exported to stdout, the summary goes to stderr and stdout is only data.
    let second = ok(&["--url", &url, "--root", &root, "export"]);
    assert_eq!(sorted_lines(&second), sorted_lines(&first_text));

    let g = new_file();
    let out = kv_with_input(&["--file", &g.path, "import"], second.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let third = ok(&["--file", &g.path, "export"]);
    assert_eq!(third, first_text, "a file exports in stored-key order");
}

/// Every store command on a Redis namespace, and the two that need a file.
#[test]
fn redis_commands_work_in_a_namespace() {
    let url = redis_url();
    let root = unique("cli-redis");
    let base = ["--url", url.as_str(), "--root", root.as_str()];
    let run = |args: &[&str]| ok(&[&base[..], args].concat());
    run(&["-n", "s", "set", "k", "hello", "--ttl", "1h"]);
    run(&["set", "top", "v"]);
    assert_eq!(run(&["-n", "s", "get", "k"]), "hello");
    assert_eq!(run(&["-n", "s", "exists", "k"]), "true\n");
    assert!(run(&["-n", "s", "ttl", "k"]).starts_with("59m"));
    run(&["-n", "s", "get", "k", "--renew", "2h"]);
    assert!(run(&["-n", "s", "ttl", "k"]).starts_with("1h 59m"));
    let own = run(&["--json", "keys"]);
    assert_eq!(
        own.lines().count(),
        1,
        "only the namespace's own key: {own}"
    );
    assert_eq!(json(&own)["key"], "top");
    let keys = run(&["keys", "-r"]);
    assert!(keys.contains("  s          k\n"), "{keys}");
    assert!(keys.ends_with("2 keys\n"), "{keys}");
    let stats = json(&run(&["--json", "stats"]));
    assert_eq!(stats["live"], 2);
    assert_eq!(stats["live_bytes"], 1 + 5 + 3 + 1);
    assert!(stats["expired"].is_null());
    let purged = json(&run(&["--json", "purge-expired"]));
    assert_eq!(purged["removed"], 0);
    run(&["-n", "s", "del", "k"]);
    assert_eq!(run(&["-n", "s", "exists", "k"]), "false\n");
    run(&["clear", "--yes"]);
    assert_eq!(run(&["exists", "top"]), "false\n");
    let backup = fails(&[&base[..], &["backup", "/tmp/never.redb"]].concat(), 1);
    assert!(backup.contains("FileStore"), "{backup}");
    let compact = fails(&[&base[..], &["compact"]].concat(), 1);
    assert!(compact.contains("FileStore"), "{compact}");
}

/// A `valkey://` URL reaches a Valkey server, listing and importing alike.
#[test]
fn valkey_urls_work_too() {
    let url = Server::shared(Kind::Valkey).url();
    assert!(url.starts_with("valkey://"));
    let root = unique("cli-valkey");
    let base = ["--url", url.as_str(), "--root", root.as_str()];
    let line = r#"{"namespace":["n"],"key":"k","value":"dg==","expires_at":4102444800000}"#;
    let out = kv_with_input(&[&base[..], &["import"]].concat(), line.as_bytes());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ok(&[&base[..], &["export"]].concat()), format!("{line}\n"));
    assert_eq!(ok(&[&base[..], &["-n", "n", "get", "k"]].concat()), "v");
}

/// Each failure is one line on stderr and a non-zero exit.
#[test]
fn errors_are_one_clear_line() {
    let f = new_file();
    let missing = Path::new(&f.path).with_file_name("missing.redb");
    let missing = missing.to_str().unwrap();

    let e = fails(&["--file", missing, "keys"], 1);
    assert!(
        e.contains("no such file") && e.contains("missing.redb"),
        "{e}"
    );
    assert!(
        !Path::new(missing).exists(),
        "a mistyped path creates nothing"
    );

    ok(&["--file", &f.path, "set", "k", "v"]);
    let e = fails(&["--file", &f.path, "get", "nope"], 3);
    assert!(e.contains("no key \"nope\""), "{e}");
    fails(&["--file", &f.path, "ttl", "nope"], 3);

    let e = fails(&["--url", "http://127.0.0.1:1", "keys"], 1);
    assert!(e.contains("not a Redis URL"), "{e}");
    let closed = support::servers::free_port();
    let e = fails(
        &["--url", &format!("redis://127.0.0.1:{closed}"), "keys"],
        1,
    );
    assert!(e.contains(&format!("127.0.0.1:{closed}")), "{e}");

    let guarded = Server::start(Kind::Redis, Some("right-password"));
    let url = format!("redis://:wrong-password@127.0.0.1:{}", guarded.port());
    let e = fails(&["--url", &url, "keys"], 1);
    assert!(!e.contains("wrong-password"), "{e}");
    assert!(
        e.to_lowercase().contains("pass") || e.contains("auth"),
        "{e}"
    );
    let url = format!("redis://:right-password@127.0.0.1:{}", guarded.port());
    ok(&["--url", &url, "set", "k", "v"]);

    let e = fails(&["keys"], 1);
    assert!(e.contains("--file") && e.contains("--url"), "{e}");
    let e = fails(&["--file", &f.path, "--url", &redis_url(), "keys"], 1);
    assert!(e.contains("not both"), "{e}");

    let bad = kv_with_input(&["--file", &f.path, "import"], b"\n{\"namespace\":[]}\n");
    let stderr = String::from_utf8(bad.stderr).unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr.contains("stdin, line 2"), "{stderr}");

    let out = Path::new(&f.path).with_file_name("out.jsonl");
    std::fs::write(&out, "keep me").unwrap();
    let e = fails(
        &["--file", &f.path, "export", "-o", out.to_str().unwrap()],
        1,
    );
    assert!(e.contains("cannot create"), "{e}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");

    // A usage error is clap's: its first line says what is wrong, exit 2.
    let usage = kv(&["--file", &f.path, "set", "k", "v", "--ttl", "0s"]);
    assert_eq!(usage.status.code(), Some(2));
    let stderr = String::from_utf8(usage.stderr).unwrap();
    assert!(stderr.starts_with("error: invalid value '0s'"), "{stderr}");
    assert!(stderr.contains("greater than zero"), "{stderr}");
}

/// `--help` works for the command and every subcommand.
#[test]
fn help_for_every_subcommand() {
    let top = ok(&["--help"]);
    let subcommands = [
        "get",
        "set",
        "del",
        "exists",
        "ttl",
        "keys",
        "clear",
        "purge-expired",
        "stats",
        "export",
        "import",
        "backup",
        "compact",
    ];
    for sub in subcommands {
        assert!(top.contains(&format!("  {sub} ")), "{sub} in {top}");
        let help = ok(&[sub, "--help"]);
        assert!(help.contains("Usage: kvstores"), "{help}");
    }
    assert!(ok(&["--version"]).starts_with("kvstores "));
}
