//! WSGINewRelicConfigFile / WSGINewRelicEnvironment and newrelic-config-file= /
//! newrelic-environment= (mod_wsgi 4.x): every interpreter calls
//! `newrelic.agent.initialize(file, environment)` when it is made, embedded mode with the
//! directives, a daemon group with its options. A stand-in `newrelic` package records the calls.

mod common;

use common::Apache;

const AGENT: &str =
    "CALLS = []\n\ndef initialize(config_file=None, environment=None):\n    CALLS.append([config_file, environment])\n";

const APP: &str = r#"
import json

def application(environ, start_response):
    import newrelic.agent
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(newrelic.agent.CALLS).encode()]
"#;

#[test]
fn each_interpreter_initialises_the_agent() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .file("lib/newrelic/__init__.py", "")
        .file("lib/newrelic/agent.py", AGENT)
        .config(
            "WSGIPythonPath {ROOT}/lib\n\
             WSGINewRelicConfigFile /etc/newrelic-embedded.ini\n\
             WSGINewRelicEnvironment staging\n\
             WSGIDaemonProcess nr threads=1 python-path={ROOT}/lib newrelic-config-file=/etc/newrelic-daemon.ini\n\
             WSGIScriptAlias /d {APPS}/app.py process-group=nr\n\
             WSGIScriptAlias /e {APPS}/app.py",
        )
        .start();
    let e = apache.get("/e/");
    e.assert_status(200);
    assert_eq!(e.text(), r#"[["/etc/newrelic-embedded.ini", "staging"]]"#);
    let d = apache.get("/d/");
    d.assert_status(200);
    assert_eq!(d.text(), r#"[["/etc/newrelic-daemon.ini", null]]"#);
    assert!(apache.count_in_log("Imported 'newrelic.agent'") >= 2, "{}", apache.log_tail(10));
    let _ = apache.stop();
}

#[test]
fn a_missing_agent_is_logged_and_the_site_still_runs() {
    let apache = Apache::builder()
        .app("ok.py", "def application(e, s):\n    s('200 OK', [])\n    return [b'ok']\n")
        .config("WSGINewRelicConfigFile /etc/newrelic.ini\nWSGIScriptAlias /e {APPS}/ok.py")
        .start();
    apache.get("/e/").assert_status(200);
    assert!(apache.wait_for_log("Unable to import 'newrelic.agent' module", std::time::Duration::from_secs(2)));
    let _ = apache.stop();
}
