//! WSGIEnableSendfile: unset or On, a wsgi.file_wrapper file goes out with sendfile(2) and is
//! never mapped (so a stalled client leaves it to write completion); with Off, as mod_wsgi's
//! default, Apache maps it and writes it from memory. Seen from /proc/PID/maps of Apache's
//! processes while a client that does not read holds the response, in embedded and daemon mode.

mod common;

use common::Apache;
use std::io::{Read, Write};
use std::time::Duration;

const APP: &str = r#"
import os

def application(environ, start_response):
    path = os.path.join(os.path.dirname(__file__), 'big.bin')
    start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                              ('Content-Length', str(os.path.getsize(path)))])
    return environ['wsgi.file_wrapper'](open(path, 'rb'))
"#;

/// Whether any of Apache's processes has `big.bin` mapped while a client stalls on it.
fn mapped_while_stalled(apache: &Apache, path: &str) -> bool {
    let mut s = std::net::TcpStream::connect(apache.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut head = [0u8; 4096];
    let n = s.read(&mut head).unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&head[..n]));
    // The client reads nothing more: Apache keeps the rest set aside (mapped, or as a file).
    std::thread::sleep(Duration::from_millis(500));
    let file = apache.apps.join("big.bin");
    let needle = file.to_str().unwrap();
    apache.all_pids().iter().any(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/maps")).is_ok_and(|m| m.lines().any(|l| l.ends_with(needle)))
    })
}

fn site(sendfile: &str) -> Apache {
    Apache::builder()
        .app("app.py", APP)
        .file("apps/big.bin", vec![7u8; 48 << 20])
        .config(&format!(
            "WSGIDaemonProcess files processes=1 threads=2\n\
             WSGIScriptAlias /emb {{APPS}}/app.py\n\
             WSGIScriptAlias /dmn {{APPS}}/app.py process-group=files\n\
             {sendfile}"
        ))
        .start()
}

#[test]
fn off_maps_the_file_and_the_default_sends_it_with_sendfile() {
    let off = site("WSGIEnableSendfile Off");
    for path in ["/emb", "/dmn"] {
        assert!(mapped_while_stalled(&off, path), "{path}: WSGIEnableSendfile Off should map the file");
    }
    drop(off);
    for setting in ["", "WSGIEnableSendfile On"] {
        let on = site(setting);
        for path in ["/emb", "/dmn"] {
            assert!(!mapped_while_stalled(&on, path), "{path} with {setting:?}: the file should not be mapped");
        }
    }
    let on = site("");
    // And the whole file arrives either way.
    let r = on.get("/emb");
    r.assert_status(200);
    assert_eq!(r.body.len(), 48 << 20);
}
