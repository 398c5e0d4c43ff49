//! Embedded mode: the response path. Header lines as sent, the iterable's close(), the declared
//! Content-Length, wsgi.file_wrapper, HEAD, and wsgiref's validator.

mod apps;
mod common;

use std::io::Read;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use apps::{binary_data, RESPONSE_APP, VALIDATED_APP};
use common::eventually;
use common::Apache;

const DATA_LEN: usize = 5 * 1024 * 1024 + 123;

fn response_apache() -> Apache {
    Apache::builder()
        .app("response.wsgi", RESPONSE_APP)
        .app("data.bin", binary_data(DATA_LEN))
        .file_with_mode("state/log", "", 0o666)
        .config("WSGIScriptAlias / {APPS}/response.wsgi")
        .start()
}

/// The lines the app recorded in state/log.
fn events(apache: &Apache) -> Vec<String> {
    std::fs::read_to_string(apache.root.join("state/log")).unwrap_or_default().lines().map(String::from).collect()
}

fn count_events(apache: &Apache, prefix: &str) -> usize {
    events(apache).iter().filter(|l| l.starts_with(prefix)).count()
}

/// Wait (bounded) until `prefix` was recorded at least once, then a little longer to catch a
/// second (wrong) record; returns the matching lines.
fn settled_events(apache: &Apache, prefix: &str) -> Vec<String> {
    eventually(Duration::from_secs(10), || count_events(apache, prefix) > 0);
    std::thread::sleep(Duration::from_millis(200));
    events(apache).into_iter().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn repeated_headers_keep_their_lines_and_order() {
    let apache = response_apache();
    let r = apache.get("/cookies");
    r.assert_status(200);
    assert_eq!(r.headers_named("Set-Cookie"), ["a=1; Path=/", "b=2", "c=3; HttpOnly"], "{}", r.raw_head);
    let raw_cookies = r.raw_head.lines().filter(|l| l.starts_with("Set-Cookie: ")).count();
    assert_eq!(raw_cookies, 3, "{}", r.raw_head);
    let ours: Vec<(&str, &str)> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "Set-Cookie" || n == "X-Order")
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        ours,
        [
            ("X-Order", "1"),
            ("Set-Cookie", "a=1; Path=/"),
            ("X-Order", "2"),
            ("Set-Cookie", "b=2"),
            ("Set-Cookie", "c=3; HttpOnly"),
            ("X-Order", "3")
        ],
        "{}",
        r.raw_head
    );
}

#[test]
fn close_is_called_exactly_once() {
    let apache = response_apache();

    let r = apache.get("/close/normal?n1");
    r.assert_status(200);
    assert_eq!(r.text(), "chunk;chunk;chunk;");
    assert_eq!(settled_events(&apache, "close n1 "), ["close n1 after 3"]);

    // Raising during iteration, after output: close() still runs once.
    let r = apache.get("/close/raise?r1");
    r.assert_status(200);
    assert!(!r.complete);
    assert_eq!(r.text(), "chunk;");
    assert_eq!(settled_events(&apache, "close r1 "), ["close r1 after 1"]);
    assert!(apache.wait_for_log("body-failure-r1", Duration::from_secs(5)), "{}", apache.log_tail(20));

    // Raising on the first item (nothing sent yet): a 500, and close() once.
    let r = apache.get("/close/raise-first?r0");
    r.assert_status(500);
    assert_eq!(settled_events(&apache, "close r0 "), ["close r0 after 0"]);

    // A list subclass may have close() too (only a plain list or tuple cannot).
    let r = apache.get("/close/list-subclass?l1");
    r.assert_status(200);
    assert_eq!(r.text(), "a;b;");
    assert_eq!(settled_events(&apache, "close l1 "), ["close l1 list of 2"]);

    let r = apache.get("/close/write-then-list?w1");
    r.assert_status(200);
    assert_eq!(r.text(), "w;chunk;chunk;");
    assert_eq!(settled_events(&apache, "close w1 "), ["close w1 after 2"]);

    // Content-Length reached early: iteration stops, close() once.
    let r = apache.get("/cl/long-gen?g1");
    r.assert_status(200);
    assert_eq!(r.text(), "01230");
    assert_eq!(settled_events(&apache, "close g1 "), ["close g1 after 2"]);
}

