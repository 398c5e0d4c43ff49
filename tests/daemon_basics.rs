//! Daemon mode basics: requests really run in separate daemon processes, with the group's name,
//! user, title and threading flags; the environ matches embedded mode's; groups are isolated;
//! the socket is private; configuration errors are caught by `apache2 -t`.

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::Apache;
use daemon_apps::{apache_children, cmdline, config_test, daemon_pid, dump, facts, uid_of, APP};

const WWW_DATA: u32 = 33;

fn identity_apache() -> Apache {
    Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess grp processes=2 threads=2 display-name=%{GROUP}\n\
             WSGIDaemonProcess single threads=1\n\
             WSGIDaemonProcess nob processes=1 threads=1 user=nobody display-name=%{GROUP}\n\
             WSGIScriptAlias /mode-daemon {APPS}/app.py process-group=grp\n\
             WSGIScriptAlias /single {APPS}/app.py process-group=single\n\
             WSGIScriptAlias /nob {APPS}/app.py process-group=nob\n\
             WSGIScriptAlias /mode-embedded {APPS}/app.py",
        )
        .start()
}

#[test]
fn requests_run_in_daemon_processes_with_the_groups_identity() {
    let apache = identity_apache();
    let parent = apache.parent_pid();

    // Several requests: processes=2, so up to two daemon pids; none of them Apache's.
    let mut daemon_pids = BTreeSet::new();
    for _ in 0..6 {
        let f = facts(&apache.get("/mode-daemon/facts"));
        daemon_pids.insert(f["pid"].parse::<u32>().unwrap());
        assert_eq!(f["ppid"], parent.to_string(), "daemons are children of Apache's parent: {f:?}");
        assert_eq!(f["module_process_group"], "grp", "{f:?}");
        assert_eq!(f["environ_process_group"], "grp", "{f:?}");
        assert_eq!((f["multiprocess"].as_str(), f["multithread"].as_str()), ("True", "True"), "{f:?}");
        assert_eq!((f["uid"].as_str(), f["euid"].as_str()), ("33", "33"), "{f:?}");
    }
    let embedded = facts(&apache.get("/mode-embedded/facts"));
    let embedded_pid: u32 = embedded["pid"].parse().unwrap();
    assert_eq!(embedded["module_process_group"], "", "{embedded:?}");
    assert_eq!(embedded["environ_process_group"], "", "{embedded:?}");

    let children = apache_children(&apache);
    assert!(!children.is_empty());
    // The daemons Apache's parent says it started are the group's processes.
    let started = daemon_apps::started_daemons(&apache, Some("grp"));
    assert_eq!(started.len(), 2, "{}", apache.error_log());
    assert!(
        children.contains(&embedded_pid),
        "embedded request not in an Apache child: {embedded_pid} vs {children:?}"
    );
    let served_by = daemon_apps::access_log_pids(&apache, "/mode-daemon/facts");
    assert!(!served_by.is_empty(), "{}", apache.access_log());
    for &d in &daemon_pids {
        assert_ne!(d, parent);
        assert!(!children.contains(&d), "daemon pid {d} is an Apache child ({children:?})");
        assert!(!served_by.contains(&d), "daemon pid {d} is the Apache child that relayed the request");
        assert!(apache.child_pids().contains(&d), "daemon {d} is not a descendant of Apache");
        assert!(started.contains(&d), "{d} not among the started daemons {started:?}");
        // display-name=%{GROUP}
        assert_eq!(cmdline(d), "(wsgi:grp)", "title of {d}");
        assert_eq!(uid_of(d), Some(WWW_DATA));
    }
    // Both processes of the group exist and carry the title.
    let grp = daemon_apps::wait_titled(&apache, "(wsgi:grp)", 2);
    assert_eq!(grp.len(), 2, "{grp:?}");
    assert!(daemon_pids.iter().all(|p| grp.contains(p)), "{daemon_pids:?} vs {grp:?}");

    // threads=1 and no processes=: neither multithread nor multiprocess; no display-name: the
    // title is left alone (Apache's command line).
    let f = facts(&apache.get("/single/facts"));
    assert_eq!((f["multiprocess"].as_str(), f["multithread"].as_str()), ("False", "False"), "{f:?}");
    assert_eq!(f["module_process_group"], "single");
    let single: u32 = f["pid"].parse().unwrap();
    assert!(!daemon_pids.contains(&single) && single != embedded_pid && !children.contains(&single));
    assert!(cmdline(single).starts_with("/usr/sbin/apache2"), "{}", cmdline(single));

    // user=nobody.
    let f = facts(&apache.get("/nob/facts"));
    let nobody: u32 = f["pid"].parse().unwrap();
    assert_eq!((f["uid"].as_str(), f["euid"].as_str()), ("65534", "65534"), "{f:?}");
    assert_eq!(uid_of(nobody), Some(65534));
    assert_eq!(cmdline(nobody), "(wsgi:nob)");
    // processes=1 given explicitly: still multiprocess (mod_wsgi's rule).
    assert_eq!((f["multiprocess"].as_str(), f["multithread"].as_str()), ("True", "False"), "{f:?}");

    let report = apache.stop();
    assert!(report.leftovers.is_empty(), "{report:?}");
}

