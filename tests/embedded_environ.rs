//! Embedded mode: the WSGI environ (PEP 3333 keys, CGI variables, what Apache filters out) and
//! wsgi.input (every read method, the end of the body, chunked request bodies).

mod apps;
mod common;

use std::time::{Duration, Instant};

use apps::{get, report, ENV_APP, INPUT_APP};
use common::Apache;

#[test]
fn environ_keys_and_types() {
    let apache = Apache::builder().app("env.wsgi", ENV_APP).config("WSGIScriptAlias /env {APPS}/env.wsgi").start();
    let rep = report(&apache.send("GET", "/env/caf%C3%A9/x?a=1&b=%20", &[("X-Foo", "good")], b""));

    // PEP 3333: every CGI value a str; bytes of the URL decoded as latin-1.
    assert_eq!(get(&rep, "@non_str"), "[]", "{rep:#?}");
    assert_eq!(get(&rep, "@all_str"), "True");
    assert_eq!(get(&rep, "PATH_INFO"), r"'/caf\xc3\xa9/x'");
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/env'");
    assert_eq!(get(&rep, "QUERY_STRING"), "'a=1&b=%20'");
    assert_eq!(get(&rep, "REQUEST_URI"), "'/env/caf%C3%A9/x?a=1&b=%20'");
    assert_eq!(get(&rep, "REQUEST_METHOD"), "'GET'");
    assert_eq!(get(&rep, "SERVER_PROTOCOL"), "'HTTP/1.1'");
    assert_eq!(get(&rep, "SERVER_NAME"), "'127.0.0.1'");
    assert_eq!(get(&rep, "SERVER_PORT"), format!("'{}'", apache.port));
    assert_eq!(get(&rep, "REMOTE_ADDR"), "'127.0.0.1'");
    assert_eq!(get(&rep, "HTTP_X_FOO"), "'good'");

    assert_eq!(get(&rep, "wsgi.version"), "(1, 0)");
    assert_eq!(get(&rep, "wsgi.url_scheme"), "'http'");
    assert_eq!(get(&rep, "wsgi.multithread"), "True", "event MPM is threaded");
    assert_eq!(get(&rep, "wsgi.run_once"), "False");
    assert_eq!(get(&rep, "wsgi.input_terminated"), "True");
    assert_eq!(get(&rep, "@file_wrapper"), "True");
    // mod_wsgi's types: a mod_wsgi.Input, and an io.TextIOWrapper over a mod_wsgi.Log.
    assert!(get(&rep, "wsgi.input").starts_with("<mod_wsgi.Input object at"), "{rep:#?}");
    assert_eq!(get(&rep, "wsgi.errors"), "<_io.TextIOWrapper name='<wsgi.errors>' encoding='utf-8'>");
    assert_eq!(get(&rep, "wsgi.file_wrapper"), "<class 'mod_wsgi.FileWrapper'>");
    assert!(!rep.contains_key("HTTP_AUTHORIZATION"));
    // A GET has no body: no CONTENT_LENGTH (or an empty one), never a made-up value.
    assert!(rep.get("CONTENT_LENGTH").map_or(true, |v| v == "''" || v == "'0'"), "{rep:#?}");

    let rep = report(&apache.send("POST", "/env", &[("Content-Type", "application/x-www-form-urlencoded")], b"abc"));
    assert_eq!(get(&rep, "REQUEST_METHOD"), "'POST'");
    assert_eq!(get(&rep, "CONTENT_LENGTH"), "'3'");
    assert_eq!(get(&rep, "CONTENT_TYPE"), "'application/x-www-form-urlencoded'");
    assert!(!rep.contains_key("HTTP_CONTENT_LENGTH") && !rep.contains_key("HTTP_CONTENT_TYPE"), "{rep:#?}");
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/env'");
    assert_eq!(get(&rep, "PATH_INFO"), "''");
}

/// WSGIEnableSendfile and WSGIIgnoreActivity show in the environ as in mod_wsgi 4.9.4.
#[test]
fn sendfile_and_activity_flags() {
    let apache = Apache::builder()
        .app("env.wsgi", ENV_APP)
        .config(
            "WSGIScriptAlias /env {APPS}/env.wsgi
             <Location /env/on>
  WSGIEnableSendfile On
  WSGIIgnoreActivity On
</Location>",
        )
        .start();
    let rep = report(&apache.get("/env/x"));
    assert_eq!((get(&rep, "mod_wsgi.enable_sendfile"), get(&rep, "mod_wsgi.ignore_activity")), ("'0'", "'0'"));
    let rep = report(&apache.get("/env/on"));
    assert_eq!((get(&rep, "mod_wsgi.enable_sendfile"), get(&rep, "mod_wsgi.ignore_activity")), ("'1'", "'1'"));
}

