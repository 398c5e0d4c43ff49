//! Slow uploads hold no thread: a request's body is collected (memory, then a temporary file)
//! before its application runs, and on the event MPM the request waits in the MPM, not on a
//! worker thread, while the client is behind; in daemon mode it goes to the group only once its
//! body is here. So more clients than Apache has workers, each sending the headers of a large
//! POST and a little of its body and then stalling, must not keep a hello from being answered
//! at once, in either mode; when they go on, each upload arrives intact. A body that never
//! arrives whole is not given to the application at all.

mod common;

use common::Apache;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const APP: &str = r#"
import sys

def fnv(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h

def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/upload':
        print('upload called: %s' % environ.get('QUERY_STRING'), file=sys.stderr, flush=True)
        data = environ['wsgi.input'].read()
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [('%d %x' % (len(data), fnv(data))).encode()]
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello']
"#;

const DAEMON: &str = "WSGIDaemonProcess one processes=1 threads=1\n\
                      WSGIChunkedRequest On\n\
                      WSGIScriptAlias /app {APPS}/app.py process-group=one";

const EMBEDDED: &str = "WSGIChunkedRequest On\n\
                        WSGIScriptAlias /app {APPS}/app.py";

/// Both modes, by name.
const MODES: [(&str, &str); 2] = [("embedded", EMBEDDED), ("daemon", DAEMON)];

/// More stalled uploads than the harness's Apache has worker threads (MaxRequestWorkers 16).
const STALLED: usize = 20;

/// What a client uploads: 1 MiB, different bytes at different places.
fn upload() -> Vec<u8> {
    (0..1usize << 20).map(|i| (i * 31 % 251) as u8).collect()
}

/// FNV-1a, as the application computes it.
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}

/// The application's answer for an intact `upload()`.
fn intact() -> String {
    let data = upload();
    format!("{} {:x}", data.len(), hash(&data))
}

/// Sends the head of a POST of `upload()` to `/app/upload?id`, and the first `first` bytes of
/// its body.
fn start_upload(apache: &Apache, id: &str, first: usize) -> TcpStream {
    let mut s = TcpStream::connect(apache.addr()).unwrap();
    let head = format!(
        "POST /app/upload?{id} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        1 << 20
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&upload()[..first]).unwrap();
    s
}