#[test]
fn environ_matches_embedded_mode_except_the_process_group() {
    let apache = identity_apache();
    let headers = [("X-Test-Header", "value 1"), ("Cookie", "k=v"), ("User-Agent", "oxwsgi-test")];
    let get = |mount: &str| dump(&apache.send("GET", &format!("{mount}/dump/extra/path?q=1&r=%20x"), &headers, b""));
    // Same request, the same mount path apart from its name; the embedded one normalized.
    let normalize = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
        m.into_iter().map(|(k, v)| (k, v.replace("/mode-embedded", "/mode-daemon"))).collect()
    };
    let mut daemon = get("/mode-daemon");
    let mut embedded = normalize(get("/mode-embedded"));
    // Values that differ between any two requests.
    for key in [
        "REMOTE_PORT",
        "mod_wsgi.request_start",
        "mod_wsgi.script_start",
        "mod_wsgi.request_id",
        "UNIQUE_ID",
        "mod_wsgi.thread_id",
        "mod_wsgi.thread_requests",
        "mod_wsgi.total_requests",
    ] {
        if daemon.contains_key(key) || embedded.contains_key(key) {
            assert!(daemon.contains_key(key) && embedded.contains_key(key), "{key} in only one mode");
            daemon.remove(key);
            embedded.remove(key);
        }
    }
    // What only a daemon knows (as mod_wsgi has them).
    for key in ["mod_wsgi.queue_start", "mod_wsgi.daemon_start", "mod_wsgi.daemon_connects", "mod_wsgi.daemon_restarts"]
    {
        assert!(daemon.remove(key).is_some(), "{key} missing in daemon mode");
        assert!(!embedded.contains_key(key), "{key} in embedded mode");
    }
    assert_eq!(daemon.remove("mod_wsgi.process_group").as_deref(), Some("'grp'"));
    assert_eq!(embedded.remove("mod_wsgi.process_group").as_deref(), Some("''"));

    let dk: BTreeSet<&String> = daemon.keys().collect();
    let ek: BTreeSet<&String> = embedded.keys().collect();
    assert_eq!(
        dk.symmetric_difference(&ek).collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "keys only in daemon: {:?}; only in embedded: {:?}",
        dk.difference(&ek).collect::<Vec<_>>(),
        ek.difference(&dk).collect::<Vec<_>>()
    );
    let diffs: Vec<String> = daemon
        .iter()
        .filter(|(k, v)| embedded.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: daemon {v} embedded {}", embedded[k]))
        .collect();
    assert!(diffs.is_empty(), "environ differs:\n{}", diffs.join("\n"));
    // The comparison saw the request.
    assert_eq!(daemon["PATH_INFO"], "'/dump/extra/path'");
    assert_eq!(daemon["SCRIPT_NAME"], "'/mode-daemon'");
    assert_eq!(daemon["QUERY_STRING"], "'q=1&r=%20x'");
    assert_eq!(daemon["HTTP_X_TEST_HEADER"], "'value 1'");
    assert!(daemon["wsgi.input"].starts_with('<'), "{}", daemon["wsgi.input"]);
}

