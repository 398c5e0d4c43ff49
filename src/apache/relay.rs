//! Apache's side of daemon mode: a worker thread of an Apache child sends one request to its
//! daemon process group and streams the answer back to the client through the same
//! [`ApacheBackend`] embedded mode uses, so both modes answer alike.

use super::environ::Environ;
use super::response::{ApacheBackend, ClientTimeout};
use super::response_buffer::ResponseBuffer;
use crate::daemon::group::{find_group, Group};
use crate::daemon::protocol::{self, FdStream, Frame, FrameReader, EAGER_BODY_MAX, PROTOCOL_VERSION};
use crate::python::backend::Backend;
use crate::python::headers::{header_bytes_ok, reason_bytes_ok};
use crate::sys::ffi;
use crate::sys::util::{self, log_request};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs a request in daemon process group `name` (for the WSGI script `script`, with the
/// `environ` the handler built, to which the daemon's keys are added once the body is here);
/// returns the handler's status.
/// With `error_override` (WSGIErrorOverride On), a 4xx/5xx answer's headers and body are
/// dropped and its status returned to Apache, which answers with its own error document.
pub unsafe fn handle(
    r: *mut ffi::request_rec,
    name: &str,
    script: &std::path::Path,
    environ: &mut Environ,
    content_length: Option<u64>,
    error_override: bool,
) -> i32 {
    let Some(group) = find_group(name) else {
        log_request(r, util::LOG_ERR, &format!("oxwsgi: daemon process group '{name}' is not running in this Apache"));
        return ffi::HTTP_SERVICE_UNAVAILABLE as i32;
    };
    // A group defined in a virtual host serves that host only (as in mod_wsgi), so one site's
    // configuration cannot run its scripts in another site's daemons (and as its user).
    if let Some(host) = &group.scope {
        if util::cstr((*(*r).server).server_hostname) != Some(host.as_str()) {
            log_request(
                r,
                util::LOG_ERR,
                &format!(
                    "oxwsgi: daemon process group '{name}' belongs to virtual host '{host}' and cannot serve this one"
                ),
            );
            return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
        }
    }
    // threads=0: a service group runs its scripts and takes no requests.
    if group.spec.threads == 0 {
        log_request(
            r,
            util::LOG_ERR,
            &format!("oxwsgi: daemon process group '{name}' has threads=0 and serves no requests"),
        );
        return ffi::HTTP_SERVICE_UNAVAILABLE as i32;
    }
    // script-user= / script-group=: only scripts of that owner run in the group.
    if let Err(why) = super::script_owner::check(&group.script_owner, script) {
        log_request(r, util::LOG_ERR, &format!("oxwsgi: refusing to run it in daemon group '{name}': {why}"));
        return ffi::HTTP_FORBIDDEN as i32;
    }
    let mut backend = ApacheBackend::new(r);
    let _timeout = group.spec.response_socket_timeout.map(|t| ClientTimeout::set(r, t));
    // queue-timeout: from now, once the body is here, the request may wait this long for a
    // daemon thread to take it; the daemon checks the same time (`mod_wsgi.queue_start`), and
    // the queue-time metrics count from it.
    let queued = Instant::now();
    environ.add_daemon_keys(crate::python::wsgi::now_micros());
    let queue_deadline = group.spec.queue_timeout.map(|t| queued + t);
    // The REQUEST, with the first piece of the body when one is expected; kept so that it can be
    // sent again on a fresh connection if a reused one turns out to be gone.
    let expects_continue = util::table_get((*r).headers_in, c"Expect").is_some();
    let eager_body = content_length != Some(0) && (!expects_continue || backend.body_collected());
    let mut request = REQUEST_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
    request.clear();
    if let Err(e) = protocol::encode_request(environ.pairs(), content_length, eager_body, &mut request) {
        log_request(r, util::LOG_ERR, &format!("oxwsgi: request too large for daemon process group '{name}': {e}"));
        return ffi::HTTP_INTERNAL_SERVER_ERROR as i32;
    }
    if eager_body {
        if let Err(f) = body_reply(&mut backend, EAGER_BODY_MAX, &mut request) {
            return fail(r, name, &mut backend, f);
        }
    }
    let status = send_request(r, name, &group, &request, &mut backend, error_override, queue_deadline);
    // The buffer serves this thread's next request.
    REQUEST_BUFFER.with(|b| *b.borrow_mut() = request);
    status
}

thread_local! {
    static REQUEST_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Sends the encoded request on a kept connection or a new one, again on a new one if a kept one
/// turns out to have been closed unread.
unsafe fn send_request(
    r: *mut ffi::request_rec,
    name: &str,
    group: &Group,
    request: &[u8],
    backend: &mut ApacheBackend,
    error_override: bool,
    queue_deadline: Option<Instant>,
) -> i32 {
    let mut attempts = 0;
    loop {
        attempts += 1;
        // A retry goes on a new connection: the kept one was closed by a stopping daemon,
        // whose other kept connections are about to be closed too.
        let pooled = if attempts == 1 { take_pooled(name, group.spec.processes) } else { None };
        let conn = match pooled {
            Some(c) => c,
            None => match connect(group) {
                Ok(c) => c,
                Err(e) => {
                    log_request(r, util::LOG_ERR, &format!(
                        "oxwsgi: cannot connect to daemon process group '{name}' at {} within connect-timeout ({}s): {e}",
                        group.socket_path, group.spec.connect_timeout.as_secs()));
                    return ffi::HTTP_SERVICE_UNAVAILABLE as i32;
                }
            },
        };
        match relay(r, group, conn, request, backend, error_override, queue_deadline) {
            Ok(status) => return status,
            // A kept-alive connection the daemon closed without reading this request (it was
            // stopping): the request never ran, so it goes again on a new connection.
            Err(Failure::Unused) if attempts == 1 => continue,
            // The daemon did not run it: it is restarting to load a changed script. A new
            // connection reaches a daemon that has the new code (bounded: each daemon restarts
            // once per change).
            Err(Failure::Restarting) if attempts <= 4 => continue,
            Err(f) => return fail(r, name, backend, f),
        }
    }
}

unsafe fn fail(r: *mut ffi::request_rec, name: &str, backend: &mut ApacheBackend, failure: Failure) -> i32 {
    let (status, what) = match &failure {
        // No daemon thread took the request in time: mod_wsgi's answer and line.
        Failure::QueueTimeout => {
            log_request(r, util::LOG_ERR, &crate::daemon::group::queue_timeout_line(name));
            return ffi::HTTP_GATEWAY_TIME_OUT as i32;
        }
        Failure::Timeout => (ffi::HTTP_GATEWAY_TIME_OUT, "timed out (socket-timeout) waiting for".to_string()),
        Failure::Broken(e) => (ffi::HTTP_BAD_GATEWAY, format!("lost the connection ({e}) to")),
        Failure::Unused => (ffi::HTTP_BAD_GATEWAY, "lost a kept-alive connection to".to_string()),
        Failure::Restarting => (ffi::HTTP_SERVICE_UNAVAILABLE, "was turned away while restarting by".to_string()),
    };
    log_request(
        r,
        util::LOG_ERR,
        &format!("oxwsgi: {what} daemon process group '{name}' while serving '{}'", util::cstr((*r).uri).unwrap_or("")),
    );
    if backend.started {
        backend.abort();
        ffi::OK as i32
    } else {
        status as i32
    }
}

enum Failure {
    Timeout,
    /// queue-timeout ran out before a daemon thread took the request (no TAKEN).
    QueueTimeout,
    Broken(String),
    /// A reused connection that the daemon closed without reading the request: the write
    /// failed (EPIPE) or the read reported the unread request (ECONNRESET).
    Unused,
    /// The daemon answered RESTART: it did not run the request and is restarting.
    Restarting,
}

impl From<protocol::ProtocolError> for Failure {
    fn from(e: protocol::ProtocolError) -> Failure {
        if timed_out(&e) {
            Failure::Timeout
        } else {
            Failure::Broken(e.to_string())
        }
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        protocol::ProtocolError::Io(e).into()
    }
}

/// A connection to a daemon group, new or kept from an earlier request.
struct Conn {
    group: String,
    writer: UnixStream,
    reader: FrameReader<FdStream>,
    fresh: bool,
    idle_since: Instant,
    /// The daemon process at the other end, from its HELLO_OK (0 until then).
    daemon: u32,
}

/// This Apache child's kept connections, and how many of its requests run in each daemon
/// process. Connections stay open across requests, each tied to the process that accepted it;
/// choosing among them by the fewest running requests spreads the load over a group's
/// processes (picking the most recent one alone could leave a process all the work).
///
/// A daemon that stops closes its idle connections; the first use of such a connection fails
/// in a way that proves the request was not read (see `Failure::Unused`), and it is sent again
/// on a new connection.
struct Pool {
    idle: Vec<Conn>,
    /// (group, daemon pid, requests of this child running there); entries at 0 are dropped.
    running: Vec<(String, u32, usize)>,
}

impl Pool {
    /// Whether another connection to `group` may be kept.
    fn has_room(&self, group: &str) -> bool {
        self.idle.iter().filter(|c| c.group == group).count() < POOL_MAX_PER_GROUP
    }

    fn running(&self, daemon: u32) -> usize {
        self.running.iter().find(|e| e.1 == daemon).map_or(0, |e| e.2)
    }

    fn add_running(&mut self, group: &str, daemon: u32) {
        match self.running.iter_mut().find(|e| e.1 == daemon) {
            Some(e) => e.2 += 1,
            None => self.running.push((group.to_string(), daemon, 1)),
        }
    }

    fn end_running(&mut self, daemon: u32) {
        if let Some(i) = self.running.iter().position(|e| e.1 == daemon) {
            self.running[i].2 -= 1;
            if self.running[i].2 == 0 {
                self.running.swap_remove(i);
            }
        }
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool { idle: Vec::new(), running: Vec::new() });
const POOL_MAX_PER_GROUP: usize = 64;
/// Connections idle longer than this are closed rather than reused.
const REUSE_WITHIN: Duration = Duration::from_secs(10);

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A kept connection to the group's process with the fewest of this child's requests running
/// (the most recently used among equals), counted as running one more. None: connect anew,
/// when no connection is kept, or when the best one leads to a process busier than another of
/// the group (one this child knows of, but holds no idle connection to, or one it has not met
/// yet) and the pool has room to keep one more: the new connection may be accepted there.
fn take_pooled(group: &str, processes: u32) -> Option<Conn> {
    let mut pool = pool();
    loop {
        let best = pool
            .idle
            .iter()
            .enumerate()
            .filter(|(_, c)| c.group == group)
            .min_by_key(|(i, c)| (pool.running(c.daemon), std::cmp::Reverse(*i)))
            .map(|(i, c)| (i, c.daemon));
        let (i, daemon) = best?;
        let load = pool.running(daemon);
        // A new connection is only worth making if it can be kept.
        if load > 0 && pool.has_room(group) {
            let mut known: Vec<u32> = pool.idle.iter().filter(|c| c.group == group).map(|c| c.daemon).collect();
            known.extend(pool.running.iter().filter(|e| e.0 == group).map(|e| e.1));
            known.sort_unstable();
            known.dedup();
            let least = if known.len() < processes as usize {
                0
            } else {
                known.iter().map(|&d| pool.running(d)).min().unwrap_or(0)
            };
            if load > least {
                return None;
            }
        }
        let conn = pool.idle.remove(i);
        // The daemon never writes to an idle connection: anything readable means it closed it.
        let mut pfd = libc::pollfd { fd: conn.writer.as_raw_fd(), events: libc::POLLIN | libc::POLLRDHUP, revents: 0 };
        let closed = unsafe { libc::poll(&mut pfd, 1, 0) } != 0;
        if conn.idle_since.elapsed() < REUSE_WITHIN && !closed && conn.reader.buffered().is_empty() {
            pool.add_running(group, daemon);
            return Some(conn);
        }
    }
}

fn put_back(mut conn: Conn) {
    conn.fresh = false;
    conn.idle_since = Instant::now();
    let mut pool = pool();
    if pool.has_room(&conn.group) {
        pool.idle.push(conn);
    }
}

/// One of this child's requests running in daemon process `.0`; ends when dropped.
struct Running(u32);

impl Drop for Running {
    fn drop(&mut self) {
        pool().end_running(self.0);
    }
}

/// Connects to the group's socket, retrying while its daemons (re)start, up to connect-timeout.
fn connect(group: &Group) -> io::Result<Conn> {
    let deadline = Instant::now() + group.spec.connect_timeout;
    let mut pause = Duration::from_millis(5);
    let stream = loop {
        match connect_now(&group.socket_path) {
            Ok(s) => break s,
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
        }
    };
    let timeout = Some(group.spec.socket_timeout);
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    let writer = stream.try_clone()?;
    Ok(Conn {
        group: group.spec.name.clone(),
        writer,
        reader: FrameReader::new(FdStream::new(stream)),
        fresh: true,
        idle_since: Instant::now(),
        daemon: 0,
    })
}

/// One connection attempt that never waits: a blocking connect to a UNIX socket whose backlog is
/// full sleeps until the daemon accepts, whatever connect-timeout says; non-blocking, it fails
/// with EAGAIN and the caller's retry loop keeps the deadline.
fn connect_now(path: &str) -> io::Result<UnixStream> {
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    if path.len() >= addr.sun_path.len() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"));
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(path.bytes()) {
        *dst = src as libc::c_char;
    }
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, 0);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = UnixStream::from_raw_fd(fd);
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len) != 0 {
            return Err(io::Error::last_os_error());
        }
        stream.set_nonblocking(false)?;
        Ok(stream)
    }
}

