//! WSGI applications used by the embedded-mode integration tests (tests/embedded_*.rs), and a
//! few helpers to read what they report. Include with `mod apps;` next to `mod common;`.
#![allow(dead_code)]

use std::collections::BTreeMap;

use crate::common::Response;

/// Reports its environ and interpreter facts as `key<TAB>ascii(value)` lines (see env.py).
pub const ENV_APP: &str = include_str!("env.py");

/// The smallest app: "hello\n".
pub const HELLO_APP: &str = "def application(environ, start_response):\n    \
    start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
    return [b'hello\\n']\n";

/// The report of ENV_APP, parsed: key -> Python `ascii()` of the value.
pub fn report(r: &Response) -> BTreeMap<String, String> {
    r.assert_status(200);
    let text = r.text();
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('\t') {
            out.insert(k.to_string(), v.to_string());
        }
    }
    assert!(!out.is_empty(), "empty report:\n{}", text);
    out
}

/// `ascii(s)` as Python prints it for a plain printable-ASCII string without quotes.
pub fn py_str(s: &str) -> String {
    if s.contains('\'') {
        format!("\"{s}\"")
    } else {
        format!("'{s}'")
    }
}

/// One value of a report, panicking with the whole report when it is missing.
#[track_caller]
pub fn get<'a>(rep: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    rep.get(key).map(String::as_str).unwrap_or_else(|| panic!("no {key:?} in report: {rep:#?}"))
}

/// Error paths and start_response validation, dispatched on PATH_INFO (see errors.py).
pub const ERRORS_APP: &str = include_str!("errors.py");

/// wsgi.input operations named in the query string (see input.py).
pub const INPUT_APP: &str = include_str!("input.py");

/// Headers, close(), Content-Length, wsgi.file_wrapper and HEAD endpoints (see response.py).
pub const RESPONSE_APP: &str = include_str!("response.py");

/// A wsgiref.validate.validator-wrapped app echoing its body (see validated.py).
pub const VALIDATED_APP: &str = include_str!("validated.py");

/// Deterministic binary data of `n` bytes (every byte value, no short period).
pub fn binary_data(n: usize) -> Vec<u8> {
    (0..n as u64).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
}