#[test]
fn groups_have_separate_os_environ() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess alpha processes=1 threads=1\n\
             WSGIDaemonProcess beta processes=1 threads=1\n\
             WSGIScriptAlias /alpha {APPS}/app.py process-group=alpha\n\
             WSGIScriptAlias /beta {APPS}/app.py process-group=beta",
        )
        .start();
    apache.get("/alpha/setenv?OXWSGI_ISOLATION=from-alpha").assert_status(200);
    assert_eq!(apache.get("/alpha/getenv?OXWSGI_ISOLATION").text(), "OXWSGI_ISOLATION='from-alpha'\n");
    assert_eq!(apache.get("/beta/getenv?OXWSGI_ISOLATION").text(), "OXWSGI_ISOLATION=None\n");
    apache.get("/beta/setenv?OXWSGI_ISOLATION=from-beta").assert_status(200);
    assert_eq!(apache.get("/alpha/getenv?OXWSGI_ISOLATION").text(), "OXWSGI_ISOLATION='from-alpha'\n");
    assert_eq!(apache.get("/beta/getenv?OXWSGI_ISOLATION").text(), "OXWSGI_ISOLATION='from-beta'\n");
    assert_ne!(daemon_pid(&apache, "/alpha"), daemon_pid(&apache, "/beta"));
}

#[test]
fn socket_is_private_to_apaches_user() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess sockgrp processes=1 threads=1 user=nobody\n\
             WSGIScriptAlias /s {APPS}/app.py process-group=sockgrp",
        )
        .start();
    apache.get("/s/facts").assert_status(200);
    let run = apache.root.join("run");
    let sockets: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(".sockgrp.sock"))
        .collect();
    assert_eq!(sockets.len(), 1, "{sockets:?} in {}", run.display());
    let md = std::fs::metadata(&sockets[0]).unwrap();
    use std::os::unix::fs::FileTypeExt;
    assert!(md.file_type().is_socket());
    assert_eq!(md.permissions().mode() & 0o7777, 0o600, "{}", sockets[0].display());
    // Owned by Apache's user (who connects), not by the daemon's user=nobody.
    assert_eq!(md.uid(), WWW_DATA, "{}", sockets[0].display());
    let name = sockets[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.starts_with(&format!("wsgi.{}.", apache.parent_pid())), "{name}");
    // Removed when Apache stops.
    let path = sockets[0].clone();
    let mut apache = apache;
    let report = apache.shutdown();
    assert!(report.leftovers.is_empty(), "{report:?}");
    assert!(!path.exists(), "{} left behind", path.display());
}

#[test]
fn config_errors_name_the_file_and_line() {
    let valid = config_test("WSGIDaemonProcess ok processes=1 threads=2 display-name=%{GROUP}");
    assert!(valid.ok, "{valid:?}");
    assert!(valid.output.contains("Syntax OK"), "{valid:?}");

    for (snippet, message) in [
        ("WSGIDaemonProcess g1 bogus-option=1", "unknown option 'bogus-option'"),
        ("WSGIDaemonProcess g2 threads=abc", "option 'threads' needs a whole number from 0 to 1000, not 'abc'"),
        ("WSGIDaemonProcess g3 processes=0", "option 'processes' needs a whole number"),
        ("WSGIDaemonProcess g4 user=root", "option 'user' must not be root"),
        ("WSGIDaemonProcess g5 group=root", "must not be the root group"),
        ("WSGIDaemonProcess g6 request-timeout=1.5", "option 'request-timeout' needs a whole number of seconds"),
    ] {
        // One good line first, so the error is on the snippet's second line.
        let t = config_test(&format!("WSGIDaemonProcess fine threads=1\n{snippet}"));
        assert!(!t.ok, "{snippet}: apache2 -t accepted it: {t:?}");
        let line = t.snippet_line + 1;
        let at = format!("Syntax error on line {line} of {}", t.path);
        assert!(t.output.contains(&at), "{snippet}: expected {at:?} in:\n{}", t.output);
        assert!(t.output.contains(message), "{snippet}: expected {message:?} in:\n{}", t.output);
    }

    // Accepted but not implemented: the configuration is fine, and a warning names the option.
    let t = config_test("WSGIDaemonProcess warned threads=1 response-buffer-size=65536");
    assert!(t.ok, "{t:?}");
    assert!(
        t.output.contains("option 'response-buffer-size' is accepted but not implemented"),
        "no warning naming the option:\n{}",
        t.output
    );
}

