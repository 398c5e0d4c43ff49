//! Environment isolation between application groups (src/python/_oxwsgi/environ_isolation.py):
//! every group's os.environ starts from the process environment as it was before any
//! application ran; what one group writes (assignment, setdefault, putenv, del, unsetenv) is
//! never seen by another, whichever is created first; child processes see their own group's
//! environment; request-scoped SetEnv values reach the WSGI environ only.

mod common;
use common::*;
use std::collections::HashMap;

const ENVIRON_APP: &str = include_str!("apps/isolation/environ.wsgi");

/// One embedded child process (event MPM, 8 threads, MaxRequestWorkers 8), with the environ app
/// mounted at each of `mounts` in its own sub-interpreter, and at /g in the main interpreter.
fn start(mounts: &[&str], extra: &str) -> Apache {
    let mut conf = String::from("MaxRequestWorkers 8\n");
    for m in mounts {
        conf.push_str(&format!("WSGIScriptAlias {m} {{APPS}}/isolation/environ.wsgi\n"));
    }
    conf.push_str("WSGIScriptAlias /g {APPS}/isolation/environ.wsgi application-group=%{GLOBAL}\n");
    conf.push_str(extra);
    Apache::builder()
        .app("isolation/environ.wsgi", ENVIRON_APP)
        .env("ISO_BASE", "base")
        .env("ISO_DOOMED", "here")
        .config(&conf)
        .start()
}

struct Answer(HashMap<String, String>);

impl Answer {
    fn get(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or_else(|| panic!("no {k} in {:?}", self.0))
    }
}

#[track_caller]
fn call(apache: &Apache, mount: &str, query: &str) -> Answer {
    let r = apache.get(&format!("{mount}?{query}"));
    if r.status != 200 {
        panic!("{mount}?{query}: {}\n{}\n{}", r.status, r.text(), apache.log_tail(40));
    }
    Answer(r.text().lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect())
}

/// `os.environ.get(key)` in the group at `mount`.
#[track_caller]
fn os_get(apache: &Apache, mount: &str, key: &str) -> String {
    call(apache, mount, &format!("op=get&k={key}")).get("os").to_string()
}

#[test]
fn writes_stay_in_their_group_whichever_is_created_first() {
    let apache = start(&["/a", "/b", "/c", "/d", "/e"], "");
    // /c and the main interpreter exist before anyone writes; /b, /d and /e are created after.
    let pid = call(&apache, "/c", "op=get").get("pid").to_string();
    assert_eq!(os_get(&apache, "/g", "ISO_BASE"), "base");

    // Group /a writes in every way there is.
    call(&apache, "/a", "op=set&k=ISO_SET&v=a");
    assert_eq!(call(&apache, "/a", "op=setdefault&k=ISO_DEFAULT&v=a").get("result"), "a");
    call(&apache, "/a", "op=putenv&k=ISO_PUT&v=a");
    call(&apache, "/a", "op=del&k=ISO_BASE");
    call(&apache, "/a", "op=unsetenv&k=ISO_DOOMED");
    // The main interpreter writes too: it must not leak into sub-interpreters created later.
    call(&apache, "/g", "op=set&k=ISO_GLOBAL&v=g");
    call(&apache, "/g", "op=putenv&k=ISO_GLOBAL_PUT&v=g");
    call(&apache, "/g", "op=setdefault&k=ISO_DEFAULT&v=g");

    // /a sees its own writes (putenv, like CPython's, does not update os.environ).
    assert_eq!(os_get(&apache, "/a", "ISO_SET"), "a");
    assert_eq!(os_get(&apache, "/a", "ISO_DEFAULT"), "a");
    assert_eq!(os_get(&apache, "/a", "ISO_PUT"), "<unset>");
    assert_eq!(os_get(&apache, "/a", "ISO_BASE"), "<unset>");
    assert_eq!(os_get(&apache, "/a", "ISO_DOOMED"), "here"); // unsetenv does not touch os.environ either

    // Nobody else does: neither the group created before (/c) nor those created after (/b, /d).
    for mount in ["/c", "/b", "/d"] {
        assert_eq!(os_get(&apache, mount, "ISO_SET"), "<unset>", "{mount}");
        assert_eq!(os_get(&apache, mount, "ISO_PUT"), "<unset>", "{mount}");
        assert_eq!(os_get(&apache, mount, "ISO_GLOBAL"), "<unset>", "{mount}");
        assert_eq!(os_get(&apache, mount, "ISO_GLOBAL_PUT"), "<unset>", "{mount}");
        assert_eq!(os_get(&apache, mount, "ISO_BASE"), "base", "{mount}: del in /a leaked");
        assert_eq!(os_get(&apache, mount, "ISO_DOOMED"), "here", "{mount}");
        // The Django pattern: setdefault wins in each group.
        let r = call(&apache, mount, &format!("op=setdefault&k=ISO_DEFAULT&v={}", &mount[1..]));
        assert_eq!(r.get("result"), &mount[1..], "{mount}");
    }
    assert_eq!(os_get(&apache, "/g", "ISO_DEFAULT"), "g");
    assert_eq!(os_get(&apache, "/g", "ISO_SET"), "<unset>");
    assert_eq!(os_get(&apache, "/g", "ISO_BASE"), "base");
    assert_eq!(os_get(&apache, "/a", "ISO_DEFAULT"), "a");

    // Children of the last group created see only the pristine environment.
    let r = call(&apache, "/e", "op=subprocess&k=ISO_PUT");
    assert_eq!(r.get("child"), "<unset>");
    let r = call(&apache, "/e", "op=subprocess&k=ISO_GLOBAL_PUT");
    assert_eq!(r.get("child"), "<unset>");
    let r = call(&apache, "/e", "op=system&k=ISO_BASE");
    assert_eq!(r.get("child"), "base");

    // All of this happened in one process, with one interpreter per mount.
    let mut groups = std::collections::HashSet::new();
    for mount in ["/a", "/b", "/c", "/d", "/e", "/g"] {
        let r = call(&apache, mount, "op=get");
        assert_eq!(r.get("pid"), pid, "{mount} ran in another process");
        groups.insert(r.get("group").to_string());
    }
    assert_eq!(groups.len(), 6, "{groups:?}");
}