/// Sends `request` on `conn` (after HELLO on a new connection) and relays the answer.
unsafe fn relay(
    r: *mut ffi::request_rec,
    group: &Group,
    mut conn: Conn,
    request: &[u8],
    backend: &mut ApacheBackend,
    error_override: bool,
    queue_deadline: Option<Instant>,
) -> Result<i32, Failure> {
    let reused = !conn.fresh;
    // A kept connection was counted as running when it was taken; a new one once its daemon
    // has said who it is.
    let mut _running = reused.then(|| Running(conn.daemon));
    // Only a reused connection can have been closed by its daemon while idle; ECONNRESET and
    // EPIPE before any answer say the daemon never read what was sent.
    let unused = |e: io::Error| {
        if reused && matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) {
            Failure::Unused
        } else {
            e.into()
        }
    };
    let mut out = Vec::new();
    let sent = if conn.fresh {
        // HELLO and REQUEST in one write: the daemon checks HELLO, then reads on.
        out.reserve(64 + request.len());
        protocol::encode_frame(&Frame::Hello { version: PROTOCOL_VERSION, secret: group.secret }, &mut out)?;
        out.extend_from_slice(request);
        conn.writer.write_all(&out)
    } else {
        conn.writer.write_all(request)
    };
    if let Err(e) = sent {
        return Err(unused(e));
    }
    // Until the daemon says TAKEN, the queue deadline bounds each read.
    let mut waiting = queue_deadline;
    let socket_timeout = group.spec.socket_timeout;
    let queue_expired = |e: &protocol::ProtocolError, waiting: Option<Instant>| {
        timed_out(e) && waiting.is_some_and(|d| Instant::now() >= d)
    };
    let first = read_frame(&mut conn, waiting, socket_timeout).map_err(|e| match e {
        e if queue_expired(&e, waiting) => Failure::QueueTimeout,
        protocol::ProtocolError::Io(io) => unused(io),
        other => other.into(),
    })?;
    let mut next = Some(first);
    if conn.fresh {
        match next.take().expect("first frame").0 {
            Frame::HelloOk { pid } => {
                conn.daemon = pid;
                pool().add_running(&group.spec.name, pid);
                _running = Some(Running(pid));
            }
            Frame::HelloReject { message, .. } => {
                log_request(
                    r,
                    util::LOG_ERR,
                    &format!("oxwsgi: daemon process group '{}' refused the connection: {message}", group.spec.name),
                );
                return Ok(ffi::HTTP_INTERNAL_SERVER_ERROR as i32);
            }
            other => return Err(Failure::Broken(format!("unexpected {} frame", other.frame_type()))),
        }
    }
    // A response whose headers and body are discarded, and what answers instead.
    let mut replaced: Option<Replaced> = None;
    let mut buffer = ResponseBuffer::new(group.spec.response_spool_size);
    loop {
        // Descriptors go through the protocol's checks: one with each SENDFILE, none elsewhere.
        let (frame, fd) = match next.take() {
            Some(f) => f,
            None => read_frame(&mut conn, waiting, socket_timeout).map_err(|e| match e {
                e if queue_expired(&e, waiting) => Failure::QueueTimeout,
                other => Failure::from(other),
            })?,
        };
        match frame {
            Frame::Taken if waiting.is_some() => {
                waiting = None;
                conn.writer.set_read_timeout(Some(socket_timeout))?;
            }
            // A daemon with queue-timeout= where this Apache has none (the configuration changed
            // across a graceful restart): its thread has the request, which is all TAKEN says.
            Frame::Taken => {}
            Frame::Read { max } => {
                out.clear();
                body_reply(backend, max as usize, &mut out)?;
                conn.writer.write_all(&out)?;
            }
            Frame::Start { status, reason, headers } => {
                // The daemon's applications could write frames themselves: Apache applies the
                // same rules to what arrives as the adapter applies to start_response.
                if !reason_bytes_ok(&reason) || !headers.iter().all(|(n, v)| header_bytes_ok(n, v)) {
                    return Err(Failure::Broken("the daemon sent an invalid status line or header".into()));
                }
                // header-buffer-size: as in mod_wsgi, a longer header is an error.
                let limit = group.spec.header_buffer_size;
                if let Some((name, _)) = headers.iter().find(|(n, v)| n.len() + 2 + v.len() > limit) {
                    log_request(
                        r,
                        util::LOG_ERR,
                        &format!(
                            "oxwsgi: response header '{}' from daemon process group '{}' is longer than header-buffer-size ({limit} bytes)",
                            String::from_utf8_lossy(name),
                            group.spec.name
                        ),
                    );
                    return Ok(ffi::HTTP_INTERNAL_SERVER_ERROR as i32);
                }
                if error_override && (400..=599).contains(&status) {
                    replaced = Some(Replaced::ErrorOverride(status));
                    continue;
                }
                if let Some(location) = local_redirect(status, &headers) {
                    replaced = Some(Replaced::InternalRedirect(location.to_vec()));
                    continue;
                }
                let line = format!("{status} {}", String::from_utf8_lossy(&reason));
                if let Err(e) = backend.start(status, &line, &headers) {
                    return Err(Failure::Broken(e));
                }
            }
            Frame::Data(data) if replaced.is_some() => conn.reader.recycle(data),
            Frame::SendFile { .. } if replaced.is_some() => drop(fd),
            Frame::Data(data) => {
                // Pushed to the client whenever the daemon has nothing more queued right now.
                let push = conn.reader.buffered().is_empty();
                if buffer.send(backend, &data, push).is_err() {
                    backend.abort();
                    return Ok(ffi::OK as i32);
                }
                conn.reader.recycle(data);
            }
            Frame::SendFile { offset, length } => {
                let Some(fd) = fd else {
                    return Err(Failure::Broken("SENDFILE without a file descriptor".into()));
                };
                // The daemon runs application code: what it passes must be a file Apache can send.
                protocol::check_sendfile(&fd, offset, length)?;
                if let Err(e) = backend.send_file(fd.as_raw_fd(), offset, length) {
                    log_request(
                        r,
                        util::LOG_ERR,
                        &format!(
                            "oxwsgi: cannot send the file passed by daemon process group '{}': {e}",
                            group.spec.name
                        ),
                    );
                    backend.abort();
                    return Ok(ffi::OK as i32);
                }
            }
            Frame::Restart if !backend.started => return Err(Failure::Restarting),
            Frame::End | Frame::EndClose => {
                conn.reader.check_no_fds_left()?;
                let keep = matches!(frame, Frame::End);
                // A discarded response: Apache answers instead.
                if let Some(rp) = replaced {
                    if keep {
                        put_back(conn);
                    }
                    return Ok(rp.answer(r));
                }
                if backend.finish().is_err() {
                    backend.abort();
                } else if keep {
                    put_back(conn);
                }
                return Ok(ffi::OK as i32);
            }
            Frame::Abort { message } => {
                // As mod_wsgi, which reads the discarded body to its end whatever ends it.
                if let Some(rp) = replaced {
                    return Ok(rp.answer(r));
                }
                log_request(
                    r,
                    util::LOG_ERR,
                    &format!("oxwsgi: daemon process group '{}' aborted the response: {message}", group.spec.name),
                );
                backend.abort();
                return Ok(ffi::OK as i32);
            }
            Frame::Error { status, message } => {
                if backend.started {
                    backend.abort();
                    return Ok(ffi::OK as i32);
                }
                if status != 504 {
                    log_request(r, util::LOG_INFO, &format!("oxwsgi: daemon answered {status}: {message}"));
                }
                return Ok(status as i32);
            }
            other => return Err(Failure::Broken(format!("unexpected {} frame", other.frame_type()))),
        }
    }
}

