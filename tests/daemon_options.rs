//! WSGIDaemonProcess options that set the daemon process itself, seen from inside the app:
//! python-eggs, cpu-time-limit, memory-limit, virtual-memory-limit, cpu-priority,
//! supplementary-groups, stack-size; send-buffer-size/receive-buffer-size on the group's socket;
//! and mod_wsgi-express's empty `python-path=''`.

mod common;

use common::Apache;

const APP: &str = r#"
import os, resource, threading

def application(environ, start_response):
    cpu = resource.getrlimit(resource.RLIMIT_CPU)
    out = [
        "eggs=%s" % os.environ.get("PYTHON_EGG_CACHE", "-"),
        "cpu=%d,%d" % cpu,
        "data=%d" % resource.getrlimit(resource.RLIMIT_DATA)[0],
        "as=%d" % resource.getrlimit(resource.RLIMIT_AS)[0],
        "nice=%d" % os.getpriority(os.PRIO_PROCESS, 0),
        "groups=%s" % ",".join(str(g) for g in sorted(os.getgroups())),
    ]
    body = ("\n".join(out) + "\n").encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"#;

fn facts(apache: &Apache, path: &str) -> std::collections::BTreeMap<String, String> {
    apache.get(path).fields()
}

#[test]
fn process_options_apply_to_the_daemon() {
    // adm (gid 4) exists on every Debian system; www-data is not in it.
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess limited threads=2 python-path='' python-eggs=/tmp/oxwsgi-eggs \
             cpu-time-limit=600 memory-limit=2000000000 virtual-memory-limit=8000000000 \
             cpu-priority=5 supplementary-groups=adm stack-size=1048576 \
             send-buffer-size=65536 receive-buffer-size=65536\n\
             WSGIDaemonProcess plain threads=2\n\
             WSGIScriptAlias /limited {APPS}/app.py process-group=limited\n\
             WSGIScriptAlias /plain {APPS}/app.py process-group=plain",
        )
        .start();
    let f = facts(&apache, "/limited");
    assert_eq!(f["eggs"], "/tmp/oxwsgi-eggs", "{f:?}");
    assert_eq!(f["cpu"], "600,601", "{f:?}");
    assert_eq!(f["data"], "2000000000", "{f:?}");
    assert_eq!(f["as"], "8000000000", "{f:?}");
    assert_eq!(f["nice"], "5", "{f:?}");
    assert!(f["groups"].split(',').any(|g| g == "4"), "{f:?}");

    // Without the options, nothing is changed.
    let p = facts(&apache, "/plain");
    assert_eq!(p["eggs"], "-", "{p:?}");
    assert_ne!(p["cpu"], "600,601", "{p:?}");
    assert_eq!(p["nice"], "0", "{p:?}");
    assert!(!p["groups"].split(',').any(|g| g == "4"), "{p:?}");
    let log = apache.error_log();
    assert!(!log.contains("not implemented"), "{log}");
}

#[test]
fn an_unknown_supplementary_group_stops_the_daemon_with_a_clear_line() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess bad threads=1 supplementary-groups=no-such-group-oxwsgi\n\
             WSGIScriptAlias /bad {APPS}/app.py process-group=bad",
        )
        .start();
    assert!(
        apache.wait_for_log("no group named 'no-such-group-oxwsgi'", std::time::Duration::from_secs(10)),
        "{}",
        apache.error_log()
    );
}
