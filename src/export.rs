//! The export format: one JSON object per line, one line per entry, so that
//! a store's content moves between backends (a `FileStore` to Redis and
//! back) with its namespaces, values and expiries intact.
//!
//! # Format (version 1)
//!
//! UTF-8 text; each line is one JSON object followed by `\n`:
//!
//! ```text
//! {"namespace":["sessions"],"key":"abc","value":"eyJ1c2VyIjoxfQ==","expires_at":1764031234567}
//! {"namespace":[],"key":"config","value":"","expires_at":null}
//! ```
//!
//! | field | JSON type | meaning |
//! | --- | --- | --- |
//! | `namespace` | array of strings | the namespace path *below the exported store's*, `[]` for its own keys |
//! | `key` | string | the key |
//! | `value` | string | the value's bytes in standard base64 (RFC 4648 §4, `+` `/`, with `=` padding) |
//! | `expires_at` | integer or `null` | when the entry expires, in milliseconds since the Unix epoch (absolute, so it means the same when imported later); `null`: never |
//!
//! Readers ignore fields they do not know and blank lines. Namespace paths
//! are relative, so an export of one namespace can be imported into another
//! (an export of a `FileStore`'s root into a Redis store's default namespace
//! `kvstores`, say). An importer skips entries that expired before it ran.
//!
//! # Example
//!
//! ```
//! use kvstores::Entry;
//! use kvstores::export::{from_line, to_line};
//!
//! let mut entry = Entry::new("abc", kvstores::Bytes::from_static(b"{\"user\":1}"), Some(1764031234567));
//! entry.namespace = vec!["sessions".to_owned()];
//! let line = to_line(&entry)?;
//! assert_eq!(
//!     line,
//!     r#"{"namespace":["sessions"],"key":"abc","value":"eyJ1c2VyIjoxfQ==","expires_at":1764031234567}"#
//! );
//! assert_eq!(from_line(&line)?, entry);
//! # Ok::<_, kvstores::Error>(())
//! ```

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Entry, Error, Result};

/// One line of the format as serde reads and writes it. serde derive keeps
/// the fields in declaration order, which is the documented order.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    namespace: Cow<'a, [String]>,
    #[serde(borrow)]
    key: Cow<'a, str>,
    /// Standard base64 with padding; `STANDARD` refuses any other spelling
    /// (missing padding, non-zero trailing bits), so each value has exactly
    /// one encoding.
    #[serde(borrow)]
    value: Cow<'a, str>,
    /// Required although it may be `null`: serde would otherwise take a
    /// missing field for `None`, "never expires".
    #[serde(deserialize_with = "present")]
    expires_at: Option<u64>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    Option::deserialize(deserializer)
}

/// Writes `entry` as one line of the export format, without the `\n`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] if the entry has no value (it was listed
/// without [`ListOptions::values`](crate::ListOptions::values)).
///
/// # Example
///
/// See the [module documentation](self).
pub fn to_line(entry: &Entry) -> Result<String> {
    let value = entry.value.as_ref().ok_or_else(|| {
        Error::invalid_argument(format!(
            "entry {:?} has no value to export: list with ListOptions::values(true)",
            entry.key
        ))
    })?;
    let line = Line {
        namespace: Cow::Borrowed(&entry.namespace),
        key: Cow::Borrowed(&entry.key),
        value: Cow::Owned(STANDARD.encode(value)),
        expires_at: entry.expires_at,
    };
    // Strings, an array of strings and an integer: nothing serde_json can
    // refuse.
    Ok(serde_json::to_string(&line).expect("an export line always serializes"))
}

/// Reads one line of the export format.
///
/// # Errors
///
/// [`Error::Decode`] saying what is wrong: not JSON, not an object, a
/// missing or mistyped field (serde_json's error, as the source, says
/// which), or a value that is not base64.
///
/// # Example
///
/// ```
/// let entry = kvstores::export::from_line(r#"{"namespace":[],"key":"k","value":"dg==","expires_at":null}"#)?;
/// assert_eq!(entry.value.as_deref(), Some(&b"v"[..]));
/// assert!(matches!(kvstores::export::from_line("{}"), Err(kvstores::Error::Decode { .. })));
/// # Ok::<_, kvstores::Error>(())
/// ```
pub fn from_line(line: &str) -> Result<Entry> {
    // serde derive would also read a struct from a JSON array of its
    // fields; the format has objects only.
    if !line.trim_start().starts_with('{') {
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(line) {
            Ok(_) => decode_error("not a JSON object", None),
            Err(e) => decode_error("invalid JSON", Some(e.into())),
        });
    }
    let parsed: Line = serde_json::from_str(line).map_err(|e| {
        let message = if e.is_data() {
            "a field is missing or of the wrong type"
        } else {
            "invalid JSON"
        };
        decode_error(message, Some(e.into()))
    })?;
    let value = STANDARD
        .decode(parsed.value.as_bytes())
        .map_err(|e| decode_error("\"value\" is not base64", Some(e.into())))?;
    let mut entry = Entry::new(parsed.key, Bytes::from(value), parsed.expires_at);
    entry.namespace = parsed.namespace.into_owned();
    Ok(entry)
}

