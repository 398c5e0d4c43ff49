//! WSGITelemetryService (mod_wsgi 6): Apache's children and daemon processes send telemetry
//! datagrams that the real ingester from PyPI (`mod_wsgi-telemetry`'s `dump` command, in a
//! test venv) decodes. Its samples count the requests sent, in each mode; slow requests arrive
//! as slow-request records; processes report their start and stop; and
//! mod_wsgi.process_metrics() gives None, as under mod_wsgi 6.

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;
#[path = "django/venv.rs"]
mod venv;

use common::Apache;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const APP: &str = r#"
import gc, time, mod_wsgi

def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/slow':
        time.sleep(0.5)
    if path == '/slower':
        time.sleep(1.4)
    if path == '/gc':
        gc.collect()
    if path == '/missing':
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return [b'no']
    start_response('200 OK', [('Content-Type', 'text/plain')])
    mod_wsgi.start_recording_metrics()
    return [('process_metrics=%r request_metrics=%r\n'
             % (mod_wsgi.process_metrics(), mod_wsgi.request_metrics())).encode()]
"#;

/// The `dump` ingester, bound to a socket www-data may write to; killed (by pid) on drop.
struct Dump {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Dump {
    fn start(python: &std::path::Path, dir: &std::path::Path) -> Dump {
        let out = dir.join("dump.jsonl");
        let child = Command::new(python)
            .args(["-u", "-m", "mod_wsgi.telemetry.dump", "--format", "json", "--count", "0"])
            .arg("--listen")
            .arg(format!("unix:{}", dir.join("t.sock").display()))
            .args(["--socket-mode", "0666"])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(dir.join("dump.err")).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("start mod_wsgi.telemetry.dump");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !dir.join("t.sock").exists() {
            assert!(Instant::now() < deadline, "the ingester made no socket in {}", dir.display());
            std::thread::sleep(Duration::from_millis(50));
        }
        Dump { child, out }
    }

    fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"))).collect()
    }
}

impl Drop for Dump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn group_of(r: &Value) -> &str {
    r["fields"]["process_group"].as_str().unwrap_or("")
}

