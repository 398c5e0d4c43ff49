//! The directives that set how Python starts, seen from inside the app in an Apache child and
//! in a daemon process: WSGIPythonWarnings, WSGIDontWriteBytecode, WSGIPythonHashSeed, WSGIPythonOptimize and
//! WSGIPythonEggs, WSGISwitchInterval (`switch-interval=` in a daemon).

mod common;

use common::Apache;

const APP: &str = r#"
import os, sys

def application(environ, start_response):
    out = [
        "warnoptions=%s" % ",".join(sys.warnoptions),
        "dont_write_bytecode=%s" % sys.dont_write_bytecode,
        "hash=%d" % hash("oxwsgi"),
        "hash_randomization=%d" % sys.flags.hash_randomization,
        "eggs=%s" % os.environ.get("PYTHON_EGG_CACHE", "-"),
        "switch_interval=%g" % sys.getswitchinterval(),
        "optimize=%d" % sys.flags.optimize,
    ]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("\n".join(out) + "\n").encode()]
"#;

fn facts(apache: &Apache, path: &str) -> std::collections::BTreeMap<String, String> {
    apache.get(path).fields()
}

#[test]
fn python_start_options_apply_to_children_and_daemons() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIPythonWarnings ignore::DeprecationWarning\n\
             WSGIPythonWarnings error::ResourceWarning\n\
             WSGIDontWriteBytecode On\n\
             WSGIPythonHashSeed 42\n\
             WSGIPythonEggs /tmp/oxwsgi-embedded-eggs\n\
             WSGISwitchInterval 0.25\n\
             WSGIPythonOptimize 2\n\
             WSGIDaemonProcess opts threads=1 switch-interval=0.125\n\
             WSGIScriptAlias /emb {APPS}/app.py\n\
             WSGIScriptAlias /dmn {APPS}/app.py process-group=opts",
        )
        .start();
    let e = facts(&apache, "/emb");
    let d = facts(&apache, "/dmn");
    for f in [&e, &d] {
        assert_eq!(f["warnoptions"], "ignore::DeprecationWarning,error::ResourceWarning", "{f:?}");
        assert_eq!(f["dont_write_bytecode"], "True", "{f:?}");
        assert_eq!(f["optimize"], "2", "{f:?}");
    }
    // Seed 42: the hash Python gives with PYTHONHASHSEED=42, in a child and in a daemon.
    let out = std::process::Command::new(common::python::PYTHON)
        .args(["-c", "print(hash('oxwsgi'))"])
        .env("PYTHONHASHSEED", "42")
        .output()
        .unwrap();
    let want = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(e["hash"], want);
    assert_eq!(d["hash"], want);
    assert_eq!((e["switch_interval"].as_str(), d["switch_interval"].as_str()), ("0.25", "0.125"));
    assert_eq!(e["eggs"], "/tmp/oxwsgi-embedded-eggs");
    assert_eq!(d["eggs"], "-", "daemons take python-eggs=, not WSGIPythonEggs");
}

#[test]
fn without_them_python_keeps_its_defaults() {
    let apache = Apache::builder().app("app.py", APP).config("WSGIScriptAlias /emb {APPS}/app.py").start();
    let e = facts(&apache, "/emb");
    assert_eq!(e["warnoptions"], "");
    assert_eq!(e["dont_write_bytecode"], "False");
    assert_eq!(e["hash_randomization"], "1");
    assert_eq!(e["switch_interval"], "0.005");
    assert_eq!(e["optimize"], "0");
}
