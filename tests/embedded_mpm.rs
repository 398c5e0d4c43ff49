//! Embedded mode under each MPM, and many requests in flight in several interpreters at once.

mod apps;
mod common;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use apps::{get, report, ENV_APP, HELLO_APP};
use common::{Apache, Mpm};

fn serve_under(mpm: Mpm) {
    let apache = Apache::builder()
        .mpm(mpm)
        .app("hello.wsgi", HELLO_APP)
        .app("env.wsgi", ENV_APP)
        .config("WSGIScriptAlias /hello {APPS}/hello.wsgi")
        .config("WSGIScriptAlias /env {APPS}/env.wsgi")
        .start();
    let mut c = apache.connect();
    for _ in 0..3 {
        let r = c.get("/hello");
        r.assert_status(200);
        assert_eq!(r.text(), "hello\n");
    }
    let rep = report(&c.get("/env"));
    let threaded = mpm != Mpm::Prefork;
    assert_eq!(get(&rep, "wsgi.multithread"), if threaded { "True" } else { "False" }, "{mpm:?}");
    assert_eq!(get(&rep, "wsgi.multiprocess"), "True", "{mpm:?}");
    assert_eq!(get(&rep, "wsgi.run_once"), "False");
    drop(c);
    let t = Instant::now();
    let report = apache.stop();
    assert!(t.elapsed() < Duration::from_secs(5), "{mpm:?}: stop took {:?}", t.elapsed());
    assert!(report.leftovers.is_empty() && !report.forced, "{mpm:?}: {report:?}");
}

#[test]
fn serves_under_event() {
    serve_under(Mpm::Event);
}

#[test]
fn serves_under_worker() {
    serve_under(Mpm::Worker);
}

#[test]
fn serves_under_prefork() {
    serve_under(Mpm::Prefork);
}

/// 16 requests at once in one process with 16 threads, over 3 application groups created
/// concurrently; one group's app sleeps so requests overlap. All must finish, promptly.
#[test]
fn concurrent_requests_over_three_groups() {
    let slow = "import time\n\
        def application(environ, start_response):\n    \
            time.sleep(0.2)\n    \
            start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
            return [environ['mod_wsgi.application_group'].encode()]\n";
    let fast = "def application(environ, start_response):\n    \
            total = sum(range(20000))\n    \
            start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
            return [environ['mod_wsgi.application_group'].encode()]\n";
    let apache = Apache::builder()
        .mpm(Mpm::Event)
        .app("slow.wsgi", slow)
        .app("fast.wsgi", fast)
        .config("WSGIScriptAlias /a {APPS}/slow.wsgi application-group=group-a")
        .config("WSGIScriptAlias /b {APPS}/fast.wsgi application-group=group-b")
        .config("WSGIScriptAlias /c {APPS}/fast.wsgi application-group=%{GLOBAL}")
        .config("ThreadsPerChild 16\nMaxRequestWorkers 16\nThreadLimit 32\nServerLimit 2")
        .start();
    let n = 16;
    let barrier = Arc::new(Barrier::new(n));
    let t = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let addr = apache.addr();
            let barrier = barrier.clone();
            thread::spawn(move || {
                let (path, want) = match i % 3 {
                    0 => ("/a", "group-a"),
                    1 => ("/b", "group-b"),
                    _ => ("/c", ""),
                };
                let mut c = common::Client::connect(addr).unwrap();
                barrier.wait();
                let r = c.send("GET", path, &[("Connection", "close")], b"");
                (r.status, r.text(), want.to_string())
            })
        })
        .collect();
    for h in handles {
        let (status, text, want) = h.join().expect("request thread panicked");
        assert_eq!(status, 200, "{text}");
        assert_eq!(text, want);
    }
    let elapsed = t.elapsed();
    // 6 sleeping requests would take 1.2 s one after another; they overlap (GIL released).
    assert!(elapsed < Duration::from_secs(4), "16 concurrent requests took {elapsed:?}");
    let access = apache.access_log();
    let pids: std::collections::BTreeSet<&str> =
        access.lines().filter_map(|l| l.split_whitespace().find(|w| w.starts_with("pid="))).collect();
    assert_eq!(pids.len(), 1, "expected one child process to serve all: {access}");

    // A second wave on the now-existing interpreters.
    let t = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let addr = apache.addr();
            thread::spawn(move || {
                let path = ["/a", "/b", "/c"][i % 3];
                let mut c = common::Client::connect(addr).unwrap();
                c.send("GET", path, &[("Connection", "close")], b"").status
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 200);
    }
    assert!(t.elapsed() < Duration::from_secs(4), "second wave took {:?}", t.elapsed());
    let log = apache.error_log();
    assert!(!log.contains("Traceback") && !log.contains("[wsgi:error]"), "{log}");
    let t = Instant::now();
    let report = apache.stop();
    assert!(t.elapsed() < Duration::from_secs(5), "stop took {:?}", t.elapsed());
    assert!(report.leftovers.is_empty() && !report.forced, "{report:?}");
}
