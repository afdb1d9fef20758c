//! The stored form of a cached response, and the RFC 9111 rules that decide
//! whether a response may be stored and for how long.
//!
//! # Record format
//!
//! All integers are big-endian.
//!
//! ```text
//! u8  format = 1
//! u8  kind: b'R' a response, b'V' a Vary marker
//! R:  u16 status, u64 stored_at (ms since the Unix epoch), u16 header count,
//!     per header: u16 name length, name, u32 value length, value;
//!     then the body, to the end of the record
//! V:  u16 name count, per name: u16 length, lower-case header name
//! ```
//!
//! A response with `Vary` is stored twice: a Vary marker under the request's
//! primary key (method, path, sorted query) naming the headers, and the
//! response under a secondary key that adds those headers' values.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{
    AUTHORIZATION, CACHE_CONTROL, HeaderMap, HeaderName, HeaderValue, SET_COOKIE, VARY,
};
use http::{StatusCode, Uri};

/// The first byte of every stored record.
pub(crate) const FORMAT: u8 = 1;

/// A response as it is stored and replayed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cached {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub stored_at_ms: u64,
}

/// What a primary key holds.
#[derive(Debug, PartialEq)]
pub(crate) enum Record {
    Response(Cached),
    Vary(Vec<HeaderName>),
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl Cached {
    /// The record, or `None` for a response whose headers do not fit the
    /// format's length fields (it is then not cached).
    pub(crate) fn encode(&self) -> Option<Bytes> {
        let mut out = BytesMut::with_capacity(16 + self.body.len());
        out.put_u8(FORMAT);
        out.put_u8(b'R');
        out.put_u16(self.status.as_u16());
        out.put_u64(self.stored_at_ms);
        out.put_u16(u16::try_from(self.headers.len()).ok()?);
        for (name, value) in &self.headers {
            out.put_u16(u16::try_from(name.as_str().len()).ok()?);
            out.put_slice(name.as_str().as_bytes());
            out.put_u32(u32::try_from(value.len()).ok()?);
            out.put_slice(value.as_bytes());
        }
        out.put_slice(&self.body);
        Some(out.freeze())
    }
}

pub(crate) fn encode_vary(names: &[HeaderName]) -> Bytes {
    let mut out = BytesMut::new();
    out.put_u8(FORMAT);
    out.put_u8(b'V');
    out.put_u16(names.len() as u16);
    for name in names {
        out.put_u16(name.as_str().len() as u16);
        out.put_slice(name.as_str().as_bytes());
    }
    out.freeze()
}

/// Decodes a stored record; a record that is cut short, of another format
/// or with invalid parts is an error that says what is wrong.
pub(crate) fn decode(record: &Bytes) -> Result<Record, String> {
    let mut buf = record.clone();
    let need = |buf: &Bytes, n: usize| {
        if buf.remaining() < n {
            Err("record is cut short".to_owned())
        } else {
            Ok(())
        }
    };
    need(&buf, 2)?;
    let format = buf.get_u8();
    if format != FORMAT {
        return Err(format!("unknown record format {format}"));
    }
    match buf.get_u8() {
        b'R' => {
            need(&buf, 12)?;
            let status = StatusCode::from_u16(buf.get_u16()).map_err(|e| e.to_string())?;
            let stored_at_ms = buf.get_u64();
            let count = buf.get_u16();
            let mut headers = HeaderMap::with_capacity(count as usize);
            for _ in 0..count {
                need(&buf, 2)?;
                let len = buf.get_u16() as usize;
                need(&buf, len + 4)?;
                let name = HeaderName::from_bytes(&buf.split_to(len)).map_err(|e| e.to_string())?;
                let len = buf.get_u32() as usize;
                need(&buf, len)?;
                let value =
                    HeaderValue::from_maybe_shared(buf.split_to(len)).map_err(|e| e.to_string())?;
                headers.append(name, value);
            }
            Ok(Record::Response(Cached {
                status,
                headers,
                body: buf,
                stored_at_ms,
            }))
        }
        b'V' => {
            need(&buf, 2)?;
            let count = buf.get_u16();
            let mut names = Vec::with_capacity(count as usize);
            for _ in 0..count {
                need(&buf, 2)?;
                let len = buf.get_u16() as usize;
                need(&buf, len)?;
                names.push(HeaderName::from_bytes(&buf.split_to(len)).map_err(|e| e.to_string())?);
            }
            if buf.has_remaining() {
                return Err("trailing bytes after a Vary marker".to_owned());
            }
            Ok(Record::Vary(names))
        }
        kind => Err(format!("unknown record kind {kind}")),
    }
}

/// The primary key: method, path and the query's pairs in sorted order, so
/// `?b=2&a=1` and `?a=1&b=2` share an entry.
pub(crate) fn primary_key(method: &http::Method, uri: &Uri) -> String {
    let mut pairs: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .collect();
    pairs.sort_unstable();
    format!("{method} {}?{}", uri.path(), pairs.join("&"))
}

/// The key of the variant of `primary` selected by the request's values of
/// the `Vary` headers. Values are length-prefixed so no two header sets map
/// to one key.
pub(crate) fn variant_key(primary: &str, names: &[HeaderName], request: &HeaderMap) -> String {
    let mut key = format!("{primary}\nvary");
    for name in names {
        let values: Vec<&[u8]> = request.get_all(name).iter().map(|v| v.as_bytes()).collect();
        let joined = values.join(&b","[..]);
        key.push_str(&format!("\n{}:{}:", name, joined.len()));
        key.push_str(&String::from_utf8_lossy(&joined));
    }
    key
}

/// Whether a request may be answered from, or stored in, a shared cache:
/// not with `Authorization` (RFC 9111 §3.5).
pub(crate) fn request_is_cacheable(headers: &HeaderMap) -> bool {
    !headers.contains_key(AUTHORIZATION)
}

/// What a response's headers allow a shared cache to do with it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Storable {
    /// Not stored: `no-store`, `private`, `no-cache`, `Set-Cookie`,
    /// `Vary: *`, or a lifetime of zero.
    No,
    /// Stored for this long, varying on these request headers.
    For(Duration, Vec<HeaderName>),
}

