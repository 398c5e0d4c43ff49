//! The `oxwsgi-metrics` handler: Prometheus text read back with the real `prometheus_client`
//! parser (from PyPI, in a test venv) and JSON, counted against the requests sent, in embedded
//! and daemon mode, across daemon recycles (maximum-requests) that must lose no count.

mod common;
#[path = "django/venv.rs"]
mod venv;

use common::Apache;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

const APP: &str = r#"
import os, time

def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    body = environ['wsgi.input'].read()
    if path == '/missing':
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return [b'no']
    if path == '/slow':
        time.sleep(0.3)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'pid=%d read=%d\n' % (os.getpid(), len(body))]
"#;

/// Parses exposition text with prometheus_client; returns (name, labels, value) per sample.
const PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;

type Samples = Vec<(String, BTreeMap<String, String>, f64)>;

fn parse(python: &std::path::Path, text: &str) -> Samples {
    let mut child = Command::new(python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition:\n{}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The one sample named `name` whose labels include every pair of `labels`; panics if none.
#[track_caller]
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, _, v)| *v)
        .collect();
    assert!(!hits.is_empty(), "no sample {name} {labels:?}");
    hits.iter().sum()
}

#[test]
fn counts_survive_recycles_in_both_modes() {
    let Some(venv) = venv::venv_or_skip(&["prometheus_client>=0.20,<1"]) else { return };
    let python = venv.join("bin/python");
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess recycled processes=1 threads=2 maximum-requests=5\n\
             WSGIScriptAlias /d {APPS}/app.py process-group=recycled application-group=%{GLOBAL}\n\
             WSGIScriptAlias /e {APPS}/app.py\n\
             <Location /server-metrics>\n    SetHandler oxwsgi-metrics\n</Location>",
        )
        .start();
    for _ in 0..7 {
        apache.get("/e/").assert_status(200);
    }
    for _ in 0..2 {
        apache.get("/e/missing").assert_status(404);
    }
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let r = apache.send("GET", "/d/", &[("Connection", "close")], b"");
        r.assert_status(200);
        pids.insert(r.text().split_whitespace().next().unwrap().to_string());
    }
    let body = vec![b'x'; 1000];
    apache.post("/d/", "application/octet-stream", &body).assert_status(200);
    apache.get("/d/slow").assert_status(200);
    assert!(pids.len() >= 3, "maximum-requests=5 should have recycled the daemon: {pids:?}");

    // Not exposed where the handler is not configured.
    apache.get("/metrics").assert_status(404);

    // The last request is counted when it is logged, just after its response: allow a moment.
    let mut samples = Samples::new();
    for _ in 0..50 {
        let r = apache.get("/server-metrics");
        r.assert_status(200);
        assert_eq!(r.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
        samples = parse(&python, &r.text());
        if value(&samples, "oxwsgi_requests_total", &[("group", "recycled")]) >= 14.0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let e = [("group", ""), ("application_group", &*format!("127.0.0.1:{}|/e", apache.addr().port()))];
    let d = [("group", "recycled"), ("application_group", "")];
    let with = |base: &[(&'static str, &str)], extra: (&'static str, &'static str)| {
        let mut v = base.to_vec();
        v.push(extra);
        value(&samples, "oxwsgi_requests_total", &v)
    };
    assert_eq!(with(&e, ("status", "2xx")), 7.0, "{samples:#?}");
    assert_eq!(with(&e, ("status", "4xx")), 2.0);
    assert_eq!(with(&d, ("status", "2xx")), 14.0);
    assert_eq!(with(&d, ("status", "5xx")), 0.0);
    assert_eq!(value(&samples, "oxwsgi_request_bytes_total", &d), 1000.0);
    assert!(value(&samples, "oxwsgi_response_bytes_total", &d) >= 14.0 * 10.0);
    assert_eq!(value(&samples, "oxwsgi_request_duration_seconds_count", &d), 14.0);
    assert_eq!(value(&samples, "oxwsgi_queue_wait_seconds_count", &d), 14.0);
    assert_eq!(value(&samples, "oxwsgi_queue_wait_seconds_count", &e), 9.0);
    // The slow request took >= 0.3 s: it is above the 0.25 s bucket, and in the sum.
    let le = |v: &str| {
        let mut l = d.to_vec();
        l.push(("le", v));
        value(&samples, "oxwsgi_request_duration_seconds_bucket", &l)
    };
    assert_eq!(le("+Inf"), 14.0);
    assert!(le("0.25") <= 13.0, "the 0.3 s request is in the 0.25 s bucket");
    assert!(value(&samples, "oxwsgi_request_duration_seconds_sum", &d) >= 0.3);
    assert!(
        value(&samples, "oxwsgi_daemon_restarts_total", &[("group", "recycled"), ("reason", "maximum-requests")])
            >= 2.0
    );
    assert_eq!(value(&samples, "oxwsgi_daemon_restarts_total", &[("group", "recycled"), ("reason", "crash")]), 0.0);
    assert_eq!(value(&samples, "oxwsgi_threads", &[("group", "recycled")]) as u32 % 2, 0);
    assert!(value(&samples, "oxwsgi_daemon_processes", &[("group", "recycled")]) >= 1.0);
    assert!(value(&samples, "oxwsgi_process_resident_memory_bytes", &[("group", "recycled")]) > 1e6);
    assert!(value(&samples, "oxwsgi_process_resident_memory_bytes", &[("group", "")]) > 1e6);
    assert!(value(&samples, "oxwsgi_threads", &[("group", "")]) >= 1.0);

    // The same numbers as JSON.
    let r = apache.get("/server-metrics?format=json");
    r.assert_status(200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v: Value = serde_json::from_str(&r.text()).unwrap();
    let groups = v["groups"].as_array().unwrap();
    let recycled = groups.iter().find(|g| g["group"] == "recycled").unwrap();
    assert_eq!(recycled["mode"], "daemon");
    assert_eq!(recycled["application_groups"][0]["requests"]["2xx"], 14);
    assert_eq!(recycled["application_groups"][0]["request_bytes"], 1000);
    let embedded = groups.iter().find(|g| g["group"] == "").unwrap();
    assert_eq!(embedded["application_groups"][0]["requests_total"], 9);
    let _ = apache.stop();
}

#[test]
fn a_crashed_daemon_is_counted_as_a_crash() {
    let apache = Apache::builder()
        .app("app.py", "import os\ndef application(environ, start_response):\n    os._exit(3)\n")
        .config(
            "WSGIDaemonProcess crashy processes=1 threads=1\n\
             WSGIScriptAlias /c {APPS}/app.py process-group=crashy\n\
             <Location /server-metrics>\n    SetHandler oxwsgi-metrics\n</Location>",
        )
        .start();
    apache.get("/c/").assert_status(502);
    let crashes = || {
        let v: Value = serde_json::from_str(&apache.get("/server-metrics?format=json").text()).unwrap();
        v["groups"][0]["restarts"]["crash"].as_u64().unwrap()
    };
    common::eventually(Duration::from_secs(10), || crashes() >= 1);
    let crashes = Some(crashes());
    assert_eq!(crashes, Some(1), "{}", apache.log_tail(20));
    let _ = apache.stop();
}

const API_APP: &str = r#"
import json, mod_wsgi

try:
    mod_wsgi.request_data()
    OUTSIDE = 'no error'
except RuntimeError as e:
    OUTSIDE = str(e)
BEFORE_START = mod_wsgi.request_metrics()
mod_wsgi.start_recording_metrics()

def application(environ, start_response):
    data = mod_wsgi.request_data()
    data['seen'] = data.get('seen', 0) + 1
    same = mod_wsgi.request_data() is data and mod_wsgi.request_data()['seen'] == 1
    out = {
        'outside': OUTSIDE,
        'before_start': BEFORE_START,
        'same': same,
        'process': mod_wsgi.process_metrics(),
        'interval': mod_wsgi.request_metrics(),
        'server': mod_wsgi.server_metrics(),
    }
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(out).encode()]
"#;

#[test]
fn the_python_api_reads_this_process() {
    let apache = Apache::builder()
        .app("api.py", API_APP)
        .config(
            "WSGIDaemonProcess api processes=1 threads=3\n\
             WSGIScriptAlias /d {APPS}/api.py process-group=api\n\
             WSGIScriptAlias /e {APPS}/api.py",
        )
        .start();
    for mount in ["/d", "/e"] {
        let mut last: Option<Value> = None;
        for i in 0..4 {
            let r = apache.get(&format!("{mount}/"));
            r.assert_status(200);
            let v: Value = serde_json::from_str(&r.text()).unwrap();
            assert_eq!(v["outside"], "no active request for thread");
            assert_eq!(v["before_start"], Value::Null);
            assert_eq!(v["same"], true, "request_data() is one dict per request, new for each");
            assert_eq!(v["server"], Value::Null);
            let p = &v["process"];
            assert!(p["active_requests"].as_u64().unwrap() >= 1, "{mount}: {p}");
            assert!(p["memory_rss"].as_u64().unwrap() > 1_000_000);
            assert!(p["cpu_time"].as_f64().unwrap() > 0.0);
            if mount == "/d" {
                // One daemon process serves them all: it has counted the requests before this one.
                assert_eq!(p["request_count"], i, "{p}");
                assert_eq!(p["request_threads"], 3);
            }
            assert!(v["interval"]["sample_period"].as_f64().unwrap() > 0.0);
            if let Some(prev) = &last {
                if prev["process"]["pid"] == p["pid"] {
                    assert_eq!(v["interval"]["request_count"], 1, "one request since the last call: {v}");
                }
            }
            last = Some(v);
        }
    }
    let _ = apache.stop();
}

#[test]
fn wsgi_metrics_off_counts_nothing() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIMetrics Off\n\
             WSGIScriptAlias /e {APPS}/app.py\n\
             <Location /server-metrics>\n    SetHandler oxwsgi-metrics\n</Location>",
        )
        .start();
    apache.get("/e/").assert_status(200);
    apache.get("/server-metrics").assert_status(503);
    assert!(apache.wait_for_log("WSGIMetrics Off", Duration::from_secs(2)), "{}", apache.log_tail(10));
    let _ = apache.stop();
}

