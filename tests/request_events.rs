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
