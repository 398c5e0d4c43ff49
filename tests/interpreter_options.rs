//! `<WSGIInterpreterOptions>` (mod_wsgi 6): WSGIPythonPath layered per interpreter (least
//! specific first, the most specific in front of sys.path), WSGISwitchInterval per process and
//! refused for one application group of a shared GIL, WSGIRestrictSignal per interpreter; and
//! WSGIPerInterpreterGIL / WSGIFreeThreading accepted with mod_wsgi's warnings where the Python
//! built for has no such feature.
//! Bad sections are configtest errors with the file and line.

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;

use common::Apache;
use daemon_apps::config_test;

const APP: &str = r#"
import signal, sys

def application(environ, start_response):
    ours = [p for p in sys.path if p.startswith("/oxwsgi-pp/")]
    try:
        print("printed")
        stdout = "ok"
    except OSError as e:
        stdout = str(e)
    out = [
        "stdout=%s" % stdout,
        "path=%s" % ",".join(ours),
        "switch_interval=%g" % sys.getswitchinterval(),
        "signal_restricted=%s" % hasattr(signal.signal, "__wrapped__"),
        "group=%s" % environ["mod_wsgi.application_group"],
    ]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("\n".join(out) + "\n").encode()]
"#;

#[test]
fn blocks_apply_to_the_interpreters_they_select() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIPythonPath /oxwsgi-pp/top\n\
             WSGIRestrictStdout On\n\
             WSGIDaemonProcess d1 threads=1 python-path=/oxwsgi-pp/daemon\n\
             <WSGIInterpreterOptions>\n\
             \x20 WSGIPythonPath /oxwsgi-pp/any\n\
             </WSGIInterpreterOptions>\n\
             <WSGIInterpreterOptions application-group=app1>\n\
             \x20 WSGIPythonPath /oxwsgi-pp/app1a:/oxwsgi-pp/app1b\n\
             </WSGIInterpreterOptions>\n\
             <WSGIInterpreterOptions process-group=d1>\n\
             \x20 WSGIPythonPath /oxwsgi-pp/d1\n\
             \x20 WSGISwitchInterval 0.02\n\
             </WSGIInterpreterOptions>\n\
             <WSGIInterpreterOptions process-group=%{GLOBAL} application-group=app2>\n\
             \x20 WSGIRestrictSignal Off\n\
             \x20 WSGISwitchInterval 0.5\n\
             \x20 WSGIRestrictStdout Off\n\
             </WSGIInterpreterOptions>\n\
             WSGIScriptAlias /e1 {APPS}/app.py application-group=app1\n\
             WSGIScriptAlias /e2 {APPS}/app.py application-group=app2\n\
             WSGIScriptAlias /d1 {APPS}/app.py process-group=d1 application-group=app1\n\
             WSGIScriptAlias /d2 {APPS}/app.py process-group=d1 application-group=app2",
        )
        .start();
    let e1 = apache.get("/e1").fields();
    let e2 = apache.get("/e2").fields();
    let d1 = apache.get("/d1").fields();
    let d2 = apache.get("/d2").fields();
    // Each layer goes in front of the one before: the most specific block's directories first.
    assert_eq!(e1["path"], "/oxwsgi-pp/app1a,/oxwsgi-pp/app1b,/oxwsgi-pp/any,/oxwsgi-pp/top", "{e1:?}");
    assert_eq!(e2["path"], "/oxwsgi-pp/any,/oxwsgi-pp/top", "{e2:?}");
    // In a daemon the base layer is python-path=, not WSGIPythonPath. The app1 and d1 blocks
    // are equally specific (one selector each): the later one, d1, goes in front.
    assert_eq!(
        d1["path"], "/oxwsgi-pp/d1,/oxwsgi-pp/app1a,/oxwsgi-pp/app1b,/oxwsgi-pp/any,/oxwsgi-pp/daemon",
        "{d1:?}"
    );
    assert_eq!(d2["path"], "/oxwsgi-pp/d1,/oxwsgi-pp/any,/oxwsgi-pp/daemon", "{d2:?}");
    // A process-group block sets the process's interval; an application-group block may not
    // change the one every interpreter of the shared GIL sees.
    assert_eq!((d1["switch_interval"].as_str(), d2["switch_interval"].as_str()), ("0.02", "0.02"));
    assert_eq!((e1["switch_interval"].as_str(), e2["switch_interval"].as_str()), ("0.005", "0.005"));
    assert!(
        apache.wait_for_log(
            "Skipping per-interpreter switch interval 0.500000s for sub-interpreter 'app2'",
            std::time::Duration::from_secs(5)
        ),
        "{}",
        apache.error_log()
    );
    // WSGIRestrictStdout On (in daemons too, as in mod_wsgi): print() raises mod_wsgi's error,
    // except in embedded app2, whose block (process-group=%{GLOBAL}) turns it off.
    let restricted = "sys.stdout access restricted by mod_wsgi";
    assert_eq!((e1["stdout"].as_str(), e2["stdout"].as_str()), (restricted, "ok"));
    assert_eq!((d1["stdout"].as_str(), d2["stdout"].as_str()), (restricted, restricted));
    // (Path order and switch intervals are as mod_wsgi 6.1.1 gives them for this config.)
    // WSGIRestrictSignal is On in embedded mode; the block turns it off for app2 only.
    assert_eq!((e1["signal_restricted"].as_str(), e2["signal_restricted"].as_str()), ("True", "False"));
    assert_eq!(d1["signal_restricted"], "False", "daemons never restrict signals");
}