const SCOREBOARD_APP: &str = r#"
import json, os, mod_wsgi

def application(environ, start_response):
    sm = mod_wsgi.server_metrics()
    me = None
    if sm is not None:
        me = [w for p in sm['processes'] if p['pid'] == os.getpid() for w in p['workers'] if w['status'] == 'W']
    out = {'keys': sorted(sm) if sm else None, 'busy_here': len(me) if me is not None else None}
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(out).encode()]
"#;

#[test]
fn server_metrics_reads_the_scoreboard_with_wsgi_server_metrics_on() {
    let apache = Apache::builder()
        .app("sb.py", SCOREBOARD_APP)
        .config("WSGIServerMetrics On\nWSGIScriptAlias /sb {APPS}/sb.py")
        .start();
    let v: Value = serde_json::from_str(&apache.get("/sb").text()).unwrap();
    assert_eq!(
        v["keys"],
        serde_json::json!([
            "current_time",
            "processes",
            "restart_time",
            "running_generation",
            "running_time",
            "server_limit",
            "thread_limit"
        ])
    );
    assert!(v["busy_here"].as_u64().unwrap() >= 1, "this request's worker is writing: {v}");
    let _ = apache.stop();
}

const IO_APP: &str = r#"
import json, mod_wsgi

mod_wsgi.start_recording_metrics()

