//! How a namespace path and a key become what a backend stores.
//!
//! A *namespace path* is the list of namespace names from the root store down
//! (`[]` for a root store, `["app", "sessions"]` after
//! `with_namespace("app").with_namespace("sessions")`). Backends that keep
//! one flat key space (redb tables, Redis) store each (path, key) pair under
//! one physical key computed here. Both forms below are **persisted**: they
//! are format version 1 and will not change meaning.
//!
//! Every form is
//!
//! 1. *injective* — two different (path, key) pairs never give the same
//!    stored key, whatever the strings hold, and each stored key decodes back
//!    to its pair;
//! 2. *isolating* — what selects a namespace for `delete_all` (a key range,
//!    a SCAN pattern) selects exactly that namespace's keys and its
//!    descendants' keys: never a sibling whose name extends it (`cache` vs
//!    `cache2`), never a parent's key.
//!
//! The property tests in `tests/namespace_encoding.rs` and the fuzz target
//! `namespace_encoding` check both, over arbitrary Unicode.
//!
//! The functions that compute these forms are public only so that those
//! tests and the fuzz target reach them; they are hidden from the
//! documentation and not part of the semver-stable API. The forms they
//! compute, documented here, are.
//!
//! # The table form (ordered byte keys, used by `FileStore`)
//!
//! ```text
//! stored key = segment* key-part
//! segment    = 0x01, u32 big-endian byte length of the name, UTF-8 name
//! key-part   = 0x02, UTF-8 key (to the end)
//! ```
//!
//! A namespace's *prefix* is its segments alone. Because a segment carries
//! its own length, no segment is a prefix of a different one, so the stored
//! keys that start with a namespace's prefix are exactly those of it and its
//! descendants — one contiguous range, from the prefix up to
//! its lexicographic successor. Within a namespace, child namespaces (0x01) sort
//! before the namespace's own keys (0x02).
//!
//! # The Redis form (used by `RedisStore` and `ValkeyStore`)
//!
//! ```text
//! stored key = escape(name) ":" escape(name) ":" … ":" escape(key)
//! escape     = the string with "%" written as "%25" and ":" as "%3A"
//! ```
//!
//! The first name is the store's root segment (`kvstores` by default, or the
//! builder's namespace, in which a `:` is just a character). Escaping leaves
//! no `:` inside a part, so the number of `:` tells the depth and the key
//! reads naturally in `redis-cli` (`kvstores:sessions:abc`). A store built
//! with no namespace at all has the empty path and stores its own keys
//! verbatim (so it can share keys with other programs); its children use the
//! form above.
//!
//! A namespace's SCAN pattern is its prefix with the glob characters `*`,
//! `?`, `[`, `]` and `\` escaped by a backslash, followed by `:*`. It matches
//! a key of the namespace (`prefix:key`) and of any descendant
//! (`prefix:child:…`), but neither a sibling (`cache2:…` has no `:` where
//! `cache:` has one) nor a parent's key (`parent:cache` has no `:` after
//! `cache`).

const SEGMENT: u8 = 0x01;
const KEY: u8 = 0x02;

/// Returns the table-form prefix shared by every stored key of the namespace
/// `path` and of its descendants. The empty path has the empty prefix.
#[doc(hidden)]
pub fn table_prefix<S: AsRef<str>>(path: &[S]) -> Vec<u8> {
    let len = path.iter().map(|s| 5 + s.as_ref().len()).sum();
    let mut prefix = Vec::with_capacity(len);
    for segment in path {
        let segment = segment.as_ref().as_bytes();
        let n = u32::try_from(segment.len()).expect("a namespace name longer than 4 GiB");
        prefix.push(SEGMENT);
        prefix.extend_from_slice(&n.to_be_bytes());
        prefix.extend_from_slice(segment);
    }
    prefix
}

/// Returns the table-form stored key of `key` in the namespace whose prefix
/// ([`table_prefix`]) is `prefix`.
#[doc(hidden)]
pub fn table_key(prefix: &[u8], key: &str) -> Vec<u8> {
    let mut stored = Vec::with_capacity(prefix.len() + 1 + key.len());
    stored.extend_from_slice(prefix);
    stored.push(KEY);
    stored.extend_from_slice(key.as_bytes());
    stored
}

