//! WSGIRestrictProcess with a real Apache: a location's requests run only in the process groups
//! its list names (`%{GLOBAL}`: embedded mode); any other group is a 500 with the group named in
//! the error log. Without the directive nothing is restricted.

mod common;

use common::Apache;

const APP: &str = r#"
import mod_wsgi
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("pg=%s" % mod_wsgi.process_group).encode()]
"#;

/// Sends `?to=other` to the group the list does not name: the check runs on the final group.
const DISPATCH: &str = r#"
def process_group(environ):
    return "other" if "to=other" in environ.get("QUERY_STRING", "") else None
"#;

#[test]
fn only_listed_groups_are_used() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .app("dispatch.py", DISPATCH)
        .config(
            "WSGIDaemonProcess allowed threads=2\n\
             WSGIDaemonProcess other threads=2\n\
             WSGIScriptAlias /ok {APPS}/app.py\n\
             WSGIScriptAlias /no {APPS}/app.py\n\
             WSGIScriptAlias /emb {APPS}/app.py\n\
             WSGIScriptAlias /embno {APPS}/app.py\n\
             WSGIScriptAlias /free {APPS}/app.py\n\
             <Location /ok>\n WSGIProcessGroup allowed\n WSGIRestrictProcess allowed %{GLOBAL}\n \
             WSGIDispatchScript {APPS}/dispatch.py\n</Location>\n\
             <Location /no>\n WSGIProcessGroup other\n WSGIRestrictProcess allowed %{GLOBAL}\n</Location>\n\
             <Location /emb>\n WSGIRestrictProcess allowed %{GLOBAL}\n</Location>\n\
             <Location /embno>\n WSGIRestrictProcess allowed\n</Location>\n\
             <Location /free>\n WSGIProcessGroup other\n</Location>",
        )
        .start();
    let text = |path: &str| {
        let r = apache.get(path);
        (r.status, r.text())
    };
    assert_eq!(text("/ok"), (200, "pg=allowed".to_string()));
    assert_eq!(text("/emb"), (200, "pg=".to_string()), "%{{GLOBAL}} allows embedded mode");
    assert_eq!(text("/free"), (200, "pg=other".to_string()), "no directive, no restriction");

    assert_eq!(text("/no").0, 500);
    let log = apache.error_log();
    assert!(log.contains("Daemon process called 'other' cannot be accessed by this WSGI application"), "{log}");
    assert_eq!(text("/ok?to=other").0, 500, "a dispatch script's choice is checked too");
    assert_eq!(text("/embno").0, 500, "embedded mode needs %{{GLOBAL}} in the list");
    let log = apache.error_log();
    assert!(log.contains("Daemon process called '%{GLOBAL}' cannot be accessed by this WSGI application"), "{log}");
}