/// The error for a line that does not decode: the format's own complaint in
/// the message, serde_json's or base64's in the source.
fn decode_error(message: &str, source: Option<crate::error::BoxError>) -> Error {
    Error::Decode {
        what: "export line".to_owned(),
        message: message.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_test_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            let entry = Entry::new("k", Bytes::from(plain), None);
            let line = to_line(&entry).unwrap();
            assert!(line.contains(&format!(r#""value":"{encoded}""#)), "{line}");
            assert_eq!(from_line(&line).unwrap(), entry);
        }
    }

    #[test]
    fn base64_refuses_what_it_would_not_write() {
        for bad in ["Zg=", "Zh==", "Z===", "Zg==Zg==", "Zm9v!A==", "Zm9"] {
            let line = format!(r#"{{"namespace":[],"key":"k","value":"{bad}","expires_at":null}}"#);
            let err = from_line(&line).unwrap_err();
            assert!(
                matches!(&err, Error::Decode { message, .. } if message.contains("base64")),
                "{bad}: {err}"
            );
        }
    }

    /// Lines written by the hand-assembled encoder this module had before
    /// it used serde, byte for byte: they read back, and writing what they
    /// hold gives the same bytes again.
    #[test]
    fn lines_of_the_first_encoder_read_back_and_write_the_same() {
        let awkward = concat!(
            r#"{"namespace":["x/y","","ns:1","鍵\t"],"key":"a\"b\\c\n\u0000é:*"#,
            "\u{7f}\u{2028}",
            r#"/","value":"/wAB","expires_at":4102444800000}"#
        );
        let lines = [
            awkward,
            r#"{"namespace":[],"key":"","value":"","expires_at":null}"#,
            r#"{"namespace":[],"key":"config","value":"aGVsbG8gd29ybGQhPw==","expires_at":1}"#,
        ];
        let entry = from_line(awkward).unwrap();
        assert_eq!(entry.namespace, ["x/y", "", "ns:1", "鍵\t"]);
        assert_eq!(entry.key, "a\"b\\c\n\u{0}é:*\u{7f}\u{2028}/");
        assert_eq!(entry.value.as_deref(), Some(&b"\xff\x00\x01"[..]));
        assert_eq!(entry.expires_at, Some(4_102_444_800_000));
        for line in lines {
            assert_eq!(to_line(&from_line(line).unwrap()).unwrap(), line);
        }
    }

    #[test]
    fn lines_round_trip_awkward_strings() {
        let mut entry = Entry::new("a\"b\\c\n\u{0}é:*", Bytes::from_static(b"\xff\x00"), None);
        entry.namespace = vec!["x/y".into(), "".into(), "ns:1".into()];
        let line = to_line(&entry).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(from_line(&line).unwrap(), entry);
    }

    #[test]
    fn readers_ignore_unknown_fields_and_field_order() {
        let line =
            r#"{"expires_at":null,"extra":{"a":[1]},"value":"dg==","key":"k","namespace":["n"]}"#;
        let entry = from_line(line).unwrap();
        assert_eq!(
            (entry.namespace, entry.key),
            (vec!["n".to_owned()], "k".to_owned())
        );
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let cases = [
            ("not json", "invalid JSON"),
            ("[]", "not a JSON object"),
            (r#"[[],"k","dg==",null]"#, "not a JSON object"),
            ("{\"namespace\":[]", "invalid JSON"),
            (r#"{"key":"k","value":"","expires_at":null}"#, "`namespace`"),
            (r#"{"namespace":[],"value":"","expires_at":null}"#, "`key`"),
            (
                r#"{"namespace":[1],"key":"k","value":"","expires_at":null}"#,
                "expected a string",
            ),
            (
                r#"{"namespace":[],"key":"k","value":"%","expires_at":null}"#,
                "base64",
            ),
            (
                r#"{"namespace":[],"key":"k","value":"","expires_at":-1}"#,
                "expected u64",
            ),
            (r#"{"namespace":[],"key":"k","value":""}"#, "`expires_at`"),
        ];
        for (line, says) in cases {
            let err = from_line(line).unwrap_err();
            assert!(matches!(err, Error::Decode { .. }), "{line}: {err:?}");
            let text = error_chain(&err);
            assert!(text.contains(says), "{line}: {text}");
        }
    }

    /// The error's message and its sources', as a program that prints the
    /// whole chain shows them.
    fn error_chain(err: &Error) -> String {
        let mut text = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }
}
