//! Embedded mode over time: script reloading, stopping and gracefully restarting Apache with
//! Python interpreters in its children, and a comparison with Debian's mod_wsgi.

mod apps;
mod common;

use std::fs;
use std::time::{Duration, SystemTime};

use apps::{get, report, ENV_APP};
use common::eventually;
use common::{alive_pids, Apache, Mpm};

fn versioned(version: &str) -> String {
    format!(
        "VERSION = b'{version}'\n\
         def application(environ, start_response):\n    \
             start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
             return [VERSION]\n"
    )
}

/// Rewrite an app file and move its mtime forward (so the change is seen even within the
/// file system's timestamp granularity).
fn rewrite(apache: &Apache, name: &str, contents: &str, bump_secs: u64) {
    let path = apache.app_path(name);
    fs::write(&path, contents).unwrap();
    let f = fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(bump_secs)).unwrap();
}

#[test]
fn script_reloading() {
    let apache = Apache::builder()
        .app("on.wsgi", versioned("v1"))
        .app("off.wsgi", versioned("v1"))
        .config("WSGIScriptAlias /on {APPS}/on.wsgi")
        .config("WSGIScriptAlias /off {APPS}/off.wsgi")
        .config("<Location /off>\n    WSGIScriptReloading Off\n</Location>")
        .config("MaxRequestWorkers 8")
        .start();
    assert_eq!(apache.get("/on").text(), "v1");
    assert_eq!(apache.get("/off").text(), "v1");

    rewrite(&apache, "on.wsgi", &versioned("v2"), 10);
    rewrite(&apache, "off.wsgi", &versioned("v2"), 10);
    assert_eq!(apache.get("/on").text(), "v2", "default WSGIScriptReloading On: change not seen");
    assert_eq!(apache.get("/off").text(), "v1", "WSGIScriptReloading Off: code reloaded anyway");

    // Again, and a broken edit: a 500 (the error logged), then fixed again.
    rewrite(&apache, "on.wsgi", "def broken(:\n", 20);
    apache.get("/on").assert_status(500);
    assert!(apache.wait_for_log("SyntaxError", Duration::from_secs(5)));
    rewrite(&apache, "on.wsgi", &versioned("v3"), 30);
    assert_eq!(apache.get("/on").text(), "v3");
    assert_eq!(apache.get("/off").text(), "v1");
}

/// Requests in several interpreters, then a stop that is quick and leaves nothing behind.
#[test]
fn stop_is_quick_after_requests_in_several_interpreters() {
    for mpm in [Mpm::Event, Mpm::Prefork] {
        let apache = Apache::builder()
            .mpm(mpm)
            .app("env.wsgi", ENV_APP)
            .config("WSGIScriptAlias /a {APPS}/env.wsgi")
            .config("WSGIScriptAlias /b {APPS}/env.wsgi application-group=b")
            .config("WSGIScriptAlias /g {APPS}/env.wsgi application-group=%{GLOBAL}")
            .config("WSGIScriptAlias / {APPS}/env.wsgi")
            .start();
        let mut groups = std::collections::BTreeSet::new();
        let mut c = apache.connect();
        for path in ["/a", "/b", "/g", "/", "/a", "/b", "/g", "/x"] {
            groups.insert(get(&report(&c.get(path)), "mod_wsgi.application_group").to_string());
        }
        drop(c);
        assert_eq!(groups.len(), 4, "{groups:?}");
        let pids = apache.all_pids();
        let t = std::time::Instant::now();
        let report = apache.stop();
        let elapsed = t.elapsed();
        assert!(elapsed < Duration::from_secs(5), "{mpm:?}: stop took {elapsed:?}");
        assert!(!report.forced, "{mpm:?}: {report:?}");
        assert!(report.leftovers.is_empty(), "{mpm:?}: {report:?}");
        assert!(alive_pids(&pids).is_empty(), "{mpm:?}: {:?} still alive", alive_pids(&pids));
    }
}

