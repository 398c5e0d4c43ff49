//! Embedded mode: what reaches the error log, what the client sees when an application fails,
//! and start_response's validation of what the application hands it.

mod apps;
mod common;

use std::time::{Duration, Instant};

use apps::{ERRORS_APP, HELLO_APP};
use common::{Apache, Response};

const LOG_WAIT: Duration = Duration::from_secs(5);

fn errors_apache() -> Apache {
    Apache::builder()
        .app("errors.wsgi", ERRORS_APP)
        .app("hello.wsgi", HELLO_APP)
        .app("nocallable.wsgi", "def something_else(environ, start_response):\n    pass\n")
        .app("syntax.wsgi", "def application(environ, start_response):\n    return [b'x'\n\nthis is not python\n")
        .app("import_error.wsgi", "import no_such_module_oxwsgi_test\n")
        .config("WSGIScriptAlias /hello {APPS}/hello.wsgi")
        .config("WSGIScriptAlias /nocallable {APPS}/nocallable.wsgi")
        .config("WSGIScriptAlias /syntax {APPS}/syntax.wsgi")
        .config("WSGIScriptAlias /import-error {APPS}/import_error.wsgi")
        .config("WSGIScriptAlias / {APPS}/errors.wsgi")
        // One child process: /stash and /use-stash must meet in the same interpreter.
        .config("MaxRequestWorkers 8")
        .start()
}

#[track_caller]
fn assert_logged(apache: &Apache, needle: &str) {
    assert!(apache.wait_for_log(needle, LOG_WAIT), "{needle:?} not in the error log\n{}", apache.log_tail(40));
}

/// A clean 500 from Apache: nothing of what the application meant to send.
#[track_caller]
fn assert_clean_500(r: &Response) {
    r.assert_status(500);
    assert!(r.complete, "{:?}", r.error);
    assert!(!r.raw_head.contains("X-Injected") && !r.raw_head.contains("X-Bad"), "{}", r.raw_head);
    assert!(!r.text().contains("should not be sent"), "{}", r.text());
    assert!(r.text().contains("Internal Server Error"), "not Apache's 500 page: {}", r.text());
}

#[test]
fn log_streams_reach_the_error_log() {
    let apache = errors_apache();
    apache.get("/errors?e1").assert_status(200);
    assert_logged(&apache, "wsgi-errors-line-e1");
    assert_logged(&apache, "wsgi-errors-writelines-e1");
    // A line without its newline is flushed when the request ends.
    assert_logged(&apache, "wsgi-errors-unterminated-e1");
    // The lines are attributed to the request (Apache's request log format names the client).
    let log = apache.error_log();
    let line = log.lines().find(|l| l.contains("wsgi-errors-line-e1")).unwrap();
    assert!(line.contains("[client 127.0.0.1:"), "{line}");
    // Exactly one line per write: no duplicates and no empty partial lines.
    assert_eq!(apache.count_in_log("wsgi-errors-line-e1"), 1);

    apache.get("/print?p1").assert_status(200);
    assert_logged(&apache, "print-line-p1");
    assert_logged(&apache, "print-stderr-p1");

    apache.get("/logging?l1").assert_status(200);
    assert_logged(&apache, "logging-line-l1");
}

#[test]
fn exception_before_output_is_a_500_with_traceback() {
    let apache = errors_apache();
    let r = apache.get("/raise-before?b1");
    assert_clean_500(&r);
    assert_logged(&apache, "RuntimeError: boom-before-output-b1");
    let log = apache.error_log();
    assert!(log.contains("Traceback (most recent call last):"), "{log}");
    assert!(log.contains("errors.wsgi"), "traceback does not name the script: {log}");
    assert!(log.contains("Exception occurred processing WSGI script"), "{log}");

    // start_response called but nothing written: still a clean 500.
    let r = apache.get("/raise-after-start?b2");
    assert_clean_500(&r);
    assert_logged(&apache, "RuntimeError: boom-after-start-b2");
    apache.get("/hello").assert_status(200);
}

