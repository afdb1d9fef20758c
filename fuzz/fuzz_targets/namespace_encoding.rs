//! The persisted namespace encoding, against its promises: every stored key
//! decodes back to its (path, key) pair, no two pairs share a stored key, a
//! namespace's table range holds exactly it and its descendants, and its
//! Redis SCAN pattern — judged by an independent glob matcher — matches
//! exactly the same keys.
#![no_main]

#[path = "../../tests/support/glob.rs"]
mod glob;

use arbitrary::Arbitrary;
use kvstores::namespace::{
    decode_redis_key, decode_table_key, redis_key, redis_pattern, redis_prefix, table_key,
    table_prefix, table_range_end,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    path: Vec<String>,
    key: String,
    other_path: Vec<String>,
    other_key: String,
    /// How much of `path` the namespace under test shares; beyond the
    /// length of `path`, it is `other_path` instead.
    namespace_depth: u8,
}

fuzz_target!(|input: Input| {
    let Input {
        path,
        key,
        other_path,
        other_key,
        namespace_depth,
    } = input;
    let depth = usize::from(namespace_depth);
    let namespace: &[String] = if depth <= path.len() {
        &path[..depth]
    } else {
        &other_path
    };

    // Table form: round trip, injectivity, ranges.
    let stored = table_key(&table_prefix(&path), &key);
    assert_eq!(decode_table_key(&stored), Some((path.clone(), key.clone())));
    let other_stored = table_key(&table_prefix(&other_path), &other_key);
    if (&path, &key) != (&other_path, &other_key) {
        assert_ne!(stored, other_stored);
    }
    let start = table_prefix(namespace);
    let end = table_range_end(&start);
    for (p, s) in [(&path, &stored), (&other_path, &other_stored)] {
        let in_range = s.as_slice() >= start.as_slice()
            && end.as_ref().is_none_or(|end| s.as_slice() < end.as_slice());
        assert_eq!(
            in_range,
            p.starts_with(namespace),
            "table range of {namespace:?} vs {p:?}"
        );
    }

    // Redis form: only namespaced stores (a root segment at least) encode.
    if path.is_empty() || other_path.is_empty() {
        return;
    }
    let stored = redis_key(redis_prefix(&path).as_deref(), &key);
    assert_eq!(decode_redis_key(&stored), Some((path.clone(), key.clone())));
    let other_stored = redis_key(redis_prefix(&other_path).as_deref(), &other_key);
    if (&path, &key) != (&other_path, &other_key) {
        assert_ne!(stored, other_stored);
    }
    let Some(prefix) = redis_prefix(namespace) else {
        return;
    };
    let pattern = redis_pattern(&prefix);
    for (p, s) in [(&path, &stored), (&other_path, &other_stored)] {
        assert_eq!(
            glob::redis_glob_match(pattern.as_bytes(), s.as_bytes()),
            p.starts_with(namespace),
            "pattern {pattern:?} vs key {s:?}"
        );
    }
});
