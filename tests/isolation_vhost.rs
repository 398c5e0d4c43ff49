//! The default-virtual-host deny fallback (`WSGIRestrictUnknownHosts`, src/apache/vhost.rs):
//! with name-based virtual hosts sharing an address, a request for a host none of them declares
//! is refused with 403 before any WSGI application runs, instead of going to the first one.

mod common;
use common::*;
use std::time::Duration;

const SITE_A: &str = include_str!("apps/isolation/site_a.wsgi");
const SITE_B: &str = include_str!("apps/isolation/site_b.wsgi");

/// Two name-based virtual hosts on the harness's port; `extra_a` / `extra_b` go inside them,
/// `global` after them at server level.
fn two_sites(extra_a: &str, extra_b: &str, global: &str) -> Apache {
    Apache::builder()
        .app("isolation/site_a.wsgi", SITE_A)
        .app("isolation/site_b.wsgi", SITE_B)
        .app("isolation/h/handled.wsgi", SITE_A)
        .doc("static.txt", "static file\n")
        .config(&format!(
            "<VirtualHost *:{{PORT}}>\n\
             ServerName a.test\n\
             ServerAlias www.a.test *.wild.a.test\n\
             WSGIScriptAlias /app {{APPS}}/isolation/site_a.wsgi\n\
             Alias /h {{APPS}}/isolation/h\n\
             <Directory {{APPS}}/isolation/h>\n\
             AddHandler wsgi-script .wsgi\n\
             </Directory>\n\
             {extra_a}\n\
             </VirtualHost>\n\
             <VirtualHost *:{{PORT}}>\n\
             ServerName b.test\n\
             WSGIScriptAlias /app {{APPS}}/isolation/site_b.wsgi\n\
             {extra_b}\n\
             </VirtualHost>\n\
             {global}"
        ))
        .start()
}

fn get_host(apache: &Apache, host: &str, path: &str) -> Response {
    apache.send("GET", path, &[("Host", host)], b"")
}

#[test]
fn unknown_host_is_refused_before_the_first_site_runs() {
    let apache = two_sites("", "", "");

    // Unknown names first: site A (the default vhost for this address) must never be imported.
    get_host(&apache, "evil.test", "/app").assert_status(403);
    get_host(&apache, "evil.test:1234", "/app").assert_status(403);
    get_host(&apache, "127.0.0.1", "/app").assert_status(403); // the main server's name is not a vhost's
                                                               // HTTP/1.0 without any Host header.
    let r = apache.request(b"GET /app HTTP/1.0\r\n\r\n");
    r.assert_status(403);
    // A WSGI script reached through AddHandler (handler set by mod_mime, not by our translate_name).
    get_host(&apache, "evil.test", "/h/handled.wsgi").assert_status(403);
    // Static files keep Apache's default-vhost behaviour: only WSGI requests are refused.
    let r = get_host(&apache, "evil.test", "/static.txt");
    r.assert_status(200);
    assert_eq!(r.text(), "static file\n");

    let log = apache.error_log();
    assert!(!log.contains("SITE-A"), "site A ran for a refused request:\n{log}");
    assert!(!log.contains("SITE-B"), "{log}");
    assert!(log.contains("refusing unknown host 'evil.test'"), "{log}");
    assert!(log.contains("refusing a request without a Host header"), "{log}");
    assert!(log.contains(":info]"), "refusals are logged at info level:\n{log}");
    assert!(log.contains("WSGIRestrictUnknownHosts Off"), "{log}");

    // Known names reach their own site, whatever the case, port or alias.
    for host in ["a.test", "A.Test", "a.test:8080", "www.a.test", "x.wild.a.test", "a.test."] {
        let r = get_host(&apache, host, "/app");
        r.assert_status(200);
        assert_eq!(r.text(), "site-a", "host {host}");
    }
    let r = get_host(&apache, "a.test", "/h/handled.wsgi");
    r.assert_status(200);
    assert_eq!(r.text(), "site-a");
    let r = get_host(&apache, "b.test", "/app");
    r.assert_status(200);
    assert_eq!(r.text(), "site-b");
    // An alias pattern is not a prefix match.
    get_host(&apache, "wild.a.test", "/app").assert_status(403);
    get_host(&apache, "b.test.evil", "/app").assert_status(403);

    let log = apache.error_log();
    assert!(!log.contains("SITE-A called for host 'evil.test"), "{log}");
    assert!(!log.contains("SITE-A called for host 'wild.a.test'"), "{log}");
}