/// The traceback follows mod_wsgi 6's line (its WSGI0174/WSGI0175 ID, the exception's class,
/// where it ran) and then mod_wsgi 4's, so that log watchers for either find theirs.
#[test]
fn exception_headers_are_mod_wsgi_6s_then_4s() {
    let apache = errors_apache();
    let script = apache.app_path("errors.wsgi").display().to_string();
    apache.get("/raise-before?h1").assert_status(500);
    assert_logged(&apache, "RuntimeError: boom-before-output-h1");
    apache.get("/system-exit?h2").assert_status(500);
    assert_logged(&apache, "SystemExit: system-exit-h2");
    let log = apache.error_log();
    // What follows "[client ...] " (the lines of requests).
    let messages: Vec<&str> =
        log.lines().filter_map(|l| l.split_once("] [client ")?.1.split_once("] ").map(|(_, m)| m)).collect();
    let at = |prefix: &str| {
        messages.iter().position(|m| m.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix:?}\n{log}"))
    };
    let six = at(&format!(
        "WSGI0174: [script {script}] RuntimeError exception raised processing WSGI script '{script}' for sub-interpreter '"
    ));
    assert!(messages[six].ends_with("' in embedded mode."), "{}", messages[six]);
    assert!(messages[six + 1].starts_with("mod_wsgi (pid="), "{}", messages[six + 1]);
    assert!(messages[six + 1].ends_with(&format!("): Exception occurred processing WSGI script '{script}'.")));
    assert_eq!(messages[six + 2], "Traceback (most recent call last):");

    let six = at(&format!("WSGI0175: [script {script}] SystemExit exception raised by WSGI script '{script}' for "));
    assert!(messages[six].ends_with("' in embedded mode; ignored."), "{}", messages[six]);
    assert!(
        messages[six + 1].ends_with(&format!("): SystemExit exception raised by WSGI script '{script}' ignored.")),
        "{}",
        messages[six + 1]
    );
    assert!(!messages.iter().any(|m| m.contains("Exception occurred") && m.contains("system-exit")));
    apache.get("/hello").assert_status(200);
}

#[test]
fn exception_after_output_truncates_the_response() {
    let apache = errors_apache();
    // Chunked: the 0-chunk never comes, the connection is closed; the status already sent stays.
    let mut c = apache.connect();
    let t = Instant::now();
    let r = c.get("/raise-after-output?a1");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    r.assert_status(200);
    assert!(r.chunked, "{}", r.raw_head);
    assert!(!r.complete, "a failed response must not look complete: {:?}", r.text());
    assert_eq!(r.text(), "partial-body-");
    assert!(!r.text().contains("Internal Server Error"));
    assert!(c.is_closed(Duration::from_secs(5)), "connection kept open after an aborted response");
    assert_logged(&apache, "RuntimeError: boom-after-output-a1");

    // With a declared Content-Length: EOF before it is reached, quickly (no hang).
    let t = Instant::now();
    let r = apache.get("/raise-after-output-cl?a2");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    r.assert_status(200);
    assert!(!r.complete);
    assert_eq!(r.text(), "partial-body-");
    assert_logged(&apache, "RuntimeError: boom-after-output-cl-a2");

    // The server is fine afterwards, also on a keep-alive connection.
    let mut c = apache.connect();
    for _ in 0..3 {
        let r = c.get("/hello");
        r.assert_status(200);
        assert_eq!(r.text(), "hello\n");
    }
}

