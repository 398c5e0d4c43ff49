//! Growing past one machine: HAProxy (Debian's package) in front of two Apache+oxwsgi
//! instances on loopback, health-checked on an application URL. One instance is gracefully
//! stopped (`apachectl -k graceful-stop`) and started again in the middle of a bounded request
//! stream: no request of the stream fails. docs/operations.md describes the pattern.

mod common;

use common::{alive_pids, Apache, Client};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const HAPROXY: &str = "/usr/sbin/haproxy";

const APP: &str = r#"
import time

def application(environ, start_response):
    if environ.get('PATH_INFO') == '/health':
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ok']
    time.sleep(0.1)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [environ['INSTANCE'].encode()]
"#;

fn instance(name: &str, port: Option<u16>) -> Apache {
    let mut b = Apache::builder().app("app.py", APP).config(&format!(
        "GracefulShutdownTimeout 20\n\
         SetEnv INSTANCE {name}\n\
         WSGIDaemonProcess site processes=2 threads=4\n\
         WSGIScriptAlias / {{APPS}}/app.py process-group=site application-group=%{{GLOBAL}}"
    ));
    if let Some(p) = port {
        b = b.port(p);
    }
    b.start()
}

/// HAProxy in the foreground, killed (by pid) when dropped.
struct Haproxy {
    child: Child,
    port: u16,
    _dir: std::path::PathBuf,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

fn haproxy(backends: &[u16]) -> Haproxy {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, p)| format!("    server app{i} 127.0.0.1:{p} check inter 200ms fall 1 rise 2\n"))
        .collect();
    let cfg = format!(
        "global\n    maxconn 256\n\
         defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
         \x20   retries 3\n    option redispatch 1\n    retry-on conn-failure\n\
         frontend site\n    bind 127.0.0.1:{port}\n    default_backend apps\n\
         backend apps\n    balance roundrobin\n    option httpchk GET /health\n    http-check expect status 200\n{servers}"
    );
    let dir = std::env::temp_dir().join(format!("oxwsgi-haproxy-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let child = Command::new(HAPROXY)
        .arg("-db")
        .arg("-f")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start haproxy");
    Haproxy { child, port, _dir: dir }
}

fn get(port: u16) -> Result<String, String> {
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let r = Client::connect_timeout(addr, Duration::from_secs(10))
        .and_then(|mut c| c.try_send("GET", "/work", &[("Connection", "close")], b""))
        .map_err(|e| e.to_string())?;
    if r.status != 200 {
        return Err(format!("{} {}", r.status, r.text()));
    }
    Ok(r.text())
}

#[test]
fn a_rolling_restart_behind_haproxy_fails_no_request() {
    assert!(
        std::path::Path::new(HAPROXY).exists(),
        "{HAPROXY} is not installed: run scripts/bootstrap (make test does)"
    );
    let a = instance("a", None);
    let b = instance("b", None);
    let lb = haproxy(&[a.port, b.port]);
    // Both instances up and checked healthy.
    let up = common::eventually(Duration::from_secs(15), || {
        let seen: std::collections::BTreeSet<String> = (0..6).filter_map(|_| get(lb.port).ok()).collect();
        seen.len() == 2
    });
    assert!(up, "HAProxy never reached both instances");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, port) = (stop.clone(), lb.port);
            thread::spawn(move || {
                let mut out = Vec::new();
                let t = Instant::now();
                while !stop.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(30) {
                    out.push(get(port));
                }
                out
            })
        })
        .collect();
    thread::sleep(Duration::from_secs(1));
    // Instance a: graceful-stop, wait for it to be gone, start it again on its port.
    let port_a = a.port;
    let pids_a = a.all_pids();
    a.signal(libc::SIGWINCH);
    assert!(common::eventually(Duration::from_secs(25), || alive_pids(&pids_a).is_empty()), "a did not stop");
    drop(a);
    let a2 = instance("a2", Some(port_a));
    // Serve on until HAProxy sends to the new instance again.
    let back = common::eventually(Duration::from_secs(15), || a2.access_log().lines().any(|l| l.contains("/work")));
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let mut failures = Vec::new();
    let mut served = std::collections::BTreeMap::<String, usize>::new();
    for c in clients {
        for r in c.join().unwrap() {
            match r {
                Ok(who) => *served.entry(who).or_default() += 1,
                Err(e) => failures.push(e),
            }
        }
    }
    assert!(back, "HAProxy never sent requests to the restarted instance: {served:?}");
    assert!(failures.is_empty(), "{} failed ({served:?}): {failures:?}", failures.len());
    assert!(served.get("b").copied().unwrap_or(0) > 0 && served.get("a2").copied().unwrap_or(0) > 0, "{served:?}");
    eprintln!("rolling restart behind HAProxy: {served:?}, 0 failed");
    drop(lb);
    let _ = a2.stop();
    let _ = b.stop();
}
