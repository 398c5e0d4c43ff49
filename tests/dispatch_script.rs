//! WSGIDispatchScript with a real Apache: process_group(), application_group() and
//! callable_object() choose per request; None keeps the configuration's choice; an exception or
//! a wrong type is a 500 with the traceback logged.

mod common;

use common::Apache;

const DISPATCH: &str = r#"
def process_group(environ):
    q = environ.get("QUERY_STRING", "")
    if "to=daemon" in q:
        return "dsp"
    if "to=raise" in q:
        raise KeyError("dispatch failed")
    if "to=int" in q:
        return 42
    return None

def application_group(environ):
    if "ag=named" in environ.get("QUERY_STRING", ""):
        return "chosen"
    return None

def callable_object(environ):
    if "alt" in environ.get("QUERY_STRING", ""):
        return "alternative"
    return None
"#;

const APP: &str = r#"
import mod_wsgi
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("app pg=%s ag=%s" % (mod_wsgi.process_group, mod_wsgi.application_group)).encode()]

def alternative(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("alternative pg=%s ag=%s" % (mod_wsgi.process_group, mod_wsgi.application_group)).encode()]
"#;

#[test]
fn dispatch_chooses_group_interpreter_and_callable() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .app("dispatch.py", DISPATCH)
        .config(
            "WSGIDaemonProcess dsp threads=2\n\
             WSGIScriptAlias /d {APPS}/app.py application-group=%{GLOBAL}\n\
             <Location /d>\n WSGIDispatchScript {APPS}/dispatch.py\n</Location>",
        )
        .start();
    let text = |q: &str| {
        let r = apache.get(&format!("/d?{q}"));
        (r.status, r.text())
    };
    assert_eq!(text("x"), (200, "app pg= ag=".to_string()), "None keeps the configuration");
    assert_eq!(text("to=daemon"), (200, "app pg=dsp ag=".to_string()));
    assert_eq!(text("to=daemon&ag=named"), (200, "app pg=dsp ag=chosen".to_string()));
    assert_eq!(text("alt"), (200, "alternative pg= ag=".to_string()));
    assert_eq!(text("to=raise").0, 500);
    assert!(apache.error_log().contains("KeyError: 'dispatch failed'"), "{}", apache.error_log());
    assert_eq!(text("to=int").0, 500);
    assert!(apache.error_log().contains("process_group() returned"), "{}", apache.error_log());
}