#[test]
fn script_load_failures() {
    let apache = errors_apache();
    let r = apache.get("/nocallable");
    r.assert_status(500);
    let script = apache.app_path("nocallable.wsgi").display().to_string();
    assert_logged(&apache, "does not contain WSGI application 'application'");
    let log = apache.error_log();
    let line = log.lines().find(|l| l.contains("does not contain WSGI application")).unwrap();
    assert!(line.contains(&script), "log line does not name the script: {line}");

    let r = apache.get("/syntax");
    r.assert_status(500);
    assert_logged(&apache, "SyntaxError");
    let log = apache.error_log();
    assert!(log.contains(&apache.app_path("syntax.wsgi").display().to_string()), "{log}");
    assert!(log.contains("Failed to exec Python script file"), "{log}");

    let r = apache.get("/import-error");
    r.assert_status(500);
    assert_logged(&apache, "ModuleNotFoundError: No module named 'no_such_module_oxwsgi_test'");
    assert!(apache.error_log().contains("Traceback (most recent call last):"));

    // Still failing on the second attempt (not cached as a half-loaded module).
    apache.get("/syntax").assert_status(500);
    apache.get("/hello").assert_status(200);
}

#[test]
fn invalid_status_lines_are_refused() {
    let apache = errors_apache();
    for (q, why) in [
        ("no-reason", "200"),
        ("two-digits", "20 OK"),
        ("letters", "abc OK"),
        ("crlf", "CR LF"),
        ("lf", "LF"),
        ("bytes", "bytes status"),
    ] {
        let r = apache.get(&format!("/status?{q}"));
        assert_eq!(r.status, 500, "status {why}: {}", r.raw_head);
        assert_clean_500(&r);
    }
    // mod_wsgi 6's messages (Apache's log doubles a backslash); a status without a reason is refused by oxwsgi only.
    assert_logged(&apache, "ValueError: no space following status code: b'200'");
    assert_logged(&apache, "ValueError: status code must be a 3 digit integer: b'20 OK'");
    assert_logged(&apache, "ValueError: status code must be a 3 digit integer: b'abc OK'");
    assert_logged(&apache, r"ValueError: control character in status reason phrase: b'200 OK\\r\\nX-Injected: yes'");
    assert_logged(&apache, r"ValueError: control character in status reason phrase: b'200 OK\\nX-Injected: yes'");
    assert_logged(&apache, "TypeError: must be str, not bytes");
}