/// The whole response on `s` (to its Content-Length, or the last chunk), bounded by a read
/// timeout.
fn answer(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(at) = text.find("\r\n\r\n") {
            let length = text[..at]
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let done = match length {
                Some(n) => got.len() >= at + 4 + n,
                None => text[at..].ends_with("\r\n0\r\n\r\n"),
            };
            if done {
                return text;
            }
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed after {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
}

fn hello_time(apache: &Apache) -> Duration {
    let t = Instant::now();
    let r = apache.get("/app/hello");
    r.assert_status(200);
    assert_eq!(r.text(), "hello");
    t.elapsed()
}

#[test]
fn no_thread_waits_for_an_upload_in_either_mode() {
    for (mode, config) in MODES {
        let apache = Apache::builder().app("app.py", APP).config(config).start();
        hello_time(&apache);
        let mut stalled: Vec<TcpStream> =
            (0..STALLED).map(|i| start_upload(&apache, &format!("stalled{i}"), 1024)).collect();
        std::thread::sleep(Duration::from_millis(300));
        let took = hello_time(&apache);
        assert!(took < Duration::from_secs(1), "{mode}: hello took {took:?} with {STALLED} stalled uploads");
        assert_eq!(apache.count_in_log("upload called"), 0, "{mode}: an application was called before its body came");
        // Each goes on, and its upload arrives whole.
        for s in &mut stalled {
            s.write_all(&upload()[1024..]).unwrap();
        }
        for (i, s) in stalled.iter_mut().enumerate() {
            let text = answer(s);
            assert!(text.starts_with("HTTP/1.1 200"), "{mode}: upload {i}: {text}");
            assert!(text.contains(&intact()), "{mode}: upload {i}: {text}");
        }
        let _ = apache.stop();
    }
}

/// `WSGIRequestSpoolSize 0` (embedded mode) reads the body as mod_wsgi does: the application is
/// called with the head, and a stalled upload holds its thread.
#[test]
fn request_spool_size_zero_turns_collecting_off() {
    let apache = Apache::builder().app("app.py", APP).config(&format!("WSGIRequestSpoolSize 0\n{EMBEDDED}")).start();
    let mut s = start_upload(&apache, "streamed", 1024);
    assert!(apache.wait_for_log("upload called: streamed", Duration::from_secs(10)), "{}", apache.log_tail(20));
    s.write_all(&upload()[1024..]).unwrap();
    assert!(answer(&mut s).contains(&intact()));
    let _ = apache.stop();
}

#[test]
fn chunked_and_expect_continue_uploads_arrive_whole() {
    for (mode, config) in MODES {
        chunked_and_expect_continue(mode, config);
    }
}

fn chunked_and_expect_continue(mode: &str, config: &str) {
    let apache = Apache::builder().app("app.py", APP).config(config).start();
    // Chunked, in pieces of 100,000 bytes.
    let mut s = TcpStream::connect(apache.addr()).unwrap();
    s.write_all(b"POST /app/upload?chunked HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    for piece in upload().chunks(100_000) {
        s.write_all(format!("{:x}\r\n", piece.len()).as_bytes()).unwrap();
        s.write_all(piece).unwrap();
        s.write_all(b"\r\n").unwrap();
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let text = answer(&mut s);
    assert!(text.contains(&intact()), "{mode}: chunked: {text}");
    // Expect: 100-continue: the body is sent once Apache asks for it.
    let mut s = TcpStream::connect(apache.addr()).unwrap();
    let head = format!(
        "POST /app/upload?expect HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        1 << 20
    );
    s.write_all(head.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut cont = [0u8; 25];
    s.read_exact(&mut cont).unwrap();
    assert_eq!(&cont, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(&upload()).unwrap();
    let text = answer(&mut s);
    assert!(text.contains(&intact()), "{mode}: expect: {text}");
    let _ = apache.stop();
}

#[test]
fn an_upload_given_up_half_way_never_reaches_the_application() {
    for (mode, config) in MODES {
        let apache = Apache::builder().app("app.py", APP).config(config).start();
        let s = start_upload(&apache, "gaveup", 300_000);
        std::thread::sleep(Duration::from_millis(200));
        drop(s);
        // A complete one afterwards is served, and only it reached the application.
        let mut s = start_upload(&apache, "whole", 0);
        s.write_all(&upload()).unwrap();
        assert!(answer(&mut s).contains(&intact()));
        // The one given up is said in the log.
        assert!(
            apache.wait_for_log("the application was not called", Duration::from_secs(5)),
            "{mode}: {}",
            apache.log_tail(20)
        );
        assert_eq!(apache.count_in_log("upload called: gaveup"), 0, "{mode}: {}", apache.error_log());
        assert_eq!(apache.count_in_log("upload called: whole"), 1, "{mode}: {}", apache.error_log());
        let _ = apache.stop();
    }
}

/// queue-timeout counts the time a request waits for a daemon thread once its body is here, not
/// the upload: a body sent in slow pieces over 2 s to a group with `queue-timeout=1` is run.
#[test]
fn queue_timeout_does_not_count_the_upload() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess one processes=1 threads=1 queue-timeout=1\n\
             WSGIScriptAlias /app {APPS}/app.py process-group=one",
        )
        .start();
    let mut s = start_upload(&apache, "slow", 0);
    for piece in upload().chunks((1 << 20) / 8) {
        std::thread::sleep(Duration::from_millis(250));
        s.write_all(piece).unwrap();
    }
    let text = answer(&mut s);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(&intact()), "{text}");
    let _ = apache.stop();
}

/// A parked upload still answers to Apache's limits: `mod_reqtimeout`'s `body=` time is checked
/// at each read (a client that trickles past it gets a 408), and a client that sends nothing
/// for `Timeout` is closed by the MPM; neither reaches the application, and both are logged.
#[test]
fn parked_uploads_keep_apaches_timeouts() {
    for (mode, config) in MODES {
        let apache = Apache::builder()
            .apache_module("reqtimeout")
            .app("app.py", APP)
            .config(&format!("RequestReadTimeout header=10 body=1\nTimeout 2\n{config}"))
            .start();
        // Trickles: 1 KiB every 200 ms, past body=1.
        let mut s = start_upload(&apache, "trickle", 1024);
        let started = Instant::now();
        let mut answer_head = Vec::new();
        s.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        while started.elapsed() < Duration::from_secs(8) {
            if s.write_all(&upload()[..1024]).is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    answer_head.extend_from_slice(&buf[..n]);
                    break;
                }
                Err(_) => {}
            }
        }
        let head = String::from_utf8_lossy(&answer_head).to_string();
        assert!(
            head.starts_with("HTTP/1.1 408"),
            "{mode}: trickling upload got {head:?} after {:?}",
            started.elapsed()
        );
        assert!(started.elapsed() < Duration::from_secs(4), "{mode}: 408 after {:?}", started.elapsed());
        // Silent: the MPM closes it after Timeout (2 s).
        let mut s = start_upload(&apache, "silent", 1024);
        s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 512];
        let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
        assert!(
            closed && started.elapsed() < Duration::from_secs(6),
            "{mode}: silent upload not closed: {:?}",
            started.elapsed()
        );
        // The request goes with the connection, once its lingering close sees the client go.
        drop(s);
        assert!(
            apache.wait_for_log("the connection closed before the request body had come", Duration::from_secs(5)),
            "{mode}: {}",
            apache.log_tail(20)
        );
        assert_eq!(apache.count_in_log("upload called"), 0, "{mode}: {}", apache.error_log());
        // Both are in the access log, as Apache logs a request it answered: 408.
        let access = apache.access_log();
        for id in ["trickle", "silent"] {
            assert!(
                access.lines().any(|l| l.contains(&format!("upload?{id} ")) && l.contains("\" 408 ")),
                "{mode}: no 408 line for {id} in the access log:\n{access}"
            );
        }
        let _ = apache.stop();
    }
}

