//! What crosses the daemon socket: response headers (repeats and order), large and chunked
//! request bodies, file_wrapper responses (real files by descriptor passing, file-likes by
//! iteration), streaming without buffering, and failures before and after the response started.

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{Apache, Response};
use daemon_apps::{payload, APP};

const BIG_FILE_LEN: usize = 5 * 1024 * 1024 + 12345;

fn io_apache() -> Apache {
    Apache::builder()
        .app("app.py", APP)
        .app("big.bin", payload(BIG_FILE_LEN, 7))
        .config(
            "WSGIDaemonProcess io processes=1 threads=4\n\
             WSGIScriptAlias /d {APPS}/app.py process-group=io\n\
             WSGIScriptAlias /e {APPS}/app.py\n\
             <Location /d>\n    WSGIChunkedRequest On\n</Location>",
        )
        .start()
}

/// The response's header lines in order, without Date (which differs between requests).
fn header_lines(r: &Response) -> Vec<(String, String)> {
    r.headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("date")).cloned().collect()
}

#[test]
fn repeated_headers_keep_their_order() {
    let apache = io_apache();
    let d = apache.get("/d/cookies");
    d.assert_status(200);
    assert_eq!(d.headers_named("Set-Cookie"), vec!["a=1; Path=/", "b=2; Path=/", "c=3; Path=/"], "{}", d.raw_head);
    let names: Vec<&str> = d
        .headers
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| n.starts_with("X-") || n.eq_ignore_ascii_case("set-cookie"))
        .collect();
    assert_eq!(names, ["X-First", "Set-Cookie", "Set-Cookie", "X-Middle", "Set-Cookie", "X-Last"], "{}", d.raw_head);
    // Exactly what embedded mode sends.
    let e = apache.get("/e/cookies");
    assert_eq!(header_lines(&d), header_lines(&e), "daemon:\n{}embedded:\n{}", d.raw_head, e.raw_head);
    assert_eq!(d.body, e.body);
}

#[test]
fn large_upload_is_byte_exact() {
    let apache = io_apache();
    let body = payload(8 * 1024 * 1024, 1);
    let t = Instant::now();
    let r = apache.post("/d/echo", "application/octet-stream", &body);
    r.assert_status(200);
    assert!(r.complete, "{:?}", r.error);
    assert_eq!(r.header("X-Content-Length"), Some(body.len().to_string().as_str()));
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "8 MiB upload came back different");
    eprintln!("8 MiB echo: {:?}", t.elapsed());
    // The app's own count, reading in blocks.
    let r = apache.post("/d/upload", "application/octet-stream", &body);
    assert!(r.text().starts_with(&format!("len={} ", body.len())), "{}", r.text());
    // And embedded mode reports the same digest.
    let e = apache.post("/e/upload", "application/octet-stream", &body);
    assert_eq!(r.text(), e.text());
}

/// A POST and a GET pipelined in one write, through a daemon and embedded: both answered, in
/// order, the POST body read exactly (not mistaken for the next request).
#[test]
fn pipelined_requests_are_answered_in_order() {
    let apache = io_apache();
    for prefix in ["/d", "/e"] {
        let mut c = apache.connect();
        let raw = format!(
            "POST {prefix}/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello\
             GET {prefix}/cookies HTTP/1.1\r\nHost: localhost\r\n\r\n"
        );
        c.write_raw(raw.as_bytes()).unwrap();
        let echo = c.read_response(false).unwrap();
        let cookies = c.read_response(false).unwrap();
        assert_eq!((echo.status, echo.text().as_str()), (200, "hello"), "{prefix}");
        assert_eq!(cookies.status, 200, "{prefix}");
        assert_eq!(cookies.headers_named("Set-Cookie").len(), 3, "{prefix}: {}", cookies.raw_head);
    }
}