#[test]
fn gil_directives_are_accepted_with_mod_wsgis_warning() {
    let t = config_test(
        "WSGIPerInterpreterGIL On\n\
         WSGIFreeThreading Off\n\
         <WSGIInterpreterOptions process-group=d1>\n\
         \x20 WSGIFreeThreading On\n\
         </WSGIInterpreterOptions>\n\
         <WSGIInterpreterOptions application-group=a>\n\
         \x20 WSGIPerInterpreterGIL Off\n\
         \x20 WSGIFreeThreading On\n\
         </WSGIInterpreterOptions>",
    );
    assert!(t.ok, "{t:?}");
    let version = common::python::PYTHON_VERSION;
    let no_free_threading = format!(
        "WSGIFreeThreading On has no effect: this Python build (Python {version}) does not support free-threading"
    );
    let per_interpreter_gil =
        "WSGIPerInterpreterGIL requires Python 3.12 or later; directive has no effect on this build";
    // Sub-interpreters with their own GIL came in Python 3.12: warned about before it only.
    let before_3_12 = ["3.8", "3.9", "3.10", "3.11"].contains(&version);
    for warning in [
        per_interpreter_gil,
        &no_free_threading,
        "WSGIFreeThreading inside <WSGIInterpreterOptions> with application-group= set is ignored",
    ] {
        if warning == per_interpreter_gil && !before_3_12 {
            assert!(!t.output.contains(warning), "{warning:?} on Python {version}:\n{}", t.output);
            continue;
        }
        assert!(t.output.contains(warning), "no {warning:?} in:\n{}", t.output);
    }
}

#[test]
fn bad_sections_are_errors_with_file_and_line() {
    for (snippet, at, message) in [
        ("<WSGIInterpreterOptions user=x>\n</WSGIInterpreterOptions>", 0, "unknown selector 'user'"),
        (
            "<WSGIInterpreterOptions process-group=a process-group=b>\n</WSGIInterpreterOptions>",
            0,
            "process-group given more than once",
        ),
        (
            "<WSGIInterpreterOptions>\nWSGIPythonPath /x\nWSGICallableObject app\n</WSGIInterpreterOptions>",
            0,
            "WSGICallableObject is not allowed inside <WSGIInterpreterOptions>",
        ),
        ("<WSGIInterpreterOptions>\nWSGIPerInterpreterGIL maybe\n</WSGIInterpreterOptions>", 1, "On"),
        (
            "<VirtualHost *:80>\n<WSGIInterpreterOptions>\n</WSGIInterpreterOptions>\n</VirtualHost>",
            1,
            "cannot occur within",
        ),
        ("<WSGIInterpreterOptions>\nWSGISwitchInterval 0\n</WSGIInterpreterOptions>", 1, "WSGISwitchInterval"),
    ] {
        let t = config_test(&format!("WSGIDaemonProcess fine threads=1\n{snippet}"));
        assert!(!t.ok, "{snippet}: apache2 -t accepted it: {t:?}");
        let line = t.snippet_line + 1 + at;
        let want = format!("Syntax error on line {line} of {}", t.path);
        assert!(t.output.contains(&want), "{snippet}: expected {want:?} in:\n{}", t.output);
        assert!(t.output.contains(message), "{snippet}: expected {message:?} in:\n{}", t.output);
    }
}