def application(environ, start_response):
    body = environ['wsgi.input'].read()
    interval = mod_wsgi.request_metrics()
    write = start_response('200 OK', [('Content-Type', 'application/json')])
    write(b'[')
    return [json.dumps({'read': len(body), 'interval': interval}).encode(), b']']
"#;

/// mod_wsgi 6's request_metrics() keys for GIL waits and the request's I/O: what the previous
/// request (one daemon process serves both) read, wrote and waited for.
#[test]
fn request_metrics_count_gil_waits_and_io() {
    let apache = Apache::builder()
        .app("io.py", IO_APP)
        .config("WSGIDaemonProcess io processes=1 threads=2\nWSGIScriptAlias /io {APPS}/io.py process-group=io")
        .start();
    let first = apache.post("/io/", "application/octet-stream", &[b'x'; 1000]);
    first.assert_status(200);
    let r = apache.get("/io/");
    r.assert_status(200);
    let v: Value = serde_json::from_str(&r.text()).unwrap();
    let m = &v[0]["interval"];
    assert_eq!(m["request_count"], 1, "{m}");
    assert_eq!(m["input_bytes"], 1000, "{m}");
    assert!(m["input_reads"].as_u64().unwrap() >= 1, "{m}");
    assert_eq!(m["output_bytes"].as_u64().unwrap(), first.body.len() as u64, "{m}");
    assert_eq!(m["output_writes"], 3, "write() and the two items: {m}");
    assert!(m["gil_wait_count"].as_u64().unwrap() >= 1, "{m}");
    for phase in ["gil_wait_time", "input_read_time", "output_write_time"] {
        assert!(m[phase].as_f64().unwrap() >= 0.0, "{phase}: {m}");
        let buckets = m[format!("{phase}_buckets")].as_array().unwrap();
        assert_eq!(buckets.len(), 65, "{phase}");
        assert_eq!(buckets.iter().map(|b| b.as_u64().unwrap()).sum::<u64>(), 1, "one request: {phase}: {m}");
        assert!(m[format!("{phase}_min_us")].as_u64().unwrap() <= m[format!("{phase}_max_us")].as_u64().unwrap());
    }
    let _ = apache.stop();
}