#[test]
fn child_processes_see_their_groups_environment() {
    let apache = start(&["/a", "/b"], "");
    call(&apache, "/a", "op=set&k=ISO_CHILD&v=from-a");
    call(&apache, "/a", "op=putenv&k=ISO_PUT_ONLY&v=put-a");
    call(&apache, "/a", "op=del&k=ISO_BASE");
    call(&apache, "/g", "op=set&k=ISO_CHILD&v=from-g");
    for op in ["subprocess", "python", "popen", "system"] {
        let a = |k: &str| call(&apache, "/a", &format!("op={op}&k={k}")).get("child").to_string();
        assert_eq!(a("ISO_CHILD"), "from-a", "{op}");
        assert_eq!(a("ISO_PUT_ONLY"), "put-a", "{op}: os.putenv reaches children, as in a process of its own");
        assert_eq!(a("ISO_BASE"), "<unset>", "{op}: a deleted variable is gone for children");
        assert_eq!(a("ISO_DOOMED"), "here", "{op}");
        let b = |k: &str| call(&apache, "/b", &format!("op={op}&k={k}")).get("child").to_string();
        assert_eq!(b("ISO_CHILD"), "<unset>", "{op}");
        assert_eq!(b("ISO_PUT_ONLY"), "<unset>", "{op}");
        assert_eq!(b("ISO_BASE"), "base", "{op}");
        let g = call(&apache, "/g", &format!("op={op}&k=ISO_CHILD"));
        assert_eq!(g.get("child"), "from-g", "{op}");
    }
    // unsetenv removes a variable from children only.
    call(&apache, "/b", "op=unsetenv&k=ISO_DOOMED");
    let r = call(&apache, "/b", "op=subprocess&k=ISO_DOOMED");
    assert_eq!((r.get("child"), r.get("os")), ("<unset>", "here"));
    let r = call(&apache, "/a", "op=subprocess&k=ISO_DOOMED");
    assert_eq!(r.get("child"), "here");
}

#[test]
fn request_setenv_reaches_environ_but_not_os_environ() {
    let apache =
        start(&["/a", "/b"], "SetEnv ISO_REQUEST from-setenv\n<Location /b>\nSetEnv ISO_ONLY_B b-only\n</Location>\n");
    for mount in ["/a", "/b", "/g"] {
        let r = call(&apache, mount, "op=subprocess&k=ISO_REQUEST");
        assert_eq!(r.get("environ"), "from-setenv", "{mount}");
        assert_eq!(r.get("os"), "<unset>", "{mount}: SetEnv must not be written into os.environ");
        assert_eq!(r.get("child"), "<unset>", "{mount}");
    }
    let r = call(&apache, "/b", "op=get&k=ISO_ONLY_B");
    assert_eq!((r.get("environ"), r.get("os")), ("b-only", "<unset>"));
    let r = call(&apache, "/a", "op=get&k=ISO_ONLY_B");
    assert_eq!(r.get("environ"), "<unset>");
    // And the process environment is still there, in os.environ only.
    let r = call(&apache, "/a", "op=get&k=ISO_BASE");
    assert_eq!((r.get("os"), r.get("environ")), ("base", "<unset>"));
}