#[test]
fn off_restores_apaches_default_vhost() {
    let apache = two_sites("", "", "WSGIRestrictUnknownHosts Off");
    let r = get_host(&apache, "evil.test", "/app");
    r.assert_status(200);
    assert_eq!(r.text(), "site-a", "Apache hands unknown names to the first vhost");
    let r = apache.request(b"GET /app HTTP/1.0\r\n\r\n");
    r.assert_status(200);
    assert_eq!(r.text(), "site-a");
    assert!(apache.wait_for_log("SITE-A called for host 'evil.test'", Duration::from_secs(2)));
    assert!(!apache.error_log().contains("refusing"), "{}", apache.error_log());
}

#[test]
fn off_is_per_virtual_host() {
    // Off in the default (first) vhost: the fallback is allowed there.
    let apache = two_sites("WSGIRestrictUnknownHosts Off", "", "");
    let r = get_host(&apache, "evil.test", "/app");
    r.assert_status(200);
    assert_eq!(r.text(), "site-a");
    drop(apache);

    // Off only in the second vhost: the fallback still lands on the first, which refuses it.
    let apache = two_sites("", "WSGIRestrictUnknownHosts Off", "");
    get_host(&apache, "evil.test", "/app").assert_status(403);
    get_host(&apache, "b.test", "/app").assert_status(200);
    // Explicit On in a vhost, Off globally: the vhost's setting wins.
    drop(apache);
    let apache = two_sites("WSGIRestrictUnknownHosts On", "", "WSGIRestrictUnknownHosts Off");
    get_host(&apache, "evil.test", "/app").assert_status(403);
    get_host(&apache, "a.test", "/app").assert_status(200);
}

#[test]
fn a_single_site_is_unaffected() {
    // No virtual hosts at all: the main server answers any host name.
    let apache = Apache::builder()
        .app("isolation/site_a.wsgi", SITE_A)
        .config("WSGIScriptAlias /app {APPS}/isolation/site_a.wsgi")
        .start();
    for host in ["evil.test", "127.0.0.1", "localhost"] {
        let r = get_host(&apache, host, "/app");
        r.assert_status(200);
        assert_eq!(r.text(), "site-a");
    }
    apache.request(b"GET /app HTTP/1.0\r\n\r\n").assert_status(200);
    drop(apache);

    // One virtual host on the address: it serves every name (no name-based choice happens).
    let apache = Apache::builder()
        .app("isolation/site_a.wsgi", SITE_A)
        .config(
            "<VirtualHost *:{PORT}>\n\
             ServerName a.test\n\
             WSGIScriptAlias /app {APPS}/isolation/site_a.wsgi\n\
             </VirtualHost>",
        )
        .start();
    let r = get_host(&apache, "evil.test", "/app");
    r.assert_status(200);
    assert_eq!(r.text(), "site-a");
    apache.request(b"GET /app HTTP/1.0\r\n\r\n").assert_status(200);
    assert!(!apache.error_log().contains("refusing"), "{}", apache.error_log());
}

#[test]
fn the_virtualhost_address_itself_is_a_declared_name() {
    // Apache's own matching also accepts the literal address of a <VirtualHost> line as the Host:
    // that is a real match, not the fallback, so it is not refused.
    let apache = Apache::builder()
        .app("isolation/site_a.wsgi", SITE_A)
        .app("isolation/site_b.wsgi", SITE_B)
        .config(
            "<VirtualHost 127.0.0.1:{PORT}>\n\
             ServerName a.test\n\
             WSGIScriptAlias /app {APPS}/isolation/site_a.wsgi\n\
             </VirtualHost>\n\
             <VirtualHost 127.0.0.1:{PORT}>\n\
             ServerName b.test\n\
             WSGIScriptAlias /app {APPS}/isolation/site_b.wsgi\n\
             </VirtualHost>",
        )
        .start();
    let r = get_host(&apache, "127.0.0.1", "/app");
    r.assert_status(200);
    assert_eq!(r.text(), "site-a");
    assert_eq!(get_host(&apache, "b.test", "/app").text(), "site-b");
    get_host(&apache, "localhost", "/app").assert_status(403);
}
