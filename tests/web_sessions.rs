//! `kvstores::web::Sessions` as tower-sessions' store, end to end: a real
//! axum server, a real HTTP client with cookies, on MemoryStore, FileStore
//! and a real Redis server.

mod support;
mod web_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use kvstores::web::{RECORD_FORMAT, Sessions};
use kvstores::{AtomicStore, Bytes, FileStore, Store};
use tower_sessions::session::{Id, Record};
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};

use support::{Kind, Server};
use web_support::{App, ChildApp, client, get as fetch};

/// Counts this visitor's requests in their session.
async fn visits(session: Session) -> Result<String, StatusCode> {
    let failed = |_| StatusCode::INTERNAL_SERVER_ERROR;
    let n: u64 = session.get("visits").await.map_err(failed)?.unwrap_or(0) + 1;
    session.insert("visits", n).await.map_err(failed)?;
    Ok(n.to_string())
}

fn app<S: AtomicStore + Clone + 'static>(store: S) -> Router {
    let sessions = SessionManagerLayer::new(Sessions::new(store))
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(time::Duration::hours(1)));
    Router::new().route("/visits", get(visits)).layer(sessions)
}

/// The session id in the client's cookie jar, read from a response.
fn cookie_id(response: &reqwest::Response) -> Option<String> {
    response
        .cookies()
        .find(|c| c.name() == "id")
        .map(|c| c.value().to_owned())
}

/// Each visitor counts in a session of their own, stored as a versioned
/// record under the cookie's id.
async fn visitors_count_in_their_own_sessions<S: AtomicStore + Clone + 'static>(store: S) {
    let app = App::serve(app(store.clone())).await;
    let alice = client();
    let first = alice.get(app.url("/visits")).send().await.unwrap();
    let id = cookie_id(&first).expect("a session cookie");
    assert_eq!(first.text().await.unwrap(), "1");
    assert_eq!(fetch(&alice, &app.url("/visits")).await, (200, "2".into()));
    assert_eq!(fetch(&alice, &app.url("/visits")).await, (200, "3".into()));
    assert_eq!(
        fetch(&client(), &app.url("/visits")).await,
        (200, "1".into())
    );

    let stored = store.get(&id, None).await.unwrap().expect("the record");
    assert_eq!(stored[0], RECORD_FORMAT);
    let json: serde_json::Value = serde_json::from_slice(&stored[1..]).unwrap();
    assert_eq!(json["data"]["visits"], 3);
    assert_eq!(json["id"], id.as_str());
    let left = store.expires_in(&id).await.unwrap().expect("an expiry");
    assert!(left > Duration::from_secs(3500) && left <= Duration::from_secs(3600));
}

#[tokio::test]
async fn visitors_count_in_their_own_sessions_on_memory() {
    visitors_count_in_their_own_sessions(web_support::memory()).await;
}

#[tokio::test]
async fn visitors_count_in_their_own_sessions_on_file() {
    let dir = tempfile::tempdir().unwrap();
    visitors_count_in_their_own_sessions(web_support::file(&dir)).await;
}

