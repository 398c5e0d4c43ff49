//! Stops that lose nothing: `apachectl -k graceful-stop` (SIGWINCH to Apache's parent) lets
//! every request already running finish, in embedded and daemon mode, then every process
//! exits; a daemon group with processes=2 keeps answering while a changed script reloads it
//! one process at a time.

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;

use common::{alive_pids, Apache, Client};
use daemon_apps::APP;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn graceful_stop_finishes_the_requests_in_flight_in_both_modes() {
    let mut apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "GracefulShutdownTimeout 20\n\
             WSGIDaemonProcess drain processes=1 threads=4 shutdown-timeout=10\n\
             WSGIScriptAlias /d {APPS}/app.py process-group=drain\n\
             WSGIScriptAlias /e {APPS}/app.py",
        )
        .start();
    apache.get("/d/facts").assert_status(200);
    apache.get("/e/facts").assert_status(200);
    let before = apache.all_pids();
    let addr = apache.addr();
    let t = Instant::now();
    let inflight: Vec<_> = ["/d/sleep?2", "/e/sleep?2", "/d/sleep?2", "/e/sleep?2"]
        .into_iter()
        .map(|path| {
            thread::spawn(move || {
                Client::connect_timeout(addr, Duration::from_secs(30))
                    .and_then(|mut c| c.try_send("GET", path, &[("Connection", "close")], b""))
                    .map(|r| (r.status, r.text()))
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    apache.signal(libc::SIGWINCH); // apachectl -k graceful-stop
    for (i, h) in inflight.into_iter().enumerate() {
        let r = h.join().unwrap();
        assert!(
            matches!(&r, Ok((200, text)) if text.starts_with("slept 2")),
            "request {i} in flight at graceful-stop: {r:?}\n{}",
            apache.log_tail(30)
        );
    }
    assert!(t.elapsed() >= Duration::from_secs(2));
    // Then everything exits by itself, well within GracefulShutdownTimeout.
    let gone = common::eventually(Duration::from_secs(15), || alive_pids(&before).is_empty());
    assert!(gone, "still running after graceful-stop: {:?}\n{}", alive_pids(&before), apache.log_tail(30));
    let report = apache.shutdown();
    assert!(!report.forced && report.leftovers.is_empty(), "{report:?}");
}

const SLOW_IMPORT: &str = r#"
import os, time
VERSION = 'v1'
time.sleep(1.0)  # a large application's imports

def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%s pid=%d' % (VERSION, os.getpid())).encode()]
"#;

#[test]
fn a_changed_script_reloads_a_two_process_group_one_process_at_a_time() {
    let apache = Apache::builder()
        .app("slow.py", SLOW_IMPORT)
        .config(
            "WSGIDaemonProcess roll processes=2 threads=2\n\
             WSGIScriptAlias /r {APPS}/slow.py process-group=roll application-group=%{GLOBAL}",
        )
        .start();
    let addr = apache.addr();
    let get = move || -> Result<(String, Duration), String> {
        let t = Instant::now();
        let r = Client::connect_timeout(addr, Duration::from_secs(30))
            .and_then(|mut c| c.try_send("GET", "/r/", &[("Connection", "close")], b""))
            .map_err(|e| e.to_string())?;
        if r.status != 200 {
            return Err(format!("status {}: {}", r.status, r.text()));
        }
        Ok((r.text(), t.elapsed()))
    };
    // Both processes preload the script (process-group and application-group are fixed).
    assert!(apache.wait_for_log("started daemon process 1 of group 'roll'", Duration::from_secs(10)));
    thread::sleep(Duration::from_millis(1500));
    assert!(get().unwrap().0.starts_with("v1 "));
    let start = Instant::now();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            thread::spawn(move || {
                let mut seen = Vec::new();
                while start.elapsed() < Duration::from_secs(5) {
                    seen.push(get());
                    thread::sleep(Duration::from_millis(20));
                }
                seen
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(700));
    let script = apache.app_path("slow.py");
    std::fs::write(&script, SLOW_IMPORT.replace("'v1'", "'v2'")).unwrap();
    let mut failures = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut v2 = 0;
    for c in clients {
        for r in c.join().unwrap() {
            match r {
                Ok((text, took)) => {
                    slowest = slowest.max(took);
                    v2 += text.starts_with("v2 ") as usize;
                }
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}\n{}", apache.log_tail(30));
    assert!(v2 > 0, "the new code never answered\n{}", apache.log_tail(30));
    // Both processes were replaced (whichever got requests), each by a process that preloaded
    // the new script before taking any.
    assert_eq!(apache.count_in_log("started daemon process"), 4, "{}", apache.log_tail(30));
    // One process at a time: the other answered while each replacement imported (1 s), so no
    // request waited for an import.
    assert!(
        slowest < Duration::from_millis(900),
        "a request took {slowest:?} during the reload\n{}",
        apache.log_tail(30)
    );
    assert_eq!(apache.count_in_log("changed: restarting to load it"), 2, "{}", apache.log_tail(30));
    let _ = apache.stop();
}
