//! mod_wsgi.subscribe_events(): request_started, response_started, request_exception and
//! request_finished, with the request's data dict (mod_wsgi.request_data()) and
//! mod_wsgi.active_requests, in embedded and daemon mode.

mod common;

use common::Apache;
use serde_json::Value;

const APP: &str = r#"
import json, mod_wsgi

LOG = []
PATHS = {}

def on_event(name, **kwargs):
    if name == 'request_started':
        PATHS[kwargs['request_id']] = kwargs['request_environ'].get('PATH_INFO')
    if PATHS.get(kwargs.get('request_id')) == '/events':
        return
    entry = {'name': name, 'seen': kwargs.get('request_data', {}).get('seen')}
    if name == 'request_started':
        entry['path'] = kwargs['request_environ'].get('PATH_INFO')
        entry['app'] = kwargs['application_object'] is application
        entry['start'] = kwargs['request_start'] > 0
    if name == 'response_started':
        entry['status'] = kwargs['response_status']
    if name == 'request_exception':
        entry['error'] = repr(kwargs['exception_info'][1])
    if name == 'request_finished':
        entry['time'] = kwargs['application_time'] >= 0
        entry['length'] = kwargs['output_length']
    LOG.append(entry)

mod_wsgi.subscribe_events(on_event)

def application(environ, start_response):
    path = environ.get('PATH_INFO')
    if path == '/events':
        out, LOG[:] = list(LOG), []
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [json.dumps(out).encode()]
    mod_wsgi.request_data()['seen'] = 'yes'
    active = environ['mod_wsgi.request_id'] in mod_wsgi.active_requests
    if path == '/boom':
        raise ValueError('boom')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'active=%s' % str(active).encode()]
"#;

fn events(apache: &Apache, mount: &str) -> Vec<Value> {
    let r = apache.get(&format!("{mount}/events"));
    r.assert_status(200);
    serde_json::from_str::<Value>(&r.text()).unwrap().as_array().unwrap().clone()
}

#[test]
fn request_events_reach_subscribers_in_both_modes() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess ev processes=1 threads=2\n\
             WSGIScriptAlias /d {APPS}/app.py process-group=ev application-group=%{GLOBAL}\n\
             WSGIScriptAlias /e {APPS}/app.py application-group=%{GLOBAL}",
        )
        .start();
    for mount in ["/d", "/e"] {
        events(&apache, mount); // start from an empty log
        let r = apache.get(&format!("{mount}/ok"));
        r.assert_status(200);
        assert_eq!(r.text(), "active=True");
        let got = events(&apache, mount);
        let names: Vec<&str> = got.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["request_started", "response_started", "request_finished"], "{mount}: {got:?}");
        assert_eq!(got[0]["path"], "/ok");
        assert_eq!(got[0]["app"], true);
        assert_eq!(got[0]["start"], true);
        assert_eq!(got[1]["status"], "200 OK");
        assert_eq!(got[2]["seen"], "yes", "request_finished carries the request's data dict");
        assert_eq!(got[2]["time"], true);
        assert_eq!(got[2]["length"], 11);
        apache.get(&format!("{mount}/boom")).assert_status(500);
        let got = events(&apache, mount);
        let names: Vec<&str> = got.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["request_started", "request_exception", "request_finished"], "{mount}: {got:?}");
        assert_eq!(got[1]["error"], "ValueError('boom')");
    }
    let _ = apache.stop();
}

const FIGURES_APP: &str = r#"
import json, time, mod_wsgi

FINISHED = []

def on_event(name, **kwargs):
    if name == 'request_finished' and kwargs.get('request_data', {}).get('measure'):
        FINISHED.append({k: v for k, v in kwargs.items() if k != 'request_data'})

mod_wsgi.subscribe_events(on_event)

def application(environ, start_response):
    if environ.get('PATH_INFO') == '/figures':
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [json.dumps(FINISHED.pop()).encode()]
    mod_wsgi.request_data()['measure'] = True
    body = environ['wsgi.input'].read(600) + environ['wsgi.input'].read(600)
    end = time.process_time() + 0.05
    while time.process_time() < end:
        pass
    start_response('201 Created', [('Content-Type', 'text/plain')])
    return [b'a' * 10, b'b' * 20, body[:5]]
"#;

#[test]
fn request_finished_carries_mod_wsgis_figures() {
    let apache = Apache::builder()
        .app("app.py", FIGURES_APP)
        .config(
            "WSGIDaemonProcess fig processes=1 threads=2\n\
             WSGIScriptAlias /d {APPS}/app.py process-group=fig application-group=%{GLOBAL}\n\
             WSGIScriptAlias /e {APPS}/app.py application-group=%{GLOBAL}",
        )
        .start();
    for mount in ["/e", "/d"] {
        let r = apache.post(&format!("{mount}/work"), "application/octet-stream", &[b'x'; 1000]);
        r.assert_status(201);
        let f: Value = serde_json::from_str(&apache.get(&format!("{mount}/figures")).text()).unwrap();
        assert_eq!(f["status"], 201, "{mount}: {f}");
        assert_eq!(f["input_length"], 1000, "{mount}: {f}");
        assert!(f["input_reads"].as_u64().unwrap() >= 2, "{mount}: {f}");
        assert_eq!(f["output_length"], 35, "{mount}: {f}");
        assert_eq!(f["output_writes"], 3, "{mount}: {f}");
        let (cpu, app) = (f["cpu_time"].as_f64().unwrap(), f["application_time"].as_f64().unwrap());
        assert!(cpu >= 0.03 && cpu <= app + 1e-6, "{mount}: CPU {cpu} within application time {app}: {f}");
        let user_and_system = f["cpu_user_time"].as_f64().unwrap() + f["cpu_system_time"].as_f64().unwrap();
        assert!((user_and_system - cpu).abs() < 1e-6, "{mount}: {f}");
        assert!(f["gil_wait_count"].as_u64().unwrap() >= 1, "{mount}: {f}");
        for key in ["gil_wait_time", "input_time", "output_time", "request_start", "thread_id", "application_finish"] {
            assert!(!f[key].is_null(), "{mount}: no {key} in {f}");
        }
        let daemon = mount == "/d";
        assert_eq!(!f["queue_start"].is_null(), daemon, "{mount}: {f}");
        assert_eq!(!f["daemon_start"].is_null(), daemon, "{mount}: {f}");
    }
}
