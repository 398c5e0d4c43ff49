//! Daemon-mode script reloading as mod_wsgi does it: a changed WSGI script restarts the daemon
//! process (so every module the script imported is loaded fresh), the request that found the
//! change is answered by the new process, and no request of a stream fails meanwhile.

mod common;

use std::fs;
use std::time::{Duration, Instant, SystemTime};

use common::Apache;

const HELPER_V1: &str = "VALUE = 'helper-1'\n";
const HELPER_V2: &str = "VALUE = 'helper-2'\n";

fn app(v: u32) -> String {
    format!(
        "import os, helper\n\nVERSION = {v}\n\n\ndef application(environ, start_response):\n    \
         start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
         return [('v%d %s %d' % (VERSION, helper.VALUE, os.getpid())).encode()]\n"
    )
}

fn answer(apache: &Apache, path: &str) -> (String, String, u32) {
    let r = apache.get(path);
    r.assert_status(200);
    let t = r.text();
    let mut w = t.split(' ');
    (w.next().unwrap().to_string(), w.next().unwrap().to_string(), w.next().unwrap().parse().unwrap())
}

#[test]
fn a_changed_script_restarts_the_daemon_and_loads_every_module_fresh() {
    let apache = Apache::builder()
        .app("reload/app.wsgi", app(1))
        .app("reload/lib/helper.py", HELPER_V1)
        .config(
            "WSGIDaemonProcess rel processes=1 threads=2 python-path={APPS}/reload/lib\n\
             WSGIScriptAlias /rel {APPS}/reload/app.wsgi process-group=rel\n\
             WSGIDaemonProcess still processes=1 threads=2 python-path={APPS}/reload/lib\n\
             WSGIScriptAlias /still {APPS}/reload/app.wsgi process-group=still\n\
             <Location /still>\n\
             WSGIScriptReloading Off\n\
             </Location>",
        )
        .start();
    let (v, h, pid) = answer(&apache, "/rel");
    assert_eq!((v.as_str(), h.as_str()), ("v1", "helper-1"));
    let (_, _, still_pid) = answer(&apache, "/still");

    // New code in both files; only the script's mtime is what mod_wsgi watches.
    fs::write(apache.app_path("reload/lib/helper.py"), HELPER_V2).unwrap();
    let script = apache.app_path("reload/app.wsgi");
    fs::write(&script, app(2)).unwrap();
    let later = SystemTime::now() + Duration::from_secs(10);
    fs::File::options().write(true).open(&script).unwrap().set_modified(later).unwrap();

    // The very next request is answered with the new code, by a new process: nothing fails.
    let (v, h, new_pid) = answer(&apache, "/rel");
    assert_eq!((v.as_str(), h.as_str()), ("v2", "helper-2"), "{}", apache.error_log());
    assert_ne!(new_pid, pid, "the daemon process was restarted");
    // A stream of requests meanwhile and after: every one answered by the new code.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 0;
    while Instant::now() < deadline && n < 50 {
        let (v, _, p) = answer(&apache, "/rel");
        assert_eq!((v.as_str(), p), ("v2", new_pid));
        n += 1;
    }
    assert!(apache.error_log().contains("changed: restarting to load it"), "{}", apache.error_log());
    // WSGIScriptReloading Off: the same process keeps the code it loaded.
    let (v, h, p) = answer(&apache, "/still");
    assert_eq!((v.as_str(), h.as_str(), p), ("v1", "helper-1", still_pid));
}

/// A script whose answer names the load of it that answers ("pid-nanoseconds" at import).
/// `?strip` first deletes its module's `__mtime__` (as mod_wsgi's suite does); with `raising`
/// its `reload_required()` raises.
fn load_id_script(raising: bool) -> String {
    let check = if raising {
        "def reload_required(resource):\n    raise RuntimeError('reload_required-raised-' + resource)\n\n"
    } else {
        ""
    };
    format!(
        "import os, sys, time\n\nLOAD_ID = '%d-%d' % (os.getpid(), time.time_ns())\n\n{check}\
         def application(environ, start_response):\n    \
             if environ.get('QUERY_STRING') == 'strip':\n        \
                 sys.modules[__name__].__dict__.pop('__mtime__', None)\n    \
             start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
             return [LOAD_ID.encode()]\n"
    )
}

/// As mod_wsgi 6 decides: a `reload_required()` that raises is logged and keeps the loaded
/// script (reloading on every request would restart the daemon on every request), and a
/// script module that has lost its `__mtime__` is loaded again.
#[test]
fn a_raising_reload_required_keeps_the_script_and_a_lost_mtime_reloads_it() {
    let apache = Apache::builder()
        .app("checks/raising.wsgi", load_id_script(true))
        .app("checks/plain.wsgi", load_id_script(false))
        .config(
            "WSGIDaemonProcess checks processes=1 threads=2\n\
             WSGIScriptAlias /raising {APPS}/checks/raising.wsgi process-group=checks application-group=%{GLOBAL}\n\
             WSGIScriptAlias /plain {APPS}/checks/plain.wsgi process-group=checks",
        )
        .start();
    let id = |path: &str| {
        let r = apache.get(path);
        r.assert_status(200);
        r.text()
    };
    let first = id("/raising");
    assert_eq!(id("/raising"), first, "reloaded although reload_required() raised");
    assert_eq!(id("/raising"), first);
    let script = apache.app_path("checks/raising.wsgi").display().to_string();
    assert!(apache.wait_for_log(&format!("RuntimeError: reload_required-raised-{script}"), Duration::from_secs(5)));
    assert!(
        apache.error_log().contains(&format!(
            "WSGI0174: [script {script}] RuntimeError exception raised processing WSGI script '{script}' \
             for main interpreter of daemon process 'checks'."
        )),
        "{}",
        apache.log_tail(30)
    );

    let plain = id("/plain");
    assert_eq!(id("/plain"), plain, "reloaded with its __mtime__ in place");
    // The request that strips __mtime__ is answered by the module it ran in; the next one
    // finds no __mtime__ and the script is loaded again (here: in a new process).
    assert_eq!(id("/plain?strip"), plain);
    let reloaded = id("/plain");
    assert_ne!(reloaded, plain, "not reloaded without __mtime__: {}", apache.log_tail(30));
    assert_eq!(id("/plain"), reloaded);
}