/// Applies RFC 9111's rules for a shared cache to a response's headers;
/// `default` is the lifetime when neither `s-maxage` nor `max-age` is given.
pub(crate) fn storable(headers: &HeaderMap, default: Duration) -> Storable {
    if headers.contains_key(SET_COOKIE) {
        return Storable::No;
    }
    let mut max_age = None;
    let mut s_maxage = None;
    for directive in headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        let seconds = || value.and_then(|v| v.parse::<u64>().ok());
        match name.to_ascii_lowercase().as_str() {
            "no-store" | "private" | "no-cache" => return Storable::No,
            "max-age" => max_age = seconds(),
            "s-maxage" => s_maxage = seconds(),
            _ => {}
        }
    }
    let lifetime = s_maxage.or(max_age).map_or(default, Duration::from_secs);
    if lifetime.is_zero() {
        return Storable::No;
    }
    let mut vary = Vec::new();
    for name in headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        if name == "*" {
            return Storable::No;
        }
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) if !vary.contains(&name) => vary.push(name),
            Ok(_) => {}
            Err(_) => return Storable::No,
        }
    }
    vary.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    Storable::For(lifetime, vary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn records_round_trip() {
        let cached = Cached {
            status: StatusCode::MOVED_PERMANENTLY,
            headers: headers(&[("location", "/new"), ("x-a", "1"), ("x-a", "2")]),
            body: Bytes::from_static(b"\x00body\xff"),
            stored_at_ms: 1_700_000_000_123,
        };
        assert_eq!(
            decode(&cached.encode().unwrap()).unwrap(),
            Record::Response(cached)
        );
        let names = vec![HeaderName::from_static("accept-language")];
        assert_eq!(decode(&encode_vary(&names)).unwrap(), Record::Vary(names));
    }

    #[test]
    fn every_truncation_of_a_record_is_an_error_not_a_panic() {
        let cached = Cached {
            status: StatusCode::OK,
            headers: headers(&[("content-type", "text/plain")]),
            body: Bytes::new(),
            stored_at_ms: 5,
        };
        let whole = cached.encode().unwrap();
        // The body runs to the end, so only cuts inside the header are errors.
        for len in 0..whole.len() {
            assert!(decode(&whole.slice(..len)).is_err(), "{len}");
        }
        let vary = encode_vary(&[HeaderName::from_static("accept")]);
        for len in 0..vary.len() {
            assert!(decode(&vary.slice(..len)).is_err(), "{len}");
        }
        assert!(
            decode(&Bytes::from_static(b"\x02R"))
                .unwrap_err()
                .contains("format")
        );
        assert!(
            decode(&Bytes::from_static(b"\x01Q"))
                .unwrap_err()
                .contains("kind")
        );
    }

    #[test]
    fn query_order_does_not_matter_but_method_and_path_do() {
        let key = |m: http::Method, u: &str| primary_key(&m, &u.parse().unwrap());
        assert_eq!(
            key(http::Method::GET, "/a?b=2&a=1"),
            key(http::Method::GET, "/a?a=1&b=2")
        );
        assert_ne!(key(http::Method::GET, "/a"), key(http::Method::HEAD, "/a"));
        assert_ne!(
            key(http::Method::GET, "/a?x=1"),
            key(http::Method::GET, "/a?x=2")
        );
    }

    #[test]
    fn variant_keys_tell_header_values_apart() {
        let names = [HeaderName::from_static("a"), HeaderName::from_static("b")];
        let one = variant_key("k", &names, &headers(&[("a", "x:b:1:y")]));
        let two = variant_key("k", &names, &headers(&[("a", "x"), ("b", "y")]));
        assert_ne!(one, two);
    }

    #[test]
    fn shared_cache_rules() {
        let default = Duration::from_secs(60);
        let lifetime = |pairs: &[(&str, &str)]| storable(&headers(pairs), default);
        assert_eq!(lifetime(&[]), Storable::For(default, vec![]));
        for refused in [
            &[("cache-control", "no-store")][..],
            &[("cache-control", "public, Private")],
            &[("cache-control", "no-cache")],
            &[("cache-control", "max-age=0")],
            &[("set-cookie", "a=b")],
            &[("vary", "accept, *")],
        ] {
            assert_eq!(lifetime(refused), Storable::No, "{refused:?}");
        }
        assert_eq!(
            lifetime(&[("cache-control", "max-age=5, s-maxage=9")]),
            Storable::For(Duration::from_secs(9), vec![])
        );
        assert_eq!(
            lifetime(&[
                ("cache-control", "max-age=5"),
                ("vary", "B, a"),
                ("vary", "a")
            ]),
            Storable::For(
                Duration::from_secs(5),
                vec![HeaderName::from_static("a"), HeaderName::from_static("b")]
            )
        );
        assert!(!request_is_cacheable(&headers(&[(
            "authorization",
            "Bearer x"
        )])));
    }
}