#[test]
fn chunked_upload_with_wsgi_chunked_request() {
    let apache = io_apache();
    let body = payload(1_500_000 + 17, 2);
    // Chunks of uneven sizes, one of them larger than the protocol's 1 MiB frame.
    let mut raw = format!("POST /d/echo HTTP/1.1\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n", apache.addr())
        .into_bytes();
    let mut rest: &[u8] = &body;
    for size in [1usize, 4095, 65536, 1_100_000, 7].iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let n = (*size).min(rest.len());
        raw.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        raw.extend_from_slice(&rest[..n]);
        raw.extend_from_slice(b"\r\n");
        rest = &rest[n..];
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let r = apache.request(&raw);
    r.assert_status(200);
    assert_eq!(r.header("X-Content-Length"), Some("-"), "CONTENT_LENGTH set for a chunked body");
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "chunked upload came back different");

    // Without WSGIChunkedRequest (embedded mount /e has none): refused with 411.
    let raw_e =
        String::from_utf8_lossy(&raw[..raw.iter().position(|&b| b == b'\n').unwrap()]).replace("/d/echo", "/e/echo");
    let mut raw2 = raw_e.into_bytes();
    raw2.extend_from_slice(&raw[raw.iter().position(|&b| b == b'\n').unwrap()..]);
    apache.request(&raw2).assert_status(411);
}

#[test]
fn file_wrapper_downloads_are_byte_exact() {
    let apache = io_apache();
    let want = payload(BIG_FILE_LEN, 7);
    // A real file: its descriptor goes to Apache, which sends it.
    let t = Instant::now();
    let r = apache.get("/d/download-file");
    r.assert_status(200);
    assert!(r.complete, "{:?}", r.error);
    assert_eq!(r.header("Content-Length"), Some(want.len().to_string().as_str()));
    assert_eq!(r.body.len(), want.len());
    assert!(r.body == want, "file_wrapper file download differs");
    eprintln!("5 MiB file_wrapper: {:?}", t.elapsed());
    // Twice on one keep-alive connection, so the first did not leave the stream out of step.
    let mut c = apache.connect();
    for _ in 0..2 {
        let r = c.get("/d/download-file");
        r.assert_status(200);
        assert!(r.body == want);
    }
    // A file-like without a descriptor: iterated in blocks.
    let r = c.get("/d/download-bytesio");
    r.assert_status(200);
    assert!(r.complete, "{:?}", r.error);
    assert_eq!(r.body.len(), want.len());
    assert!(r.body == want, "file_wrapper BytesIO download differs");
    let r = c.get("/d/facts");
    r.assert_status(200);
}

/// Sends a GET on a raw socket and returns (time to the first body bytes, first bytes, whole
/// raw response, total time).
fn timed_get(apache: &Apache, path: &str, first_marker: &[u8]) -> (Duration, Duration, Vec<u8>) {
    let c = apache.connect();
    let mut s = c.stream().try_clone().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    use std::io::Write;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", apache.addr()).unwrap();
    let mut got = Vec::new();
    let mut first = None;
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if first.is_none() && got.windows(first_marker.len()).any(|w| w == first_marker) {
                    first = Some(t.elapsed());
                }
            }
            Err(e) => panic!("reading {path}: {e}; got {:?}", String::from_utf8_lossy(&got)),
        }
    }
    (first.expect("first chunk never arrived"), t.elapsed(), got)
}

