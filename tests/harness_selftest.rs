//! Proves the integration-test harness (tests/common) with plain Apache (no wsgi module) and
//! with an in-process fake HTTP server for the client's edge cases.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::procs;
use common::{alive_pids, eventually, Apache, Client, Mpm};

const CGI_SCRIPT: &str = "#!/bin/sh\n\
printf 'Content-Type: text/plain\\r\\nX-Cgi: yes\\r\\n\\r\\n'\n\
i=0\n\
while [ $i -lt 3 ]; do echo \"line $i\"; sleep 0.2; i=$((i+1)); done\n";

fn binary_payload() -> Vec<u8> {
    // Every byte value, in an order that is not just a repeating 0..=255 pattern.
    (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()
}

fn plain_apache(mpm: Mpm) -> Apache {
    let cgi = if mpm == Mpm::Prefork { "cgi" } else { "cgid" };
    Apache::builder()
        .mpm(mpm)
        .no_wsgi_module()
        .apache_module(cgi)
        .doc("index.html", "hello\n")
        .doc("data.bin", binary_payload())
        .file_with_mode("cgi-bin/chunky", CGI_SCRIPT, 0o755)
        .config(
            "ScriptAlias /cgi-bin/ {ROOT}/cgi-bin/\n\
             <Directory {ROOT}/cgi-bin>\n    Require all granted\n</Directory>",
        )
        .start()
}

fn exercise(mpm: Mpm) {
    let apache = plain_apache(mpm);
    let root = apache.root.clone();
    let payload = binary_payload();

    // Static file, byte-exact, on a one-shot (Connection: close) request.
    let r = apache.get("/data.bin");
    r.assert_status(200);
    assert!(r.complete, "{:?}", r.error);
    assert_eq!(r.header("content-length"), Some(payload.len().to_string().as_str()));
    assert!(r.body == payload, "static file body differs ({} bytes vs {})", r.body.len(), payload.len());
    assert!(r.raw_head.starts_with("HTTP/1.1 200 OK\r\n") && r.raw_head.ends_with("\r\n\r\n"));

    // HEAD has no body even though Content-Length says there is one.
    let r = apache.head("/data.bin");
    r.assert_status(200);
    assert!(r.body.is_empty() && r.complete);
    assert_eq!(r.header("Content-Length"), Some(payload.len().to_string().as_str()));

    // Raw request.
    let r = apache.request(b"GET /index.html HTTP/1.0\r\n\r\n");
    r.assert_status(200);
    assert_eq!(r.text(), "hello\n");
    assert_eq!(r.version, "HTTP/1.1");

    // Keep-alive: 3 requests on one connection, the last one chunked (CGI without a length).
    let mut client = apache.connect();
    let port = client.local_addr().port();
    let r1 = client.get("/index.html");
    r1.assert_status(200);
    assert_eq!(r1.text(), "hello\n");
    let r2 = client.get("/data.bin");
    r2.assert_status(200);
    assert!(r2.body == payload);
    let r3 = client.get("/cgi-bin/chunky");
    r3.assert_status(200);
    assert!(r3.chunked, "expected a chunked response:\n{}", r3.raw_head);
    assert!(r3.complete, "{:?}", r3.error);
    assert_eq!(r3.text(), "line 0\nline 1\nline 2\n");
    assert_eq!(r3.header("x-cgi"), Some("yes"));
    assert!(!client.is_closed(Duration::from_millis(50)));
    drop(client);
    // The access log shows the three requests on the same client port, keep-alive count 0,1,2.
    let want: Vec<String> = (0..3).map(|k| format!("127.0.0.1 {port} keepalive={k} ")).collect();
    assert!(
        eventually(Duration::from_secs(5), || {
            let log = apache.access_log();
            want.iter().all(|w| log.contains(w.as_str()))
        }),
        "access log does not show 3 keep-alive requests from port {port}:\n{}",
        apache.access_log()
    );

    // POST to a static file is fine for Apache's default handler? It answers 405 or 200;
    // the point is the request goes out with a body and a response comes back.
    let r = apache.post("/index.html", "text/plain", b"abc");
    assert!(r.status == 200 || r.status == 405, "{}", r.raw_head);

    // Error log readable.
    let log = apache.error_log();
    assert!(log.contains(common::READY_MARKER), "error log:\n{log}");
    assert!(log.contains(&format!("mpm_{}:notice", mpm.name())), "error log:\n{log}");
    assert!(apache.wait_for_log("resuming normal operations", Duration::from_secs(1)));
    assert!(!apache.wait_for_log("no such text in the log", Duration::from_millis(100)));

    // Processes: a parent and at least one child; none left after stop().
    let children = apache.wait_for_children(1, Duration::from_secs(5));
    assert!(!children.is_empty(), "no Apache children");
    let mut pids = apache.all_pids();
    pids.extend(children);
    let parent = apache.parent_pid();
    for &p in &pids {
        assert_ne!(p, std::process::id());
    }
    let report = apache.stop();
    assert!(!report.forced, "{report:?}");
    assert!(report.leftovers.is_empty(), "{report:?}");
    assert!(report.status.map_or(false, |s| s.success()), "{report:?}");
    assert!(alive_pids(&pids).is_empty(), "still alive after stop: {:?}", alive_pids(&pids));
    assert!(procs::proc_stat(parent).is_none(), "parent {parent} not reaped");
    assert!(procs::all_procs().iter().all(|s| s.pgrp != parent), "process group {parent} not empty");
    assert!(!root.exists(), "{} not removed", root.display());
}

#[test]
fn plain_apache_event() {
    exercise(Mpm::Event);
}

#[test]
fn plain_apache_worker() {
    exercise(Mpm::Worker);
}

#[test]
fn plain_apache_prefork() {
    exercise(Mpm::Prefork);
}

#[test]
fn graceful_restart_and_conf_d() {
    for mpm in [Mpm::Event, Mpm::Prefork] {
        let apache = Apache::builder().mpm(mpm).no_wsgi_module().doc("index.html", "hi\n").start();
        apache.get("/").assert_status(200);
        let parent = apache.parent_pid();

        apache.write_conf("alias", "Alias /aliased {DOCROOT}/index.html");
        apache.get("/aliased").assert_status(404);
        assert_eq!(apache.count_in_log(common::READY_MARKER), 1);
        apache.graceful();
        assert_eq!(apache.count_in_log(common::READY_MARKER), 2);
        // An old child may still take a connection or two while it winds down after the
        // graceful restart; the new configuration must answer within a bounded time.
        assert!(
            eventually(Duration::from_secs(5), || apache.get("/aliased").status == 200),
            "{mpm:?}: /aliased not served after the graceful restart"
        );
        let r = apache.get("/aliased");
        r.assert_status(200);
        assert_eq!(r.text(), "hi\n");

        let before = apache.wait_for_children(1, Duration::from_secs(5));
        apache.restart();
        assert_eq!(apache.count_in_log(common::READY_MARKER), 3);
        apache.get("/").assert_status(200);
        let after = apache.wait_for_children(1, Duration::from_secs(5));
        assert!(
            eventually(Duration::from_secs(5), || alive_pids(&before).is_empty()),
            "{mpm:?}: children {before:?} survived SIGHUP (now {after:?})"
        );
        assert_eq!(apache.parent_pid(), parent);
        assert!(apache.is_running());
        let report = apache.stop();
        assert!(report.leftovers.is_empty() && !report.forced, "{report:?}");
        assert!(procs::proc_stat(parent).is_none());
    }
}

#[test]
fn startup_failure_reports_the_error() {
    let err = std::panic::catch_unwind(|| Apache::builder().no_wsgi_module().config("ThisIsNotADirective on").start())
        .expect_err("start() should fail");
    let msg =
        err.downcast_ref::<String>().cloned().or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string())).unwrap();
    assert!(msg.contains("Apache exited during startup"), "{msg}");
    assert!(msg.contains("ThisIsNotADirective"), "{msg}");
    assert!(msg.contains("httpd.conf"), "{msg}");
    // The directory was kept for inspection (dropped while panicking): clean it up.
    let root = msg.lines().find_map(|l| l.strip_prefix("root: ")).expect("root in message");
    assert!(PathBuf::from(root).join("logs").is_dir());
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn dropping_while_panicking_stops_apache() {
    let (tx, rx) = mpsc::channel();
    let joined = thread::spawn(move || {
        let apache = Apache::builder().mpm(Mpm::Worker).no_wsgi_module().start();
        apache.get("/").status; // make sure a child exists and served
        let children = apache.wait_for_children(1, Duration::from_secs(5));
        tx.send((apache.all_pids(), children, apache.root.clone())).unwrap();
        panic!("deliberate panic with Apache running");
    })
    .join();
    assert!(joined.is_err());
    let (pids, children, root) = rx.recv().unwrap();
    assert!(!children.is_empty());
    assert!(alive_pids(&pids).is_empty(), "alive after drop: {:?}", alive_pids(&pids));
    assert!(root.exists(), "kept for inspection after a panic");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn hung_parent_is_killed_with_its_whole_tree() {
    let apache = Apache::builder().mpm(Mpm::Prefork).no_wsgi_module().stop_grace(Duration::from_millis(500)).start();
    apache.get("/").status;
    let children = apache.wait_for_children(1, Duration::from_secs(5));
    assert!(!children.is_empty());
    let parent = apache.parent_pid();
    apache.signal(libc::SIGSTOP); // a parent that ignores SIGTERM
    let t = Instant::now();
    let report = apache.stop();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(report.forced, "{report:?}");
    for c in &children {
        assert!(report.leftovers.contains(c), "{report:?} vs {children:?}");
    }
    assert!(alive_pids(&children).is_empty());
    // Orphans came to this process (child subreaper) and were reaped: not even zombies remain.
    for c in &children {
        assert!(procs::proc_stat(*c).is_none(), "{c}: {:?}", procs::proc_stat(*c));
    }
    assert!(procs::proc_stat(parent).is_none());
}

#[test]
fn parallel_instances_get_their_own_port_and_dir() {
    let a = Apache::builder().no_wsgi_module().doc("index.html", "a").start();
    let b = Apache::builder().no_wsgi_module().doc("index.html", "b").start();
    assert_ne!(a.port, b.port);
    assert_ne!(a.root, b.root);
    assert_eq!(a.get("/").text(), "a");
    assert_eq!(b.get("/").text(), "b");
    assert_eq!(a.url("/x"), format!("http://127.0.0.1:{}/x", a.port));
    assert_eq!(a.addr().port(), a.port);
}

#[test]
fn generated_files_are_readable_by_www_data() {
    use std::os::unix::fs::PermissionsExt;
    let apache = Apache::builder()
        .no_wsgi_module()
        .app("pkg/mod.py", "x = 1\n")
        .app_file("copied.py", file!())
        .config("# APPS={APPS} PORT={PORT} ROOT={ROOT} DOCROOT={DOCROOT} MODULES={MODULES}")
        .start();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&apache.root), 0o755);
    assert_eq!(mode(&apache.apps.join("pkg")), 0o755);
    assert_eq!(mode(&apache.app_path("pkg/mod.py")), 0o644);
    assert_eq!(std::fs::read(apache.app_path("copied.py")).unwrap(), std::fs::read(file!()).unwrap());
    let conf = std::fs::read_to_string(apache.config_path()).unwrap();
    let line = format!(
        "# APPS={}/apps PORT={} ROOT={} DOCROOT={}/htdocs MODULES=/usr/lib/apache2/modules",
        apache.root.display(),
        apache.port,
        apache.root.display(),
        apache.root.display()
    );
    assert!(conf.contains(&line), "{conf}");
    // Apache's children really run as www-data (a child caught right after its fork is still
    // root for a moment, until it switches user).
    let children = apache.wait_for_children(1, Duration::from_secs(5));
    for c in children {
        let uid = || {
            let status = std::fs::read_to_string(format!("/proc/{c}/status")).unwrap_or_default();
            let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap_or("").to_string();
            (status.is_empty(), line)
        };
        let switched = common::eventually(Duration::from_secs(5), || {
            let (gone, line) = uid();
            gone || line.split_whitespace().nth(1) == Some("33")
        });
        assert!(switched, "{}", uid().1);
    }
}

