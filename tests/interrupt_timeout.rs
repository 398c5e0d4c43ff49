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
    // The adapter logs the exception as it unwound out of the application (the line tells it
    // from the monitor's message above).
    assert!(
        apache.wait_for_log("mod_wsgi.RequestTimeout\n", Duration::from_secs(5))
            || apache.error_log().lines().any(|l| l.trim_end().ends_with("mod_wsgi.RequestTimeout")),
        "{}",
        apache.log_tail(30)
    );
    assert!(apache.error_log().contains("Exception occurred processing WSGI script"), "{}", apache.log_tail(30));
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
