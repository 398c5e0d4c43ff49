//! The request loop: an event from the epoll set becomes a new connection from an Apache child
//! or the next request on an idle one; each request is read, run through the WSGI adapter with
//! a [`DaemonBackend`], and the connection handed back to the set.

use super::backend::DaemonBackend;
use super::conn::{Conn, Writer};
use super::shared::{Active, Shared, StopKind, LISTENER};
use crate::daemon::protocol::{self, Frame, PairBuf, MAX_HELLO_PAYLOAD, PROTOCOL_VERSION};
use crate::metrics::running::{Phases, Running};
use crate::python::backend::Backend;
use crate::python::interp;
use crate::python::wsgi::{self, Outcome, Request};
use crate::sys::util::{self, log_server};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::ptr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) fn handle_event(shared: &Arc<Shared>, token: u64) {
    shared.busy.fetch_add(1, Ordering::SeqCst);
    shared.events.fetch_add(1, Ordering::SeqCst);
    if token == LISTENER {
        let fd = if shared.accepts() {
            unsafe { libc::accept4(shared.group.listener, ptr::null_mut(), ptr::null_mut(), libc::SOCK_CLOEXEC) }
        } else {
            -1
        };
        if fd < 0 && matches!(io::Error::last_os_error().raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
            // Out of descriptors: the connection stays queued; do not spin on it.
            std::thread::sleep(Duration::from_millis(50));
        }
        // Let another idle worker take the next connection while this one serves.
        if shared.accepts() {
            shared.arm(libc::EPOLL_CTL_MOD, shared.group.listener, LISTENER);
        }
        if fd >= 0 {
            if let Some(conn) = Conn::new(unsafe { UnixStream::from_raw_fd(fd) }, shared.group.spec.socket_timeout) {
                serve(shared, Box::new(conn));
            }
        }
    } else if shared.idle.lock().unwrap().remove(&token) {
        // Safe: the token is the address of a Box<Conn> leaked when it was armed, and it was
        // still in `idle`, so this worker now owns it (one-shot arming gives each event to
        // one worker; a stop that closed the connection would have removed the token).
        serve(shared, unsafe { Box::from_raw(token as *mut Conn) });
    }
    shared.busy.fetch_sub(1, Ordering::SeqCst);
}

/// Serves one request on `conn`, then hands the connection back to the epoll set (or closes it).
pub(super) fn serve(shared: &Arc<Shared>, mut conn: Box<Conn>) {
    let fd = conn.writer.state.lock().unwrap().stream.as_raw_fd();
    if serve_one(shared, &mut conn) && !shared.stopping() {
        let op = if conn.registered { libc::EPOLL_CTL_MOD } else { libc::EPOLL_CTL_ADD };
        conn.registered = true;
        let token = Box::into_raw(conn) as u64;
        // In `idle` before it is armed, so its event finds it there.
        shared.idle.lock().unwrap().insert(token);
        if shared.arm(op, fd, token) {
            return;
        }
        if !shared.idle.lock().unwrap().remove(&token) {
            return;
        }
        conn = unsafe { Box::from_raw(token as *mut Conn) };
    }
    shared.forget(*conn);
}

