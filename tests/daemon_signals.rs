//! Signals and stuck daemon processes, as in mod_wsgi: deadlock-timeout (the GIL held so long
//! no request can run: the process is replaced), eviction (with eviction-timeout, SIGUSR1 to
//! one daemon process replaces it gracefully within it) and mod_wsgi 6's subscribe_signals
//! (SIGHUP and SIGUSR2 reach the application's callbacks; the process goes on).

mod common;

use common::{Apache, Client};
use std::time::Duration;

const APP: &str = r#"
import ctypes, os, sys, mod_wsgi

@mod_wsgi.subscribe_signals
def on_signal(name, **event):
    print('SIGNAL-CALLBACK %s %s %d' % (name, event['signame'], event['signum']), file=sys.stderr)

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
        Client::connect_timeout(addr, Duration::from_secs(40))
            .and_then(|mut c| c.try_send("GET", "/s/hold-gil", &[], b""))
    });
    assert!(
        apache.wait_for_log("has not been released for", Duration::from_secs(15)),
        "no deadlock detected\n{}",
        apache.log_tail(20)
    );
    let replaced = common::eventually(Duration::from_secs(15), || {
        apache.try_get("/s/").is_ok_and(|r| r.status == 200 && r.text() != before)
    });
    assert!(replaced, "{}", apache.log_tail(20));
    let _ = hold.join();
    let _ = apache.stop();
}

#[test]
fn sigusr1_with_eviction_timeout_evicts_one_daemon_process() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess ev processes=1 threads=1 eviction-timeout=3\n\
             WSGIScriptAlias /e {APPS}/app.py process-group=ev",
        )
        .start();
    let before = pid(&apache, "/e/");
    let n: i32 = before.trim_start_matches("pid=").parse().unwrap();
    unsafe { libc::kill(n, libc::SIGUSR1) };
    assert!(
        apache.wait_for_log("evicted (SIGUSR1 with eviction-timeout)", Duration::from_secs(5)),
        "{}",
        apache.log_tail(20)
    );
    let replaced = common::eventually(Duration::from_secs(10), || {
        apache.try_get("/e/").is_ok_and(|r| r.status == 200 && r.text() != before)
    });
    assert!(replaced, "{}", apache.log_tail(20));
    let _ = apache.stop();
}

#[test]
fn sighup_and_sigusr2_reach_subscribe_signals_and_the_process_stays() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess sig processes=1 threads=1\n\
             WSGIScriptAlias /s {APPS}/app.py process-group=sig\n\
             WSGIScriptAlias /e {APPS}/app.py",
        )
        .start();
    let before = pid(&apache, "/s/");
    let n: i32 = before.trim_start_matches("pid=").parse().unwrap();
    for (sig, name) in [(libc::SIGHUP, "SIGHUP"), (libc::SIGUSR2, "SIGUSR2")] {
        unsafe { libc::kill(n, sig) };
        let line = format!("SIGNAL-CALLBACK process_signal {name} {sig}");
        assert!(apache.wait_for_log(&line, Duration::from_secs(5)), "no '{line}'\n{}", apache.log_tail(20));
    }
    assert_eq!(pid(&apache, "/s/"), before, "a signal for the application does not stop the process");
    // Embedded mode: inert, and said so.
    apache.get("/e/").assert_status(200);
    assert!(apache.wait_for_log("subscribe_signals() has no effect in embedded mode", Duration::from_secs(2)));
    let _ = apache.stop();
}