#[test]
fn default_module_path_is_next_to_the_test_executable() {
    let p = common::default_module_path();
    assert!(p.ends_with("libmod_oxwsgi.so"), "{}", p.display());
    let exe = std::env::current_exe().unwrap();
    assert!(p.starts_with(exe.parent().unwrap().parent().unwrap()), "{} vs {}", p.display(), exe.display());
    assert!(p.is_file(), "cargo should have built {}", p.display());
    assert_eq!(common::oxwsgi_module(), p);
}

#[test]
fn proc_stat_parsing() {
    let st = procs::parse_stat("42 (a (b) c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 12345 0 0").unwrap();
    assert_eq!(
        (st.pid, st.comm.as_str(), st.state, st.ppid, st.pgrp, st.starttime),
        (42, "a (b) c", 'S', 1, 42, 12345)
    );
    let me = procs::proc_stat(std::process::id()).unwrap();
    assert_eq!(me.pid, std::process::id());
    assert!(procs::process_alive(me.pid));
}

// ---- the HTTP client against a scripted fake server ------------------------------------------

/// Serve one connection: read one request head, write `response` (in pieces, with `pause`
/// between them), then hold the socket open for `hold` and close it.
fn fake_server(pieces: Vec<Vec<u8>>, hold: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        for p in pieces {
            let _ = s.write_all(&p);
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(hold);
    });
    addr
}

