//! WSGIAuthUserScript (AuthBasicProvider wsgi), WSGIAuthGroupScript (Require wsgi-group) and
//! WSGIAccessScript with a real Apache: what each return value means, and an exception is a 500
//! with the traceback in the log, never a granted request. The protected app runs in both modes.

mod common;

use common::Apache;

const AUTH: &str = r#"
def check_password(environ, user, password):
    if user == "boom":
        raise RuntimeError("auth script failed")
    if "HTTP_AUTHORIZATION" in environ:
        return False   # the credentials never reach the script's environ
    if user == "alice":
        return password == "secret"
    if user == "alias":
        return "alice"   # authenticated, as another user name
    return None          # unknown user

def groups_for_user(environ, user):
    if user == "alice":
        return ["staff", b"admins"]
    return []

def allow_access(environ, host):
    if environ.get("HTTP_X_DENY") == "1":
        return False
    if environ.get("HTTP_X_DENY") == "raise":
        raise ValueError("access script failed")
    return None
"#;

const APP: &str = r#"
import os
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("user=%s pid=%d" % (environ.get("REMOTE_USER", "-"), os.getpid())).encode()]
"#;

fn basic(user: &str, password: &str) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

fn site() -> Apache {
    Apache::builder()
        .apache_module("auth_basic")
        .apache_module("authn_core")
        .apache_module("authz_user")
        .app("app.py", APP)
        .app("auth.wsgi", AUTH)
        .config(
            "WSGIDaemonProcess authd threads=2\n\
             WSGIScriptAlias /emb {APPS}/app.py\n\
             WSGIScriptAlias /dmn {APPS}/app.py process-group=authd\n\
             WSGIScriptAlias /staff {APPS}/app.py\n\
             WSGIScriptAlias /ops {APPS}/app.py\n\
             WSGIScriptAlias /open {APPS}/app.py\n\
             <Location />\n\
               AuthType Basic\n AuthName test\n AuthBasicProvider wsgi\n\
               WSGIAuthUserScript {APPS}/auth.wsgi\n\
               WSGIAuthGroupScript {APPS}/auth.wsgi\n\
               Require valid-user\n\
             </Location>\n\
             <Location /staff>\n Require wsgi-group staff\n</Location>\n\
             <Location /ops>\n Require wsgi-group ops\n</Location>\n\
             <Location /open>\n Require all granted\n WSGIAccessScript {APPS}/auth.wsgi\n</Location>",
        )
        .start()
}

fn status(apache: &Apache, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let r = apache.send("GET", path, headers, b"");
    (r.status, r.text())
}

#[test]
fn check_password_answers_in_both_modes() {
    let apache = site();
    let alice = basic("alice", "secret");
    for path in ["/emb", "/dmn"] {
        let (s, body) = status(&apache, path, &[("Authorization", &alice)]);
        assert_eq!(s, 200, "{path}: {body}\n{}", apache.error_log());
        assert!(body.starts_with("user=alice"), "{body}");
        assert_eq!(status(&apache, path, &[("Authorization", &basic("alice", "wrong"))]).0, 401);
        assert_eq!(status(&apache, path, &[("Authorization", &basic("nobody", "x"))]).0, 401);
        assert_eq!(status(&apache, path, &[]).0, 401);
        // A returned string is the user name the request goes on with.
        let (s, body) = status(&apache, path, &[("Authorization", &basic("alias", "x"))]);
        assert_eq!((s, body.split(' ').next()), (200, Some("user=alice")), "{body}");
    }
}

#[test]
fn an_exception_is_a_500_with_the_traceback_never_a_grant() {
    let apache = site();
    let (s, _) = status(&apache, "/emb", &[("Authorization", &basic("boom", "x"))]);
    assert_eq!(s, 500);
    let log = apache.error_log();
    assert!(log.contains("RuntimeError: auth script failed"), "{log}");
    assert!(log.contains("Exception occurred processing WSGIAuthUserScript"), "{log}");
}

