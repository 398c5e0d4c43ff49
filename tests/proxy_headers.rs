//! WSGITrustedProxyHeaders / WSGITrustedProxies with a real Apache, in embedded and daemon mode:
//! a trusted proxy's headers set REMOTE_ADDR, HTTP_HOST and wsgi.url_scheme; the same headers
//! from an untrusted peer change nothing and are removed, so a client cannot spoof its address.

mod common;
#[path = "apps/daemon/mod.rs"]
mod daemon_apps;

use std::collections::BTreeMap;

use common::Apache;

const APP: &str = r#"
def application(environ, start_response):
    keys = ["REMOTE_ADDR", "HTTP_HOST", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_PROTO"]
    out = ["%s=%s" % (k, environ.get(k, "-")) for k in keys]
    out.append("scheme=%s" % environ["wsgi.url_scheme"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("\n".join(out) + "\n").encode()]
"#;

fn seen(apache: &Apache, path: &str, headers: &[(&str, &str)]) -> BTreeMap<String, String> {
    apache.send("GET", path, headers, b"").fields()
}

#[test]
fn trusted_proxies_only_in_both_modes() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess px threads=2\n\
             WSGIScriptAlias /emb-trusted {APPS}/app.py\n\
             WSGIScriptAlias /emb-untrusted {APPS}/app.py\n\
             WSGIScriptAlias /dmn-trusted {APPS}/app.py process-group=px\n\
             WSGIScriptAlias /dmn-untrusted {APPS}/app.py process-group=px\n\
             WSGITrustedProxyHeaders X-Forwarded-For X-Forwarded-Proto\n\
             WSGITrustedProxyHeaders X-Forwarded-Host\n\
             <Location /emb-trusted>\n WSGITrustedProxies 127.0.0.1 10.0.0.0/8\n</Location>\n\
             <Location /dmn-trusted>\n WSGITrustedProxies 127.0.0.0/8\n WSGITrustedProxies 10.0.0.0/255.0.0.0\n</Location>\n\
             <Location /emb-untrusted>\n WSGITrustedProxies 10.0.0.0/8\n</Location>\n\
             <Location /dmn-untrusted>\n WSGITrustedProxies 192.0.2.0/255.255.255.0\n</Location>",
        )
        .start();
    let forged = [
        ("X-Forwarded-For", "6.6.6.6, 203.0.113.9, 10.1.1.1"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "www.example.com"),
        ("X-Real-IP", "6.6.6.6"),
    ];
    for mode in ["emb", "dmn"] {
        let t = seen(&apache, &format!("/{mode}-trusted"), &forged);
        // The rightmost address that is not a trusted proxy: what the first proxy saw.
        assert_eq!(t["REMOTE_ADDR"], "203.0.113.9", "{mode}: {t:?}");
        assert_eq!(t["HTTP_X_FORWARDED_FOR"], "203.0.113.9, 10.1.1.1", "{mode}: {t:?}");
        assert_eq!(t["scheme"], "https", "{mode}: {t:?}");
        assert_eq!(t["HTTP_HOST"], "www.example.com", "{mode}: {t:?}");
        // Another client-address header than the configured one is removed.
        assert_eq!(t["HTTP_X_REAL_IP"], "-", "{mode}: {t:?}");

        let u = seen(&apache, &format!("/{mode}-untrusted"), &forged);
        assert_eq!(u["REMOTE_ADDR"], "127.0.0.1", "{mode}: {u:?}");
        assert_eq!(u["scheme"], "http", "{mode}: {u:?}");
        assert_ne!(u["HTTP_HOST"], "www.example.com", "{mode}: {u:?}");
        for k in ["HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_PROTO"] {
            assert_eq!(u[k], "-", "{mode}: {k} from an untrusted peer reached the app: {u:?}");
        }
    }
}

#[test]
fn bad_proxy_configuration_fails_configtest() {
    for (snippet, message) in [
        ("WSGITrustedProxyHeaders X-Forwarded-Fro", "'X-Forwarded-Fro' is not a proxy header"),
        ("WSGITrustedProxies proxy.example.com", "'proxy.example.com' is not an IP address or network"),
        ("WSGITrustedProxies 10.0.0.0/40", "'10.0.0.0/40' is not an IP address or network"),
    ] {
        let t = daemon_apps::config_test(snippet);
        assert!(!t.ok, "{snippet}: accepted: {t:?}");
        assert!(t.output.contains(message), "{snippet}: {}", t.output);
        assert!(t.output.contains("Syntax error on line"), "{snippet}: {}", t.output);
    }
}