#[test]
fn invalid_headers_are_refused() {
    let apache = errors_apache();
    for q in ["value-crlf", "value-lf", "value-cr", "name-crlf", "name-colon", "non-latin1", "bytes-value"] {
        let r = apache.get(&format!("/header?{q}"));
        assert_eq!(r.status, 500, "{q}: {}", r.raw_head);
        assert_clean_500(&r);
    }
    // mod_wsgi 6's messages; a name that is not a token is refused by oxwsgi only.
    assert_logged(&apache, r"UnicodeEncodeError: 'latin-1' codec can't encode character '\\u20ac'");
    assert_logged(&apache, r"carriage return/line feed character in header value: b'a\\r\\nX-Injected: yes'");
    assert_logged(&apache, r"carriage return/line feed character in header value: b'a\\nX-Injected: yes'");
    assert_logged(&apache, r"carriage return/line feed character in header value: b'a\\rX-Injected: yes'");
    assert_logged(&apache, r"control character in header name: b'X-Bad\\r\\nX-Injected'");
    assert_logged(&apache, "separator character in header name: b'X-Bad:X-Injected'");
    assert_logged(&apache, "TypeError: must be str, not bytes");

    // Latin-1 is fine and goes out as the single byte 0xE9.
    let mut s = std::net::TcpStream::connect(apache.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    std::io::Write::write_all(&mut s, b"GET /header?latin1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut bytes).unwrap();
    assert!(bytes.starts_with(b"HTTP/1.1 200 "), "{}", String::from_utf8_lossy(&bytes));
    assert!(
        bytes.windows(14).any(|w| w == b"X-Latin: caf\xe9\r"),
        "value not sent as latin-1: {:?}",
        String::from_utf8_lossy(&bytes)
    );

    for path in ["/headers-tuple", "/headers-not-pairs"] {
        let r = apache.get(path);
        assert_eq!(r.status, 500, "{path}: {}", r.raw_head);
        assert_clean_500(&r);
    }
    assert_logged(&apache, "TypeError: start_response() argument 2 must be list, not tuple");
    assert_logged(&apache, "ValueError: each header must be a 2-tuple, got length 3");
}

#[test]
fn start_response_protocol() {
    let apache = errors_apache();
    // Twice without exc_info before any output: the second call replaces the first, as in
    // mod_wsgi 6 (start_response.rs has the call after output, which raises).
    let r = apache.get("/twice");
    r.assert_status(201);
    assert_eq!(r.text(), "second call accepted\n");
    let r = apache.get("/twice-caught");
    r.assert_status(201);
    assert_eq!(r.text(), "second call accepted\n");
    assert_eq!(r.header("X-First"), None, "{}", r.raw_head);

    // With exc_info before any output: the new status and headers replace the old ones.
    let r = apache.get("/exc-info");
    r.assert_status(503);
    assert_eq!(r.text(), "replaced\n");
    assert_eq!(r.header("X-Replacement"), Some("1"));
    assert_eq!(r.header("X-Discarded"), None, "{}", r.raw_head);

    // With exc_info after output: the exception is re-raised, the response is cut short.
    let r = apache.get("/exc-info-after-output?x1");
    r.assert_status(200);
    assert!(!r.complete);
    assert_eq!(r.text(), "already-sent-");
    assert_logged(&apache, "ValueError: exc-info-after-output-x1");

    // write() returned by start_response; its output comes before the iterable's.
    let r = apache.get("/write");
    r.assert_status(200);
    assert!(r.complete);
    assert_eq!(r.text(), "from-write-1,from-write-2,from-iterable-1,from-iterable-2");

    // start_response may be called lazily, from the iterable's first step.
    let r = apache.get("/lazy-start");
    r.assert_status(202);
    assert_eq!(r.header("X-Lazy"), Some("1"));
    assert_eq!(r.text(), "lazy-body");
    let r = apache.get("/lazy-start-empty");
    r.assert_status(204);
    assert_eq!(r.header("X-Lazy"), Some("2"));
    assert!(r.body.is_empty());

    // Never calling start_response is an error.
    let r = apache.get("/no-start-response");
    assert_clean_500(&r);
    assert_logged(&apache, "start_response");
}

#[test]
fn non_bytes_body_items() {
    let apache = errors_apache();
    let r = apache.get("/str-item");
    assert_clean_500(&r);
    assert_logged(&apache, "TypeError: response iterable must yield bytes, not str");

    // After bytes went out: the response is cut short instead.
    let r = apache.get("/str-item-later");
    r.assert_status(200);
    assert!(!r.complete, "{}", r.text());
    assert_eq!(r.text(), "bytes-first-");
    // Also from a list, whose items may still be buffered when the bad one comes: they are
    // sent, then the connection is dropped.
    let t = Instant::now();
    let r = apache.get("/str-item-later-list");
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}", t.elapsed());
    r.assert_status(200);
    assert!(!r.complete, "{}", r.text());
    assert_eq!(r.text(), "bytes-first-");

    // Returning None is not an iterable.
    assert_clean_500(&apache.get("/none"));
    assert_logged(&apache, "TypeError: 'NoneType' object is not iterable");
    apache.get("/hello").assert_status(200);
}

/// Request objects kept past their request, or used from another thread, raise instead of
/// touching a finished (or another thread's) request.
#[test]
fn request_objects_outside_their_request() {
    let apache = errors_apache();
    apache.get("/stash").assert_status(200);
    let r = apache.get("/use-stash");
    r.assert_status(200);
    assert_eq!(
        r.text(),
        "input.read OSError\ninput.readline OSError\nwrite RuntimeError\nstart_response RuntimeError\nerrors.write ok\n"
    );
    // The stale wsgi.errors still logs (as a server message), its partial line at the end of
    // the request that wrote it.
    assert_logged(&apache, "stale-errors-line");
    assert_logged(&apache, "stale-partial");
    let r = apache.get("/thread-write");
    r.assert_status(200);
    assert_eq!(r.text(), "other thread: RuntimeError\n");
    apache.get("/hello").assert_status(200);
}
