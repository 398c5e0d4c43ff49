//! WSGIPerInterpreterGIL On (PEP 684, Python 3.12 or later): each sub-interpreter has its own
//! GIL, so two CPU-bound applications in two application groups of one process run at the same
//! time, in an embedded child and in a daemon process; a `<WSGIInterpreterOptions>` block turns
//! it off for its groups, which then take turns on the one GIL. An extension module that uses
//! single-phase init cannot load in an own-GIL interpreter: its import fails with CPython's
//! ImportError, answered with a 500, the traceback and the fix in the log; with the shared GIL
//! it loads. On Python 3.11 the directive has no effect (its warning is tested in
//! tests/interpreter_options.rs): these tests are skipped there.

mod common;

use common::python::{PYTHON, PYTHON_VERSION};
use common::Apache;
use std::collections::BTreeMap;
use std::process::Command;

/// Runs a CPU-bound loop for `?cpu=` seconds of this thread's CPU time and reports when it
/// started and ended (CLOCK_MONOTONIC, the same clock in every process) and the CPU it used.
/// Runs a CPU-bound loop for `?cpu=` seconds of this thread's CPU time and reports when it
/// started and ended (CLOCK_MONOTONIC, the same clock in every process), the CPU it used and
/// when it was running: consecutive loop steps less than 1 ms apart make one running interval
/// (a thread that waits for a GIL or for a core shows a longer gap).
const APP: &str = r#"
import os, time

def application(environ, start_response):
    want = float(environ.get("QUERY_STRING", "").partition("=")[2] or 0)
    start, cpu0 = time.monotonic(), time.thread_time()
    running, first, last = [], start, start
    while time.thread_time() - cpu0 < want:
        sum(range(200))
        now = time.monotonic()
        if now - last > 0.001:
            running.append("%r:%r" % (first, last))
            first = now
        last = now
    running.append("%r:%r" % (first, last))
    out = [
        "start=%r" % start,
        "end=%r" % time.monotonic(),
        "cpu=%r" % (time.thread_time() - cpu0),
        "running=%s" % ",".join(running),
        "pid=%d" % os.getpid(),
        "group=%s" % environ["mod_wsgi.application_group"],
    ]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("\n".join(out) + "\n").encode()]
"#;

/// Imports `oxwsgi_single` (built by the test from SINGLE_PHASE_C, next to this script).
const IMPORT_APP: &str = r#"
import os, sys
sys.path.insert(0, os.path.dirname(__file__))

def application(environ, start_response):
    import oxwsgi_single
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"imported=%s\n" % oxwsgi_single.__name__.encode()]
"#;

/// An extension module with single-phase init (`m_size = -1`, PyModule_Create): the kind that
/// CPython refuses in an interpreter that checks for multi-interpreter support.
const SINGLE_PHASE_C: &str = r#"
#include <Python.h>
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "oxwsgi_single", NULL, -1, NULL};
PyMODINIT_FUNC PyInit_oxwsgi_single(void) { return PyModule_Create(&def); }
"#;

/// False (with a message) on a Python without per-interpreter GILs.
fn supported() -> bool {
    let minor: u32 = PYTHON_VERSION.strip_prefix("3.").and_then(|m| m.parse().ok()).unwrap_or(0);
    if minor < 12 {
        eprintln!(
            "skipped: oxwsgi is built for Python {PYTHON_VERSION}; sub-interpreters with their own GIL need 3.12 \
             or later (build with `make build PYTHON=/usr/bin/python3.13`, or run in scripts/distro-root)"
        );
        return false;
    }
    true
}

/// Embedded groups a, b (own GIL) and c, d (a block turns it off), the same four in daemon d1.
fn config() -> &'static str {
    "WSGIPerInterpreterGIL On\n\
     <WSGIInterpreterOptions application-group=c>\n\
     \x20 WSGIPerInterpreterGIL Off\n\
     </WSGIInterpreterOptions>\n\
     <WSGIInterpreterOptions application-group=d>\n\
     \x20 WSGIPerInterpreterGIL Off\n\
     </WSGIInterpreterOptions>\n\
     WSGIDaemonProcess d1 processes=1 threads=4\n\
     WSGIScriptAlias /ea {APPS}/app.py application-group=a\n\
     WSGIScriptAlias /eb {APPS}/app.py application-group=b\n\
     WSGIScriptAlias /ec {APPS}/app.py application-group=c\n\
     WSGIScriptAlias /ed {APPS}/app.py application-group=d\n\
     WSGIScriptAlias /da {APPS}/app.py process-group=d1 application-group=a\n\
     WSGIScriptAlias /db {APPS}/app.py process-group=d1 application-group=b\n\
     WSGIScriptAlias /dc {APPS}/app.py process-group=d1 application-group=c\n\
     WSGIScriptAlias /dd {APPS}/app.py process-group=d1 application-group=d\n\
     WSGIScriptAlias /import-own {APPS}/import.py application-group=a\n\
     WSGIScriptAlias /import-shared {APPS}/import.py application-group=c\n\
     WSGIScriptAlias /dimport-own {APPS}/import.py process-group=d1 application-group=a\n"
}

/// The running intervals an app reported.
fn intervals(f: &BTreeMap<String, String>) -> Vec<(f64, f64)> {
    let n = |x: &str| -> f64 { x.parse().unwrap_or_else(|_| panic!("{x} in {f:?}")) };
    f["running"].split(',').map(|iv| iv.split_once(':').map(|(a, b)| (n(a), n(b))).expect("start:end")).collect()
}

