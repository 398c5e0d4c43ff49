//! Slow clients hold no Python thread: clients that ask for a large response and then stop
//! reading must not keep a hello from being answered at once, in embedded mode (file_wrapper
//! responses, and bodies the application produces, which go to a temporary file beyond what
//! the client takes, are finished by Apache's write completion, not by the worker thread) and
//! in daemon mode (Apache's child takes the whole body off the daemon, spooling it to a
//! temporary file beyond response-buffer-size).

mod common;

use common::Apache;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const APP: &str = r#"
import os
import time

BIG = os.path.join(os.path.dirname(__file__), 'big.bin')
PATTERN = bytes(range(256)) * 64

def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/file':
        start_response('200 OK', [('Content-Type', 'application/octet-stream')])
        return environ['wsgi.file_wrapper'](open(BIG, 'rb'))
    if path == '/body':
        chunk = b'x' * (1 << 20)
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(16 << 20))])
        return (chunk for _ in range(16))
    if path == '/list':
        # 16 different 1 MiB chunks, so a lost or repeated piece shows in the hash.
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(16 << 20))])
        return [bytes((i + j) % 256 for j in range(256)) * 4096 for i in range(16)]
    if path == '/pieces':
        # 16 MiB in 8 KiB pieces, each flushed as it is yielded (a stream of small events);
        # piece i starts at byte i % 256, so a lost or repeated piece shows in the hash.
        start_response('200 OK', [('Content-Type', 'application/octet-stream'),
                                  ('Content-Length', str(16 << 20))])
        return (PATTERN[i % 256:i % 256 + 8192] for i in range(2048))
    if path == '/events':
        start_response('200 OK', [('Content-Type', 'text/event-stream')])
        def events():
            for i in range(3):
                yield ('data: %d\n\n' % i).encode()
                time.sleep(0.7)
        return events()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'hello']
"#;

/// Embedded mode in one event-MPM child of 4 threads.
const EMBEDDED_FOUR_THREADS: &str = "ServerLimit 1\nStartServers 1\nThreadsPerChild 4\nMaxRequestWorkers 4\n\
                                     MinSpareThreads 1\nMaxSpareThreads 4\n\
                                     WSGIScriptAlias /app {APPS}/app.py";

/// A client that sends `GET path` and then reads only the first few bytes (and nothing more
/// until dropped), like a phone on a bad network.
fn stall(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "the stalled request was answered");
    s
}

/// What `/list` sends: chunk `i` is the bytes `i, i+1, ...` (mod 256), repeated to 1 MiB.
fn list_body() -> Vec<u8> {
    (0..16).flat_map(|i| (0..1usize << 20).map(move |j| ((i + j) % 256) as u8)).collect()
}

/// What `/pieces` sends: piece `i` is 8 KiB of the bytes `i, i+1, ...` (mod 256).
fn pieces_body() -> Vec<u8> {
    (0..2048).flat_map(|i| (0..8192usize).map(move |j| ((i + j) % 256) as u8)).collect()
}

/// FNV-1a over `data`: a body's fingerprint.
fn hash(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
}

/// Reads the rest of a response whose first 12 bytes `stall` took: its head, then `len` body
/// bytes (bounded by the socket's read timeout); returns the body.
fn read_body(s: &mut TcpStream, len: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut rest = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut read_more = |rest: &mut Vec<u8>| {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed after {} bytes", rest.len());
        rest.extend_from_slice(&buf[..n]);
    };
    let start = loop {
        if let Some(p) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        read_more(&mut rest);
    };
    while rest.len() < start + len {
        read_more(&mut rest);
    }
    assert_eq!(rest.len() - start, len, "body length");
    rest.split_off(start)
}

/// Each stalled client reads the rest of its response: `body`, byte for byte.
fn assert_bodies(stalled: Vec<TcpStream>, body: &[u8]) {
    let expected = hash(body);
    for (i, mut s) in stalled.into_iter().enumerate() {
        assert_eq!(hash(&read_body(&mut s, body.len())), expected, "client {i}'s body");
    }
}

/// Each child's resident memory (KiB) summed, from /proc.
fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.to_string()))
        .filter_map(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

/// How long a hello takes while the stalled clients hold their responses.
fn hello_time(apache: &Apache, path: &str) -> Duration {
    let t = Instant::now();
    let r = apache.get(path);
    r.assert_status(200);
    assert_eq!(r.text(), "hello");
    t.elapsed()
}

#[test]
fn embedded_file_wrapper_leaves_the_worker_to_write_completion() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .file("apps/big.bin", vec![b'f'; 64 << 20])
        .config(EMBEDDED_FOUR_THREADS)
        .config("EnableSendfile Off")
        .start();
    hello_time(&apache, "/app/hello");
    let stalled: Vec<TcpStream> = (0..6).map(|_| stall(apache.addr(), "/app/file")).collect();
    std::thread::sleep(Duration::from_millis(300));
    let took = hello_time(&apache, "/app/hello");
    assert!(took < Duration::from_secs(1), "hello took {took:?} with 6 stalled 64 MiB downloads on 4 threads");
    drop(stalled);
    let _ = apache.stop();
}
#[test]
fn daemon_thread_is_free_once_the_body_is_produced() {
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(
            "WSGIDaemonProcess one processes=1 threads=1\n\
             WSGIScriptAlias /app {APPS}/app.py process-group=one",
        )
        .start();
    hello_time(&apache, "/app/hello");
    let children = apache.child_pids();
    let before = rss_kib(&children);
    let stalled: Vec<TcpStream> = (0..3).map(|_| stall(apache.addr(), "/app/body")).collect();
    std::thread::sleep(Duration::from_millis(500));
    let took = hello_time(&apache, "/app/hello");
    assert!(took < Duration::from_secs(1), "hello took {took:?} with 3 stalled 16 MiB bodies on threads=1");
    let grown = rss_kib(&children).saturating_sub(before);
    assert!(grown < 100 * 1024, "Apache's children grew by {grown} KiB holding three 16 MiB bodies");
    // A stalled client that reads again gets its whole body, byte for byte.
    let mut s = stalled.into_iter().next().unwrap();
    let body = read_body(&mut s, 16 << 20);
    assert!(body.iter().all(|&b| b == b'x'));
    let _ = apache.stop();
}

