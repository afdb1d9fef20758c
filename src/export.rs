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

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::{Entry, Error, Result};

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
    // Fields in the documented order; serde_json's map keeps insertion
    // order only with a feature, so the line is assembled by hand from
    // serde_json's string and array encodings.
    Ok(format!(
        r#"{{"namespace":{},"key":{},"value":"{}","expires_at":{}}}"#,
        json!(entry.namespace),
        Value::String(entry.key.clone()),
        base64_encode(value),
        entry
            .expires_at
            .map_or("null".to_owned(), |at| at.to_string()),
    ))
}

/// Reads one line of the export format.
///
/// # Errors
///
/// [`Error::InvalidArgument`] saying what is wrong: not JSON, not an object,
/// a missing or mistyped field, or a value that is not base64.
///
/// # Example
///
/// ```
/// let entry = kvstores::export::from_line(r#"{"namespace":[],"key":"k","value":"dg==","expires_at":null}"#)?;
/// assert_eq!(entry.value.as_deref(), Some(&b"v"[..]));
/// assert!(kvstores::export::from_line("{}").is_err());
/// # Ok::<_, kvstores::Error>(())
/// ```
pub fn from_line(line: &str) -> Result<Entry> {
    let invalid = |what: &str| Error::invalid_argument(format!("not an export line: {what}"));
    let object: Map<String, Value> = match serde_json::from_str(line) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(invalid("not a JSON object")),
        Err(e) => return Err(invalid(&format!("invalid JSON ({e})"))),
    };
    let namespace = match object.get("namespace") {
        Some(Value::Array(names)) => names
            .iter()
            .map(|name| name.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| invalid("\"namespace\" holds something other than strings"))?,
        _ => return Err(invalid("\"namespace\" is missing or not an array")),
    };
    let key = object
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("\"key\" is missing or not a string"))?
        .to_owned();
    let value = object
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("\"value\" is missing or not a string"))?;
    let value = base64_decode(value).ok_or_else(|| invalid("\"value\" is not base64"))?;
    let expires_at = match object.get("expires_at") {
        Some(Value::Null) => None,
        Some(at) => Some(
            at.as_u64()
                .ok_or_else(|| invalid("\"expires_at\" is not a whole number of milliseconds"))?,
        ),
        None => return Err(invalid("\"expires_at\" is missing")),
    };
    let mut entry = Entry::new(key, Bytes::from(value), expires_at);
    entry.namespace = namespace;
    Ok(entry)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        // A chunk of k bytes gives k + 1 digits, padded to four.
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding; `None` for anything else,
/// including non-zero bits after the last byte (so each byte string has
/// exactly one encoding).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let quads = text.len() / 4;
    for (q, quad) in text.chunks(4).enumerate() {
        let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && q + 1 != quads) {
            return None;
        }
        let mut n = 0u32;
        for &c in &quad[..4 - pad] {
            let digit = ALPHABET.iter().position(|&a| a == c)?;
            n = n << 6 | digit as u32;
        }
        n <<= 6 * pad;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        let keep = 3 - pad;
        if bytes[keep..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..keep]);
    }
    Some(out)
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
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)).unwrap(), all);
    }

    #[test]
    fn base64_refuses_what_it_would_not_write() {
        for bad in ["Zg=", "Zh==", "Z===", "Zg==Zg==", "Zm9v!A==", "Zm9"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
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
    fn bad_lines_say_what_is_wrong() {
        let cases = [
            ("not json", "invalid JSON"),
            ("[]", "not a JSON object"),
            (r#"{"key":"k","value":"","expires_at":null}"#, "namespace"),
            (r#"{"namespace":[],"value":"","expires_at":null}"#, "key"),
            (
                r#"{"namespace":[],"key":"k","value":"%","expires_at":null}"#,
                "base64",
            ),
            (
                r#"{"namespace":[],"key":"k","value":"","expires_at":-1}"#,
                "expires_at",
            ),
            (r#"{"namespace":[],"key":"k","value":""}"#, "expires_at"),
        ];
        for (line, says) in cases {
            let err = from_line(line).unwrap_err().to_string();
            assert!(err.contains(says), "{line}: {err}");
        }
    }
}