fn sum(records: &[Value], kind: &str, group: &str, field: &str) -> u64 {
    records
        .iter()
        .filter(|r| r["kind"] == kind && group_of(r) == group)
        .map(|r| r["fields"][field].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn the_ingester_decodes_what_every_process_sends() {
    let Some(venv) = venv::venv_or_skip(&["mod_wsgi-telemetry==1.1.0"]) else { return };
    let dir = std::env::temp_dir().join(format!("oxwsgi-telemetry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dump = Dump::start(&venv.join("bin/python"), &dir);

    let mut apache = Apache::builder()
        .app("app.py", APP)
        .config(&format!(
            "WSGITelemetryService unix:{}/t.sock interval=0.5\n\
             WSGITelemetryOptions +CaptureUserAgent\n\
             WSGISlowRequests 0.3\n\
             WSGIDaemonProcess tele processes=1 threads=2\n\
             WSGIScriptAlias /emb {{APPS}}/app.py\n\
             WSGIScriptAlias /dmn {{APPS}}/app.py process-group=tele",
            dir.display()
        ))
        .start();
    for _ in 0..5 {
        apache.get("/emb/x").assert_status(200);
    }
    for _ in 0..3 {
        apache.get("/dmn/x").assert_status(200);
    }
    apache.get("/dmn/missing").assert_status(404);
    let slow = apache.send("GET", "/emb/slow", &[("User-Agent", "telemetry-test/1.0")], b"");
    slow.assert_status(200);
    // Telemetry is the process' metrics consumer: the Python accessors stand down.
    assert!(slow.text().contains("process_metrics=None request_metrics=None"), "{}", slow.text());
    // Still running past the threshold at a tick: an "active" record, then the completed one.
    apache.get("/dmn/slower").assert_status(200);
    // A full collection: a GC pass record, and the collector's state, from the daemon.
    apache.get("/dmn/gc").assert_status(200);
    // Two ticks of 0.5 s, then a stop: every process sends its last interval and PROCESS_STOPPED.
    std::thread::sleep(Duration::from_millis(1200));
    let report = apache.shutdown();
    assert!(report.leftovers.is_empty(), "{report:?}");
    std::thread::sleep(Duration::from_millis(300));
    let records = dump.records();
    let err = std::fs::read_to_string(dir.join("dump.err")).unwrap_or_default();
    assert!(!err.contains("decode error"), "the ingester could not decode: {err}");
    let kinds: std::collections::BTreeSet<&str> = records.iter().filter_map(|r| r["kind"].as_str()).collect();
    for k in ["process_started", "request_metrics", "slow_request", "process_stopping", "process_stopped", "gc_event"] {
        assert!(kinds.contains(k), "no {k} in {kinds:?}:\n{records:#?}");
    }

    // Samples count each request once, in the process that ran it.
    assert_eq!(sum(&records, "request_metrics", "tele", "request_count"), 6, "{records:#?}");
    assert_eq!(sum(&records, "request_metrics", "tele", "status_4xx_total"), 1);
    assert_eq!(sum(&records, "request_metrics", "", "request_count"), 6, "{records:#?}");
    assert_eq!(sum(&records, "request_metrics", "", "status_2xx_total"), 6);
    let busy_daemon = records
        .iter()
        .find(|r| {
            r["kind"] == "request_metrics" && group_of(r) == "tele" && r["fields"]["request_count"].as_u64() > Some(0)
        })
        .expect("a daemon sample with requests");
    for f in ["queue_time", "daemon_time", "application_time", "request_time_max", "server_time_buckets"] {
        assert!(!busy_daemon["fields"][f].is_null(), "no {f} in {busy_daemon:#}");
    }
    assert_eq!(busy_daemon["fields"]["request_threads_maximum"], 2);
    assert_eq!(busy_daemon["fields"]["telemetry_interval"], 0.5);
    assert!(busy_daemon["fields"]["mod_wsgi_version"].as_str().unwrap().starts_with("oxwsgi/"));
    assert!(busy_daemon["fields"]["python_version"].as_str().unwrap().starts_with(common::python::PYTHON_VERSION));
    assert!(busy_daemon["fields"]["memory_rss"].as_u64().unwrap() > 1 << 20);

    // The slow requests, with what the records carry: each completed once.
    let slow_records = |path: &str, state: u64| -> Vec<&Value> {
        records
            .iter()
            .filter(|r| r["kind"] == "slow_request")
            .filter(|r| r["fields"]["slow_path_info"] == path && r["fields"]["slow_record_state"] == state)
            .collect()
    };
    assert_eq!(slow_records("/emb/slow", 1).len(), 1, "{records:#?}");
    let done = slow_records("/dmn/slower", 1);
    assert_eq!(done.len(), 1, "{records:#?}");
    let active = slow_records("/dmn/slower", 0);
    assert!(!active.is_empty() && active.len() <= 3, "heartbeats while it ran: {active:#?}");
    // The ingester pairs them by (pid, thread, start): the same in both.
    for key in ["slow_start_stamp", "slow_thread_id"] {
        assert_eq!(active[0]["fields"][key], done[0]["fields"][key], "{key}");
    }
    assert_eq!(active[0]["pid"], done[0]["pid"]);
    assert_eq!(active[0]["fields"]["slow_status"], 0);
    assert!(active[0]["fields"]["slow_duration"].as_f64().unwrap() >= 0.3);
    let s = &slow_records("/emb/slow", 1)[0]["fields"];
    assert_eq!(s["slow_method"], "GET");
    assert_eq!(s["slow_path_info"], "/emb/slow");
    assert_eq!(s["slow_status"], 200);
    assert_eq!(s["slow_scheme"], "http");
    assert_eq!(s["slow_user_agent"], "telemetry-test/1.0");
    assert_eq!(s["slow_record_state"], 1);
    assert!(s["slow_duration"].as_f64().unwrap() >= 0.5, "{s}");

    // The daemon's stop: why, and how many requests it served.
    let stopped = records
        .iter()
        .find(|r| r["kind"] == "process_stopped" && group_of(r) == "tele")
        .unwrap_or_else(|| panic!("no process_stopped from the daemon: {records:#?}"));
    assert_eq!(stopped["fields"]["lifetime_request_count"], 6);
    // mod_wsgi 6's GC records: the explicit gc.collect() as a generation-2 pass, and snapshots.
    let daemon_pid = &stopped["pid"];
    let gen2 = records
        .iter()
        .filter(|r| r["kind"] == "gc_event" && &r["pid"] == daemon_pid)
        .filter(|r| r["fields"]["gc_event_generation"] == 2)
        .count();
    assert!(gen2 >= 1, "no generation-2 gc_event from the daemon: {records:#?}");
    // The last one, sent after the collection.
    let snapshot = records
        .iter()
        .filter(|r| r["kind"] == "gc_snapshot" && &r["pid"] == daemon_pid)
        .last()
        .unwrap_or_else(|| panic!("no gc_snapshot from the daemon"));
    assert!(snapshot["fields"]["gc_collections2"].as_u64().unwrap() >= 1, "{snapshot:#}");
    // CPython's default generation-0 threshold (700; 2000 from 3.13 on), asked of the built-for Python.
    let out = std::process::Command::new(common::python::PYTHON)
        .args(["-I", "-c", "import gc; print(gc.get_threshold()[0])"])
        .output()
        .unwrap();
    let threshold0: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(snapshot["fields"]["gc_threshold0"], threshold0, "{snapshot:#}");
    assert_eq!(snapshot["fields"]["gc_is_enabled"], 1);
    assert_eq!(stopped["fields"]["graceful_drain"], 1);
    assert!(stopped["fields"]["process_uptime"].as_f64().unwrap() > 1.0);
    // Every process that started also stopped.
    let pids = |kind: &str| -> std::collections::BTreeSet<u64> {
        records.iter().filter(|r| r["kind"] == kind).filter_map(|r| r["pid"].as_u64()).collect()
    };
    assert_eq!(pids("process_started"), pids("process_stopped"), "{records:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_telemetry_lines_are_configtest_errors() {
    for (snippet, message) in [
        ("WSGITelemetryService udp:127.0.0.1:9", "target must be 'unix:/path'"),
        ("WSGITelemetryService unix:/tmp/t.sock interval=0.1", "interval must be at least 0.5 seconds"),
        ("WSGITelemetryOptions +CaptureUserAgent None", "cannot mix +/- form"),
        ("WSGITelemetryOptions Bogus", "unknown flag 'Bogus'"),
        ("<VirtualHost *:80>\nWSGITelemetryService unix:/tmp/t.sock\n</VirtualHost>", "cannot occur within"),
    ] {
        let t = daemon_apps::config_test(snippet);
        assert!(!t.ok, "{snippet}: accepted: {t:?}");
        assert!(t.output.contains("Syntax error on line"), "{snippet}: {}", t.output);
        assert!(t.output.contains(message), "{snippet}: expected {message:?} in:\n{}", t.output);
    }
}