#[test]
fn close_is_called_once_when_the_client_disconnects() {
    let apache = response_apache();
    let mut c = apache.connect();
    c.write_raw(b"GET /close/disconnect?d1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    // Read a little of the (2000 x 64 KiB, ~10 s) body, then hang up.
    let mut buf = vec![0u8; 200_000];
    let mut got = 0;
    while got < buf.len() {
        match c.stream().read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("read: {e}"),
        }
    }
    assert!(String::from_utf8_lossy(&buf[..64]).starts_with("HTTP/1.1 200"));
    let t = Instant::now();
    c.stream().shutdown(Shutdown::Both).unwrap();
    drop(c);
    let lines = settled_events(&apache, "close d1 ");
    assert_eq!(lines.len(), 1, "close() not called exactly once: {lines:?}\n{}", apache.log_tail(20));
    let after: u32 = lines[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(after < 2000, "the app ran to the end: the disconnect was not noticed ({})", lines[0]);
    assert!(t.elapsed() < Duration::from_secs(8), "noticed only after {:?}", t.elapsed());
    // And the server still serves.
    apache.get("/close/normal?n2").assert_status(200);
}

#[test]
fn declared_content_length_is_enforced() {
    let apache = response_apache();

    // Longer than declared: cut to the declared length; the connection stays usable.
    let mut c = apache.connect();
    let r = c.get("/cl/long");
    r.assert_status(200);
    assert!(r.complete, "{:?}", r.error);
    assert_eq!(r.header("Content-Length"), Some("5"));
    assert_eq!(r.text(), "01234");
    let r = c.get("/cl/exact-write");
    r.assert_status(200);
    assert_eq!(r.text(), "abcdef");
    let r = c.get("/cookies");
    r.assert_status(200);
    assert_eq!(r.text(), "cookies\n");

    // Shorter than declared: logged, and the connection closed: EOF, not a hang.
    let mut c = apache.connect();
    let t = Instant::now();
    let r = c.get("/cl/short");
    assert!(t.elapsed() < Duration::from_secs(3), "client waited {:?} for the missing bytes", t.elapsed());
    r.assert_status(200);
    assert!(!r.complete, "{r:?}");
    assert_eq!(r.text(), "01234");
    assert!(r.error.as_deref().unwrap_or("").contains("closed"), "{:?}", r.error);
    assert!(c.is_closed(Duration::from_secs(2)));
    assert!(
        apache.wait_for_log("declared Content-Length 10 but sent 5", Duration::from_secs(5)),
        "{}",
        apache.log_tail(20)
    );
    apache.get("/cookies").assert_status(200);
}

#[test]
fn file_wrapper_sends_files() {
    let apache = response_apache();
    let data = binary_data(DATA_LEN);

    // A real file, from the position it was seeked to, byte-exact; close() called.
    let r = apache.get("/fw/file?1000");
    r.assert_status(200);
    assert!(r.complete, "{:?}", r.error);
    assert_eq!(r.body.len(), DATA_LEN - 1000);
    assert!(r.body == data[1000..], "file body differs");
    assert_eq!(settled_events(&apache, "file-close file-1000"), ["file-close file-1000"]);

    // The whole 5 MiB file.
    let r = apache.get("/fw/file?0");
    r.assert_status(200);
    assert!(r.complete, "{:?}", r.error);
    assert_eq!(r.body.len(), DATA_LEN);
    assert!(r.body == data, "5 MiB file body differs");
    assert_eq!(settled_events(&apache, "file-close file-0"), ["file-close file-0"]);

    // A buffered reader that read ahead: its logical position counts, not the descriptor's.
    let r = apache.get("/fw/buffered");
    r.assert_status(200);
    assert!(r.body == data[10..], "buffered file body differs ({} bytes)", r.body.len());

    // A declared Content-Length shorter than the file cuts it.
    let r = apache.get("/fw/file-cl?777");
    r.assert_status(200);
    assert!(r.complete);
    assert!(r.body == data[..777]);
    assert_eq!(settled_events(&apache, "file-close file-cl"), ["file-close file-cl"]);

    // A file-like object without a descriptor: read in blksize blocks, then closed.
    let r = apache.get("/fw/bytesio?2500");
    r.assert_status(200);
    assert!(r.body == data[..2500]);
    let lines = settled_events(&apache, "bytesio-close bio");
    assert_eq!(lines, ["bytesio-close bio reads=1000,1000,1000,1000"], "{lines:?}");

    // Several at once on a keep-alive connection.
    let mut c = apache.connect();
    for off in [0usize, 4096, DATA_LEN - 1] {
        let r = c.get(&format!("/fw/file?{off}"));
        r.assert_status(200);
        assert!(r.body == data[off..], "offset {off}");
    }
}

/// Requests pipelined in one write are all answered, in order, on the one connection (each
/// response is written out as it completes, before the next request is read).
#[test]
fn pipelined_requests_are_answered_in_order() {
    let apache = response_apache();
    let mut c = apache.connect();
    c.write_raw(
        b"GET /cookies HTTP/1.1\r\nHost: localhost\r\n\r\n\
          HEAD /head HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /head HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .unwrap();
    let first = c.read_response(false).unwrap();
    let second = c.read_response(true).unwrap();
    let third = c.read_response(false).unwrap();
    assert_eq!((first.status, first.text().as_str()), (200, "cookies\n"));
    assert_eq!((second.status, second.body.len()), (200, 0));
    assert_eq!((third.status, third.body.len()), (200, 100));
    // Still usable afterwards.
    c.get("/cookies").assert_status(200);
}

#[test]
fn head_runs_the_app_and_sends_no_body() {
    let apache = response_apache();
    let g = apache.get("/head");
    g.assert_status(200);
    assert_eq!(g.body.len(), 100);
    let h = apache.head("/head");
    h.assert_status(200);
    assert!(h.body.is_empty());
    let strip = |r: &common::Response| -> Vec<(String, String)> {
        r.headers.iter().filter(|(n, _)| n != "Date").cloned().collect()
    };
    assert_eq!(strip(&h), strip(&g), "HEAD headers differ from GET:\n{}\n{}", h.raw_head, g.raw_head);
    assert_eq!(h.header("Content-Length"), Some("100"));
    assert_eq!(settled_events(&apache, "run HEAD"), ["run HEAD"]);

    // On a keep-alive connection no body bytes follow the HEAD response.
    let mut c = apache.connect();
    let h = c.head("/head");
    h.assert_status(200);
    let g = c.get("/cookies");
    g.assert_status(200);
    assert_eq!(g.text(), "cookies\n");

    // A streamed (generator) body: still no body bytes, the app ran, close() called.
    let h = c.head("/head-gen");
    h.assert_status(200);
    assert_eq!(h.header("X-Custom"), Some("gen"));
    let g = c.get("/cookies");
    g.assert_status(200);
    assert_eq!(g.text(), "cookies\n");
    assert_eq!(settled_events(&apache, "run-gen HEAD"), ["run-gen HEAD"]);
    assert_eq!(settled_events(&apache, "close head-gen-HEAD").len(), 1);
}

#[test]
fn wsgiref_validator_is_satisfied() {
    let apache = Apache::builder()
        .app("validated.wsgi", VALIDATED_APP)
        .config("WSGIScriptAlias /v {APPS}/validated.wsgi")
        .start();
    let r = apache.get("/v/x?y=1");
    r.assert_status(200);
    assert_eq!(r.text(), "method=GET\nbody=\nrest=");
    let r = apache.post("/v", "application/octet-stream", b"posted body\nline 2");
    r.assert_status(200);
    assert_eq!(r.text(), "method=POST\nbody=posted body\nline 2\nrest=");
    let mut c = apache.connect();
    for _ in 0..3 {
        let r = c.post("/v/k", "text/plain", b"keep");
        r.assert_status(200);
        assert_eq!(r.text(), "method=POST\nbody=keep\nrest=");
    }
    drop(c);
    assert!(apache.wait_for_log("validated POST 18", Duration::from_secs(5)), "{}", apache.log_tail(20));
    std::thread::sleep(Duration::from_millis(200));
    let log = apache.error_log();
    for bad in ["AssertionError", "WSGIWarning", "Traceback", "Exception"] {
        assert!(!log.contains(bad), "{bad} in the error log:\n{log}");
    }
}

#[test]
fn application_status_and_body_are_sent_as_given() {
    let apache = response_apache();
    for (status, reason) in [
        (201, "Created"),
        (404, "Not Found"),
        (418, "I'm a teapot"),
        (500, "Internal Server Error"),
        (503, "Try Later"),
    ] {
        let r = apache.get(&format!("/status?{status}%20{}", reason.replace(' ', "%20")));
        r.assert_status(status);
        assert_eq!(r.reason, reason, "{}", r.raw_head);
        assert_eq!(r.header("X-Status"), Some(status.to_string().as_str()));
        // The application's body, not Apache's error page.
        assert_eq!(r.text(), format!("app body for {status}%20{}\n", reason.replace(' ', "%20")));
    }
    // No body where HTTP allows none, even though the application returned one.
    let mut c = apache.connect();
    for status in ["204%20No%20Content", "304%20Not%20Modified"] {
        let r = c.get(&format!("/status?{status}"));
        r.assert_status(status[..3].parse().unwrap());
        assert!(r.body.is_empty());
    }
    let r = c.get("/cookies");
    r.assert_status(200);
    assert_eq!(r.text(), "cookies\n");
}
