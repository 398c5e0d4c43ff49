//! Embedded mode: which URL runs which script, with which SCRIPT_NAME and PATH_INFO.

mod apps;
mod common;

use std::process::Command;

use apps::{get, py_str, report, ENV_APP};
use common::Apache;

/// `/` and `/suburl` both mounted; the longest matching mount wins whatever the config order.
fn check_root_and_suburl(suburl_first: bool) {
    let root = "WSGIScriptAlias / {APPS}/root.wsgi";
    let sub = "WSGIScriptAlias /suburl {APPS}/sub.wsgi";
    let (a, b) = if suburl_first { (sub, root) } else { (root, sub) };
    let apache = Apache::builder()
        .app("root.wsgi", format!("WHO = 'root'\n{ENV_APP}"))
        .app("sub.wsgi", format!("WHO = 'sub'\n{ENV_APP}"))
        .config(a)
        .config(b)
        .start();
    let script = |rep: &std::collections::BTreeMap<String, String>| get(rep, "SCRIPT_FILENAME").to_string();

    let rep = report(&apache.get("/suburl/x"));
    assert!(script(&rep).ends_with("/sub.wsgi'"), "{rep:#?}");
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/suburl'");
    assert_eq!(get(&rep, "PATH_INFO"), "'/x'");

    // A prefix of a segment is not a match: /suburlx belongs to the root mount.
    let rep = report(&apache.get("/suburlx"));
    assert!(script(&rep).ends_with("/root.wsgi'"), "{rep:#?}");
    assert_eq!(get(&rep, "SCRIPT_NAME"), "''");
    assert_eq!(get(&rep, "PATH_INFO"), "'/suburlx'");

    let rep = report(&apache.get("/suburl"));
    assert!(script(&rep).ends_with("/sub.wsgi'"), "{rep:#?}");
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/suburl'");
    assert_eq!(get(&rep, "PATH_INFO"), "''");

    let rep = report(&apache.get("/suburl/"));
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/suburl'");
    assert_eq!(get(&rep, "PATH_INFO"), "'/'");

    let rep = report(&apache.get("/"));
    assert!(script(&rep).ends_with("/root.wsgi'"), "{rep:#?}");
    assert_eq!(get(&rep, "SCRIPT_NAME"), "''");
    assert_eq!(get(&rep, "PATH_INFO"), "'/'");

    let rep = report(&apache.get("/other/deep/path?q=1"));
    assert!(script(&rep).ends_with("/root.wsgi'"), "{rep:#?}");
    assert_eq!(get(&rep, "PATH_INFO"), "'/other/deep/path'");
    assert_eq!(get(&rep, "QUERY_STRING"), "'q=1'");
}

#[test]
fn root_and_suburl_mounts_root_first() {
    check_root_and_suburl(false);
}

#[test]
fn root_and_suburl_mounts_suburl_first() {
    check_root_and_suburl(true);
}

#[test]
fn directory_target_and_alias_match() {
    let apache = Apache::builder()
        .app("dir/hello", ENV_APP)
        .app("dir/other.py", ENV_APP)
        .app("m1.wsgi", format!("{ENV_APP}\nWHO = 'm1'\n"))
        .app("m2.wsgi", format!("{ENV_APP}\nWHO = 'm2'\n"))
        .config("WSGIScriptAlias /dir {APPS}/dir/")
        .config("WSGIScriptAliasMatch ^/m/([^/]+) {APPS}/$1.wsgi")
        .config("WSGIScriptAliasMatch ^/re/. {APPS}/m1.wsgi")
        .config("WSGIScriptAlias /missing {APPS}/missing.wsgi")
        .start();
    let apps = apache.apps.display().to_string();

    // Directory target: the next path segment names the script file.
    let rep = report(&apache.get("/dir/hello/x"));
    assert_eq!(get(&rep, "SCRIPT_FILENAME"), py_str(&format!("{apps}/dir/hello")));
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/dir/hello'");
    assert_eq!(get(&rep, "PATH_INFO"), "'/x'");

    let rep = report(&apache.get("/dir/other.py"));
    assert_eq!(get(&rep, "SCRIPT_FILENAME"), py_str(&format!("{apps}/dir/other.py")));
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/dir/other.py'");
    assert_eq!(get(&rep, "PATH_INFO"), "''");

    // A segment naming no file: 404, not a 500 or a wrong script.
    apache.get("/dir/missing/x").assert_status(404);

    // WSGIScriptAliasMatch: $1 picks the file, the match is SCRIPT_NAME, the rest PATH_INFO.
    let rep = report(&apache.get("/m/m1/a/b"));
    assert_eq!(get(&rep, "SCRIPT_FILENAME"), py_str(&format!("{apps}/m1.wsgi")));
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/m/m1'");
    assert_eq!(get(&rep, "PATH_INFO"), "'/a/b'");
    let rep = report(&apache.get("/m/m2"));
    assert_eq!(get(&rep, "SCRIPT_FILENAME"), py_str(&format!("{apps}/m2.wsgi")));
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/m/m2'");
    assert_eq!(get(&rep, "PATH_INFO"), "''");
    apache.get("/m/nosuch").assert_status(404);

    // A match that ends inside a multi-byte character, and a URI that is not UTF-8: routed as
    // bytes (each arrives as latin-1), never a crash of the Apache child.
    let rep = report(&apache.get("/re/%C3%A9"));
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/re/\\xc3'");
    assert_eq!(get(&rep, "PATH_INFO"), "'\\xa9'");
    let rep = report(&apache.get("/dir/hello/%FF%FE"));
    assert_eq!(get(&rep, "PATH_INFO"), "'/\\xff\\xfe'");
    assert!(!apache.error_log().contains("panic"), "{}", apache.log_tail(10));

    // A mount whose script does not exist: 404, and the log says which file.
    apache.get("/missing/x").assert_status(404);
    let missing = format!("{apps}/missing.wsgi");
    assert!(
        apache.wait_for_log(
            &format!("Target WSGI script not found or unable to stat: {missing}"),
            std::time::Duration::from_secs(5)
        ),
        "{}",
        apache.log_tail(10)
    );
}

