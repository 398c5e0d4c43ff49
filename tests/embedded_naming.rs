//! Embedded mode: application groups (which interpreter runs a request, and what it is called)
//! and the `mod_wsgi` module and `mod_wsgi.*` environ keys.

mod apps;
mod common;

use std::collections::BTreeMap;

use apps::{get, report, ENV_APP};
use common::Apache;

type Report = BTreeMap<String, String>;

/// The harness sets `ServerName 127.0.0.1`; the port is the one the connection arrived on.
fn naming_apache() -> Apache {
    Apache::builder()
        .app("env.wsgi", ENV_APP)
        .app("env2.wsgi", ENV_APP)
        .config("WSGIScriptAlias /suburl {APPS}/env.wsgi")
        .config("WSGIScriptAlias /Mixed//Case {APPS}/env.wsgi")
        .config("WSGIScriptAlias /global {APPS}/env.wsgi")
        .config("<Location /global>\n    WSGIApplicationGroup %{GLOBAL}\n</Location>")
        .config("WSGIScriptAlias /global-opt {APPS}/env.wsgi application-group=%{GLOBAL}")
        .config("WSGIScriptAlias /server {APPS}/env.wsgi application-group=%{SERVER}")
        .config("WSGIScriptAlias /fromenv {APPS}/env.wsgi")
        .config("<Location /fromenv>\n    SetEnv OXWSGI_GROUP group-from-env\n    WSGIApplicationGroup %{ENV:OXWSGI_GROUP}\n</Location>")
        .config("WSGIScriptAlias /lit1 {APPS}/env.wsgi application-group=shared-literal")
        .config("WSGIScriptAlias /lit2 {APPS}/env2.wsgi application-group=shared-literal")
        .config("WSGIScriptAlias /callable {APPS}/env.wsgi callable-object=app2")
        .config("WSGIScriptAlias / {APPS}/env.wsgi")
        // One child process, so module state and interpreter identities can be compared.
        .config("MaxRequestWorkers 8")
        .start()
}

fn group(rep: &Report) -> &str {
    get(rep, "mod_wsgi.application_group")
}

#[test]
fn default_group_is_host_port_and_mount() {
    let apache = naming_apache();
    let port = apache.port;
    let rep = report(&apache.get("/suburl/x"));
    assert_eq!(group(&rep), format!("'127.0.0.1:{port}|/suburl'"));
    // The mod_wsgi module of the interpreter says the same.
    assert_eq!(get(&rep, "@mod_wsgi.application_group"), format!("'127.0.0.1:{port}|/suburl'"));
    assert_ne!(get(&rep, "@interp_id"), "0", "a sub-interpreter, not the main one");

    let rep_root = report(&apache.get("/other"));
    assert_eq!(group(&rep_root), format!("'127.0.0.1:{port}|'"));
    assert_ne!(get(&rep_root, "@interp_id"), get(&rep, "@interp_id"));

    // A Host header naming another port (or host) changes nothing.
    for host in ["127.0.0.1:9999", "example.com", "example.com:80"] {
        let rep = report(&apache.send("GET", "/suburl", &[("Host", host)], b""));
        assert_eq!(group(&rep), format!("'127.0.0.1:{port}|/suburl'"), "Host: {host}");
    }

    // mod_wsgi 4.x folds repeated slashes and lower-cases the mount in the name.
    let rep = report(&apache.get("/Mixed//Case/x"));
    assert_eq!(group(&rep), format!("'127.0.0.1:{port}|/mixed/case'"));
}

#[test]
fn global_server_env_and_literal_groups() {
    let apache = naming_apache();
    let port = apache.port;

    for path in ["/global", "/global-opt/x"] {
        let rep = report(&apache.get(path));
        assert_eq!(group(&rep), "''", "{path}");
        assert_eq!(get(&rep, "@mod_wsgi.application_group"), "''", "{path}");
        assert_eq!(get(&rep, "@interp_id"), "0", "{path}: not the main interpreter");
    }

    let rep = report(&apache.get("/server"));
    assert_eq!(group(&rep), format!("'127.0.0.1:{port}'"));
    assert_ne!(get(&rep, "@interp_id"), "0");

    let rep = report(&apache.get("/fromenv"));
    assert_eq!(group(&rep), "'group-from-env'");
    assert_eq!(get(&rep, "OXWSGI_GROUP"), "'group-from-env'");

    let rep = report(&apache.get("/lit1"));
    assert_eq!(group(&rep), "'shared-literal'");
}

