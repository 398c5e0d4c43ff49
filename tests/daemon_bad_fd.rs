//! What an Apache child accepts from a daemon goes through the protocol's descriptor checks: a
//! daemon application (which may run as another user) that writes its own frames with a missing,
//! extra or surplus file descriptor makes that request fail cleanly (502, a log line naming the
//! fault), the descriptors it sent are not kept, the Apache child lives on and serves the next
//! request.

mod common;

use common::{process_alive, Apache};
use std::time::Duration;

/// Writes raw daemon frames, descriptors attached, on its own daemon connections (every
/// accepted connection of the group's socket: the request's own among them; idle ones are
/// dropped by Apache as closed).
const APP: &str = r#"
import os, socket, stat, struct

def frame(kind, payload):
    return bytes([kind]) + struct.pack('<I', len(payload)) + payload

SENDFILE = frame(0x86, struct.pack('<QQ', 0, 1))
SENDFILE_FAR = frame(0x86, struct.pack('<QQ', 0, 1 << 40))
DATA = frame(0x85, b'smuggled')
TAKEN = frame(0x8c, b'')

def unix_streams():
    for name in os.listdir('/proc/self/fd'):
        fd = int(name)
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        if s.family == socket.AF_UNIX and s.type == socket.SOCK_STREAM:
            yield s
        else:
            s.close()

def connections():
    socks = list(unix_streams())
    listening = [s.getsockname() for s in socks if s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)]
    for s in socks:
        if not s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) and s.getsockname() in listening:
            yield s
        else:
            s.close()

def application(environ, start_response):
    case = environ['PATH_INFO']
    if case != '/ok':
        with open(environ['SCRIPT_FILENAME'], 'rb') as f, open('/dev/zero', 'rb') as z:
            fds = {'/missing': [], '/two': [f.fileno()] * 2, '/many': [f.fileno()] * 20,
                   '/data-fd': [f.fileno()], '/device': [z.fileno()], '/past-end': [f.fileno()],
                   '/taken': []}[case]
            raw = {'/data-fd': DATA, '/past-end': SENDFILE_FAR, '/taken': TAKEN}.get(case, SENDFILE)
            for s in connections():
                try:
                    if fds:
                        socket.send_fds(s, [raw], fds)
                    else:
                        s.sendall(raw)
                finally:
                    s.close()
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('ok pid=%d' % os.getpid()).encode()]
"#;

/// Pids of the processes that hold a descriptor open on `path`.
fn holders(pids: &[u32], path: &std::path::Path) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|dir| dir.flatten().any(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path)))
                .unwrap_or(false)
        })
        .collect()
}

/// One daemon process of one thread running APP at /bad.
fn bad_group() -> Apache {
    Apache::builder()
        .app("bad.py", APP)
        .config(
            "WSGIDaemonProcess bad processes=1 threads=1\n\
             WSGIScriptAlias /bad {APPS}/bad.py process-group=bad",
        )
        .start()
}

#[test]
fn bad_descriptors_from_a_daemon_fail_the_request_cleanly() {
    let apache = bad_group();
    let ok = apache.get("/bad/ok");
    ok.assert_status(200);
    let daemon: u32 = ok.text().trim_start_matches("ok pid=").parse().unwrap();
    let children: Vec<u32> = apache.child_pids().into_iter().filter(|&p| p != daemon).collect();
    let script = apache.app_path("bad.py");
    for (case, logged) in [
        ("/bad/missing", "SENDFILE frame arrived without a file descriptor"),
        ("/bad/two", "unexpected file descriptor with a SENDFILE frame"),
        ("/bad/many", "ancillary data truncated"),
        ("/bad/data-fd", "unexpected file descriptor with a DATA frame"),
        ("/bad/device", "the descriptor is not a regular file"),
        ("/bad/past-end", "the range goes past the end of the file"),
    ] {
        let r = apache.get(case);
        r.assert_status(502);
        assert!(apache.wait_for_log(logged, Duration::from_secs(5)), "{case}: {}", apache.log_tail(20));
        assert!(
            apache.log_tail(20).contains(&format!("daemon process group 'bad' while serving '{case}'")),
            "{case}: {}",
            apache.log_tail(20)
        );
        // The next request is served, by the same daemon process.
        let next = apache.get("/bad/ok");
        next.assert_status(200);
        assert_eq!(next.text(), format!("ok pid={daemon}"), "{case}");
    }
    // No Apache child died, and none keeps a descriptor it was sent.
    for pid in &children {
        assert!(process_alive(*pid), "Apache child {pid} died\n{}", apache.log_tail(30));
    }
    assert_eq!(holders(&apache.child_pids(), &script), Vec::<u32>::new());
}

/// A TAKEN when Apache is not waiting for one (its group has no queue-timeout=, the daemon's
/// has: the configuration changed across a graceful restart) is ignored, not a broken daemon.
#[test]
fn an_unexpected_taken_is_ignored() {
    let apache = bad_group();
    // On a kept connection: on a new one the daemon's HELLO_OK is still in its buffer when the
    // application writes.
    apache.get("/bad/ok").assert_status(200);
    let r = apache.get("/bad/taken");
    r.assert_status(200);
    assert!(r.text().starts_with("ok pid="), "{}", r.text());
}
