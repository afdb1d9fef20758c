//! FileStore: the behaviour suite, then what only a persistent store does.

mod suite;

use kvstores::FileStore;

/// A store on a new file in its own directory under cargo's scratch space
/// for tests (the suite's functions take only the store, so the directory
/// cannot be tied to it and is kept).
async fn fresh() -> FileStore {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
        .keep();
    FileStore::open(dir.join("store.redb")).unwrap()
}

contract_suite!(fresh());
