//! The persisted namespace encoding is injective and isolating for arbitrary
//! strings, in both its table and its Redis form.

#[path = "support/glob.rs"]
mod glob;

use kvstores::namespace::{
    decode_redis_key, decode_table_key, redis_key, redis_pattern, redis_prefix, table_key,
    table_prefix, table_range_end,
};
use proptest::prelude::*;

/// Strings rich in the characters that break naive encodings.
fn name() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        ':', '*', '?', '[', ']', '\\', '|', '/', '\0', '%', '3', 'A', '^', '-', 'a', '\u{1}',
        '\u{2}', '\u{FF}', 'é', '鍵',
    ]);
    prop::collection::vec(prop_oneof![3 => special, 1 => any::<char>()], 0..6)
        .prop_map(|chars| chars.into_iter().collect())
}

fn path() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(name(), 0..4)
}

/// A path with at least the root segment, as every Redis-form prefix has.
fn rooted_path() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(name(), 1..4)
}

/// Two paths where the second sometimes nests under the first, sometimes not.
fn related_paths(
    base: impl Strategy<Value = Vec<String>>,
    other: impl Strategy<Value = Vec<String>>,
) -> impl Strategy<Value = (Vec<String>, Vec<String>)> {
    (base, other, any::<bool>()).prop_map(|(base, tail, nest)| {
        let other = if nest {
            base.iter().cloned().chain(tail).collect()
        } else {
            tail
        };
        (base, other)
    })
}

fn in_table_range(namespace: &[String], stored: &[u8]) -> bool {
    let start = table_prefix(namespace);
    stored >= start.as_slice() && table_range_end(&start).is_none_or(|end| stored < end.as_slice())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn table_keys_decode_to_their_pair(path in path(), key in name()) {
        let stored = table_key(&table_prefix(&path), &key);
        prop_assert_eq!(decode_table_key(&stored), Some((path, key)));
    }

    #[test]
    fn different_pairs_never_share_a_table_key(a in (path(), name()), b in (path(), name())) {
        prop_assume!(a != b);
        prop_assert_ne!(table_key(&table_prefix(&a.0), &a.1), table_key(&table_prefix(&b.0), &b.1));
    }

    #[test]
    fn a_table_range_holds_exactly_a_namespace_and_its_descendants(
        (namespace, path) in related_paths(path(), path()), key in name()
    ) {
        let stored = table_key(&table_prefix(&path), &key);
        prop_assert_eq!(in_table_range(&namespace, &stored), path.starts_with(&namespace));
    }

    #[test]
    fn redis_keys_decode_to_their_pair(path in rooted_path(), key in name()) {
        let stored = redis_key(redis_prefix(&path).as_deref(), &key);
        prop_assert_eq!(decode_redis_key(&stored), Some((path, key)));
    }

    #[test]
    fn different_pairs_never_share_a_redis_key(
        a in (rooted_path(), name()),
        b in (rooted_path(), name())
    ) {
        prop_assume!(a != b);
        prop_assert_ne!(
            redis_key(redis_prefix(&a.0).as_deref(), &a.1),
            redis_key(redis_prefix(&b.0).as_deref(), &b.1)
        );
    }

    #[test]
    fn a_scan_pattern_matches_exactly_a_namespace_and_its_descendants(
        (namespace, path) in related_paths(rooted_path(), rooted_path()), key in name()
    ) {
        let pattern = redis_pattern(&redis_prefix(&namespace).unwrap());
        let stored = redis_key(redis_prefix(&path).as_deref(), &key);
        prop_assert_eq!(
            glob::redis_glob_match(pattern.as_bytes(), stored.as_bytes()),
            path.starts_with(&namespace),
            "pattern {:?} key {:?}", pattern, stored
        );
    }
}

#[test]
fn cache_never_touches_cache2() {
    let cache = ["cache"];
    for other in [
        &["cache2"][..],
        &["cach"],
        &["cache", "x"],
        &["cache:x"],
        &["cache*"],
    ] {
        let inside = other.starts_with(&cache);
        let stored = table_key(&table_prefix(other), "k");
        let cache_prefix = table_prefix(&cache);
        let in_range = stored.as_slice() >= cache_prefix.as_slice()
            && stored < table_range_end(&cache_prefix).unwrap();
        assert_eq!(in_range, inside, "table: {other:?}");

        let pattern = redis_pattern(&redis_prefix(&cache).unwrap());
        let stored = redis_key(redis_prefix(other).as_deref(), "k");
        assert_eq!(
            glob::redis_glob_match(pattern.as_bytes(), stored.as_bytes()),
            inside,
            "redis: {other:?}"
        );
    }
    // A parent's key named like the namespace is not in it either.
    let parent_key = redis_key(Some("cache"), "k");
    let child_pattern = redis_pattern(&redis_prefix(&["cache", "k"]).unwrap());
    assert!(!glob::redis_glob_match(
        child_pattern.as_bytes(),
        parent_key.as_bytes()
    ));
}

#[test]
fn glob_characters_in_names_are_escaped() {
    let pattern = redis_pattern(&redis_prefix(&["a*", "[b]", "c?", "d\\"]).unwrap());
    assert_eq!(pattern, r"a\*:\[b\]:c\?:d\\:*");
    let sibling = redis_key(redis_prefix(&["ab", "[b]", "c?", "d\\"]).as_deref(), "k");
    assert!(!glob::redis_glob_match(
        pattern.as_bytes(),
        sibling.as_bytes()
    ));
}