/// A graceful restart under event: old children (with interpreters) go away, new ones serve.
#[test]
fn graceful_restart_leaves_no_old_children() {
    let apache = Apache::builder()
        .mpm(Mpm::Event)
        .app("env.wsgi", ENV_APP)
        .config("WSGIScriptAlias /a {APPS}/env.wsgi")
        .config("WSGIScriptAlias /b {APPS}/env.wsgi application-group=b")
        .start();
    let mut c = apache.connect();
    let pid_before = get(&report(&c.get("/a")), "@pid").to_string();
    report(&c.get("/b"));
    drop(c);
    let before = apache.child_pids();
    assert!(!before.is_empty());

    apache.graceful();
    // An old child may still take a connection while it winds down; within 5 s a new child
    // must be serving, with fresh interpreters.
    let mut rep = None;
    let new_child = eventually(Duration::from_secs(5), || {
        let r = report(&apache.get("/a"));
        let old = before.iter().any(|p| p.to_string() == get(&r, "@pid"));
        rep = Some(r);
        !old
    });
    let rep = rep.unwrap();
    assert!(new_child, "still served by an old child ({pid_before}) 5 s after the graceful restart");
    assert_eq!(get(&rep, "@counter"), "1", "a new child starts with fresh interpreters");
    report(&apache.get("/b"));
    assert!(
        eventually(Duration::from_secs(10), || alive_pids(&before).is_empty()),
        "old children {:?} still alive 10 s after a graceful restart\n{}",
        alive_pids(&before),
        apache.log_tail(30)
    );
    // -k restart (SIGHUP) likewise: the children with interpreters go at once.
    let before = apache.child_pids();
    apache.restart();
    report(&apache.get("/a"));
    assert!(
        eventually(Duration::from_secs(5), || alive_pids(&before).is_empty()),
        "old children {:?} still alive 5 s after a restart\n{}",
        alive_pids(&before),
        apache.log_tail(30)
    );
    let t = std::time::Instant::now();
    let report = apache.stop();
    assert!(t.elapsed() < Duration::from_secs(5), "stop took {:?}", t.elapsed());
    assert!(report.leftovers.is_empty() && !report.forced, "{report:?}");
}

/// The same requests through Debian's mod_wsgi 4.9.4 and through oxwsgi: routing and naming
/// must agree (prefork, where mod_wsgi stops cleanly).
#[test]
fn agrees_with_debian_mod_wsgi() {
    if !std::path::Path::new(common::DEBIAN_MOD_WSGI).is_file() {
        eprintln!("skipping: {} is not installed", common::DEBIAN_MOD_WSGI);
        return;
    }
    let start = |module: Option<&str>| {
        let mut b = Apache::builder()
            .mpm(Mpm::Prefork)
            .app("env.wsgi", ENV_APP)
            .app("dir/hello", ENV_APP)
            .config("WSGIScriptAlias /suburl {APPS}/env.wsgi")
            .config("WSGIScriptAlias /dir {APPS}/dir/")
            .config("WSGIScriptAlias /srv {APPS}/env.wsgi application-group=%{SERVER}")
            .config("WSGIScriptAlias / {APPS}/env.wsgi");
        if let Some(m) = module {
            b = b.module(m);
        }
        b.start()
    };
    let keys = [
        "SCRIPT_NAME",
        "PATH_INFO",
        "QUERY_STRING",
        "wsgi.version",
        "wsgi.url_scheme",
        "wsgi.multithread",
        "wsgi.multiprocess",
        "wsgi.run_once",
        "mod_wsgi.process_group",
        "mod_wsgi.callable_object",
        "mod_wsgi.script_name",
        "mod_wsgi.path_info",
        "HTTP_X_FOO",
    ];
    let requests: [(&str, &[(&str, &str)]); 7] = [
        ("/suburl/x", &[]),
        ("/suburl", &[]),
        ("/suburlx?q=1", &[]),
        ("/caf%C3%A9", &[("X_Foo", "evil")]),
        ("/dir/hello/y", &[("X-Foo", "good")]),
        ("/srv/z", &[]),
        ("/", &[]),
    ];
    let collect = |apache: &Apache| {
        requests
            .iter()
            .map(|(path, headers)| {
                let rep = report(&apache.send("GET", path, headers, b""));
                let mut row: Vec<String> = keys.iter().map(|k| format!("{k}={:?}", rep.get(*k))).collect();
                // Interpreter ids count per process (and prefork has several): main or not.
                row.push(format!("main_interpreter={}", get(&rep, "@interp_id") == "0"));
                // The group name embeds the port, which differs between the two servers.
                let group = get(&rep, "mod_wsgi.application_group").replace(&apache.port.to_string(), "PORT");
                row.push(format!("group={group}"));
                row
            })
            .collect::<Vec<_>>()
    };
    // The one deliberate difference: mod_wsgi names the group after the port in the Host
    // header (ap_get_server_port), so a client can pick the interpreter that runs its request;
    // oxwsgi uses the port the connection arrived on.
    let group_with_host = |apache: &Apache| {
        let rep = report(&apache.send("GET", "/suburl", &[("Host", "127.0.0.1:9999")], b""));
        get(&rep, "mod_wsgi.application_group").replace(&apache.port.to_string(), "PORT")
    };
    let theirs_apache = start(Some(common::DEBIAN_MOD_WSGI));
    let theirs = collect(&theirs_apache);
    assert_eq!(group_with_host(&theirs_apache), "'127.0.0.1:9999|/suburl'");
    drop(theirs_apache);
    let ours_apache = start(None);
    let ours = collect(&ours_apache);
    for ((path, _), (t, o)) in requests.iter().zip(theirs.iter().zip(ours.iter())) {
        assert_eq!(o, t, "{path}: oxwsgi (left) differs from mod_wsgi 4.9.4 (right)");
    }
    assert_eq!(group_with_host(&ours_apache), "'127.0.0.1:PORT|/suburl'");
}
