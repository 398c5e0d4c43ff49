//! `script-user=` / `script-group=`: a daemon group runs only WSGI scripts (in directories)
//! owned by that user or group and not writable by others; anything else is a 403 with the
//! reason in the error log. (The test's files belong to root, mode 0644 in 0755 directories.)

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;

use common::Apache;
use std::os::unix::fs::PermissionsExt;

const APP: &str = "def application(environ, start_response):\n    start_response('200 OK', [])\n    return [b'ran']\n";

#[test]
fn only_scripts_of_the_named_owner_run() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .file("open/app.py", APP)
        .config(
            "WSGIDaemonProcess byroot script-user=root threads=1\n\
             WSGIDaemonProcess bywww script-user=www-data threads=1\n\
             WSGIDaemonProcess rootgroup script-group=root threads=1\n\
             WSGIScriptAlias /root {APPS}/app.py process-group=byroot\n\
             WSGIScriptAlias /www {APPS}/app.py process-group=bywww\n\
             WSGIScriptAlias /group {APPS}/app.py process-group=rootgroup\n\
             WSGIScriptAlias /open {ROOT}/open/app.py process-group=byroot\n\
             <Directory {ROOT}/open>\n    Require all granted\n</Directory>",
        )
        .start();
    let open = apache.config_path().parent().unwrap().join("open");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = apache.get("/root");
    r.assert_status(200);
    assert_eq!(r.text(), "ran");
    apache.get("/group").assert_status(200);
    let r = apache.get("/www");
    r.assert_status(403);
    assert!(!r.text().contains("ran"));
    assert!(apache.wait_for_log("is owned by uid 0, not by script-user 'www-data'", std::time::Duration::from_secs(2)));
    // A directory anyone can write to: someone else could have put the script there.
    apache.get("/open").assert_status(403);
    assert!(
        apache.wait_for_log("is writable by its group or by everyone", std::time::Duration::from_secs(2)),
        "{}",
        apache.log_tail(10)
    );
    let _ = apache.stop();
}

#[test]
fn both_options_at_once_is_a_configtest_error() {
    let t = daemon_apps::config_test("WSGIDaemonProcess g script-user=root script-group=root");
    assert!(!t.ok, "{t:?}");
    assert!(t.output.contains("only one of script-user= and script-group="), "{}", t.output);
}

/// The owner's name is looked up once, when the group is set up; an unknown one refuses every
/// script of the group, as before.
#[test]
fn an_unknown_script_owner_refuses_every_script() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess nouser script-user=no-such-user-oxwsgi threads=1\n\
             WSGIDaemonProcess nogroup script-group=no-such-group-oxwsgi threads=1\n\
             WSGIDaemonProcess byid script-user=#0 threads=1\n\
             WSGIScriptAlias /nouser {APPS}/app.py process-group=nouser\n\
             WSGIScriptAlias /nogroup {APPS}/app.py process-group=nogroup\n\
             WSGIScriptAlias /byid {APPS}/app.py process-group=byid",
        )
        .start();
    apache.get("/nouser").assert_status(403);
    assert!(apache.wait_for_log("script-user 'no-such-user-oxwsgi' does not exist", std::time::Duration::from_secs(2)));
    apache.get("/nogroup").assert_status(403);
    assert!(
        apache.wait_for_log("script-group 'no-such-group-oxwsgi' does not exist", std::time::Duration::from_secs(2))
    );
    // `#uid` names the owner by number.
    apache.get("/byid").assert_status(200);
    let _ = apache.stop();
}