/// A daemon's response that Apache replaces with another answer once its body is discarded.
enum Replaced {
    /// WSGIErrorOverride: the application's error status, answered by Apache's error document.
    ErrorOverride(u16),
    /// A 200 with a local `Location`: Apache serves that path instead (as mod_wsgi and mod_cgi do).
    InternalRedirect(Vec<u8>),
}

impl Replaced {
    /// The handler's status once the replaced response has been read to its end.
    unsafe fn answer(self, r: *mut ffi::request_rec) -> i32 {
        match self {
            Replaced::ErrorOverride(status) => i32::from(status),
            Replaced::InternalRedirect(location) => {
                // What the application left of the client's body is read and dropped first, so
                // that it cannot be taken for the next request on the connection.
                ffi::ap_discard_request_body(r);
                // The redirected request is a GET, without the body that has been consumed.
                (*r).method = c"GET".as_ptr();
                (*r).method_number = ffi::M_GET as i32;
                ffi::apr_table_unset((*r).headers_in, c"Content-Length".as_ptr());
                ffi::ap_internal_redirect_handler(util::pstr((*r).pool, &location), r);
                ffi::OK as i32
            }
        }
    }
}

/// mod_wsgi's internal redirect in daemon mode: status 200 and a `Location` (the first one)
/// that starts with `/`.
fn local_redirect(status: u16, headers: &[(Vec<u8>, Vec<u8>)]) -> Option<&[u8]> {
    let (_, location) = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(b"Location"))?;
    (status == 200 && location.starts_with(b"/")).then_some(&location[..])
}

