//! WSGIErrorOverride: in daemon mode a 4xx/5xx answer of the application is replaced by
//! Apache's own error document (ErrorDocument), as ProxyErrorOverride does for proxies; other
//! answers, embedded mode and places without the directive are untouched.

mod common;

use common::Apache;

const APP: &str = r#"
def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/ok':
        start_response('200 OK', [('Content-Type', 'text/plain'), ('X-App', 'yes')])
        return [b'app ok\n']
    status = {'/404': '404 Not Found', '/500': '500 Internal Server Error', '/403': '403 Forbidden'}[path]
    start_response(status, [('Content-Type', 'text/plain'), ('X-App', 'yes')])
    return [b'app error body\n' * 1000]
"#;

#[test]
fn error_answers_of_a_daemon_get_apaches_error_document() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess eo processes=1 threads=2\n\
             ErrorDocument 404 \"apache says 404\"\n\
             ErrorDocument 500 \"apache says 500\"\n\
             WSGIScriptAlias /over {APPS}/app.py process-group=eo\n\
             WSGIScriptAlias /plain {APPS}/app.py process-group=eo\n\
             WSGIScriptAlias /embedded {APPS}/app.py\n\
             <Location /over>\n\
               WSGIErrorOverride On\n\
             </Location>\n\
             <Location /embedded>\n\
               WSGIErrorOverride On\n\
             </Location>",
        )
        .start();
    let mut c = apache.connect();
    for (path, status, body) in [("/over/404", 404, "apache says 404"), ("/over/500", 500, "apache says 500")] {
        let r = c.send("GET", path, &[], b"");
        r.assert_status(status);
        assert_eq!(r.text(), body, "{path}");
        assert_eq!(r.header("X-App"), None, "{path}: the application's headers went out");
        // Apache closes the connection after a 500.
        c = apache.connect();
    }
    // An error without an ErrorDocument gets Apache's default page, not the application's body.
    let r = c.send("GET", "/over/403", &[], b"");
    r.assert_status(403);
    assert!(!r.text().contains("app error body"), "{}", r.text());
    // Success passes through, on the same connection (the daemon connection was kept too).
    let r = c.send("GET", "/over/ok", &[], b"");
    r.assert_status(200);
    assert_eq!((r.text().as_str(), r.header("X-App")), ("app ok\n", Some("yes")));
    // Without the directive, and in embedded mode (as in mod_wsgi), the application's answer.
    for path in ["/plain/404", "/embedded/404"] {
        let r = c.send("GET", path, &[], b"");
        r.assert_status(404);
        assert!(r.text().starts_with("app error body"), "{path}: {}", r.text());
        assert_eq!(r.header("X-App"), Some("yes"));
    }
}