/// Each request's environ has exactly its own header keys, whatever the requests before it on
/// the same interpreter sent (the key strings are reused by position and by name).
/// Header keys and values follow each request, where an interpreter reuses the strings of the
/// previous request's (the same key at the same position, the same value under it, short or
/// long).
#[test]
fn header_keys_follow_each_request() {
    let apache = Apache::builder().app("env.wsgi", ENV_APP).config("WSGIScriptAlias /env {APPS}/env.wsgi").start();
    let mut c = apache.connect(); // one connection: one child, one interpreter
    let (long_a, long_b) = ("a".repeat(200), format!("{}b", "a".repeat(199)));
    let (kept_a, kept_b) = ("a".repeat(100), format!("{}b", "a".repeat(99)));
    let cases: [&[(&str, &str)]; 15] = [
        &[("X-One", "1"), ("X-Two", "2")],
        &[("X-Two", "2"), ("X-One", "1")],
        &[("X-Three", "3")],
        &[("X-One", "1"), ("X-Three", "3"), ("X-Two", "2")],
        &[("X-One", "1"), ("X-Three", "3"), ("X-Two", "2")],
        &[("X-One", "one"), ("X-Three", "3"), ("X-Two", "")],
        &[("X-One", "1"), ("X-Three", "3"), ("X-Two", "")],
        &[("X-One", "2"), ("X-Three", "3"), ("X-Two", "")],
        &[("X-One", &kept_a)],
        &[("X-One", &kept_a)],
        &[("X-One", &kept_b)],
        &[("X-One", &long_a)],
        &[("X-One", &long_a)],
        &[("X-One", &long_b)],
        &[("X-One", "1")],
    ];
    for headers in cases {
        let rep = report(&c.send("GET", "/env", headers, b""));
        let mut seen: Vec<(String, String)> =
            rep.iter().filter(|(k, _)| k.starts_with("HTTP_X_")).map(|(k, v)| (k.clone(), v.clone())).collect();
        seen.sort();
        let mut want: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (format!("HTTP_{}", n.to_uppercase().replace('-', "_")), format!("'{v}'")))
            .collect();
        want.sort();
        assert_eq!(seen, want, "headers {headers:?}");
    }
}

#[test]
fn underscore_headers_are_dropped() {
    let apache = Apache::builder().app("env.wsgi", ENV_APP).config("WSGIScriptAlias /env {APPS}/env.wsgi").start();
    // X_Foo would become HTTP_X_FOO and could impersonate X-Foo (set by a trusted proxy).
    let rep = report(&apache.send("GET", "/env", &[("X_Foo", "evil")], b""));
    assert!(!rep.contains_key("HTTP_X_FOO"), "{rep:#?}");
    assert!(!rep.values().any(|v| v.contains("evil")), "{rep:#?}");

    let rep = report(&apache.send("GET", "/env", &[("X_Foo", "evil"), ("X-Foo", "good")], b""));
    assert_eq!(get(&rep, "HTTP_X_FOO"), "'good'");
    assert!(!rep.values().any(|v| v.contains("evil")), "{rep:#?}");
}

#[test]
fn authorization_passing() {
    let apache = Apache::builder()
        .app("env.wsgi", ENV_APP)
        .config("WSGIScriptAlias /default {APPS}/env.wsgi")
        .config("WSGIScriptAlias /directive {APPS}/env.wsgi")
        .config("<Location /directive>\n    WSGIPassAuthorization On\n</Location>")
        .config("WSGIScriptAlias /option {APPS}/env.wsgi pass-authorization=On")
        .config("WSGIScriptAlias /off {APPS}/env.wsgi pass-authorization=Off")
        .start();
    let auth = [("Authorization", "Basic dXNlcjpwYXNz")];
    let rep = report(&apache.send("GET", "/default", &auth, b""));
    assert!(!rep.contains_key("HTTP_AUTHORIZATION"), "{rep:#?}");
    assert!(!rep.values().any(|v| v.contains("dXNlcjpwYXNz")), "{rep:#?}");
    let rep = report(&apache.send("GET", "/off", &auth, b""));
    assert!(!rep.contains_key("HTTP_AUTHORIZATION"), "{rep:#?}");

    let rep = report(&apache.send("GET", "/directive/x", &auth, b""));
    assert_eq!(get(&rep, "HTTP_AUTHORIZATION"), "'Basic dXNlcjpwYXNz'");
    let rep = report(&apache.send("GET", "/option", &auth, b""));
    assert_eq!(get(&rep, "HTTP_AUTHORIZATION"), "'Basic dXNlcjpwYXNz'");
    // Passing is allowed, not invented.
    let rep = report(&apache.get("/option"));
    assert!(!rep.contains_key("HTTP_AUTHORIZATION"), "{rep:#?}");
}