fn fake(response: &str) -> SocketAddr {
    fake_server(vec![response.as_bytes().to_vec()], Duration::ZERO)
}

#[test]
fn client_content_length_truncated() {
    let mut c = Client::connect(fake("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")).unwrap();
    let r = c.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"abc");
    assert!(!r.complete);
    assert!(r.error.is_some());
}

#[test]
fn client_chunked_decoding_with_extensions_and_trailers() {
    let addr = fake_server(
        vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel".to_vec(),
            b"lo\r\nA\r\n world!!!!\r\n".to_vec(),
            b"0\r\nX-Trailer: t\r\n\r\n".to_vec(),
        ],
        Duration::from_secs(1),
    );
    let mut c = Client::connect(addr).unwrap();
    let r = c.get("/");
    assert!(r.chunked && r.complete, "{:?}", r.error);
    assert_eq!(r.text(), "hello world!!!!");
    assert_eq!(r.trailer("x-trailer"), Some("t"));
}

#[test]
fn client_chunked_truncated() {
    let mut c = Client::connect(fake("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")).unwrap();
    let r = c.get("/");
    assert!(r.chunked);
    assert!(!r.complete);
    assert_eq!(r.text(), "hello");
    assert!(r.error.unwrap().contains("0-chunk"));
}

#[test]
fn client_body_until_close() {
    let mut c = Client::connect(fake("HTTP/1.0 200 OK\r\nX: 1\r\n\r\nuntil close")).unwrap();
    let r = c.get("/");
    assert!(r.complete);
    assert_eq!(r.text(), "until close");
    assert_eq!(r.version, "HTTP/1.0");
}