/// Both paths requested at once, each for `cpu` seconds of CPU: for how many seconds both were
/// running at the same moment (none with one GIL; with two, as long as the machine gave both
/// threads a core at once), and the two reports.
fn run_pair(apache: &Apache, paths: [&str; 2], cpu: f64) -> (f64, [BTreeMap<String, String>; 2]) {
    let fields = std::thread::scope(|s| {
        let handles = paths.map(|p| s.spawn(move || apache.get(&format!("{p}?cpu={cpu}")).fields()));
        handles.map(|h| h.join().expect("request thread"))
    });
    let (a, b) = (intervals(&fields[0]), intervals(&fields[1]));
    let mut both = 0.0;
    for &(s1, e1) in &a {
        for &(s2, e2) in &b {
            both += (e1.min(e2) - s1.max(s2)).max(0.0);
        }
    }
    (both, fields)
}

/// The tests of this file one at a time: the timing one needs the CPUs it can get.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn two_cpu_bound_groups_run_at_once_with_their_own_gils() {
    if !supported() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let apache = Apache::builder().app("app.py", APP).app("import.py", IMPORT_APP).config(config()).start();
    // Each interpreter made first (not timed).
    for p in ["/ea", "/eb", "/ec", "/ed", "/da", "/db", "/dc", "/dd"] {
        apache.get(p).fields();
    }
    // The machine may be busy (two cores shared with other builds), so wall-clock bounds would
    // not hold: what is measured is how long both loops ran at the same moment. With one GIL
    // they take turns (a little slack for clock reads at each hand-over); with two they overlap
    // whenever the machine runs both threads at once.
    let cpu = 0.5;
    for (own, shared, mode) in
        [(["/ea", "/eb"], ["/ec", "/ed"], "embedded"), (["/da", "/db"], ["/dc", "/dd"], "daemon")]
    {
        let (mut parallel, mut serial) = (0.0f64, 0.0f64);
        for _ in 0..3 {
            let (p, f) = run_pair(&apache, own, cpu);
            assert_eq!(f[0]["pid"], f[1]["pid"], "{mode}: both in one process");
            let (s, g) = run_pair(&apache, shared, cpu);
            assert_eq!(g[0]["pid"], g[1]["pid"], "{mode}: both in one process");
            (parallel, serial) = (parallel.max(p), serial.max(s));
        }
        eprintln!("{mode}: seconds both ran at once (best of 3 rounds of {cpu}s CPU each): own GIL {parallel:.3}, shared GIL {serial:.3}");
        assert!(serial <= 0.02, "{mode}: shared-GIL groups ran at once for {serial:.3}s");
        assert!(parallel >= 0.05, "{mode}: own-GIL groups never ran at once ({parallel:.3}s)");
    }
}

/// Builds oxwsgi_single for the Python under test; None (with a message) without a C compiler.
fn single_phase_extension() -> Option<(String, Vec<u8>)> {
    let dir = std::env::temp_dir().join(format!("oxwsgi-single-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("single.c");
    std::fs::write(&src, SINGLE_PHASE_C).unwrap();
    let info = Command::new(PYTHON)
        .args(["-c", "import sysconfig as s; print(s.get_paths()['include']); print(s.get_config_var('EXT_SUFFIX'))"])
        .output()
        .expect("python");
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    let mut lines = info.lines();
    let (include, suffix) = (lines.next().unwrap_or(""), lines.next().unwrap_or(".so"));
    let out = dir.join(format!("oxwsgi_single{suffix}"));
    let built =
        Command::new("cc").args(["-shared", "-fPIC", "-o"]).arg(&out).arg(format!("-I{include}")).arg(&src).output();
    let result = match built {
        Ok(o) if o.status.success() => Some((format!("oxwsgi_single{suffix}"), std::fs::read(&out).unwrap())),
        Ok(o) => {
            eprintln!("skipped: cannot build a C extension: {}", String::from_utf8_lossy(&o.stderr));
            None
        }
        Err(e) => {
            eprintln!("skipped: no C compiler (cc): {e}");
            None
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn a_single_phase_extension_fails_its_import_with_the_fix_in_the_log() {
    if !supported() {
        return;
    }
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some((name, so)) = single_phase_extension() else { return };
    let apache =
        Apache::builder().app("app.py", APP).app("import.py", IMPORT_APP).app(&name, so).config(config()).start();
    // With the shared GIL (the block turns it off for group c) the module loads as before.
    assert_eq!(apache.get("/import-shared").fields()["imported"], "oxwsgi_single");
    for path in ["/import-own", "/dimport-own"] {
        apache.get(path).assert_status(500);
    }
    for needle in [
        "ImportError: module oxwsgi_single does not support loading in subinterpreters",
        "run the application in the main interpreter with 'WSGIApplicationGroup %{GLOBAL}'",
        "or leave WSGIPerInterpreterGIL off for it",
    ] {
        assert!(
            apache.wait_for_log(needle, std::time::Duration::from_secs(5)),
            "no {needle:?} in the log:\n{}",
            apache.error_log()
        );
    }
    // Both times (embedded and daemon), and the processes go on serving.
    assert_eq!(apache.count_in_log("or leave WSGIPerInterpreterGIL off for it"), 2, "{}", apache.error_log());
    apache.get("/ea").fields();
    apache.get("/da").fields();
}