fn input_apache() -> Apache {
    Apache::builder()
        .app("input.wsgi", INPUT_APP)
        .config("WSGIScriptAlias /in {APPS}/input.wsgi")
        .config("WSGIScriptAlias /chunked {APPS}/input.wsgi")
        .config("<Location /chunked>\n    WSGIChunkedRequest On\n</Location>")
        .start()
}

/// POST `body` to /in?`ops` and return the app's report lines.
#[track_caller]
fn ops(apache: &Apache, ops: &str, body: &[u8]) -> Vec<String> {
    let r = apache.post(&format!("/in?{ops}"), "application/octet-stream", body);
    r.assert_status(200);
    r.text().lines().map(String::from).collect()
}

#[test]
fn input_read_methods() {
    let apache = input_apache();
    let body = b"line1\nline2\nlast";
    assert_eq!(ops(&apache, "read", body), ["b'line1\\nline2\\nlast'"]);
    assert_eq!(
        ops(&apache, "read:3,read:3,read:0,read,read", body),
        ["b'lin'", "b'e1\\n'", "b''", "b'line2\\nlast'", "b''"]
    );
    assert_eq!(
        ops(&apache, "readline,readline:2,readline,readline,readline", body),
        ["b'line1\\n'", "b'li'", "b'ne2\\n'", "b'last'", "b''"]
    );
    assert_eq!(ops(&apache, "readline:100,read:2,readlines", body), ["b'line1\\n'", "b'li'", "[b'ne2\\n', b'last']"]);
    assert_eq!(ops(&apache, "readlines", body), ["[b'line1\\n', b'line2\\n', b'last']"]);
    assert_eq!(ops(&apache, "iter", body), ["[b'line1\\n', b'line2\\n', b'last']"]);
    assert_eq!(ops(&apache, "read:4,iter", body), ["b'line'", "[b'1\\n', b'line2\\n', b'last']"]);
    assert_eq!(ops(&apache, "read,readline,readlines", b""), ["b''", "b''", "[]"]);

    // A body larger than any internal buffer arrives whole.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(ops(&apache, "len", &big), ["3000000"]);
    // ...byte for byte, in one read and split across reads of the 64 KiB first block and more.
    let data = apps::binary_data(3_000_000);
    assert_eq!(ops(&apache, "adler32", &data), [adler32(&data).to_string()]);
    let part = &data[..65536 * 3 + 7];
    assert_eq!(ops(&apache, "read:65536,adler32", part)[1], adler32(&part[65536..]).to_string());
    // ...also line by line (binary data with newlines where 10 falls).
    let lines = (0..2000).map(|i| format!("{i:05}\n")).collect::<String>();
    let r = ops(&apache, "readlines", lines.as_bytes());
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].matches("\\n'").count(), 2000);
}

#[test]
fn input_never_reads_past_the_body() {
    let apache = input_apache();
    // read(10**6) on a 5-byte body: 5 bytes, at once (no wait for more from the client).
    let t = Instant::now();
    assert_eq!(ops(&apache, "read:1000000,read,readline,time", b"hello"), ["b'hello'", "b''", "b''", "0.0"]);
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());

    // Pipelined: the next request's bytes arrive right behind the body and must be left alone.
    let mut c = apache.connect();
    let mut raw =
        common::build_request("POST", "/in?read:1000000,read", c.host(), &[("Content-Type", "text/plain")], b"hello");
    raw.extend(common::build_request("GET", "/in?read", c.host(), &[], b""));
    let t = Instant::now();
    c.write_raw(&raw).unwrap();
    let r1 = c.read_response(false).unwrap();
    r1.assert_status(200);
    assert_eq!(r1.text(), "b'hello'\nb''\n");
    let r2 = c.read_response(false).unwrap();
    r2.assert_status(200);
    assert_eq!(r2.text(), "b''\n");
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());

    // A GET on the same keep-alive connection: no body, nothing read.
    let r3 = c.get("/in?read:10,time");
    r3.assert_status(200);
    assert_eq!(r3.text(), "b''\n0.0\n");
}