#[test]
fn embedded_worker_is_free_once_the_body_is_produced() {
    let apache = Apache::builder().app("app.py", APP).config(EMBEDDED_FOUR_THREADS).start();
    hello_time(&apache, "/app/hello");
    let children = apache.child_pids();
    let before = rss_kib(&children);
    let stalled: Vec<TcpStream> = (0..6).map(|_| stall(apache.addr(), "/app/list")).collect();
    std::thread::sleep(Duration::from_millis(300));
    let took = hello_time(&apache, "/app/hello");
    assert!(took < Duration::from_secs(1), "hello took {took:?} with 6 stalled 16 MiB downloads on 4 threads");
    let grown = rss_kib(&children).saturating_sub(before);
    assert!(grown < 100 * 1024, "Apache's child grew by {grown} KiB holding six 16 MiB bodies");
    // Each stalled client that reads again gets its whole body, byte for byte.
    assert_bodies(stalled, &list_body());
    let _ = apache.stop();
}

#[test]
fn embedded_stream_reaches_a_fast_client_piece_by_piece() {
    let apache = Apache::builder().app("app.py", APP).config("WSGIScriptAlias /app {APPS}/app.py").start();
    let mut s = TcpStream::connect(apache.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t = Instant::now();
    s.write_all(b"GET /app/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Each event arrives while the application sleeps before the next one.
    for i in 0..3 {
        let event = format!("data: {i}\n\n");
        while !got.windows(event.len()).any(|w| w == event.as_bytes()) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed before event {i}");
            got.extend_from_slice(&buf[..n]);
        }
        let due = Duration::from_millis(700 * i + 500);
        assert!(t.elapsed() < due, "event {i} arrived after {:?}", t.elapsed());
    }
    let _ = apache.stop();
}

/// Clients that stop reading a stream of small pieces: each piece fits in the kernel's socket
/// buffer until one does not, and that one must go to the file, not to a write that waits for
/// the client. A hello is answered at once, then each client gets its whole body.
fn stalled_small_pieces_hold_no_thread(config: &str, clients: usize) {
    let apache = Apache::builder().app("app.py", APP).config(config).start();
    hello_time(&apache, "/app/hello");
    let stalled: Vec<TcpStream> = (0..clients).map(|_| stall(apache.addr(), "/app/pieces")).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let took = hello_time(&apache, "/app/hello");
    assert!(
        took < Duration::from_secs(1),
        "hello took {took:?} with {clients} clients stalled on streams of 8 KiB pieces"
    );
    assert_bodies(stalled, &pieces_body());
    let _ = apache.stop();
}

#[test]
fn embedded_stream_of_small_pieces_to_stalled_clients() {
    stalled_small_pieces_hold_no_thread(EMBEDDED_FOUR_THREADS, 6);
}

#[test]
fn daemon_stream_of_small_pieces_to_stalled_clients() {
    stalled_small_pieces_hold_no_thread(
        "WSGIDaemonProcess one processes=1 threads=1\n\
         WSGIScriptAlias /app {APPS}/app.py process-group=one",
        3,
    );
}

/// Where the open descriptors of the given processes lead, from /proc.
fn open_fds(pids: &[u32]) -> Vec<String> {
    pids.iter()
        .filter_map(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok())
        .flatten()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|l| l.display().to_string())
        .collect()
}

/// A stalled client of a stream of small pieces costs the child one descriptor for its spool
/// file, not one per spooled piece (which ran a child out of descriptors); the body still
/// arrives whole, though every piece is handed to Apache from the same file (sent with
/// sendfile(2), or read by Apache with `WSGIEnableSendfile Off`). The file is made in the
/// `TMPDIR` of Apache's environment.
fn spooled_pieces_share_one_descriptor(sendfile: &str) {
    let tmpdir = std::env::temp_dir().join(format!("oxwsgi-spool-{}-{sendfile}", std::process::id()));
    std::fs::create_dir_all(&tmpdir).unwrap();
    std::fs::set_permissions(&tmpdir, std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let apache = Apache::builder()
        .app("app.py", APP)
        .config(EMBEDDED_FOUR_THREADS)
        .config(&format!("WSGIEnableSendfile {sendfile}"))
        .env("TMPDIR", tmpdir.to_str().unwrap())
        .start();
    hello_time(&apache, "/app/hello");
    let children = apache.child_pids();
    let before = open_fds(&children).len();
    let stalled: Vec<TcpStream> = (0..2).map(|_| stall(apache.addr(), "/app/pieces")).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let during = open_fds(&children);
    assert!(
        during.len() < before + 20,
        "the child had {before} descriptors, {} with two stalled streams",
        during.len()
    );
    let dir = tmpdir.display().to_string();
    assert!(during.iter().any(|l| l.starts_with(&dir)), "no spool file in {dir}: {during:?}");
    assert_bodies(stalled, &pieces_body());
    let _ = apache.stop();
    let _ = std::fs::remove_dir(&tmpdir);
}

#[test]
fn spooled_pieces_share_one_descriptor_with_sendfile() {
    spooled_pieces_share_one_descriptor("On");
}

#[test]
fn spooled_pieces_share_one_descriptor_without_sendfile() {
    spooled_pieces_share_one_descriptor("Off");
}