#[test]
fn unimplemented_option_warning_reaches_a_running_apaches_log() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess warned processes=1 threads=1 response-flush-delay=10\n\
             WSGIScriptAlias /w {APPS}/app.py process-group=warned",
        )
        .start();
    apache.get("/w/facts").assert_status(200);
    let all = format!("{}{}", apache.stderr_log(), apache.error_log());
    assert!(all.contains("option 'response-flush-delay' is accepted but not implemented"), "{all}");
    assert!(
        all.lines().any(|l| l.contains("response-flush-delay") && l.contains("warn")),
        "the line is not a warning:\n{all}"
    );
}

#[test]
fn daemon_user_root_is_never_used() {
    // Apache's own User is www-data; a group without user= runs as that, never as root.
    let apache = Apache::builder()
        .app("app.py", APP)
        .config("WSGIDaemonProcess plain processes=1 threads=1\nWSGIScriptAlias /p {APPS}/app.py process-group=plain")
        .start();
    let pid = daemon_pid(&apache, "/p");
    assert_eq!(uid_of(pid), Some(WWW_DATA));
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let gid = status.lines().find(|l| l.starts_with("Gid:")).unwrap();
    assert!(gid.split_whitespace().skip(1).all(|g| g == "33"), "{gid}");
    let groups = status.lines().find(|l| l.starts_with("Groups:")).unwrap();
    assert!(!groups.split_whitespace().skip(1).any(|g| g == "0"), "supplementary root group: {groups}");
}

/// Choosing a daemon group chooses the user a script runs as: a group defined in one virtual
/// host cannot serve another, and `.htaccess` cannot name a group at all.
#[test]
fn daemon_groups_serve_only_their_own_virtual_host() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .app("tenant/app.wsgi", APP)
        .apache_module("mime")
        .config(
            "<VirtualHost 127.0.0.1:{PORT}>\n\
             ServerName victim.test\n\
             WSGIDaemonProcess victim threads=2\n\
             WSGIScriptAlias /v {APPS}/app.py process-group=victim\n\
             </VirtualHost>\n\
             <VirtualHost 127.0.0.1:{PORT}>\n\
             ServerName tenant.test\n\
             WSGIScriptAlias /steal {APPS}/app.py process-group=victim\n\
             Alias /t {APPS}/tenant\n\
             <Directory {APPS}/tenant>\n\
             AllowOverride FileInfo\n\
             Options +ExecCGI\n\
             </Directory>\n\
             </VirtualHost>",
        )
        .file("apps/tenant/.htaccess", "AddHandler wsgi-script .wsgi\nWSGIProcessGroup victim\n")
        .start();
    let get = |host: &str, path: &str| apache.send("GET", path, &[("Host", host)], b"");
    // The owner reaches its group.
    let r = get("victim.test", "/v/facts");
    r.assert_status(200);
    assert!(r.text().contains("group=victim"), "{}", r.text());
    // Another virtual host naming it is refused, with a log line that says why.
    get("tenant.test", "/steal/facts").assert_status(500);
    assert!(apache.wait_for_log("belongs to virtual host 'victim.test'", std::time::Duration::from_secs(5)));
    // .htaccess may not name a group: Apache refuses the file (500, "not allowed here").
    get("tenant.test", "/t/app.wsgi/facts").assert_status(500);
    assert!(
        apache.wait_for_log("WSGIProcessGroup not allowed here", std::time::Duration::from_secs(5)),
        "{}",
        apache.log_tail(10)
    );
}