#[test]
fn chunked_request_bodies() {
    let apache = input_apache();
    let chunked_req = |path: &str, chunks: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}")
            .into_bytes()
    };
    let good = "5\r\nhello\r\n7;ext=1\r\n, world\r\n1\r\n\n\r\n0\r\n\r\n";

    // Default WSGIChunkedRequest Off: 411 Length Required, the app does not run.
    let r = apache.request(&chunked_req("/in?read", good));
    r.assert_status(411);

    // On: the whole body, de-chunked.
    let r = apache.request(&chunked_req("/chunked?read", good));
    r.assert_status(200);
    assert_eq!(r.text(), "b'hello, world\\n'\n");
    let r = apache.request(&chunked_req("/chunked?readline,read:3,read:100,read", good));
    r.assert_status(200);
    assert_eq!(r.text(), "b'hello, world\\n'\nb''\nb''\nb''\n");
    let r = apache.request(&chunked_req("/chunked?read:2,readlines", good));
    r.assert_status(200);
    assert_eq!(r.text(), "b'he'\n[b'llo, world\\n']\n");

    // Malformed chunk sizes: 400, and the server carries on.
    for bad in ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "-5\r\nhello\r\n0\r\n\r\n"] {
        let t = Instant::now();
        let r = apache.request(&chunked_req("/chunked?read", bad));
        assert_eq!(r.status, 400, "{bad:?}: {}\n{}", r.raw_head, r.text());
        assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
        let r = apache.post("/in?read", "text/plain", b"after");
        r.assert_status(200);
        assert_eq!(r.text(), "b'after'\n");
    }
}

#[test]
fn input_readline_zero() {
    let apache = input_apache();
    assert_eq!(ops(&apache, "readline:0,read", b"line1\nline2"), ["b''", "b'line1\\nline2'"]);
    // Also with something already buffered by an earlier readline.
    assert_eq!(ops(&apache, "readline:3,readline:0,read", b"line1\nline2"), ["b'lin'", "b''", "b'e1\\nline2'"]);
}

/// A line that has arrived is returned at once, even though more of the body is still to come
/// (a streaming upload, or a client that waits for an answer before sending more). Such an
/// application needs `WSGIRequestSpoolSize 0`: by default the body is collected before the
/// application runs (tests/slow_uploads.rs).
#[test]
fn input_readline_returns_an_available_line() {
    let apache = Apache::builder()
        .app("input.wsgi", INPUT_APP)
        .config("WSGIRequestSpoolSize 0\nWSGIScriptAlias /in {APPS}/input.wsgi")
        .start();
    let mut c = apache.connect();
    c.set_timeout(Duration::from_secs(3));
    c.write_raw(b"POST /in/stream?readline,readline,read HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 20\r\n\r\nline1\n")
        .unwrap();
    // The response head and the first line come back before the client sends the rest.
    let mut got = Vec::new();
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("b'line1\\n'") {
        match std::io::Read::read(&mut c.stream(), &mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    assert!(
        String::from_utf8_lossy(&got).contains("b'line1\\n'"),
        "readline() did not return within {:?}; received: {:?}",
        t.elapsed(),
        String::from_utf8_lossy(&got)
    );
    c.write_raw(b"line2\nrest....").unwrap();
    let mut rest = Vec::new();
    c.set_timeout(Duration::from_secs(5));
    let _ = std::io::Read::read_to_end(&mut c.stream(), &mut rest);
    let all = String::from_utf8_lossy(&[got, rest].concat()).into_owned();
    assert!(all.contains("b'line2\\n'") && all.contains("b'rest....'"), "{all}");
}

/// `Expect: 100-continue`: the interim response goes out when the application starts reading
/// the body, so a client that waits for it is not stuck.
#[test]
fn expect_100_continue() {
    let apache = input_apache();
    let mut s = std::net::TcpStream::connect(apache.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(
        &mut s,
        b"POST /in?read HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match std::io::Read::read(&mut s, &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&got).into_owned();
    assert!(head.starts_with("HTTP/1.1 100 Continue\r\n"), "no 100 Continue: {head:?}");
    std::io::Write::write_all(&mut s, b"hello").unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut rest).unwrap();
    let rest = String::from_utf8_lossy(&rest).into_owned();
    assert!(rest.contains("200 OK") && rest.ends_with("b'hello'\n"), "{rest}");
}

/// The client stops sending in the middle of the declared body: the read fails in the app
/// (promptly, not after Apache's 30 s Timeout), a 400 answers it, and the server carries on.
#[test]
fn truncated_request_body() {
    let apache = input_apache();
    let mut c = apache.connect();
    c.write_raw(b"POST /in?read HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-this").unwrap();
    c.shutdown_write();
    let t = Instant::now();
    match c.try_request_raw(b"") {
        Ok(r) => assert!(r.status == 400, "{}\n{}", r.raw_head, r.text()),
        Err(e) => panic!("no response to a truncated body ({e})"),
    }
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    let r = apache.post("/in?read", "text/plain", b"next");
    r.assert_status(200);
    assert_eq!(r.text(), "b'next'\n");
    assert!(!apache.error_log().contains("Traceback"), "{}", apache.log_tail(20));
}

/// zlib's Adler-32 (what the input app's `adler32` operation reports).
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + byte as u32) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}