#[test]
fn streaming_is_not_buffered() {
    let apache = io_apache();
    apache.get("/d/facts").assert_status(200); // the daemon is up and the app loaded
    for (path, first, second) in [
        ("/d/stream", &b"first-chunk\n"[..], &b"second-chunk\n"[..]),
        ("/d/stream-write", &b"written-first\n"[..], &b"returned-second\n"[..]),
    ] {
        let (ttfb, total, raw) = timed_get(&apache, path, first);
        let text = String::from_utf8_lossy(&raw);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(raw.windows(second.len()).any(|w| w == second), "{path}: {text}");
        assert!(total >= Duration::from_millis(950), "{path}: whole response in {total:?}");
        assert!(ttfb < Duration::from_millis(700), "{path}: first chunk after {ttfb:?} (total {total:?})");
        assert!(text.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{text}");
        assert!(text.ends_with("0\r\n\r\n"), "{path}: not a complete chunked body: {text}");
    }
}

#[test]
fn errors_before_and_after_output() {
    let apache = io_apache();
    let daemon = daemon_apps::daemon_pid(&apache, "/d");
    // Before any output: a clean 500, traceback logged by the daemon process.
    let r = apache.get("/d/raise-before");
    r.assert_status(500);
    assert!(r.complete);
    assert!(r.text().contains("Internal Server Error"), "{}", r.text());
    let needle = format!("RuntimeError: daemon-boom-before-output pid={daemon}");
    assert!(apache.wait_for_log(&needle, Duration::from_secs(5)), "{}", apache.log_tail(30));
    let log = apache.error_log();
    let lines: Vec<&str> = log.lines().collect();
    let at = lines.iter().position(|l| l.contains(&needle)).unwrap();
    assert!(lines[at].contains(&format!("[pid {daemon}:")), "not logged by the daemon: {}", lines[at]);
    assert!(
        lines[..at]
            .iter()
            .rev()
            .take(20)
            .any(|l| l.contains("Traceback (most recent call last):") && l.contains(&format!("[pid {daemon}:"))),
        "no traceback from the daemon before {needle}:\n{}",
        apache.log_tail(30)
    );
    assert!(lines[..at].iter().rev().take(20).any(|l| l.contains("in raise_before")), "{}", apache.log_tail(30));

    // After output started: the client gets no complete response, the traceback is logged,
    // and Apache's relay says the daemon aborted the response.
    match apache.try_get("/d/raise-after") {
        Ok(r) => {
            r.assert_status(200);
            assert!(!r.complete, "an aborted response must not look complete: {r:?}");
        }
        Err(e) => assert!(e.to_string().contains("closed by the server"), "{e}"),
    }
    assert!(
        apache.wait_for_log(&format!("RuntimeError: daemon-boom-after-output pid={daemon}"), Duration::from_secs(5)),
        "{}",
        apache.log_tail(30)
    );
    assert!(apache.wait_for_log("aborted the response", Duration::from_secs(5)), "{}", apache.log_tail(30));
    // The daemon survives both.
    assert_eq!(daemon_apps::daemon_pid(&apache, "/d"), daemon);
}

/// Like embedded mode, the client should receive the head and the output produced before the
/// failure, then see the connection cut (no terminating chunk).
#[test]
fn error_after_output_still_delivers_the_partial_output() {
    let apache = io_apache();
    let daemon = daemon_apps::daemon_pid(&apache, "/d");
    for _ in 0..5 {
        let r = apache.get("/d/raise-after");
        r.assert_status(200);
        assert!(!r.complete, "an aborted response must not look complete: {r:?}");
        assert_eq!(r.text(), "partial output\n");
    }
    assert_eq!(daemon_apps::daemon_pid(&apache, "/d"), daemon);
}

/// The daemon's user may read files Apache's user cannot: the descriptor passed with SENDFILE
/// must be used as it is, not reopened by path.
#[test]
fn file_wrapper_of_a_file_only_the_daemon_user_can_read() {
    let want = payload(300_000, 9);
    let apache = Apache::builder()
        .app("app.py", APP)
        .app("private.bin", &want)
        .config(
            "WSGIDaemonProcess own processes=1 threads=1 user=nobody\n\
             WSGIScriptAlias /own {APPS}/app.py process-group=own",
        )
        .start();
    let path = apache.app_path("private.bin");
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = apache.get("/own/download-file?private.bin");
    r.assert_status(200);
    assert!(r.complete, "{:?}\n{}", r.error, apache.log_tail(20));
    assert!(r.body == want, "{} bytes", r.body.len());
}

/// LimitRequestBody: a Content-Length over the limit is a 413 before the application runs, in
/// both modes (as mod_wsgi checks it before building the environ); at the limit it runs.
#[test]
fn limit_request_body_is_a_413_before_the_application_runs() {
    const COUNTING_APP: &str = r#"
def application(environ, start_response):
    environ["wsgi.errors"].write("app ran for %s\n" % environ["REQUEST_URI"])
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"got %d" % len(body)]
"#;
    let apache = Apache::builder()
        .app("count.py", COUNTING_APP)
        .config(
            "WSGIDaemonProcess limited threads=2\n\
             WSGIScriptAlias /emb {APPS}/count.py\n\
             WSGIScriptAlias /dmn {APPS}/count.py process-group=limited\n\
             <Location /emb>\n LimitRequestBody 10\n</Location>\n\
             <Location /dmn>\n LimitRequestBody 10\n</Location>",
        )
        .start();
    for mount in ["/emb", "/dmn"] {
        let r = apache.post(&format!("{mount}/ok"), "text/plain", b"0123456789");
        assert_eq!((r.status, r.text()), (200, "got 10".to_string()), "{mount}\n{}", apache.log_tail(20));
        let r = apache.post(&format!("{mount}/over"), "text/plain", b"0123456789A");
        assert_eq!(r.status, 413, "{mount}: {}\n{}", r.text(), apache.log_tail(20));
        assert!(apache.wait_for_log(&format!("app ran for {mount}/ok"), Duration::from_secs(5)));
        let log = apache.error_log();
        assert!(!log.contains(&format!("app ran for {mount}/over")), "{mount}: the application ran\n{log}");
        assert!(!log.contains("Traceback"), "{log}");
    }
    // The next request on a new connection is served as usual.
    apache.post("/dmn/ok", "text/plain", b"x").assert_status(200);
}

