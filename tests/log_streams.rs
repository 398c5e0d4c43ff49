//! The types applications meet, as mod_wsgi 6's tests/wsgi (logging, environ, restrict) check
//! them: wsgi.errors an io.TextIOWrapper whose `.buffer` takes bytes, bytearray and memoryview
//! (write and writelines), wsgi.input a mod_wsgi.Input, wsgi.file_wrapper mod_wsgi.FileWrapper,
//! sys.stdin a mod_wsgi.Restricted under WSGIRestrictStdin.

mod common;

use std::time::Duration;

use common::Apache;

const APP: &str = r#"
import sys

def qualname(v):
    t = v if isinstance(v, type) else type(v)
    return t.__module__ + '.' + t.__name__

def application(environ, start_response):
    tag = environ['QUERY_STRING']
    errors = environ['wsgi.errors']
    errors.buffer.write(b'BUFFER_BYTES_' + tag.encode() + b'\n')
    errors.buffer.write(bytearray(b'BUFFER_BYTEARRAY_' + tag.encode() + b'\n'))
    errors.buffer.write(memoryview(b'BUFFER_MEMORYVIEW_' + tag.encode() + b'\n'))
    errors.buffer.writelines([b'WL_BYTES_' + tag.encode() + b'\n', bytearray(b'WL_BYTEARRAY\n'),
                              memoryview(b'WL_MEMORYVIEW\n')])
    errors.writelines(['TEXT_A_' + tag + '\n', 'TEXT_B\n'])
    try:
        sys.stdin.read()
        stdin = 'readable'
    except OSError as e:
        stdin = 'RESTRICTED:' + str(e)
    out = [
        qualname(environ['wsgi.input']),
        qualname(errors),
        qualname(environ['wsgi.file_wrapper']),
        qualname(type(sys.stdin)),  # (isinstance() would touch the restricted object)
        stdin,
        qualname(sys.stderr),
    ]
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('\n'.join(out) + '\n').encode()]
"#;

fn check(daemon: bool) {
    let mut b = Apache::builder().app("types.wsgi", APP).config("WSGIRestrictStdin On");
    if daemon {
        b = b.config("WSGIDaemonProcess types threads=2\nWSGIProcessGroup types");
    }
    let apache = b.config("WSGIScriptAlias /types {APPS}/types.wsgi").start();
    let tag = if daemon { "d" } else { "e" };
    let r = apache.get(&format!("/types?{tag}"));
    r.assert_status(200);
    assert_eq!(
        r.text(),
        "mod_wsgi.Input\n_io.TextIOWrapper\nmod_wsgi.FileWrapper\nmod_wsgi.Restricted\n\
         RESTRICTED:sys.stdin access restricted by mod_wsgi\n_io.TextIOWrapper\n"
    );
    for line in [
        format!("BUFFER_BYTES_{tag}"),
        format!("BUFFER_BYTEARRAY_{tag}"),
        format!("BUFFER_MEMORYVIEW_{tag}"),
        format!("WL_BYTES_{tag}"),
        format!("TEXT_A_{tag}"),
    ] {
        assert!(apache.wait_for_log(&line, Duration::from_secs(5)), "{line} not logged\n{}", apache.log_tail(20));
    }
    for line in ["WL_BYTEARRAY", "WL_MEMORYVIEW", "TEXT_B"] {
        assert!(apache.wait_for_log(line, Duration::from_secs(5)), "{line} not logged");
    }
}

#[test]
fn stream_and_input_types_are_mod_wsgis_embedded() {
    check(false);
}

#[test]
fn stream_and_input_types_are_mod_wsgis_daemon() {
    check(true);
}

/// mod_wsgi 6's info line for each script (re)load, naming the interpreter and process.
#[test]
fn script_loads_are_logged_as_mod_wsgi_6_does() {
    let apache = Apache::builder()
        .app("hello.wsgi", "def application(e, sr):\n    sr('200 OK', [])\n    return [b'hi']\n")
        .config("WSGIDaemonProcess loads threads=1\nWSGIScriptAlias /d {APPS}/hello.wsgi process-group=loads")
        .config("WSGIScriptAlias /e {APPS}/hello.wsgi")
        .start();
    apache.get("/d").assert_status(200);
    let path = apache.app_path("hello.wsgi");
    let line = format!("Loading WSGI script '{}' into sub-interpreter '", path.display());
    assert!(apache.wait_for_log(&line, Duration::from_secs(5)), "{line}\n{}", apache.log_tail(20));
    assert!(apache.wait_for_log("' of daemon process 'loads'.", Duration::from_secs(5)), "{}", apache.log_tail(20));
    // In embedded mode a changed script is loaded again into the same interpreter (a daemon
    // process restarts instead, and loads it anew).
    apache.get("/e").assert_status(200);
    assert!(apache.wait_for_log("' in embedded mode.", Duration::from_secs(5)), "{}", apache.log_tail(20));
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&path, "def application(e, sr):\n    sr('200 OK', [])\n    return [b'again']\n").unwrap();
    // (Several Apache children may each load it; one that had it reloads it.)
    let line = format!("Reloading WSGI script '{}' into sub-interpreter '", path.display());
    for _ in 0..20 {
        assert_eq!(apache.get("/e").text(), "again");
        if apache.error_log().contains(&line) {
            return;
        }
    }
    panic!("{line}\n{}", apache.log_tail(20));
}

const REUSE_APP: &str = r#"
import weakref

state = {}

def application(environ, start_response):
    errors = environ['wsgi.errors']
    step = environ['QUERY_STRING']
    if step == 'watch':
        state['weak'] = weakref.ref(errors)
        out = 'watching'
    elif step == 'keep':
        state['kept'] = errors
        out = 'kept'
    elif step == 'check':
        kept = state.get('kept')
        out = 'weak:%s kept:%s' % (state['weak']() is errors, kept is errors)
        if kept is not None:
            kept.write('LATE_LINE_FROM_A_KEPT_STREAM\n')
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [out.encode()]
"#;

/// wsgi.errors is given back for the next request when the request ends and nothing refers to
/// it (making one is most of what an empty request costs in Python); one an application kept is
/// never handed to another request, and still logs.
#[test]
fn only_a_wsgi_errors_nothing_refers_to_serves_a_next_request() {
    let apache = Apache::builder()
        .app("reuse.wsgi", REUSE_APP)
        .config("WSGIDaemonProcess reuse processes=1 threads=1\nWSGIProcessGroup reuse")
        .config("WSGIScriptAlias /reuse {APPS}/reuse.wsgi")
        .start();
    assert_eq!(apache.get("/reuse?watch").text(), "watching");
    // Only a weak reference was left: the next request has the same stream.
    assert_eq!(apache.get("/reuse?check").text(), "weak:True kept:False");
    assert_eq!(apache.get("/reuse?watch").text(), "watching");
    assert_eq!(apache.get("/reuse?keep").text(), "kept");
    // The kept stream is not handed on.
    assert_eq!(apache.get("/reuse?check").text(), "weak:False kept:False");
    assert!(apache.wait_for_log("LATE_LINE_FROM_A_KEPT_STREAM", Duration::from_secs(5)), "{}", apache.log_tail(20));
}
