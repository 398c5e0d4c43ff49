//! Daemon processes that die, hang or fall behind: the client gets a prompt error status, the
//! error log says what happened, and the group is back for the next request.

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;

use std::thread;
use std::time::{Duration, Instant};

use common::Apache;
use daemon_apps::{daemon_pid, eventually, APP};

#[track_caller]
fn assert_logged(apache: &Apache, needle: &str) {
    assert!(
        apache.wait_for_log(needle, Duration::from_secs(5)),
        "{needle:?} not in the error log\n{}",
        apache.log_tail(40)
    );
}

#[test]
fn a_crashing_daemon_gets_an_error_status_and_is_replaced() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess crashy processes=1 threads=2\n\
             WSGIScriptAlias /c {APPS}/app.py process-group=crashy",
        )
        .start();
    let parent = apache.parent_pid();
    for (route, how) in [
        ("/c/crash-exit", "exited with status 1"),
        ("/c/crash-kill", "was killed by signal 9"),
        ("/c/crash-segv", "was killed by signal 11"),
    ] {
        let before = daemon_pid(&apache, "/c");
        let t = Instant::now();
        let r = apache.get(route);
        let took = t.elapsed();
        assert!(r.status == 502 || r.status == 503, "{route}: {}\n{}", r.raw_head, apache.log_tail(20));
        assert!(took < Duration::from_secs(5), "{route}: answered after {took:?}");
        assert_logged(&apache, &format!("(pid {before}) {how}"));
        // The relaying child says what it lost.
        assert_logged(&apache, "daemon process group 'crashy'");
        // The next request is served by a new process.
        let t = Instant::now();
        let after = daemon_pid(&apache, "/c");
        assert_ne!(before, after, "{route}");
        assert!(t.elapsed() < Duration::from_secs(8), "{route}: recovery took {:?}", t.elapsed());
        assert!(!common::process_alive(before), "{route}: {before} still alive");
        assert!(apache.is_running(), "Apache's parent died after {route}");
        assert_eq!(apache.parent_pid(), parent);
    }
    let report = apache.stop();
    assert!(report.leftovers.is_empty() && !report.forced, "{report:?}");
}

#[test]
fn request_timeout_answers_504_logs_the_stack_and_restarts() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess slow processes=1 threads=2 request-timeout=2\n\
             WSGIDaemonProcess other processes=1 threads=1\n\
             WSGIScriptAlias /slow {APPS}/app.py process-group=slow\n\
             WSGIScriptAlias /other {APPS}/app.py process-group=other",
        )
        .start();
    let before = daemon_pid(&apache, "/slow");
    let other = daemon_pid(&apache, "/other");
    let t = Instant::now();
    let r = apache.get("/slow/sleep?10");
    let took = t.elapsed();
    r.assert_status(504);
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_millis(4500), "504 after {took:?}");
    assert_logged(&apache, "request-timeout (2s) exceeded by request '/slow/sleep?10'");
    // The Python stack of the stuck thread names the function it is stuck in.
    assert_logged(&apache, "in sleeping_function_for_timeout");
    let log = apache.error_log();
    assert!(log.lines().any(|l| l.contains("app.py") && l.contains("in sleeping_function_for_timeout")), "{log}");
    // The other group is unaffected; the timed-out group comes back in a new process.
    assert_eq!(daemon_pid(&apache, "/other"), other);
    let after = daemon_pid(&apache, "/slow");
    assert_ne!(before, after);
    assert!(eventually(Duration::from_secs(3), || !common::process_alive(before)), "{before} still alive");
    assert!(t.elapsed() < Duration::from_secs(9), "{:?}", t.elapsed());
    let report = apache.stop();
    assert!(report.leftovers.is_empty() && !report.forced, "{report:?}");
}