/// Reads and answers one request (after the HELLO on a new connection). True when the
/// connection may carry another request.
pub(super) fn serve_one(shared: &Arc<Shared>, conn: &mut Conn) -> bool {
    let Some(mut reader) = conn.reader.take() else { return false };
    if !conn.greeted {
        match reader.read_frame_limited(MAX_HELLO_PAYLOAD) {
            Ok(Frame::Hello { version, secret })
                if version == PROTOCOL_VERSION && protocol::secrets_equal(&secret, &shared.group.secret) => {}
            Ok(Frame::Hello { .. }) => {
                let _ = send(&conn.writer, &Frame::hello_reject("wrong protocol version or secret"), false);
                log_server(
                    ptr::null(),
                    util::LOG_WARNING,
                    "oxwsgi: daemon refused a connection that did not come from its own Apache",
                );
                return false;
            }
            _ => return false,
        }
        conn.greeted = true;
        let _ = protocol::encode_frame(&Frame::HelloOk { pid: std::process::id() }, &mut conn.out);
    }
    let Ok(Frame::Request { environ, body_length, eager_body }) = reader.read_frame() else { return false };
    conn.writer.state.lock().unwrap().started = false;
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let text = |k: &[u8]| environ.get(k).map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
    let active = Active {
        started: Instant::now(),
        uri: text(b"REQUEST_URI"),
        writer: conn.writer.clone(),
        timed_out: false,
        // Python's thread ident is the pthread id.
        thread: unsafe { libc::pthread_self() } as u64,
        // As handle_request reads it (a name that is not UTF-8 is the main interpreter's).
        application_group: environ
            .get(b"mod_wsgi.application_group")
            .and_then(|v| std::str::from_utf8(v).ok())
            .unwrap_or("")
            .to_string(),
        interrupted: None,
    };
    shared.active.lock().unwrap().insert(id, active);
    // WSGIIgnoreActivity (a health check, say) leaves the inactivity-timeout running.
    let activity = environ.get(b"mod_wsgi.ignore_activity") != Some(&b"1"[..]);
    if activity {
        *shared.last_activity.lock().unwrap() = Instant::now();
    }
    let mut backend = DaemonBackend {
        shared: shared.clone(),
        writer: conn.writer.clone(),
        reader,
        out: std::mem::take(&mut conn.out),
        buffered: 0,
        starts: false,
        pending: Vec::new(),
        pending_pos: 0,
        body_done: body_length == Some(0),
        body_error: None,
        reusable: false,
        client: format!(
            "{}:{}",
            String::from_utf8_lossy(environ.get(b"REMOTE_ADDR").unwrap_or(b"-")),
            String::from_utf8_lossy(environ.get(b"REMOTE_PORT").unwrap_or(b"-"))
        ),
    };
    handle_request(shared, &environ, body_length, eager_body, &mut backend);
    let keep = backend.reusable;
    // The body buffer serves the connection's next request (unless a large upload made it big).
    if backend.pending.capacity() <= protocol::EAGER_BODY_MAX {
        backend.reader.recycle(std::mem::take(&mut backend.pending));
    }
    conn.reader = Some(backend.reader);
    conn.out = backend.out;
    conn.out.clear();
    let ended = shared.active.lock().unwrap().remove(&id);
    // interrupt-timeout raised RequestTimeout in this thread, and the request ended before it
    // fired (it was blocked outside Python): clear it before the thread's next request.
    if let Some(a) = ended.filter(|a| a.interrupted.is_some()) {
        crate::python::interrupt::drain(&a.application_group);
    }
    if activity {
        *shared.last_activity.lock().unwrap() = Instant::now();
    }
    shared.count_request();
    keep
}

pub(super) fn send(writer: &Writer, frame: &Frame, starts: bool) -> io::Result<()> {
    let mut buf = Vec::new();
    protocol::encode_frame(frame, &mut buf).map_err(io::Error::other)?;
    writer.write(&buf, starts)
}