#[test]
fn client_timeout_mid_body_is_incomplete() {
    let addr = fake_server(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc".to_vec()], Duration::from_secs(3));
    let mut c = Client::connect(addr).unwrap();
    c.set_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let r = c.get("/");
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(!r.complete);
    assert_eq!(r.body, b"abc");
    assert!(r.error.unwrap().contains("timed out"));
}

#[test]
fn client_head_and_interim_and_repeated_headers() {
    let mut c = Client::connect(fake(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 10\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\n\r\n",
    ))
    .unwrap();
    let r = c.request_raw(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.interim, vec![100]);
    assert!(r.body.is_empty() && r.complete);
    assert_eq!(r.headers_named("SET-COOKIE"), vec!["a=1", "b=2"]);
    assert_eq!(r.header("set-cookie"), Some("a=1"));
    assert_eq!(r.headers.len(), 3);
}

#[test]
fn client_pipelined_responses_on_one_socket() {
    let mut c = Client::connect(fake(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none\
         HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n\
         HTTP/1.1 204 No Content\r\n\r\n",
    ))
    .unwrap();
    c.write_raw(
        b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let r1 = c.read_response(false).unwrap();
    let r2 = c.read_response(false).unwrap();
    let r3 = c.read_response(false).unwrap();
    assert_eq!((r1.status, r1.text().as_str()), (200, "one"));
    assert_eq!((r2.status, r2.text().as_str(), r2.reason.as_str()), (201, "two", "Created"));
    assert_eq!((r3.status, r3.body.len()), (204, 0));
    assert!(c.is_closed(Duration::from_secs(2)));
}

#[test]
fn client_errors_without_status_line() {
    let mut c = Client::connect(fake("")).unwrap();
    let e = c.try_send("GET", "/", &[], b"").unwrap_err();
    assert!(e.to_string().contains("before a status line"), "{e}");

    let mut c = Client::connect(fake("garbage\r\n\r\n")).unwrap();
    let e = c.try_send("GET", "/", &[], b"").unwrap_err();
    assert!(e.to_string().contains("not an HTTP status line"), "{e}");

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let e = Client::connect(SocketAddr::from(([127, 0, 0, 1], port))).err().expect("connect should fail");
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

#[test]
fn request_builder() {
    let req = common::build_request("POST", "/p", "h:1", &[("X-A", "1")], b"body");
    assert_eq!(req, b"POST /p HTTP/1.1\r\nHost: h:1\r\nX-A: 1\r\nContent-Length: 4\r\n\r\nbody".to_vec());
    let req = common::build_request("GET", "/", "h:1", &[("Host", "other")], b"");
    assert_eq!(req, b"GET / HTTP/1.1\r\nHost: other\r\n\r\n".to_vec());
    let req = common::build_request("POST", "/", "h", &[("Transfer-Encoding", "chunked")], b"0\r\n\r\n");
    assert!(!String::from_utf8(req).unwrap().contains("Content-Length"));
}