/// A chunked body over `LimitRequestBody` is refused by Apache's input filter with 413 while it
/// is collected; that one answer goes out (not a second one from the handler), and the
/// application is not called.
#[test]
fn a_chunked_body_over_the_limit_is_answered_once() {
    for (mode, config) in MODES {
        let apache = Apache::builder().app("app.py", APP).config(&format!("LimitRequestBody 1000\n{config}")).start();
        let mut s = TcpStream::connect(apache.addr()).unwrap();
        s.write_all(b"POST /app/upload?big HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .unwrap();
        let _ = s.write_all(format!("{:x}\r\n", 5000).as_bytes());
        let _ = s.write_all(&upload()[..5000]);
        let _ = s.write_all(b"\r\n0\r\n\r\n");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got);
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 413"), "{mode}: {text}");
        // A second answer would be a second error page behind the first (a 400's).
        assert_eq!(text.matches("<html>").count(), 1, "{mode}: two answers: {text}");
        assert_eq!(apache.count_in_log("upload called"), 0, "{mode}: {}", apache.error_log());
        let _ = apache.stop();
    }
}

/// Over HTTPS (mod_ssl) the same: uploads stalled after 1 KiB, more than there are workers, keep
/// no hello waiting, and then arrive whole. (TLS clients: `openssl s_client` and curl.)
#[test]
fn parked_uploads_over_tls() {
    use std::process::{Command, Stdio};
    let dir = std::env::temp_dir().join(format!("oxwsgi-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = common::self_signed_certificate(&dir, "127.0.0.1");
    let (crt_pem, key_pem) = (std::fs::read(&crt).unwrap(), std::fs::read(&key).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    for (mode, config) in MODES {
        let apache = Apache::builder()
            .apache_module("ssl")
            .app("app.py", APP)
            .file("tls/site.crt", &crt_pem)
            .file("tls/site.key", &key_pem)
            .config(&format!(
                "SSLEngine on\nSSLCertificateFile {{ROOT}}/tls/site.crt\nSSLCertificateKeyFile {{ROOT}}/tls/site.key\n{config}"
            ))
            .start();
        let port = apache.addr().port();
        let hello = || {
            let t = Instant::now();
            let out = Command::new("curl")
                .args(["-sSk", "--max-time", "10", &format!("https://127.0.0.1:{port}/app/hello")])
                .output()
                .expect("run curl");
            (String::from_utf8_lossy(&out.stdout).to_string(), t.elapsed())
        };
        assert_eq!(hello().0, "hello", "{mode}: {}", apache.log_tail(20));
        let head = format!(
            "POST /app/upload?tls HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            1 << 20
        );
        let mut clients: Vec<std::process::Child> = (0..STALLED)
            .map(|_| {
                let mut c = Command::new("openssl")
                    .args(["s_client", "-quiet", "-connect", &format!("127.0.0.1:{port}")])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("run openssl s_client");
                let stdin = c.stdin.as_mut().unwrap();
                stdin.write_all(head.as_bytes()).unwrap();
                stdin.write_all(&upload()[..1024]).unwrap();
                stdin.flush().unwrap();
                c
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        let (text, took) = hello();
        assert_eq!(text, "hello", "{mode}: {}", apache.log_tail(20));
        assert!(took < Duration::from_secs(2), "{mode}: hello over TLS took {took:?} with {STALLED} stalled uploads");
        assert_eq!(apache.count_in_log("upload called"), 0, "{mode}: an application was called before its body came");
        for c in &mut clients {
            c.stdin.as_mut().unwrap().write_all(&upload()[1024..]).unwrap();
        }
        for (i, mut c) in clients.into_iter().enumerate() {
            // Bounded: the answer closes the connection, and s_client then exits.
            // (the watchdog kills it only while it is still our unreaped child: its pid cannot
            // have been reused before the wait below).
            let pid = c.id();
            let (done, finished) = std::sync::mpsc::channel::<()>();
            let watchdog = std::thread::spawn(move || {
                if finished.recv_timeout(Duration::from_secs(30)).is_err() {
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            });
            let mut out = Vec::new();
            c.stdout.take().unwrap().read_to_end(&mut out).unwrap();
            let _ = done.send(());
            watchdog.join().unwrap();
            let _ = c.wait();
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("HTTP/1.1 200"), "{mode}: upload {i}: {text}");
            assert!(text.contains(&intact()), "{mode}: upload {i}: {text}");
        }
        // A 40 KB body sent with its headers arrives whole. (Over plain HTTP such a body is
        // left in Apache's input filters until the application reads it; mod_ssl's speculative
        // read gives at most 8 KiB, so over TLS it is collected as a slower body is.)
        let small = &upload()[..40_000];
        let mut curl = Command::new("curl")
            .args([
                "-sSk",
                "--max-time",
                "10",
                "-H",
                "Expect:",
                "--data-binary",
                "@-",
                &format!("https://127.0.0.1:{port}/app/upload?small"),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run curl");
        curl.stdin.take().unwrap().write_all(small).unwrap();
        let out = curl.wait_with_output().unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("40000 {:x}", hash(small)), "{mode}");
        let _ = apache.stop();
    }
}