/// Runs one request; false when the connection cannot carry another one.
pub(super) fn handle_request(
    shared: &Shared,
    environ: &PairBuf,
    body_length: Option<u64>,
    eager_body: bool,
    backend: &mut DaemonBackend,
) -> bool {
    let spec = &shared.group.spec;
    // queue-timeout: Apache waits for this no longer than the queue time; if it gave up (and
    // closed the connection), the request is not run.
    if spec.queue_timeout.is_some() {
        let _ = protocol::encode_frame(&Frame::Taken, &mut backend.out);
        if backend.flush().is_err() {
            return false;
        }
    }
    if eager_body && !backend.receive_body() {
        return false;
    }
    let text = |k: &[u8]| environ.get(k).and_then(|v| std::str::from_utf8(v).ok());
    // Measured from when Apache sent the request (not from when it arrived from the client:
    // reading an upload is not queueing), as mod_wsgi does.
    if let (Some(limit), Some(start)) =
        (spec.queue_timeout, text(b"mod_wsgi.queue_start").and_then(|v| v.parse::<u64>().ok()))
    {
        let waited = Duration::from_micros(wsgi::now_micros().saturating_sub(start));
        if waited > limit {
            backend.log(util::LOG_ERR, &crate::daemon::group::queue_timeout_line(&spec.name));
            return backend.send_error(504, "queue-timeout exceeded");
        }
    }
    // A handler script (WSGIHandlerScript) runs for the resource in SCRIPT_FILENAME.
    let script = text(b"mod_wsgi.handler_script")
        .filter(|h| !h.is_empty())
        .or_else(|| text(b"SCRIPT_FILENAME"))
        .unwrap_or("")
        .to_string();
    let mtime = match std::fs::metadata(&script) {
        Ok(m) => interp::mtime_micros(&m),
        Err(e) => {
            backend.log(
                util::LOG_ERR,
                &format!("oxwsgi: Target WSGI script '{script}' cannot be read by daemon group '{}': {e}", spec.name),
            );
            return backend.send_error(404, "script not found");
        }
    };
    let group = text(b"mod_wsgi.application_group").unwrap_or("").to_string();
    let callable = text(b"mod_wsgi.callable_object").unwrap_or("application").to_string();
    let daemon_start_us = wsgi::now_micros();
    let daemon_start = daemon_start_us.to_string();
    // HTTPS travels from Apache only to become wsgi.url_scheme, as in embedded mode.
    let mut cgi: Vec<(&[u8], &[u8])> = environ.iter().filter(|(k, _)| *k != b"HTTPS").collect();
    cgi.extend_from_slice(&[
        (b"mod_wsgi.daemon_start", daemon_start.as_bytes()),
        (b"mod_wsgi.daemon_connects", b"1"),
        (b"mod_wsgi.daemon_restarts", b"0"),
    ]);
    let interp = match interp::interpreter(&group) {
        Ok(i) => i,
        Err(e) => {
            backend.log(util::LOG_ERR, &format!("oxwsgi: {e}"));
            return backend.send_error(500, "cannot create interpreter");
        }
    };
    // A changed script restarts the group's processes one at a time: while another one is
    // being replaced, this one goes on with the code it has (and checks again next time).
    let baton = crate::metrics::shm::shared().and_then(|r| r.group(&spec.name));
    let others_reloading =
        spec.processes > 1 && baton.is_some_and(|b| b.reloading_other(shared.index, wsgi::now_micros()));
    let mut request = Request {
        script: Path::new(&script),
        mtime,
        reload: text(b"mod_wsgi.script_reloading") != Some("0") && !others_reloading,
        callable: &callable,
        cgi: &cgi,
        https: text(b"HTTPS").is_some_and(|v| v.eq_ignore_ascii_case("on")),
        multithread: spec.threads > 1,
        multiprocess: spec.multiprocess,
        content_length: body_length,
        head: text(b"REQUEST_METHOD") == Some("HEAD"),
        // As mod_wsgi's daemon mode: a changed script restarts the process (every module it
        // imported is loaded fresh), it is not re-executed in place.
        restart_on_change: true,
        apache_request: std::ptr::null_mut(),
    };
    let micros = |key: &[u8]| text(key).and_then(|t| t.parse::<u64>().ok());
    let phases = Phases {
        accepted_us: micros(b"mod_wsgi.request_start").unwrap_or(0),
        queued_us: micros(b"mod_wsgi.queue_start"),
        daemon_us: Some(daemon_start_us),
    };
    let running = Running::begin(&spec.name, &group, spec.threads as u32, phases, wsgi::now_micros());
    let mut outcome = wsgi::run(&interp, &request, backend);
    if let (Outcome::Restart, Some(baton)) = (&outcome, baton) {
        // Every other process of the group follows, one at a time (process::monitor). If
        // another one found the change first and is restarting, this one serves the request
        // with the code it has (the application has not run yet) and takes its turn later.
        // Processes started before the script was changed run its old code.
        let now = wsgi::now_micros();
        baton.request_reload((mtime.max(0) as u64).min(now));
        if spec.processes > 1 && !baton.try_begin_reload(shared.index, now) {
            request.reload = false;
            outcome = wsgi::run(&interp, &request, backend);
        }
    }
    drop(running);
    match outcome {
        Outcome::Done => true,
        Outcome::Failed(status) => backend.send_error(status, "request failed"),
        Outcome::Aborted => false,
        Outcome::Restart => {
            shared.begin_stop(
                StopKind::Replace,
                "script_reload",
                shared.graceful(),
                &format!("WSGI script '{script}' changed: restarting to load it"),
            );
            let _ = protocol::encode_frame(&Frame::Restart, &mut backend.out);
            let _ = backend.flush();
            false
        }
    }
}
