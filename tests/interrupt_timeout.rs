//! interrupt-timeout (mod_wsgi 6): a request past request-timeout is interrupted with
//! mod_wsgi.RequestTimeout in its own thread and answered 504, and the process goes on serving;
//! a request that cannot be interrupted in time (blocked outside Python) falls back to the
//! restart request-timeout does alone.

mod common;

use common::eventually;
use common::Apache;
use std::time::{Duration, Instant};

const APP: &str = r#"
import os, time

def application(environ, start_response):
    path = environ.get('PATH_INFO')
    if path == '/spin':
        try:
            while True:
                pass
        except Exception:
            # RequestTimeout is a BaseException: this does not catch it.
            pass
    if path == '/block':
        time.sleep(30)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'pid=%d' % os.getpid()]
"#;

fn pid(apache: &Apache) -> String {
    let r = apache.get("/i/pid");
    r.assert_status(200);
    r.text()
}

#[test]
fn an_interrupted_request_is_answered_504_and_the_process_stays() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess int processes=1 threads=2 request-timeout=1 interrupt-timeout=3\n\
             WSGIScriptAlias /i {APPS}/app.py process-group=int",
        )
        .start();
    let before = pid(&apache);
    let t = Instant::now();
    let r = apache.get("/i/spin");
    let took = t.elapsed();
    r.assert_status(504);
    assert!(took >= Duration::from_millis(900) && took < Duration::from_millis(2500), "504 after {took:?}");
    assert!(apache
        .wait_for_log("interrupting it with mod_wsgi.RequestTimeout (interrupt-timeout 3s)", Duration::from_secs(5)));
    // mod_wsgi 6's lines: the stack where it was interrupted, that RequestTimeout was injected,
    // that the thread recovered; and no traceback (RequestTimeout is no error of the application).
    assert!(
        apache.wait_for_log("Request interrupted by RequestTimeout; thread recovered.", Duration::from_secs(5)),
        "{}",
        apache.log_tail(30)
    );
    let log = apache.error_log();
    assert!(log.contains("Injected RequestTimeout into thread "), "{}", apache.log_tail(30));
    let app = apache.app_path("app.py").display().to_string();
    assert!(log.contains(&format!(" executing file \"{app}\", line ")), "{}", apache.log_tail(30));
    assert!(!log.contains("Exception occurred processing WSGI script"), "{}", apache.log_tail(30));
    assert!(!log.lines().any(|l| l.trim_end().ends_with("mod_wsgi.RequestTimeout")), "{}", apache.log_tail(30));
    // Not restarted: the same process answers, now and after the grace would have run out.
    assert_eq!(pid(&apache), before);
    std::thread::sleep(Duration::from_millis(3500));
    assert_eq!(pid(&apache), before);
    assert!(!apache.error_log().contains("stopping"), "{}", apache.log_tail(30));

    // Blocked in time.sleep (outside Python), the exception cannot land: after the grace the
    // process restarts, as with request-timeout alone.
    let t = Instant::now();
    let r = apache.get("/i/block");
    let took = t.elapsed();
    r.assert_status(504);
    assert!(took >= Duration::from_millis(3800) && took < Duration::from_secs(7), "504 after {took:?}");
    assert!(eventually(Duration::from_secs(8), || pid(&apache) != before), "the process was not replaced");
}

/// mod_wsgi.RequestTimeout raised by the application itself is handled as an interrupted
/// request (as mod_wsgi 6 does): 504 and its line instead of a traceback, or, once the response
/// has started, the response cut short.
#[test]
fn a_raised_request_timeout_is_a_504_without_a_traceback() {
    const RAISES: &str = r#"
import mod_wsgi

def application(environ, start_response):
    if environ.get('PATH_INFO') == '/late':
        def body():
            yield b'started'
            raise mod_wsgi.RequestTimeout('raised-late')
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return body()
    raise mod_wsgi.RequestTimeout('raised-early')
"#;
    for daemon in [false, true] {
        let mut b = Apache::builder().app("raises.py", RAISES);
        b = if daemon {
            b.config("WSGIDaemonProcess rt processes=1 threads=2\nWSGIScriptAlias /r {APPS}/raises.py process-group=rt")
        } else {
            b.config("WSGIScriptAlias /r {APPS}/raises.py")
        };
        let apache = b.start();
        apache.get("/r/early").assert_status(504);
        assert!(
            apache.wait_for_log("Request interrupted by RequestTimeout; thread recovered.", Duration::from_secs(5)),
            "daemon={daemon}: {}",
            apache.log_tail(30)
        );
        let r = apache.try_get("/r/late");
        assert!(r.as_ref().map_or(true, |r| r.status == 200), "daemon={daemon}");
        assert!(
            apache.wait_for_log(
                "Request interrupted by RequestTimeout after headers sent; response truncated.",
                Duration::from_secs(5)
            ),
            "daemon={daemon}: {}",
            apache.log_tail(30)
        );
        let log = apache.error_log();
        assert!(!log.contains("raised-early") && !log.contains("raised-late"), "daemon={daemon}: {log}");
        assert!(!log.contains("exception raised processing WSGI script"), "daemon={daemon}: {log}");
    }
}