const REDIRECTING_APP: &str = r#"
def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/echo":
        body = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [("%s %s %r" % (environ["REQUEST_METHOD"], environ.get("CONTENT_LENGTH", ""), body)).encode()]
    if path == "/to-echo":
        # The body is left unread: Apache must drop it, not parse it as the next request.
        start_response("200 OK", [("Location", "/dmn/echo"), ("Content-Type", "text/plain")])
        return [b"discarded"]
    status = {"/found": "302 Found"}.get(path, "200 OK")
    location = {"/remote": "http://example.invalid/static/page.txt"}.get(path, "/static/page.txt")
    start_response(status, [("Location", location), ("Content-Type", "text/plain")])
    return [b"discarded"]
"#;

/// Daemon mode, as mod_wsgi: a 200 whose Location is a local path is an internal redirect. The
/// first body is discarded and Apache serves that path as a GET without the request body;
/// another status, or a Location that is not a path, goes to the client as it is.
#[test]
fn a_200_with_a_local_location_is_an_internal_redirect() {
    let apache = Apache::builder()
        .app("redirect.py", REDIRECTING_APP)
        .doc("page.txt", "static page\n")
        .config(
            "WSGIDaemonProcess redirecting threads=2\n\
             WSGIScriptAlias /dmn {APPS}/redirect.py process-group=redirecting\n\
             Alias /static {DOCROOT}",
        )
        .start();
    let r = apache.get("/dmn/static");
    assert_eq!((r.status, r.text()), (200, "static page\n".to_string()), "{}", apache.log_tail(20));
    assert_eq!(r.header("Location"), None);
    let r = apache.get("/dmn/found");
    assert_eq!((r.status, r.header("Location")), (302, Some("/static/page.txt")));
    let r = apache.get("/dmn/remote");
    assert_eq!((r.status, r.text()), (200, "discarded".to_string()));
    // A POST whose body the application left unread: the redirect is a GET with no body, and
    // the next request on the same connection is served as usual.
    let mut c = apache.connect();
    let r = c.post("/dmn/to-echo", "text/plain", b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!((r.status, r.text()), (200, "GET  b''".to_string()), "{}", apache.log_tail(20));
    let r = c.get("/dmn/echo");
    assert_eq!((r.status, r.text()), (200, "GET  b''".to_string()));
    assert!(!apache.access_log().contains("/smuggled"), "{}", apache.access_log());
}
