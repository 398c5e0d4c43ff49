//! Python homes and paths, and the per-process / per-mount knobs around them:
//! WSGIPythonHome, WSGIPythonPath, WSGICallableObject / callable-object=, WSGIScriptReloading,
//! WSGIPassAuthorization / pass-authorization=, WSGIRestrictEmbedded, WSGIRestrictSignal, and
//! the hint to use `WSGIApplicationGroup %{GLOBAL}` for extensions that refuse sub-interpreters.

mod common;
#[path = "django/venv.rs"]
mod venv;

use common::*;
use std::collections::HashMap;
use std::fs;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};
use venv::TempDir;

const PYINFO: &str = include_str!("apps/isolation/pyinfo.wsgi");
const CALLABLE: &str = include_str!("apps/isolation/callable.wsgi");
const AUTH: &str = include_str!("apps/isolation/auth.wsgi");
const SIGNALS: &str = include_str!("apps/isolation/signals.wsgi");
const SIGNALS_USR2: &str = include_str!("apps/isolation/signals_usr2.wsgi");
const BCRYPT: &str = include_str!("apps/isolation/bcrypt_app.wsgi");
const BCRYPT_CHAINED: &str = include_str!("apps/isolation/bcrypt_chained.wsgi");

#[track_caller]
fn fields(apache: &Apache, path: &str) -> HashMap<String, String> {
    let r = apache.get(path);
    assert_eq!(r.status, 200, "{path}: {}\n{}\n{}", r.raw_head, r.text(), apache.log_tail(40));
    r.text().lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[track_caller]
fn text(apache: &Apache, path: &str) -> String {
    let r = apache.get(path);
    assert_eq!(r.status, 200, "{path}: {}\n{}\n{}", r.raw_head, r.text(), apache.log_tail(40));
    r.text()
}

// ---- WSGIPythonHome ---------------------------------------------------------------------------

#[test]
fn python_home_virtualenv_is_sys_prefix() {
    let venv = venv::venv().display().to_string();
    let apache = Apache::builder()
        .app("isolation/pyinfo.wsgi", PYINFO)
        .config(&format!(
            "WSGIPythonHome {venv}\n\
             WSGIScriptAlias /sub {{APPS}}/isolation/pyinfo.wsgi\n\
             WSGIScriptAlias /main {{APPS}}/isolation/pyinfo.wsgi application-group=%{{GLOBAL}}"
        ))
        .start();
    for path in ["/sub", "/main"] {
        let f = fields(&apache, path);
        assert_eq!(f["prefix"], venv, "{path}: {f:?}");
        assert_eq!(f["base_prefix"], "/usr", "{path}: {f:?}");
        assert_eq!(f["executable"], format!("{venv}/bin/python"), "{path}: {f:?}");
        assert_eq!(f["version"], common::python::PYTHON_VERSION);
        assert!(f["django"].starts_with("5.2"), "the venv's packages are importable: {f:?}");
        let site = common::python::site_packages(&venv).display().to_string();
        assert!(f.values().any(|p| p == &site), "{f:?}");
    }
}

/// A daemon group without python-home= runs the server's WSGIPythonHome (as in mod_wsgi); one
/// with its own python-home= runs that.
#[test]
fn daemon_groups_inherit_python_home_unless_they_name_one() {
    let venv = venv::venv().display().to_string();
    let apache = Apache::builder()
        .app("isolation/pyinfo.wsgi", PYINFO)
        .config(&format!(
            "WSGIPythonHome {venv}\n\
             WSGIDaemonProcess inherits threads=2\n\
             WSGIDaemonProcess own threads=2 python-home=/usr\n\
             WSGIScriptAlias /inherits {{APPS}}/isolation/pyinfo.wsgi process-group=inherits\n\
             WSGIScriptAlias /own {{APPS}}/isolation/pyinfo.wsgi process-group=own"
        ))
        .start();
    let f = fields(&apache, "/inherits");
    assert_eq!(f["prefix"], venv, "{f:?}");
    assert!(f["django"].starts_with("5.2"), "{f:?}");
    let f = fields(&apache, "/own");
    assert_eq!(f["prefix"], "/usr", "{f:?}");
}

#[test]
fn python_home_prefix_is_sys_prefix() {
    let apache = Apache::builder()
        .app("isolation/pyinfo.wsgi", PYINFO)
        .config("WSGIPythonHome /usr\nWSGIScriptAlias /sub {APPS}/isolation/pyinfo.wsgi")
        .start();
    let f = fields(&apache, "/sub");
    assert_eq!((f["prefix"].as_str(), f["base_prefix"].as_str()), ("/usr", "/usr"), "{f:?}");
    assert_eq!(f["django"], "<none>", "{f:?}");
}

/// Starts Apache with `builder`, which must fail; returns the harness's failure message and what
/// `apache2 -t` says about the same configuration (which must fail too).
fn startup_error(builder: ApacheBuilder) -> (String, String) {
    let err = std::panic::catch_unwind(AssertUnwindSafe(|| builder.start()))
        .expect_err("Apache should refuse this configuration");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    let root = msg.lines().find_map(|l| l.strip_prefix("root: ")).unwrap_or_else(|| panic!("no root in {msg}"));
    let out = Command::new(HTTPD_BIN)
        .arg("-t")
        .arg("-f")
        .arg(Path::new(root).join("httpd.conf"))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .expect("run apache2 -t");
    let _ = fs::remove_dir_all(root);
    assert!(!out.status.success(), "apache2 -t accepted it:\n{msg}");
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (msg, said)
}

const HTTPD_BIN: &str = "/usr/sbin/apache2";

#[test]
fn unusable_python_home_is_a_startup_error() {
    let empty = TempDir::new("home-empty");
    let other = TempDir::new("home-venv39");
    fs::create_dir_all(other.path().join("lib/python3.9/site-packages")).unwrap();
    fs::write(other.path().join("pyvenv.cfg"), "home = /usr/bin\nversion = 3.9.18\n").unwrap();
    let cases = [
        ("/nonexistent/oxwsgi-python-home".to_string(), "does not exist or is not a directory"),
        (
            empty.path().display().to_string(),
            &format!("is not a Python {} installation or virtualenv", common::python::PYTHON_VERSION),
        ),
        (other.path().display().to_string(), "is a virtualenv for another Python version (made with Python 3.9.18)"),
        ("relative/home".to_string(), "is not an absolute path"),
    ];
    for (home, why) in cases {
        let builder = Apache::builder()
            .app("isolation/pyinfo.wsgi", PYINFO)
            .config(&format!("WSGIPythonHome {home}\nWSGIScriptAlias /sub {{APPS}}/isolation/pyinfo.wsgi"));
        let (msg, said) = startup_error(builder);
        for text in [&msg, &said] {
            assert!(text.contains("WSGIPythonHome: "), "{home}: the directive is named:\n{text}");
            assert!(text.contains(why), "{home}: {why}:\n{text}");
            assert!(text.contains("Syntax error on line"), "{home}:\n{text}");
        }
        assert!(msg.contains("Apache exited during startup"), "{msg}");
    }
}

#[test]
fn broken_python_home_fails_requests_cleanly() {
    // Passes the configuration check (it has the standard library's landmarks) but is no Python:
    // requests get a 500 and a log line naming the home; the child process does not crash.
    let home = TempDir::new("home-broken");
    let stdlib = home.path().join(common::python::lib_dir());
    fs::create_dir_all(stdlib.join("encodings")).unwrap();
    fs::write(stdlib.join("os.py"), "").unwrap();
    fs::write(stdlib.join("encodings/__init__.py"), "").unwrap();
    venv::make_world_readable(home.path()).unwrap();
    let apache = Apache::builder()
        .app("isolation/pyinfo.wsgi", PYINFO)
        .config(&format!(
            "MaxRequestWorkers 8\nWSGIPythonHome {}\nWSGIScriptAlias /sub {{APPS}}/isolation/pyinfo.wsgi",
            home.path().display()
        ))
        .start();
    apache.get("/sub").assert_status(500);
    let children = apache.child_pids();
    apache.get("/sub").assert_status(500);
    let line = format!("Python failed to start with Python home '{}'", home.path().display());
    assert!(apache.wait_for_log(&line, Duration::from_secs(2)), "{line}\n{}", apache.log_tail(30));
    assert!(!apache.error_log().contains("exit signal"), "a child crashed:\n{}", apache.error_log());
    assert_eq!(apache.child_pids(), children, "the same child answers again");
}

// ---- WSGIPythonPath ---------------------------------------------------------------------------

#[test]
fn python_path_directories_come_first_in_every_interpreter() {
    let apache = Apache::builder()
        .app("isolation/pyinfo.wsgi", PYINFO)
        .app("isolation/lib1/shadow.py", "WHERE = 'lib1'\n")
        .app("isolation/lib2/shadow.py", "WHERE = 'lib2'\n")
        .app("isolation/lib2/extra.pth", "../lib3\n")
        .app("isolation/lib3/from_pth.py", "WHERE = 'lib3'\n")
        .config(
            "WSGIPythonPath {APPS}/isolation/lib1:{APPS}/isolation/lib2\n\
             WSGIScriptAlias /sub {APPS}/isolation/pyinfo.wsgi\n\
             WSGIScriptAlias /main {APPS}/isolation/pyinfo.wsgi application-group=%{GLOBAL}",
        )
        .start();
    let apps = apache.apps.join("isolation").display().to_string();
    for path in ["/sub", "/main"] {
        let f = fields(&apache, path);
        assert_eq!(f["path0"], format!("{apps}/lib1"), "{path}: {f:?}");
        assert_eq!(f["path1"], format!("{apps}/lib2"), "{path}: {f:?}");
        assert_eq!(
            f["path2"],
            format!("{apps}/lib3"),
            "{path}: a .pth file in a WSGIPythonPath dir is processed: {f:?}"
        );
        assert_eq!(f["shadow"], "lib1", "{path}: {f:?}");
        assert_eq!(f["from_pth"], "lib3", "{path}: {f:?}");
    }
}

// ---- WSGICallableObject / callable-object= -----------------------------------------------------

#[test]
fn callable_object_by_directive_and_by_mount_option() {
    let apache = Apache::builder()
        .app("isolation/callable.wsgi", CALLABLE)
        .config(
            "WSGIScriptAlias /default {APPS}/isolation/callable.wsgi\n\
             WSGIScriptAlias /option {APPS}/isolation/callable.wsgi callable-object=app_main\n\
             WSGIScriptAlias /missing {APPS}/isolation/callable.wsgi callable-object=nonesuch\n\
             WSGIScriptAlias /location {APPS}/isolation/callable.wsgi\n\
             <Location /location>\n\
             WSGICallableObject other\n\
             </Location>\n\
             WSGIScriptAlias /both {APPS}/isolation/callable.wsgi callable-object=app_main\n\
             <Location /both>\n\
             WSGICallableObject other\n\
             </Location>",
        )
        .start();
    assert_eq!(text(&apache, "/option"), "app_main");
    assert_eq!(text(&apache, "/location"), "other");
    assert_eq!(text(&apache, "/both"), "app_main", "the mount's option wins over the directive");
    let script = apache.app_path("isolation/callable.wsgi").display().to_string();
    for (path, name) in [("/default", "application"), ("/missing", "nonesuch")] {
        apache.get(path).assert_status(500);
        let line = format!("Target WSGI script '{script}' does not contain WSGI application '{name}'");
        assert!(apache.wait_for_log(&line, Duration::from_secs(2)), "{path}: {line}\n{}", apache.log_tail(20));
    }
}

// ---- WSGIScriptReloading ----------------------------------------------------------------------

fn versioned(v: u32) -> String {
    format!(
        "VERSION = {v}\n\n\ndef application(environ, start_response):\n    \
         start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'v%d' % VERSION]\n"
    )
}

#[test]
fn script_reloading_on_and_off() {
    let apache = Apache::builder()
        .app("isolation/reload_on/app.wsgi", versioned(1))
        .app("isolation/reload_off/app.wsgi", versioned(1))
        .config(
            "MaxRequestWorkers 8\n\
             WSGIScriptAlias /on {APPS}/isolation/reload_on/app.wsgi\n\
             WSGIScriptAlias /off {APPS}/isolation/reload_off/app.wsgi\n\
             <Directory {APPS}/isolation/reload_off>\n\
             WSGIScriptReloading Off\n\
             </Directory>",
        )
        .start();
    assert_eq!(text(&apache, "/on"), "v1");
    assert_eq!(text(&apache, "/off"), "v1");
    let later = SystemTime::now() + Duration::from_secs(10);
    for dir in ["reload_on", "reload_off"] {
        let p = apache.app_path(&format!("isolation/{dir}/app.wsgi"));
        fs::write(&p, versioned(2)).unwrap();
        fs::File::options().write(true).open(&p).unwrap().set_modified(later).unwrap();
    }
    assert_eq!(text(&apache, "/on"), "v2", "a changed script is reloaded by default");
    assert_eq!(text(&apache, "/off"), "v1", "WSGIScriptReloading Off keeps the loaded script");
}

// ---- WSGIPassAuthorization / pass-authorization= ----------------------------------------------

#[test]
fn pass_authorization_by_directive_and_by_mount_option() {
    let apache = Apache::builder()
        .app("isolation/auth.wsgi", AUTH)
        .config(
            "WSGIScriptAlias /default {APPS}/isolation/auth.wsgi\n\
             WSGIScriptAlias /mount-on {APPS}/isolation/auth.wsgi pass-authorization=On\n\
             WSGIScriptAlias /dir-on {APPS}/isolation/auth.wsgi\n\
             <Location /dir-on>\n\
             WSGIPassAuthorization On\n\
             </Location>\n\
             WSGIScriptAlias /dir-off {APPS}/isolation/auth.wsgi\n\
             <Location /dir-off>\n\
             WSGIPassAuthorization Off\n\
             </Location>\n\
             WSGIScriptAlias /mount-off {APPS}/isolation/auth.wsgi pass-authorization=Off\n\
             <Location /mount-off>\n\
             WSGIPassAuthorization On\n\
             </Location>",
        )
        .start();
    let creds = "Basic dXNlcjpwYXNz";
    for (path, want) in [
        ("/default", "<unset>"),
        ("/mount-on", creds),
        ("/dir-on", creds),
        ("/dir-off", "<unset>"),
        ("/mount-off", "<unset>"),
    ] {
        let r = apache.send("GET", path, &[("Authorization", creds)], b"");
        r.assert_status(200);
        assert_eq!(r.text(), want, "{path}");
    }
}

// ---- WSGIRestrictEmbedded ---------------------------------------------------------------------

#[test]
fn restrict_embedded_refuses_embedded_requests() {
    let apache = Apache::builder()
        .app("isolation/pyinfo.wsgi", PYINFO)
        .config("WSGIRestrictEmbedded On\nWSGIScriptAlias /sub {APPS}/isolation/pyinfo.wsgi")
        .start();
    apache.get("/sub").assert_status(500);
    assert!(
        apache.wait_for_log("embedded mode is disabled (WSGIRestrictEmbedded On)", Duration::from_secs(2)),
        "{}",
        apache.log_tail(20)
    );
    assert!(!apache.error_log().contains("Exception occurred"), "no application ran");
}

// ---- WSGIRestrictSignal -----------------------------------------------------------------------

#[test]
fn signal_registration_is_ignored_in_embedded_mode() {
    let apache = Apache::builder()
        .app("isolation/signals.wsgi", SIGNALS)
        .config(
            "WSGIScriptAlias /sub {APPS}/isolation/signals.wsgi\n\
             WSGIScriptAlias /main {APPS}/isolation/signals.wsgi application-group=%{GLOBAL}",
        )
        .start();
    let script = apache.app_path("isolation/signals.wsgi").display().to_string();
    for (path, group) in [("/sub", format!("127.0.0.1:{}|/sub", apache.port)), ("/main", String::new())] {
        let body = text(&apache, path);
        assert!(body.starts_with("usr2=not-installed term=not-installed returned="), "{path}: {body}");
        assert!(body.ends_with("error="), "{path}: signal.signal() returns quietly: {body}");
        for signum in [12, 15] {
            let line = format!(
                "Callback registration for signal {signum} ignored: application group '{group}', called from {script} line"
            );
            assert!(apache.wait_for_log(&line, Duration::from_secs(2)), "{path}: {line}\n{}", apache.log_tail(20));
        }
    }
}

#[test]
fn prefork_main_interpreter_cannot_take_apaches_signals() {
    // Prefork runs requests on the process's main thread: there signal.signal() in the main
    // interpreter would really replace Apache's SIGTERM handler.
    let apache = Apache::builder()
        .mpm(Mpm::Prefork)
        .app("isolation/signals.wsgi", SIGNALS)
        .config("WSGIScriptAlias /main {APPS}/isolation/signals.wsgi application-group=%{GLOBAL}")
        .start();
    let body = text(&apache, "/main");
    assert!(body.starts_with("usr2=not-installed term=not-installed"), "{body}");
    let t = Instant::now();
    let report = apache.stop();
    assert!(!report.forced && report.leftovers.is_empty(), "{report:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "children stopped on SIGTERM: {:?}", t.elapsed());
}

#[test]
fn restrict_signal_off_lets_the_main_interpreter_install_handlers() {
    let apache = Apache::builder()
        .mpm(Mpm::Prefork)
        .app("isolation/signals_usr2.wsgi", SIGNALS_USR2)
        .config(
            "WSGIRestrictSignal Off\n\
             WSGIScriptAlias /main {APPS}/isolation/signals_usr2.wsgi application-group=%{GLOBAL}",
        )
        .start();
    assert_eq!(text(&apache, "/main"), "usr2=installed");
    assert!(!apache.error_log().contains("Callback registration"), "{}", apache.error_log());
}

// ---- extensions that refuse sub-interpreters --------------------------------------------------

/// Whether the first sub-interpreter to import a PyO3 module (bcrypt) gets it: up to Python
/// 3.12. From 3.13 the import of a single-phase init extension in a sub-interpreter runs its init
/// function in the main interpreter first, and PyO3 binds the module to the first interpreter
/// that initialises it, so no sub-interpreter can have it (the main interpreter can).
fn first_sub_interpreter_gets_pyo3_modules() -> bool {
    let minor = common::python::PYTHON_VERSION.strip_prefix("3.").and_then(|m| m.parse::<u32>().ok());
    minor.expect("a Python 3 version") < 13
}

#[test]
fn pyo3_extension_in_a_second_sub_interpreter_suggests_global() {
    let venv = venv::venv().display().to_string();
    let apache = Apache::builder()
        .app("isolation/bcrypt_app.wsgi", BCRYPT)
        .config(&format!(
            "MaxRequestWorkers 8\n\
             WSGIPythonHome {venv}\n\
             WSGIScriptAlias /one {{APPS}}/isolation/bcrypt_app.wsgi\n\
             WSGIScriptAlias /two {{APPS}}/isolation/bcrypt_app.wsgi"
        ))
        .start();
    // Up to Python 3.12 the first interpreter to import a PyO3 module gets it and any other one
    // cannot. From 3.13 CPython runs a single-phase init function in the main interpreter first
    // (which PyO3 then takes for its own), so every sub-interpreter is refused, the first too.
    if first_sub_interpreter_gets_pyo3_modules() {
        assert_eq!(text(&apache, "/one"), "bcrypt-ok True");
    } else {
        apache.get("/one").assert_status(500);
    }
    apache.get("/two").assert_status(500);
    let log = apache.error_log();
    let refusals = log.matches("ImportError: PyO3 modules do not yet support subinterpreters").count();
    assert_eq!(refusals, if first_sub_interpreter_gets_pyo3_modules() { 1 } else { 2 }, "{log}");
    assert!(
        apache.wait_for_log(
            "does not support Python sub-interpreters; run the application in the main interpreter with 'WSGIApplicationGroup %{GLOBAL}'",
            Duration::from_secs(2)
        ),
        "{log}"
    );
    drop(apache);

    // The same application in the main interpreter, mounted twice: both work.
    let apache = Apache::builder()
        .app("isolation/bcrypt_app.wsgi", BCRYPT)
        .config(&format!(
            "MaxRequestWorkers 8\n\
             WSGIPythonHome {venv}\n\
             WSGIApplicationGroup %{{GLOBAL}}\n\
             WSGIScriptAlias /one {{APPS}}/isolation/bcrypt_app.wsgi\n\
             WSGIScriptAlias /two {{APPS}}/isolation/bcrypt_app.wsgi"
        ))
        .start();
    assert_eq!(text(&apache, "/one"), "bcrypt-ok True");
    assert_eq!(text(&apache, "/two"), "bcrypt-ok True");
    assert!(!apache.error_log().contains("sub-interpreters"), "{}", apache.error_log());
}

#[test]
fn pyo3_hint_also_for_a_chained_import_error() {
    let venv = venv::venv().display().to_string();
    let apache = Apache::builder()
        .app("isolation/bcrypt_app.wsgi", BCRYPT)
        .app("isolation/bcrypt_chained.wsgi", BCRYPT_CHAINED)
        .config(&format!(
            "MaxRequestWorkers 8\n\
             WSGIPythonHome {venv}\n\
             WSGIScriptAlias /one {{APPS}}/isolation/bcrypt_app.wsgi\n\
             WSGIScriptAlias /chained {{APPS}}/isolation/bcrypt_chained.wsgi"
        ))
        .start();
    if first_sub_interpreter_gets_pyo3_modules() {
        assert_eq!(text(&apache, "/one"), "bcrypt-ok True");
    } else {
        apache.get("/one").assert_status(500);
    }
    apache.get("/chained").assert_status(500);
    assert!(apache.wait_for_log("RuntimeError: password hashing is unavailable", Duration::from_secs(2)));
    assert!(apache.wait_for_log("'WSGIApplicationGroup %{GLOBAL}'", Duration::from_secs(2)), "{}", apache.log_tail(30));
}