/// The next frame from the daemon; while `waiting` for TAKEN, no later than that deadline.
fn read_frame(
    conn: &mut Conn,
    waiting: Option<Instant>,
    socket_timeout: Duration,
) -> Result<(Frame, Option<std::os::fd::OwnedFd>), protocol::ProtocolError> {
    let Some(deadline) = waiting else { return conn.reader.read_frame_fd() };
    // The socket's (shared) receive timeout: 0 would mean none, so at least 1 ms.
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    conn.writer.set_read_timeout(Some(left.min(socket_timeout)))?;
    match conn.reader.read_frame_fd() {
        // One last look before the queue time is declared over: a TAKEN that arrived just as
        // the read timed out means a daemon thread is running the request.
        Err(e) if timed_out(&e) && Instant::now() >= deadline && readable(&conn.writer) => {
            conn.writer.set_read_timeout(Some(socket_timeout))?;
            conn.reader.read_frame_fd()
        }
        other => other,
    }
}

/// A read that ran out of time (the socket's receive timeout).
fn timed_out(e: &protocol::ProtocolError) -> bool {
    matches!(e, protocol::ProtocolError::Io(io) if matches!(io.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
}

/// Whether the daemon has sent something (or closed the connection) that is not read yet.
fn readable(stream: &UnixStream) -> bool {
    let mut pfd = libc::pollfd { fd: stream.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    unsafe { libc::poll(&mut pfd, 1, 0) == 1 }
}

/// Reads up to `max` bytes of the body (what was collected, then the client's) and encodes the
/// reply to a READ.
fn body_reply(backend: &mut ApacheBackend, max: usize, out: &mut Vec<u8>) -> Result<(), Failure> {
    // Read straight into `out`'s spare room, behind the BODY frame's header.
    let max = max.clamp(1, protocol::MAX_DATA);
    out.reserve(protocol::HEADER_LEN + max);
    let read = backend.read_body(&mut out.spare_capacity_mut()[protocol::HEADER_LEN..protocol::HEADER_LEN + max]);
    match read {
        Ok(n) if n > 0 => {
            out.extend_from_slice(&protocol::frame_header(protocol::FrameType::Body, n));
            // SAFETY: read_body wrote the n bytes that follow the header just added.
            unsafe { out.set_len(out.len() + n) };
        }
        other => {
            let frame = match other {
                Err(e) => Frame::BodyError { status: e.status.clamp(400, 599) },
                _ => Frame::BodyEnd,
            };
            protocol::encode_frame(&frame, out)?;
        }
    }
    Ok(())
}
