//! WSGIDaemonProcess options on the way back to the client: header-buffer-size (a longer
//! response header is a 500, as in mod_wsgi) and response-socket-timeout (a client that stops
//! reading releases the daemon's thread after that many seconds when nothing is spooled).

mod common;

use common::Apache;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const APP: &str = r#"
def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path.startswith('/header/'):
        n = int(path[len('/header/'):])
        start_response('200 OK', [('Content-Type', 'text/plain'), ('X-Big', 'h' * n)])
        return [b'ok']
    if path == '/body':
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return (b'x' * (1 << 20) for _ in range(32))
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello']
"#;

#[test]
fn header_buffer_size_bounds_response_headers() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess small header-buffer-size=8192 threads=1\n\
             WSGIDaemonProcess default threads=1\n\
             WSGIScriptAlias /small {APPS}/app.py process-group=small\n\
             WSGIScriptAlias /default {APPS}/app.py process-group=default",
        )
        .start();
    apache.get("/small/header/5000").assert_status(200);
    apache.get("/small/header/9000").assert_status(500);
    assert!(apache.wait_for_log("longer than header-buffer-size (8192 bytes)", Duration::from_secs(2)));
    apache.get("/default/header/20000").assert_status(200);
    apache.get("/default/header/40000").assert_status(500);
    let _ = apache.stop();
}

#[test]
fn response_socket_timeout_releases_a_stalled_relay() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess one threads=1 response-spool-size=0 response-socket-timeout=1\n\
             WSGIScriptAlias /app {APPS}/app.py process-group=one",
        )
        .start();
    apache.get("/app/").assert_status(200);
    let mut stalled = std::net::TcpStream::connect(apache.addr()).unwrap();
    stalled.write_all(b"GET /app/body HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    stalled.read_exact(&mut head).unwrap();
    // Without spooling the one daemon thread waits on the stalled client, but only for 1 s.
    std::thread::sleep(Duration::from_millis(2500));
    let t = Instant::now();
    apache.get("/app/").assert_status(200);
    assert!(t.elapsed() < Duration::from_secs(1), "hello took {:?}\n{}", t.elapsed(), apache.log_tail(10));
    drop(stalled);
    let _ = apache.stop();
}