/// Returns the exclusive upper bound of the key range of the namespace whose
/// prefix is `prefix`, or `None` when the range runs to the end of the table
/// (the empty prefix of a root store).
///
/// The range `prefix..end` holds exactly the stored keys that start with
/// `prefix`.
#[doc(hidden)]
pub fn table_range_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    // The lexicographic successor of "everything starting with prefix":
    // drop trailing 0xFF bytes and increment the last remaining one.
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Decodes a table-form stored key back into its namespace path and key.
///
/// Returns `None` for bytes that no (path, key) pair encodes to.
#[doc(hidden)]
pub fn decode_table_key(mut stored: &[u8]) -> Option<(Vec<String>, String)> {
    let mut path = Vec::new();
    loop {
        let (&tag, rest) = stored.split_first()?;
        match tag {
            SEGMENT => {
                let (len, rest) = rest.split_first_chunk::<4>()?;
                let len = u32::from_be_bytes(*len) as usize;
                if rest.len() < len {
                    return None;
                }
                let (name, rest) = rest.split_at(len);
                path.push(String::from_utf8(name.to_vec()).ok()?);
                stored = rest;
            }
            KEY => return Some((path, String::from_utf8(rest.to_vec()).ok()?)),
            _ => return None,
        }
    }
}

/// Returns the Redis-form prefix of the namespace `path`: its escaped names
/// joined by `:`, or `None` for the empty path, whose keys are stored
/// verbatim.
#[doc(hidden)]
pub fn redis_prefix<S: AsRef<str>>(path: &[S]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let mut prefix = String::new();
    escape_into(&mut prefix, first.as_ref());
    for name in rest {
        prefix.push(':');
        escape_into(&mut prefix, name.as_ref());
    }
    Some(prefix)
}

/// Returns the Redis-form stored key of `key` in the namespace whose prefix
/// ([`redis_prefix`]) is `prefix`; with no prefix, the key itself.
#[doc(hidden)]
pub fn redis_key(prefix: Option<&str>, key: &str) -> String {
    match prefix {
        None => key.to_owned(),
        Some(prefix) => {
            let mut stored = String::with_capacity(prefix.len() + 1 + key.len() + 4);
            stored.push_str(prefix);
            stored.push(':');
            escape_into(&mut stored, key);
            stored
        }
    }
}

/// Returns the SCAN MATCH pattern that selects exactly the stored keys of
/// the namespace with Redis-form prefix `prefix` and of its descendants.
#[doc(hidden)]
pub fn redis_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 2);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str(":*");
    pattern
}

/// Decodes a Redis-form stored key of a namespaced store (one with at least
/// a root segment) back into its namespace path and key.
///
/// Returns `None` for strings that no such pair encodes to, including keys
/// with no `:` at all.
#[doc(hidden)]
pub fn decode_redis_key(stored: &str) -> Option<(Vec<String>, String)> {
    let mut parts = stored
        .split(':')
        .map(unescape)
        .collect::<Option<Vec<_>>>()?;
    if parts.len() < 2 {
        return None;
    }
    let key = parts.pop()?;
    Some((parts, key))
}

fn escape_into(out: &mut String, name: &str) {
    for c in name.chars() {
        match c {
            '%' => out.push_str("%25"),
            ':' => out.push_str("%3A"),
            c => out.push(c),
        }
    }
}

fn unescape(part: &str) -> Option<String> {
    let mut out = String::with_capacity(part.len());
    let mut rest = part;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i..i + 3)?;
        out.push(match code {
            "%25" => '%',
            "%3A" => ':',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_form_matches_the_documented_layout() {
        let prefix = table_prefix(&["ns"]);
        assert_eq!(prefix, b"\x01\x00\x00\x00\x02ns");
        assert_eq!(table_key(&prefix, "k"), b"\x01\x00\x00\x00\x02ns\x02k");
        assert_eq!(table_key(&[], ""), b"\x02");
        assert_eq!(table_range_end(&prefix).unwrap(), b"\x01\x00\x00\x00\x02nt");
        assert_eq!(table_range_end(&[]), None);
        assert_eq!(table_range_end(b"a\xff\xff").unwrap(), b"b");
    }

    #[test]
    fn redis_form_matches_the_documented_layout() {
        let prefix = redis_prefix(&["app:v1", "50%*"]).unwrap();
        assert_eq!(prefix, "app%3Av1:50%25*");
        assert_eq!(redis_key(Some(&prefix), "a:b"), "app%3Av1:50%25*:a%3Ab");
        assert_eq!(redis_pattern(&prefix), r"app%3Av1:50%25\*:*");
        assert_eq!(redis_prefix::<&str>(&[]), None);
        assert_eq!(redis_key(None, "raw:key"), "raw:key");
    }

    #[test]
    fn decoding_refuses_what_nothing_encodes_to() {
        assert_eq!(decode_table_key(b""), None);
        assert_eq!(decode_table_key(b"\x03"), None);
        assert_eq!(decode_table_key(b"\x01\x00\x00\x00\x09ab\x02"), None);
        assert_eq!(decode_redis_key("nocolon"), None);
        assert_eq!(decode_redis_key("a:%zz"), None);
        assert_eq!(decode_redis_key("a:%3"), None);
    }
}
