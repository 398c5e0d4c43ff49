//! WSGISlowRequests SECONDS: WSGI requests slower than the threshold are logged (warn level)
//! with pid, thread, method, path, status and time; faster ones are not.

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;

use common::Apache;
use std::time::Duration;

const APP: &str = r#"
import time

def application(environ, start_response):
    if environ.get('PATH_INFO') == '/slow':
        time.sleep(0.4)
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'done']
"#;

#[test]
fn slower_requests_are_logged_with_what_they_were() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGISlowRequests 0.2\n\
             WSGIDaemonProcess d threads=2\n\
             WSGIScriptAlias /d {APPS}/app.py process-group=d\n\
             WSGIScriptAlias /e {APPS}/app.py",
        )
        .start();
    for mount in ["/e", "/d"] {
        apache.get(&format!("{mount}/fast?x=1")).assert_status(200);
        apache.get(&format!("{mount}/slow?secret=1")).assert_status(200);
        let line = format!("GET {mount}/slow -> 200 in 0.");
        assert!(apache.wait_for_log(&line, Duration::from_secs(3)), "{mount}\n{}", apache.log_tail(10));
    }
    assert_eq!(apache.count_in_log("/fast"), 0, "{}", apache.log_tail(10));
    assert_eq!(apache.count_in_log("secret"), 0, "the query string is not logged");
    let _ = apache.stop();
}

#[test]
fn bad_thresholds_fail_configtest() {
    for snippet in
        ["WSGISlowRequests soon", "WSGISlowRequests -1", "<VirtualHost *:80>\nWSGISlowRequests 1\n</VirtualHost>"]
    {
        let t = daemon_apps::config_test(snippet);
        assert!(!t.ok, "{snippet}: {t:?}");
        assert!(t.output.contains("Syntax error on line"), "{snippet}: {}", t.output);
    }
}
