//! The proof with real Django (from PyPI, in a cached virtualenv; see tests/django/venv.rs):
//! one codebase, two settings modules, two stock `wsgi.py` files that use
//! `os.environ.setdefault("DJANGO_SETTINGS_MODULE", ...)`, mounted at `/` and `/suburl` in the
//! same embedded process. Without per-group os.environ isolation the second site to load
//! inherits the first one's DJANGO_SETTINGS_MODULE. Also a full login flow (CSRF cookie and
//! token, session cookie, login-required page).

mod common;
#[path = "django/venv.rs"]
mod venv;

use common::*;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use venv::TempDir;

const USER: &str = "alice";
const PASSWORD: &str = "wonder-land-42";

/// The Django site copied to a www-data readable temp dir, with its sqlite database made (and
/// a user created) by the venv's python before Apache starts.
struct Site {
    tmp: TempDir,
}

impl Site {
    fn new() -> Site {
        let venv_python = venv::venv_python();
        let tmp = TempDir::new("django");
        let site = tmp.path().join("site");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/django/site");
        venv::copy_tree(&src, &site).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
        let data = tmp.path().join("data");
        fs::create_dir(&data).unwrap();
        fs::write(site.join("proj/local.py"), format!("DATA_DIR = {:?}\n", data.display().to_string())).unwrap();
        let out = venv::run(
            Command::new(&venv_python)
                .arg("-B") // no root-owned __pycache__ in the site
                .arg("setup_db.py")
                .args([USER, PASSWORD])
                .current_dir(&site)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("LANG", "C.UTF-8")
                .env("DJANGO_SETTINGS_MODULE", "proj.settings_a"),
        )
        .unwrap_or_else(|e| panic!("setting up the Django database failed: {e}"));
        assert!(out.contains("ok"), "{out}");
        // sqlite writes its journal next to the database: both must belong to www-data.
        venv::chown_www_data(&data);
        venv::chown_www_data(&data.join("db.sqlite3"));
        venv::make_world_readable(tmp.path()).unwrap();
        Site { tmp }
    }

    fn dir(&self) -> PathBuf {
        self.tmp.path().join("site")
    }

    /// One embedded child process: event MPM with MaxRequestWorkers = ThreadsPerChild.
    fn start(&self) -> Apache {
        let site = self.dir().display().to_string();
        Apache::builder()
            .config(&format!(
                "MaxRequestWorkers 8\n\
                 WSGIPythonHome {venv}\n\
                 WSGIPythonPath {site}\n\
                 WSGIScriptAlias /suburl {site}/proj/wsgi_b.py\n\
                 WSGIScriptAlias / {site}/proj/wsgi_a.py\n\
                 <Directory {site}/proj>\n\
                 Require all granted\n\
                 </Directory>",
                venv = venv::venv().display(),
            ))
            .start()
    }
}

#[track_caller]
fn fields(apache: &Apache, r: &Response) -> HashMap<String, String> {
    assert_eq!(r.status, 200, "{}\n{}\n{}", r.raw_head, r.text(), apache.log_tail(60));
    r.text().lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[track_caller]
fn check_site(apache: &Apache, path: &str, label: &str, settings: &str, script_name: &str) -> String {
    let f = fields(apache, &apache.get(path));
    assert_eq!(f["label"], label, "{path}: {f:?}");
    assert_eq!(f["settings"], settings, "{path}: {f:?}");
    assert_eq!(f["environ"], settings, "{path}: {f:?}");
    assert_eq!(f["script_name"], script_name, "{path}: {f:?}");
    assert_eq!(f["login_url"], format!("{script_name}/login/"), "{path}: {f:?}");
    f["pid"].clone()
}

fn two_settings(root_first: bool) {
    let site = Site::new();
    let apache = site.start();
    let (a, b) = (("/", "alpha", "proj.settings_a", ""), ("/suburl/", "beta", "proj.settings_b", "/suburl"));
    let order = if root_first { [a, b] } else { [b, a] };
    let mut pids = Vec::new();
    for _round in 0..2 {
        for (path, label, settings, script_name) in order {
            pids.push(check_site(&apache, path, label, settings, script_name));
        }
    }
    pids.dedup();
    assert_eq!(pids.len(), 1, "both sites must be served by the same process: {pids:?}");
}

#[test]
fn each_mount_has_its_own_settings_root_first() {
    two_settings(true);
}

#[test]
fn each_mount_has_its_own_settings_suburl_first() {
    two_settings(false);
}

/// The `name=value` part of the first Set-Cookie for `name`.
fn cookie<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers_named("Set-Cookie")
        .into_iter()
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .find(|c| c.split_once('=').is_some_and(|(n, _)| n == name))
}