#[tokio::test]
async fn visitors_count_in_their_own_sessions_on_redis() {
    visitors_count_in_their_own_sessions(web_support::redis().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_survives_an_app_restart_on_a_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sessions.redb");
    let browser = client();
    let first = ChildApp::start("sessions", &path);
    assert_eq!(fetch(&browser, &first.url("/visits")).await.1, "1");
    assert_eq!(fetch(&browser, &first.url("/visits")).await.1, "2");
    first.kill();
    // A new process, the same file, the same cookie: the same session.
    let second = ChildApp::start("sessions", &path);
    assert_eq!(
        fetch(&browser, &second.url("/visits")).await,
        (200, "3".into())
    );
}

#[tokio::test]
async fn two_app_instances_on_one_redis_share_sessions() {
    let namespace = support::unique("shared-sessions");
    let one = App::serve(app(web_support::redis_in(&namespace).await)).await;
    let two = App::serve(app(web_support::redis_in(&namespace).await)).await;
    let browser = client();
    for (n, instance) in [&one, &two, &one, &two].into_iter().enumerate() {
        let expected = (200, (n + 1).to_string());
        assert_eq!(fetch(&browser, &instance.url("/visits")).await, expected);
    }
}

fn record_with(id: Id, n: usize, lifetime: time::Duration) -> Record {
    Record {
        id,
        data: [("n".to_owned(), serde_json::json!(n))].into(),
        expiry_date: time::OffsetDateTime::now_utc() + lifetime,
    }
}

/// Sixty-four concurrent creates all given the same id end with 64
/// different ids, each holding its own record.
async fn concurrent_creates_never_share_an_id<S: AtomicStore + Clone + 'static>(store: S) {
    let sessions = Arc::new(Sessions::new(store));
    let same = Id::default();
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let sessions = sessions.clone();
            tokio::spawn(async move {
                let mut record = record_with(same, n, time::Duration::minutes(5));
                sessions.create(&mut record).await.unwrap();
                (n, record.id)
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for task in tasks {
        let (n, id) = task.await.unwrap();
        assert!(ids.insert(id), "two sessions got the id {id}");
        let loaded = sessions
            .load(&id)
            .await
            .unwrap()
            .expect("the created session");
        assert_eq!(loaded.data["n"], n, "session {id} holds another's data");
    }
    assert!(ids.contains(&same), "one create kept the id it was given");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_share_an_id_on_memory() {
    concurrent_creates_never_share_an_id(web_support::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_share_an_id_on_file() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_creates_never_share_an_id(web_support::file(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_never_share_an_id_on_redis() {
    concurrent_creates_never_share_an_id(web_support::redis().await).await;
}

#[tokio::test]
async fn an_expired_session_is_never_loaded_and_saving_one_deletes_it() {
    let store = web_support::memory();
    let sessions = Sessions::new(store.clone());
    let mut record = record_with(Id::default(), 1, time::Duration::milliseconds(300));
    sessions.create(&mut record).await.unwrap();
    let left = store
        .expires_in(&record.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert!(left <= Duration::from_millis(300) && left > Duration::from_millis(100));
    assert!(sessions.load(&record.id).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(sessions.load(&record.id).await.unwrap().is_none());

    // Saving a record that has expired deletes what was stored.
    let mut live = record_with(Id::default(), 2, time::Duration::minutes(5));
    sessions.create(&mut live).await.unwrap();
    live.expiry_date = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    sessions.save(&live).await.unwrap();
    assert!(!store.exists(&live.id.to_string()).await.unwrap());
    assert!(sessions.load(&live.id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_malformed_stored_session_is_treated_as_missing_and_left_alone() {
    let store = web_support::memory();
    let app = App::serve(app(store.clone())).await;
    let browser = client();
    let first = browser.get(app.url("/visits")).send().await.unwrap();
    let id = cookie_id(&first).unwrap();
    let garbage = Bytes::from_static(b"\x01{not json");
    store.set(&id, garbage.clone(), None).await.unwrap();

    let sessions = Sessions::new(store.clone());
    assert!(sessions.load(&id.parse().unwrap()).await.unwrap().is_none());
    // Over HTTP the visitor starts again, with no error.
    assert_eq!(
        fetch(&browser, &app.url("/visits")).await,
        (200, "1".into())
    );
    assert_eq!(store.get(&id, None).await.unwrap(), Some(garbage));
}

#[tokio::test]
async fn a_store_failure_reaches_the_handler_which_answers_500() {
    let server = Server::start(Kind::Redis, None);
    let store = kvstores::RedisStore::builder(&server.url())
        .namespace(Some("sessions"))
        .connect_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_millis(500))
        .connect()
        .await
        .unwrap();
    let app = App::serve(app(store)).await;
    let browser = client();
    assert_eq!(
        fetch(&browser, &app.url("/visits")).await,
        (200, "1".into())
    );
    server.stop();
    assert_eq!(fetch(&browser, &app.url("/visits")).await.0, 500);
}

/// The child process of `a_session_survives_an_app_restart_on_a_file_store`.
#[test]
fn child_app() {
    let Ok(role) = std::env::var("KVSTORES_WEB_CHILD") else {
        return;
    };
    assert_eq!(role, "sessions");
    let path = std::env::var("KVSTORES_WEB_CHILD_PATH").unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = FileStore::open(path).unwrap();
        web_support::serve_as_child(app(store)).await;
    });
}

#[tokio::test]
async fn expired_deletion_gives_back_the_space_of_expired_sessions() {
    use tower_sessions::ExpiredDeletion;
    let dir = tempfile::tempdir().unwrap();
    let store = web_support::file(&dir);
    let sessions = Sessions::new(store.clone());
    let mut short = record_with(Id::default(), 1, time::Duration::milliseconds(300));
    let mut long = record_with(Id::default(), 2, time::Duration::minutes(5));
    sessions.create(&mut short).await.unwrap();
    sessions.create(&mut long).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    sessions.delete_expired().await.unwrap();
    // Nothing expired is left to remove, and the live session stays.
    assert_eq!(
        kvstores::Maintenance::delete_expired(&store).await.unwrap(),
        0
    );
    assert_eq!(sessions.load(&long.id).await.unwrap().unwrap().data["n"], 2);
}

#[tokio::test]
async fn the_registry_hands_sessions_their_store_by_name() {
    use kvstores::{NamespacedStore, StoreRegistry};
    let root = web_support::memory();
    let factory_root = root.clone();
    let registry = StoreRegistry::with_full_factory(move |name| factory_root.with_namespace(name));
    let sessions = Sessions::from_registry(&registry).unwrap();
    let mut record = record_with(Id::default(), 1, time::Duration::minutes(5));
    sessions.create(&mut record).await.unwrap();
    let in_namespace = root.with_namespace(kvstores::web::SESSIONS);
    assert!(in_namespace.exists(&record.id.to_string()).await.unwrap());
}
