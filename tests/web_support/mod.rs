//! What the web tests share: a real axum server on a loopback port, a real
//! HTTP client with cookies, the same app run as a child process (for tests
//! across processes), and the stores every integration is run on.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use axum::Router;
use kvstores::{FileStore, MemoryStore, RedisStore};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::{Kind, Server, unique};

/// An axum app served on a free loopback port until stopped or dropped,
/// with the peer address available as `ConnectInfo<SocketAddr>`.
pub struct App {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl App {
    pub async fn serve(router: Router) -> App {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        let task = tokio::spawn(async move {
            axum::serve(listener, service)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        App {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting, finishes open requests, and drops the app (and with
    /// it the app's stores).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A client that keeps cookies, like a browser.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap()
}

/// GET `url`: the status and the body.
pub async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

pub fn memory() -> MemoryStore {
    MemoryStore::new()
}

/// A FileStore in a fresh temporary directory (kept alive by the caller).
pub fn file(dir: &tempfile::TempDir) -> FileStore {
    FileStore::open(dir.path().join("web.redb")).unwrap()
}

/// A RedisStore on the shared test server, in a namespace of its own.
pub async fn redis() -> RedisStore {
    redis_in(&unique("web")).await
}

/// A RedisStore on the shared test server, in namespace `namespace`: two
/// of these are two app instances sharing one server.
pub async fn redis_in(namespace: &str) -> RedisStore {
    let server = Server::shared(Kind::Redis);
    RedisStore::builder(&server.url())
        .namespace(Some(namespace))
        .connect()
        .await
        .unwrap()
}

/// This test binary run as a child process serving an app (its `child`
/// test picks the app by `role`) over the FileStore at `path`.
pub struct ChildApp {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    pub addr: SocketAddr,
}

impl ChildApp {
    pub fn start(role: &str, path: &Path) -> ChildApp {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["child_app", "--exact", "--nocapture", "--quiet"])
            .env("KVSTORES_WEB_CHILD", role)
            .env("KVSTORES_WEB_CHILD_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            assert_ne!(
                stdout.read_line(&mut line).unwrap(),
                0,
                "the child app exited"
            );
            if let Some(addr) = line.trim().strip_prefix("listening ") {
                break addr.parse().unwrap();
            }
        };
        ChildApp {
            child,
            _stdout: stdout,
            addr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Kills the child with SIGKILL: the app stops as in a crash.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ChildApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In the child: serves `router` and prints its address, until stdin
/// closes (the parent is gone or done).
pub async fn serve_as_child(router: Router) {
    let app = App::serve(router).await;
    println!("listening {}", app.addr);
    tokio::task::spawn_blocking(|| {
        let mut rest = String::new();
        let _ = std::io::stdin().read_line(&mut rest);
    })
    .await
    .unwrap();
    app.stop().await;
}