/// queue-timeout: a request no daemon thread takes in time is answered 504 (mod_wsgi's status
/// and log line) when its queue time runs out, not when the busy thread is free again; the
/// daemon never runs it later, and the group serves the next request at once.
#[test]
fn queue_timeout_turns_away_requests_that_waited_too_long() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess q processes=1 threads=1 queue-timeout=1\n\
             WSGIScriptAlias /q {APPS}/app.py process-group=q",
        )
        .start();
    let pid = daemon_pid(&apache, "/q");
    let addr = apache.addr();
    let slow = thread::spawn(move || {
        let mut c = common::Client::connect(addr).unwrap();
        c.get("/q/sleep?3")
    });
    thread::sleep(Duration::from_millis(400));
    let t = Instant::now();
    // Queued behind the slow request: it would set a variable in the daemon if it ever ran.
    let r = apache.get("/q/setenv?QUEUED=ran");
    let waited = t.elapsed();
    r.assert_status(504);
    // Answered when the queue time ran out, while the only thread is still busy.
    assert!(waited >= Duration::from_millis(800) && waited < Duration::from_millis(2000), "{waited:?}");
    assert_logged(&apache, "Queue timeout expired for WSGI daemon process 'q'.");
    let s = slow.join().unwrap();
    s.assert_status(200);
    assert!(s.text().starts_with("slept 3"), "{}", s.text());
    // Not a crash: the same process serves the next request at once, and the request Apache
    // gave up on never ran there.
    let t = Instant::now();
    assert_eq!(daemon_pid(&apache, "/q"), pid);
    assert!(t.elapsed() < Duration::from_secs(1));
    let r = apache.get("/q/getenv?QUEUED");
    assert_eq!(r.text(), "QUEUED=None\n");
    // One line for the one request turned away.
    assert_eq!(apache.count_in_log("Queue timeout expired"), 1, "{}", apache.log_tail(20));
}

/// A group whose threads are all busy and whose backlog is full turns requests away with 503
/// after connect-timeout instead of holding Apache's threads until the daemon accepts.
#[test]
fn connect_timeout_holds_with_a_full_backlog() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess b processes=1 threads=1 listen-backlog=1 connect-timeout=1\n\
             WSGIScriptAlias /b {APPS}/app.py process-group=b",
        )
        .start();
    daemon_pid(&apache, "/b");
    let addr = apache.addr();
    // Hold the only thread, then fill what can wait without connecting (the connection Apache
    // kept from the request above) and the backlog (listen-backlog 1 admits 2): 6 requests
    // leave at least 2 that must be turned away.
    let slow: Vec<_> = (0..6)
        .map(|i| {
            if i == 1 {
                thread::sleep(Duration::from_millis(200));
            }
            thread::spawn(move || {
                let mut c = common::Client::connect(addr).unwrap();
                c.set_timeout(Duration::from_secs(15));
                let t = Instant::now();
                let r = c.get("/b/sleep?2");
                (r.status, t.elapsed())
            })
        })
        .collect();
    let results: Vec<(u16, Duration)> = slow.into_iter().map(|h| h.join().unwrap()).collect();
    let refused: Vec<&(u16, Duration)> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!refused.is_empty(), "some request must be turned away: {results:?}");
    for (_, waited) in &refused {
        assert!(*waited < Duration::from_secs(3), "503 only after connect-timeout (1 s): {results:?}");
    }
    assert_logged(&apache, "within connect-timeout (1s)");
}

/// The supervision does not depend on the event MPM: crash recovery, a graceful restart and a
/// clean stop under worker and prefork too.
#[test]
fn supervision_under_worker_and_prefork() {
    for mpm in [common::Mpm::Worker, common::Mpm::Prefork] {
        let apache = Apache::builder()
            .mpm(mpm)
            .app("app.py", APP)
            .config(
                "WSGIDaemonProcess m processes=1 threads=2\n\
                 WSGIScriptAlias /m {APPS}/app.py process-group=m",
            )
            .start();
        let first = daemon_pid(&apache, "/m");
        let r = apache.get("/m/crash-kill");
        assert!(r.status == 502 || r.status == 503, "{mpm:?}: {}", r.raw_head);
        assert_logged(&apache, &format!("(pid {first}) was killed by signal 9"));
        let second = daemon_pid(&apache, "/m");
        assert_ne!(first, second, "{mpm:?}");
        apache.graceful();
        let third = daemon_pid(&apache, "/m");
        assert_ne!(second, third, "{mpm:?}: the daemon survived a graceful restart");
        assert!(eventually(Duration::from_secs(7), || !common::process_alive(second)), "{mpm:?}: {second} alive");
        assert!(!apache.error_log().contains("long lost child"), "{mpm:?}\n{}", apache.log_tail(30));
        let report = apache.stop();
        assert!(report.leftovers.is_empty() && !report.forced, "{mpm:?}: {report:?}");
        assert!(!common::process_alive(third));
    }
}
