//! Redis's glob matching (`KEYS`, `SCAN MATCH`), written from its documented
//! rules to judge the patterns `kvstores::namespace` produces without trusting
//! the code that produced them. Shared by the property tests and the fuzz
//! target `namespace_encoding`.
//!
//! Matching is on bytes, as in Redis: `?` is one byte, `*` any run of bytes,
//! `[...]` one byte from a set (`^` first negates, `a-z` is a range, `\`
//! quotes the next byte), `\x` the byte `x` itself.

/// Whether `string` matches the Redis glob `pattern`.
pub fn redis_glob_match(pattern: &[u8], string: &[u8]) -> bool {
    let Some((&first, rest)) = pattern.split_first() else {
        return string.is_empty();
    };
    match first {
        b'*' => (0..=string.len()).any(|skip| redis_glob_match(rest, &string[skip..])),
        b'?' => !string.is_empty() && redis_glob_match(rest, &string[1..]),
        b'[' => {
            let Some((&byte, string_rest)) = string.split_first() else {
                return false;
            };
            let (matched, after) = match_class(rest, byte);
            matched && redis_glob_match(after, string_rest)
        }
        b'\\' if !rest.is_empty() => {
            string.first() == Some(&rest[0]) && redis_glob_match(&rest[1..], &string[1..])
        }
        literal => string.first() == Some(&literal) && redis_glob_match(rest, &string[1..]),
    }
}

/// Matches `byte` against the class that `pattern` starts (just after `[`);
/// returns whether it matched and the pattern after the closing `]` (an
/// unclosed class runs to the end of the pattern).
fn match_class(mut pattern: &[u8], byte: u8) -> (bool, &[u8]) {
    let negate = pattern.first() == Some(&b'^');
    if negate {
        pattern = &pattern[1..];
    }
    let mut matched = false;
    loop {
        match pattern {
            [] => break,
            [b']', rest @ ..] => {
                pattern = rest;
                break;
            }
            [b'\\', quoted, rest @ ..] => {
                matched |= *quoted == byte;
                pattern = rest;
            }
            [low, b'-', high, rest @ ..] => {
                let (low, high) = if low <= high {
                    (*low, *high)
                } else {
                    (*high, *low)
                };
                matched |= (low..=high).contains(&byte);
                pattern = rest;
            }
            [other, rest @ ..] => {
                matched |= *other == byte;
                pattern = rest;
            }
        }
    }
    (matched != negate, pattern)
}

#[cfg(test)]
mod tests {
    use super::redis_glob_match as m;

    #[test]
    fn follows_redis_rules() {
        assert!(m(b"a*", b"a"));
        assert!(m(b"a*", b"abc"));
        assert!(!m(b"a*", b"ba"));
        assert!(m(b"a?c", b"abc"));
        assert!(!m(b"a?c", b"ac"));
        assert!(m(b"[a-c]x", b"bx"));
        assert!(m(b"[c-a]x", b"bx"));
        assert!(!m(b"[^a-c]x", b"bx"));
        assert!(m(b"[\\]]", b"]"));
        assert!(m(b"\\*", b"*"));
        assert!(!m(b"\\*", b"a"));
        assert!(m(b"a\\[b", b"a[b"));
        assert!(m(b"[ab", b"a"));
    }
}