#[test]
fn require_wsgi_group() {
    let apache = site();
    let alice = basic("alice", "secret");
    assert_eq!(status(&apache, "/staff", &[("Authorization", &alice)]).0, 200);
    assert_eq!(status(&apache, "/ops", &[("Authorization", &alice)]).0, 401);
    assert_eq!(status(&apache, "/staff", &[("Authorization", &basic("alias", "x"))]).0, 200, "alias became alice");
}

#[test]
fn allow_access() {
    let apache = site();
    assert_eq!(status(&apache, "/open", &[]).0, 200, "None: the other modules decide (Require all granted)");
    assert_eq!(status(&apache, "/open", &[("X-Deny", "1")]).0, 403);
    assert_eq!(status(&apache, "/open", &[("X-Deny", "raise")]).0, 500);
    assert!(apache.error_log().contains("ValueError: access script failed"));
}

/// mod_wsgi's own suite decides by PATH_INFO (tests/wsgi/authnz.wsgi).
const ACCESS_BY_PATH: &str = r#"
def allow_access(environ, host):
    assert environ["mod_wsgi.application_group"] == "", environ["mod_wsgi.application_group"]
    if environ["PATH_INFO"].startswith("/deny"):
        return False
    if environ["PATH_INFO"] == "/raise":
        raise ValueError("access script failed")
    return environ["SCRIPT_NAME"] in ("/emb", "/dmn")
"#;

/// A `<Location>` with WSGIAccessScript and no `Require` of its own: the script runs with the
/// request's SCRIPT_NAME and PATH_INFO, and its False is a 403 before the application runs.
#[test]
fn access_script_without_a_require_of_its_own_sees_the_path() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .app("access.wsgi", ACCESS_BY_PATH)
        .config(
            "WSGIDaemonProcess authd threads=2\n\
             WSGIScriptAlias /emb {APPS}/app.py\n\
             WSGIScriptAlias /dmn {APPS}/app.py process-group=authd\n\
             <Location /emb>\n WSGIAccessScript {APPS}/access.wsgi\n</Location>\n\
             <Location /dmn>\n WSGIAccessScript {APPS}/access.wsgi\n</Location>",
        )
        .start();
    for mount in ["/emb", "/dmn"] {
        let (s, body) = status(&apache, &format!("{mount}/allow"), &[]);
        assert_eq!(s, 200, "{mount}: {body}\n{}", apache.error_log());
        assert_eq!(status(&apache, mount, &[]).0, 200, "{mount}: no PATH_INFO");
        assert_eq!(status(&apache, &format!("{mount}/deny"), &[]).0, 403, "{mount}");
        assert_eq!(status(&apache, &format!("{mount}/deny/x?y=1"), &[]).0, 403, "{mount}");
        assert_eq!(status(&apache, &format!("{mount}/raise"), &[]).0, 500, "{mount}");
    }
    let log = apache.error_log();
    assert!(!log.contains("AssertionError"), "{log}");
    assert!(log.contains("): Client denied by server configuration: '"), "{log}");
}

/// With `MergeSlashes Off`, the application sees runs of `/` folded (as under mod_wsgi 6), and so
/// does the access script: `//deny` must not slip past a script that denies `/deny`.
#[test]
fn access_script_sees_the_path_the_application_will_see() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .app("access.wsgi", ACCESS_BY_PATH)
        .config(
            "MergeSlashes Off\n\
             WSGIScriptAlias /emb {APPS}/app.py\n\
             <Location /emb>\n WSGIAccessScript {APPS}/access.wsgi\n</Location>",
        )
        .start();
    assert_eq!(status(&apache, "/emb/allow", &[]).0, 200, "{}", apache.error_log());
    assert_eq!(status(&apache, "/emb//deny", &[]).0, 403, "{}", apache.error_log());
    assert_eq!(status(&apache, "/emb///deny/x", &[]).0, 403, "{}", apache.error_log());
}