fn csrf_token(html: &str) -> String {
    let marker = "name=\"csrfmiddlewaretoken\" value=\"";
    let start = html.find(marker).unwrap_or_else(|| panic!("no CSRF token in the login form:\n{html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

fn form(pairs: &[(&str, &str)]) -> String {
    fn enc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// GET the login page (CSRF cookie + token), POST the credentials, follow to the
/// login-required page with the session cookie.
fn login(apache: &Apache, mount: &str, label: &str) {
    let whoami = format!("{mount}/whoami/");
    let login_page = format!("{mount}/login/");

    // Not logged in: redirected to this mount's login page.
    let r = apache.get(&whoami);
    r.assert_status(302);
    assert_eq!(r.header("Location"), Some(format!("{login_page}?next={whoami}").as_str()));

    let r = apache.get(&login_page);
    r.assert_status(200);
    let csrf_cookie =
        cookie(&r, "csrftoken").unwrap_or_else(|| panic!("no csrftoken cookie:\n{}", r.raw_head)).to_string();
    let token = csrf_token(&r.text());

    // Without the CSRF cookie Django refuses the POST.
    let body = form(&[("csrfmiddlewaretoken", &token), ("username", USER), ("password", PASSWORD)]);
    let ct = ("Content-Type", "application/x-www-form-urlencoded");
    apache.send("POST", &login_page, &[ct], body.as_bytes()).assert_status(403);

    // A wrong password: the form again, no session.
    let bad = form(&[("csrfmiddlewaretoken", &token), ("username", USER), ("password", "nope")]);
    let r = apache.send("POST", &login_page, &[ct, ("Cookie", &csrf_cookie)], bad.as_bytes());
    r.assert_status(200);
    assert!(cookie(&r, "sessionid").is_none(), "{}", r.raw_head);

    let body = form(&[("csrfmiddlewaretoken", &token), ("username", USER), ("password", PASSWORD), ("next", &whoami)]);
    let r = apache.send("POST", &login_page, &[ct, ("Cookie", &csrf_cookie)], body.as_bytes());
    r.assert_status(302);
    assert_eq!(r.header("Location"), Some(whoami.as_str()), "{}", r.raw_head);
    // Each cookie on its own Set-Cookie line (a merged line loses the session in browsers).
    let set_cookies = r.headers_named("Set-Cookie");
    assert_eq!(set_cookies.len(), 2, "{}", r.raw_head);
    assert!(
        set_cookies
            .iter()
            .all(|c| c.matches("=").count() >= 1 && !c.contains(", sessionid=") && !c.contains(", csrftoken=")),
        "{set_cookies:?}"
    );
    let session = cookie(&r, "sessionid").unwrap_or_else(|| panic!("no sessionid cookie:\n{}", r.raw_head)).to_string();
    let csrf_rotated = cookie(&r, "csrftoken")
        .unwrap_or_else(|| panic!("CSRF token not rotated on login:\n{}", r.raw_head))
        .to_string();
    assert_ne!(csrf_rotated, csrf_cookie);
    assert_eq!(
        r.raw_head.matches("\r\nSet-Cookie: ").count() + r.raw_head.matches("\r\nset-cookie: ").count(),
        2,
        "{}",
        r.raw_head
    );

    let cookies = format!("{session}; {csrf_rotated}");
    let f = fields(apache, &apache.send("GET", &whoami, &[("Cookie", &cookies)], b""));
    assert_eq!(f["user"], USER, "{f:?}");
    assert_eq!(f["label"], label, "{f:?}");
}

#[test]
fn login_flow_with_csrf_and_session_cookies() {
    let site = Site::new();
    let apache = site.start();
    login(&apache, "/suburl", "beta");
    login(&apache, "", "alpha");
    let log = apache.error_log();
    assert!(!log.contains("Traceback"), "{log}");
}