/// Apache keeps its connections to a group's daemons open across requests, each tied to the
/// process that accepted it. A child spreads its requests over the processes by how many it
/// has running in each, so concurrent requests do not pile up in one process while another
/// idles (keeping to the most recent connections, the split stayed whatever the first
/// connections happened to be).
#[test]
fn concurrent_requests_are_spread_over_the_groups_processes() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "MaxRequestWorkers 8\n\
             WSGIDaemonProcess spread processes=2 threads=4\n\
             WSGIScriptAlias /s {APPS}/app.py process-group=spread",
        )
        .start();
    let addr = apache.addr();
    // Four requests at once (one Apache child, MaxRequestWorkers 8), each running 0.3 s:
    // how many each daemon process served.
    let round = || -> BTreeMap<u32, usize> {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    let mut c = common::Client::connect(addr).unwrap();
                    c.set_timeout(std::time::Duration::from_secs(15));
                    let r = c.get("/s/sleep?0.3");
                    r.assert_status(200);
                    let text = r.text();
                    text.rsplit("pid=").next().and_then(|p| p.trim().parse::<u32>().ok()).expect(&text)
                })
            })
            .collect();
        let mut served = BTreeMap::new();
        for h in handles {
            *served.entry(h.join().unwrap()).or_insert(0) += 1;
        }
        served
    };
    // A few rounds to meet both processes (a new connection goes to whichever accepts it);
    // from then on every round is split evenly.
    let mut rounds = Vec::new();
    for _ in 0..12 {
        rounds.push(round());
        let last3 = &rounds[rounds.len().saturating_sub(3)..];
        if last3.len() == 3 && last3.iter().all(|r| r.len() == 2 && r.values().all(|&n| n == 2)) {
            return;
        }
    }
    panic!("requests not spread 2/2 over the two processes in 3 rounds running: {rounds:?}");
}

/// Requests that meet at a barrier: each waits (up to 10 s) until six are running at once.
/// `/spin?S` keeps Python busy for S seconds; a request that meets the barrier while it runs
/// says so.
const BARRIER_APP: &str = r#"
import threading, time
barrier = threading.Barrier(6, timeout=10)
spinning = threading.Event()

def application(environ, start_response):
    if environ['PATH_INFO'] == '/spin':
        spinning.set()
        end = time.monotonic() + float(environ['QUERY_STRING'])
        n = 0
        while time.monotonic() < end:
            n += 1
        spinning.clear()
        body = b'spun'
    else:
        try:
            barrier.wait()
            body = b'met while spinning' if spinning.is_set() else b'met'
        except threading.BrokenBarrierError:
            body = b'broken'
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [body]
"#;

fn barrier_round(addr: std::net::SocketAddr, n: usize) -> Vec<String> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = common::Client::connect(addr).unwrap();
                c.set_timeout(std::time::Duration::from_secs(30));
                c.get("/b/meet").text()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Only one worker of a daemon process waits for new work while the others park, yet every
/// thread still takes a request at once when the running ones block, and while another request
/// keeps Python busy (seven threads: the spinner and six at the barrier).
#[test]
fn blocking_requests_all_run_at_once_up_to_the_thread_count() {
    let apache = Apache::builder()
        .app("barrier.py", BARRIER_APP)
        .config(
            "WSGIDaemonProcess meet processes=1 threads=7\n\
             WSGIScriptAlias /b {APPS}/barrier.py process-group=meet",
        )
        .start();
    let addr = apache.addr();
    // Six blocking requests at once, three times over (the threads that served a round park).
    for round in 0..3 {
        let got = barrier_round(addr, 6);
        assert!(got.iter().all(|t| t == "met"), "round {round}: {got:?}\n{}", apache.log_tail(20));
    }
    // While one request keeps the GIL busy for 5 s, six more still all start.
    let spinner = std::thread::spawn(move || {
        let mut c = common::Client::connect(addr).unwrap();
        c.set_timeout(std::time::Duration::from_secs(30));
        c.get("/b/spin?5").text()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let got = barrier_round(addr, 6);
    assert!(got.iter().all(|t| t == "met while spinning"), "{got:?}\n{}", apache.log_tail(20));
    assert_eq!(spinner.join().unwrap(), "spun");
}