#[test]
fn groups_are_separate_interpreters() {
    let apache = naming_apache();
    let get_rep = |path: &str| report(&apache.get(path));

    // Same literal group, two mounts and two script files: one interpreter, shared state.
    let a1 = get_rep("/lit1");
    let b1 = get_rep("/lit2");
    assert_eq!(get(&a1, "@pid"), get(&b1, "@pid"), "one child process expected");
    assert_eq!(get(&a1, "@modules_id"), get(&b1, "@modules_id"));
    assert_eq!(get(&a1, "@interp_id"), get(&b1, "@interp_id"));
    assert_eq!(get(&a1, "@counter"), "1");
    assert_eq!(get(&b1, "@counter"), "2", "module state not shared within the group");
    let a2 = get_rep("/lit1");
    assert_eq!(get(&a2, "@counter"), "3");

    // Different groups: different interpreters, each with its own sys.modules and state.
    let sub = get_rep("/suburl");
    let root = get_rep("/");
    let server = get_rep("/server");
    let global = get_rep("/global");
    let all = [&a1, &sub, &root, &server, &global];
    for r in all {
        assert_eq!(get(r, "@pid"), get(&a1, "@pid"), "one child process expected");
    }
    for (i, x) in all.iter().enumerate() {
        for y in &all[i + 1..] {
            assert_ne!(get(x, "@modules_id"), get(y, "@modules_id"), "{} vs {}", group(x), group(y));
            assert_ne!(get(x, "@interp_id"), get(y, "@interp_id"), "{} vs {}", group(x), group(y));
        }
    }
    for r in [&sub, &root, &server, &global] {
        assert_eq!(get(r, "@counter"), "1", "{}: state leaked between interpreters", group(r));
    }
    // And each keeps its own state across requests.
    assert_eq!(get(&get_rep("/suburl"), "@counter"), "2");
    assert_eq!(get(&get_rep("/global"), "@counter"), "2");
    assert_eq!(get(&get_rep("/lit2"), "@counter"), "4");
}

#[test]
fn mod_wsgi_module_and_keys() {
    let apache = naming_apache();
    let rep = report(&apache.get("/suburl/a/b"));
    assert_eq!(get(&rep, "mod_wsgi.process_group"), "''");
    assert_eq!(get(&rep, "@mod_wsgi.process_group"), "''");
    assert_eq!(get(&rep, "mod_wsgi.callable_object"), "'application'");
    assert_eq!(get(&rep, "mod_wsgi.script_name"), "'/suburl'");
    assert_eq!(get(&rep, "mod_wsgi.path_info"), "'/a/b'");
    // A tuple of ints, in the environ and in the module.
    let version = get(&rep, "mod_wsgi.version");
    assert!(version.starts_with('(') && version.ends_with(')') && version.split(", ").count() == 3, "{version}");
    assert!(version.trim_matches(|c| c == '(' || c == ')').split(", ").all(|n| n.parse::<u32>().is_ok()), "{version}");
    assert_eq!(get(&rep, "@mod_wsgi.version"), version);
    let id1 = get(&rep, "mod_wsgi.request_id").to_string();
    assert!(id1.len() > 2, "{id1}");

    let rep2 = report(&apache.get("/suburl"));
    assert_eq!(get(&rep2, "mod_wsgi.path_info"), "''");
    assert_ne!(get(&rep2, "mod_wsgi.request_id"), id1, "request ids must differ");

    // callable-object= names another callable.
    let rep = report(&apache.get("/callable"));
    assert_eq!(get(&rep, "mod_wsgi.callable_object"), "'app2'");
    assert_eq!(get(&rep, "@callable"), "'app2'");
}

const CASE_APP: &str = r#"
def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('%s\n%s' % (environ['mod_wsgi.application_group'], __name__)).encode()]
"#;

/// WSGICaseSensitivity Off (for case-insensitive file systems, as mod_wsgi): the script's module
/// name comes from its lower-cased path, so one file reached under two spellings is one module.
/// (The mount's part of the interpreter name is lower-cased either way, as mod_wsgi 4.x does.)
#[test]
fn case_sensitivity_off_lowercases_module_names() {
    for (setting, mount_seen, lower_path) in [("On", "/app", false), ("Off", "/app", true)] {
        let apache = Apache::builder()
            .app("Site.py", CASE_APP)
            .config(&format!("WSGICaseSensitivity {setting}\nWSGIScriptAlias /App {{APPS}}/Site.py"))
            .start();
        let r = apache.get("/App");
        r.assert_status(200);
        let text = r.text();
        let (group, module) = text.split_once('\n').unwrap();
        assert_eq!(group, format!("127.0.0.1:{}|{mount_seen}", apache.addr().port()), "{setting}");
        let path = apache.app_path("Site.py").display().to_string();
        let hashed = if lower_path { path.to_lowercase() } else { path };
        let out = std::process::Command::new(common::python::PYTHON)
            .args(["-c", "import hashlib,sys; print(hashlib.md5(sys.argv[1].encode()).hexdigest())", &hashed])
            .output()
            .unwrap();
        assert_eq!(module, format!("_mod_wsgi_{}", String::from_utf8_lossy(&out.stdout).trim()), "{setting}");
        let _ = apache.stop();
    }
}
