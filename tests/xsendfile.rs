//! X-Sendfile (`WSGIXSendfilePath`): an application's `X-Sendfile` header makes Apache send
//! the file it names, in embedded and daemon mode; a file outside the configured directories
//! (also through `..` or a symbolic link) is a 500 with a log line, never the file.

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;

use common::Apache;

const APP: &str = r#"
import os
ROOT = os.path.dirname(os.path.dirname(__file__))

def application(environ, start_response):
    name = environ.get('QUERY_STRING', '')
    start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                              ('X-Sendfile', os.path.join(ROOT, name)),
                              ('Content-Length', '8')])
    return [b'app body']
"#;

#[test]
fn sends_allowed_files_and_refuses_the_rest_in_both_modes() {
    let file: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let apache = Apache::builder()
        .app("app.py", APP)
        .file("files/a.bin", &file)
        .file("secret.txt", "TOP SECRET")
        .config(
            "WSGIDaemonProcess xs processes=1 threads=2\n\
             WSGIScriptAlias /d {APPS}/app.py process-group=xs\n\
             WSGIScriptAlias /e {APPS}/app.py\n\
             WSGIScriptAlias /plain {APPS}/app.py\n\
             <Location /d>\n    WSGIXSendfilePath {ROOT}/files\n</Location>\n\
             <Location /e>\n    WSGIXSendfilePath {ROOT}/files\n</Location>",
        )
        .start();
    let root = apache.config_path().parent().unwrap().to_path_buf();
    std::os::unix::fs::symlink(root.join("secret.txt"), root.join("files/link")).unwrap();
    for mount in ["/e", "/d"] {
        let r = apache.get(&format!("{mount}/?files/a.bin"));
        r.assert_status(200);
        assert_eq!(r.body.len(), file.len(), "{mount}");
        assert!(r.body == file, "{mount}: the file's bytes");
        assert_eq!(r.header("content-length"), Some("300000"));
        assert_eq!(r.header("x-sendfile"), None, "{mount}: the path is not shown to the client");
        for bad in ["secret.txt", "files/../secret.txt", "files/link", "files/missing"] {
            let r = apache.get(&format!("{mount}/?{bad}"));
            r.assert_status(500);
            assert!(!r.text().contains("TOP SECRET") && !r.text().contains("app body"), "{mount} {bad}: {}", r.text());
        }
    }
    assert!(apache.count_in_log("is not inside a WSGIXSendfilePath directory") >= 4, "{}", apache.log_tail(20));
    // Where WSGIXSendfilePath does not apply the header is an ordinary one.
    let r = apache.get("/plain/?files/a.bin");
    r.assert_status(200);
    assert_eq!(r.text(), "app body");
    assert!(r.header("x-sendfile").is_some());
    let _ = apache.stop();
}

#[test]
fn a_relative_directory_is_a_configtest_error() {
    let t = daemon_apps::config_test("WSGIXSendfilePath files");
    assert!(!t.ok, "accepted: {t:?}");
    assert!(t.output.contains("Syntax error on line"), "{}", t.output);
    assert!(t.output.contains("WSGIXSendfilePath: 'files' is not an absolute directory"), "{}", t.output);
}
