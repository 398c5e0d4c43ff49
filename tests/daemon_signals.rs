//! Daemon processes that must go: deadlock-timeout (the GIL held so long no request can run:
//! the process is replaced) and eviction (SIGUSR2 to one daemon process replaces it
//! gracefully, within eviction-timeout), as in mod_wsgi.

mod common;

use common::{Apache, Client};
use std::time::Duration;

const APP: &str = r#"
import ctypes, os

def application(environ, start_response):
    if environ.get('PATH_INFO') == '/hold-gil':
        # A C call made without releasing the GIL (PyDLL), as a stuck C extension would.
        ctypes.PyDLL(None).sleep(30)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'pid=%d' % os.getpid()]
"#;

fn pid(apache: &Apache, mount: &str) -> String {
    let r = apache.get(mount);
    r.assert_status(200);
    r.text()
}

#[test]
fn a_process_holding_the_gil_past_deadlock_timeout_is_replaced() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess stuck processes=1 threads=2 deadlock-timeout=2\n\
             WSGIScriptAlias /s {APPS}/app.py process-group=stuck",
        )
        .start();
    let before = pid(&apache, "/s/");
    let addr = apache.addr();
    let hold = std::thread::spawn(move || {
        Client::connect_timeout(addr, Duration::from_secs(40)).and_then(|mut c| c.try_send("GET", "/s/hold-gil", &[], b""))
    });
    assert!(
        apache.wait_for_log("has not been released for", Duration::from_secs(15)),
        "no deadlock detected\n{}",
        apache.log_tail(20)
    );
    let replaced = common::eventually(Duration::from_secs(15), || apache.try_get("/s/").is_ok_and(|r| r.status == 200 && r.text() != before));
    assert!(replaced, "{}", apache.log_tail(20));
    let _ = hold.join();
    let _ = apache.stop();
}

#[test]
fn sigusr2_evicts_one_daemon_process() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess ev processes=1 threads=1 eviction-timeout=3\n\
             WSGIScriptAlias /e {APPS}/app.py process-group=ev",
        )
        .start();
    let before = pid(&apache, "/e/");
    let n: i32 = before.trim_start_matches("pid=").parse().unwrap();
    unsafe { libc::kill(n, libc::SIGUSR2) };
    assert!(apache.wait_for_log("evicted (SIGUSR2)", Duration::from_secs(5)), "{}", apache.log_tail(20));
    let replaced = common::eventually(Duration::from_secs(10), || apache.try_get("/e/").is_ok_and(|r| r.status == 200 && r.text() != before));
    assert!(replaced, "{}", apache.log_tail(20));
    let _ = apache.stop();
}