/// A process group nobody defines: `apache2 -t` fails, naming the file and line.
#[test]
fn undefined_process_group_fails_config_test() {
    let dir = std::env::temp_dir().join(format!("oxwsgi-embedded-routing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    std::fs::write(dir.join("app.wsgi"), apps::HELLO_APP).unwrap();
    let conf_path = dir.join("test.conf");
    let module = common::oxwsgi_module();
    let d = dir.display();
    let good_conf = format!(
        "ServerRoot \"{d}\"\n\
         LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
         LoadModule authz_core_module {m}/mod_authz_core.so\n\
         LoadModule wsgi_module \"{module}\"\n\
         ServerName 127.0.0.1\n\
         Listen 127.0.0.1:1\n\
         PidFile \"{d}/apache2.pid\"\n\
         ErrorLog \"{d}/logs/error.log\"\n\
         DefaultRuntimeDir \"{d}\"\n",
        m = common::MODULES_DIR,
        module = module.display()
    );
    let run = |extra: &str| {
        std::fs::write(&conf_path, format!("{good_conf}{extra}")).unwrap();
        let out = Command::new(common::apache::HTTPD).arg("-t").arg("-f").arg(&conf_path).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };

    let (ok, text) = run(&format!("WSGIScriptAlias /a {d}/app.wsgi\n"));
    assert!(ok, "a config without process groups should pass -t:\n{text}");

    // Line 10 of the file (the 9 lines above, then this one).
    let (ok, text) = run(&format!("WSGIScriptAlias /a {d}/app.wsgi process-group=nosuchgroup\n"));
    assert!(!ok, "apache2 -t accepted an undefined process group:\n{text}");
    assert!(text.contains("nosuchgroup"), "{text}");
    assert!(text.contains(&conf_path.display().to_string()), "no file name in: {text}");
    assert!(text.contains("line 10"), "no line number in: {text}");

    // Same for WSGIProcessGroup, on its own line.
    let (ok, text) = run(&format!("WSGIScriptAlias /a {d}/app.wsgi\n\nWSGIProcessGroup othergroup\n"));
    assert!(!ok, "apache2 -t accepted an undefined WSGIProcessGroup:\n{text}");
    assert!(text.contains("othergroup") && text.contains("line 12"), "{text}");
    assert!(text.contains(&conf_path.display().to_string()), "{text}");

    // Defined: accepted.
    let (ok, text) = run(&format!(
        "WSGIDaemonProcess nosuchgroup threads=1\nWSGIScriptAlias /a {d}/app.wsgi process-group=nosuchgroup\n"
    ));
    assert!(ok, "a defined daemon group should pass -t:\n{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `MergeSlashes Off`: runs of `/` reach the module, and SCRIPT_NAME and PATH_INFO still have
/// them folded into one (mod_wsgi 6 does this itself), in both modes; REQUEST_URI keeps them.
#[test]
fn merge_slashes_off_still_collapses_script_name_and_path_info() {
    let apache = Apache::builder()
        .app("env.wsgi", ENV_APP)
        .config(
            "MergeSlashes Off\n\
             WSGIDaemonProcess slashes threads=1\n\
             WSGIScriptAlias /emb {APPS}/env.wsgi\n\
             WSGIScriptAlias /dmn {APPS}/env.wsgi process-group=slashes\n\
             WSGIScriptAlias //slashy-alias {APPS}/env.wsgi\n\
             AddHandler wsgi-script .wsgi\n\
             Alias /files {APPS}\n\
             <Directory {APPS}>\n Options +ExecCGI\n</Directory>",
        )
        .start();
    for mount in ["/emb", "/dmn"] {
        for (tail, path_info) in
            [("/a//b", "/a/b"), ("//a/b", "/a/b"), ("/a///b///c", "/a/b/c"), ("/a//", "/a/"), ("//", "/")]
        {
            let uri = format!("{mount}{tail}");
            let rep = report(&apache.get(&uri));
            assert_eq!(get(&rep, "PATH_INFO"), format!("'{path_info}'"), "{uri}: {rep:#?}");
            assert_eq!(get(&rep, "SCRIPT_NAME"), format!("'{mount}'"), "{uri}");
            assert_eq!(get(&rep, "REQUEST_URI"), format!("'{uri}'"), "{uri}: MergeSlashes Off is in effect");
        }
    }
    let rep = report(&apache.get("//slashy-alias"));
    assert_eq!(get(&rep, "SCRIPT_NAME"), "'/slashy-alias'", "{rep:#?}");
    assert_eq!(get(&rep, "REQUEST_URI"), "'//slashy-alias'");
    // AddHandler: SCRIPT_NAME is the URI up to PATH_INFO, folded too.
    let rep = report(&apache.get("/files//env.wsgi/x//y"));
    assert_eq!((get(&rep, "SCRIPT_NAME"), get(&rep, "PATH_INFO")), ("'/files/env.wsgi'", "'/x/y'"), "{rep:#?}");
}
