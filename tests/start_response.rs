//! start_response() as mod_wsgi 6 defines it, in both modes: what it checks when it is called,
//! with mod_wsgi's exception types and messages (so an application can catch them), a second
//! call before any output replacing the first, and one after output raising.

mod common;

use common::Apache;

const APP: &str = include_str!("apps/start_response.py");

fn apache(daemon: bool) -> Apache {
    let mut b = Apache::builder().app("start_response.wsgi", APP);
    if daemon {
        b = b.config("WSGIDaemonProcess sr processes=1 threads=2\nWSGIProcessGroup sr");
    }
    b.config("WSGIScriptAlias / {APPS}/start_response.wsgi").start()
}

/// mod_wsgi 6's answers (its tests/wsgi/start_response.sh), path -> body.
const CAUGHT: &[(&str, &str)] = &[
    ("/non-tuple-exc-info", "RuntimeError:start_response() argument 'exc_info' must be a 3-tuple or None;end"),
    ("/status?case=no-digits", "ValueError:status code must be a 3 digit integer: b'OK';end"),
    ("/status?case=mixed", "ValueError:status code must be a 3 digit integer: b'20X OK';end"),
    ("/status?case=four-digits", "ValueError:status code must be a 3 digit integer: b'2000 OK';end"),
    ("/status?case=no-space", "ValueError:no space following status code: b'200OK';end"),
    (
        "/status?case=control-char",
        "ValueError:control character in status reason phrase: b'200 OK\\r\\nX-Injected: yes';end",
    ),
    ("/status?case=bytes", "TypeError:must be str, not bytes;end"),
    ("/header?case=empty-name", "ValueError:header name is empty;end"),
    ("/header?case=space-name", "ValueError:space character in header name: b'X Foo';end"),
    ("/header?case=control-name", "ValueError:control character in header name: b'X\\tFoo';end"),
    (
        "/header?case=cr-value",
        "ValueError:carriage return/line feed character in header value: b'line1\\r\\nline2';end",
    ),
    ("/header?case=lf-value", "ValueError:carriage return/line feed character in header value: b'line1\\nline2';end"),
    ("/header?case=non-string-name", "TypeError:must be str, not int;end"),
    (
        "/header?case=non-latin1-value",
        "UnicodeEncodeError:'latin-1' codec can't encode characters in position 0-1: ordinal not in range(256);end",
    ),
    ("/header?case=not-a-tuple", "TypeError:each header must be a 2-tuple, not str;end"),
    ("/header?case=wrong-tuple-size", "ValueError:each header must be a 2-tuple, got length 3;end"),
    ("/headers-type?case=string", "TypeError:start_response() argument 2 must be list, not str;end"),
    ("/headers-type?case=tuple", "TypeError:start_response() argument 2 must be list, not tuple;end"),
    ("/headers-type?case=dict", "TypeError:start_response() argument 2 must be list, not dict;end"),
];

fn check(daemon: bool) {
    let apache = apache(daemon);
    for (path, body) in CAUGHT {
        let r = apache.get(path);
        r.assert_status(200);
        assert_eq!(r.text(), *body, "{path}");
    }

    // Before any output a second call replaces the first, with exc_info or without.
    let r = apache.get("/second-before-output");
    r.assert_status(201);
    assert_eq!(r.header("X-First"), None, "{}", r.raw_head);
    assert_eq!(r.header("X-Second"), Some("2"));
    assert_eq!(r.text(), "second-wins");
    let r = apache.get("/exc-info-before-output");
    r.assert_status(418);
    assert_eq!(r.header("X-Before"), None, "{}", r.raw_head);
    assert_eq!(r.header("X-After"), Some("second"));
    assert_eq!(r.text(), "second-headers-win");

    // After output: without exc_info a RuntimeError, with it the application's exception.
    let r = apache.get("/second-after-output");
    r.assert_status(200);
    assert_eq!(r.text(), "pre-err:start_response() called more than once without exc_info");
    let r = apache.get("/exc-info-after-output");
    r.assert_status(200);
    assert_eq!(r.text(), "headers-sent-reraised:intentional-exc-info");

    apache.get("/no-start-response").assert_status(500);
}

#[test]
fn start_response_checks_as_mod_wsgi_6_embedded() {
    check(false);
}

#[test]
fn start_response_checks_as_mod_wsgi_6_daemon() {
    check(true);
}
