//! A daemon process: forked from Apache's parent, it drops privileges, starts Python, and serves
//! requests that Apache's children send over the group's UNIX socket, with the same WSGI adapter
//! as embedded mode.
//!
//! Threads: `threads` workers take events from one epoll set holding the group's listening
//! socket and every idle connection (each armed one-shot, so an event goes to exactly one
//! worker). A worker that gets a connection serves one request on it and hands it back to the
//! set, so Apache can keep connections open across requests without pinning a thread, and a
//! busy process (no worker waiting) leaves new connections in the shared backlog for an idle
//! one. Only one worker sleeps in `epoll_wait` (see [`worker`]). A monitor enforces
//! request-timeout, maximum-requests, inactivity-timeout, restart-interval and parent death; a
//! signal thread turns SIGTERM/SIGINT/SIGHUP/SIGUSR1 into an orderly stop.
//!
//! Stopping: a stopping process ends each response with END_CLOSE and closes its idle
//! connections at once. A request Apache had already written into one of them is then unread,
//! so Apache's read fails with ECONNRESET (or its write with EPIPE) before any answer, which
//! tells it the request never ran and may be sent again on a new connection.

use super::protocol::{self, Frame, FrameReader, PairBuf, MAX_DATA, MAX_HELLO_PAYLOAD, PROTOCOL_VERSION};
use super::supervisor::Group;
use crate::apache::util::{self, log_server};
use crate::python::interp::{self, RuntimeConfig};
use crate::python::obj::{self, Obj};
use crate::python::wsgi::{self, Backend, BodyError, Outcome, Request};
use pyo3::ffi as py;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The epoll token of the listening socket (connections use their Box address).
const LISTENER: u64 = u64::MAX;

/// Runs a daemon process; never returns.
pub fn run(group: &Group, index: usize) -> ! {
    let parent = unsafe { libc::getppid() };
    unsafe { prepare_process(group) };
    crate::python::set_server_log(|level, msg| log_server(ptr::null(), level, msg));
    let spec = &group.spec;
    // As in mod_wsgi, a group without python-home= runs the server's WSGIPythonHome.
    let main = crate::apache::conf::server_conf(unsafe { crate::apache::ffi::ap_server_conf });
    let config = RuntimeConfig {
        python_home: spec.python_home.clone().or_else(|| main.python_home.as_ref().map(|(h, _)| h.clone())),
        python_path: spec.python_path.clone(),
        process_group: spec.name.clone(),
        restrict_signal: false,
        threads_per_process: spec.threads as i64,
        maximum_processes: spec.processes as i64,
    };
    if let Err(e) = interp::initialize(config) {
        log_server(ptr::null(), util::LOG_ERR, &format!("oxwsgi: daemon process of group '{}': {e}", spec.name));
        std::thread::sleep(Duration::from_secs(1));
        unsafe { libc::_exit(1) };
    }
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        log_server(ptr::null(), util::LOG_ERR, "oxwsgi: daemon process cannot create its epoll set");
        unsafe { libc::_exit(1) };
    }
    unsafe {
        // Every daemon of the group waits for the shared socket; a non-blocking accept lets the
        // ones that lose the race go back to waiting.
        let flags = libc::fcntl(group.listener, libc::F_GETFL);
        libc::fcntl(group.listener, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let shared = Arc::new(Shared {
        group: group.clone(),
        index,
        parent,
        started: Instant::now(),
        epoll,
        stop: AtomicBool::new(false),
        accept_while_stopping: AtomicBool::new(false),
        drain: AtomicBool::new(false),
        deadline: Mutex::new(None),
        busy: AtomicUsize::new(0),
        events: AtomicU64::new(0),
        idle: Mutex::new(HashSet::new()),
        has_leader: AtomicBool::new(false),
        followers: Mutex::new(0),
        follower_wake: Condvar::new(),
        active: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        served: AtomicU64::new(0),
        last_activity: Mutex::new(Instant::now()),
    });
    shared.arm(libc::EPOLL_CTL_ADD, group.listener, LISTENER);
    for _ in 0..spec.threads {
        let s = shared.clone();
        std::thread::Builder::new().stack_size(8 << 20).spawn(move || worker(&s)).expect("spawn worker thread");
    }
    {
        let s = shared.clone();
        std::thread::spawn(move || signals(&s));
    }
    log_server(
        ptr::null(),
        util::LOG_INFO,
        &format!(
            "oxwsgi: daemon process {index} of group '{}' ready (pid {}, {} threads)",
            spec.name,
            std::process::id(),
            spec.threads
        ),
    );
    monitor(&shared);
}

struct Shared {
    group: Group,
    index: usize,
    parent: i32,
    started: Instant,
    epoll: RawFd,
    stop: AtomicBool,
    /// While stopping, new connections are still accepted (a self-initiated restart, whose
    /// replacement starts only when this process is gone, or a drain).
    accept_while_stopping: AtomicBool,
    /// Stopping because Apache stops or fully restarts: its children may already have sent
    /// requests that no new daemon will take before they are gone, so the backlog must be
    /// empty before this process leaves.
    drain: AtomicBool,
    deadline: Mutex<Option<Instant>>,
    /// Workers handling an event (accepting or serving a request).
    busy: AtomicUsize,
    /// Events taken by workers, ever (lets the monitor see one being taken).
    events: AtomicU64,
    /// Tokens of the connections armed in the epoll set, waiting for Apache's next request.
    /// Whoever removes a token owns that connection: a worker that got its event, or a stop
    /// that closes idle connections.
    idle: Mutex<HashSet<u64>>,
    /// A worker blocks in `epoll_wait` (see [`worker`]). Changed only with `followers` locked;
    /// read without the lock where a stale answer is harmless.
    has_leader: AtomicBool,
    /// Workers parked on `follower_wake`.
    followers: Mutex<usize>,
    follower_wake: Condvar,
    active: Mutex<HashMap<u64, Active>>,
    next_id: AtomicU64,
    served: AtomicU64,
    last_activity: Mutex<Instant>,
}

struct Active {
    started: Instant,
    uri: String,
    writer: Arc<Writer>,
    timed_out: bool,
}

/// How a stop was asked for, which decides whether new connections are still taken.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StopKind {
    /// Apache's graceful restart: the next generation takes the socket at once.
    Graceful,
    /// Apache stops or fully restarts: answer everything its children have sent.
    Drain,
    /// maximum-requests, restart-interval, inactivity-timeout: the replacement starts when this
    /// process is gone, so keep answering until then.
    Replace,
    /// request-timeout: the process may be wedged.
    Abandon,
}

impl Shared {
    /// Arms `fd` (one-shot) in the epoll set with `token`.
    fn arm(&self, op: i32, fd: RawFd, token: u64) -> bool {
        let mut ev =
            libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32, u64: token };
        unsafe { libc::epoll_ctl(self.epoll, op, fd, &mut ev) == 0 }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn accepts(&self) -> bool {
        !self.stopping() || self.accept_while_stopping.load(Ordering::SeqCst)
    }

    /// Begins an orderly stop; the process leaves once in-flight requests are done and no
    /// connection Apache may still reuse is open, or at `grace` from now.
    fn begin_stop(&self, kind: StopKind, grace: Duration, why: &str) {
        let now = Instant::now();
        {
            let mut deadline = self.deadline.lock().unwrap();
            let at = now + grace;
            if deadline.map_or(true, |d| at < d) {
                *deadline = Some(at);
            }
        }
        match kind {
            StopKind::Drain => {
                self.drain.store(true, Ordering::SeqCst);
                self.accept_while_stopping.store(true, Ordering::SeqCst);
            }
            StopKind::Graceful | StopKind::Replace | StopKind::Abandon => {
                self.accept_while_stopping.store(false, Ordering::SeqCst)
            }
        }
        if !self.stop.swap(true, Ordering::SeqCst) {
            log_server(
                ptr::null(),
                util::LOG_INFO,
                &format!(
                    "oxwsgi: daemon process {} of group '{}' (pid {}) stopping: {why}",
                    self.index,
                    self.group.spec.name,
                    std::process::id()
                ),
            );
        }
        self.close_idle();
    }

    /// Closes every connection waiting for Apache's next request (see the module docs).
    fn close_idle(&self) {
        let tokens: Vec<u64> = self.idle.lock().unwrap().drain().collect();
        for token in tokens {
            // Safe: the token was removed from `idle` here, so no worker will use it.
            let conn = unsafe { Box::from_raw(token as *mut Conn) };
            self.forget(*conn);
        }
    }

    /// Takes a connection out of the epoll set and closes it (by dropping it).
    fn forget(&self, conn: Conn) {
        let fd = conn.writer.state.lock().unwrap().stream.as_raw_fd();
        if conn.registered {
            unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_DEL, fd, ptr::null_mut()) };
        }
    }

    /// Only requests that request-timeout gave up on are left and (when draining) nothing
    /// waits in the backlog.
    fn finished(&self) -> bool {
        let quiet = || {
            let abandoned = self.active.lock().unwrap().values().filter(|a| a.timed_out).count();
            self.busy.load(Ordering::SeqCst) <= abandoned
        };
        let events = self.events.load(Ordering::SeqCst);
        if !quiet() {
            return false;
        }
        if self.drain.load(Ordering::SeqCst) && listener_ready(self.group.listener, 0) {
            return false;
        }
        // A worker may have taken an event an instant ago without counting itself busy yet.
        std::thread::sleep(Duration::from_millis(20));
        quiet() && self.events.load(Ordering::SeqCst) == events
    }

    /// A worker took an event (`followers` locked): if no one leads, wake a follower to lead
    /// (see [`worker`]).
    fn took_event(&self, followers: usize) {
        if !self.has_leader.load(Ordering::Relaxed) && followers > 0 {
            self.follower_wake.notify_one();
        }
    }

    /// Counts a finished request; at maximum-requests the process begins to stop.
    fn count_request(&self) {
        let served = self.served.fetch_add(1, Ordering::SeqCst) + 1;
        let max = self.group.spec.maximum_requests;
        if max > 0 && served >= max {
            self.begin_stop(StopKind::Replace, self.graceful(), &format!("maximum-requests ({max}) reached"));
        }
    }

    fn graceful(&self) -> Duration {
        self.group.spec.graceful_timeout.unwrap_or(self.group.spec.shutdown_timeout)
    }
}

/// Resets what the process inherited from Apache's parent and becomes the configured user.
unsafe fn prepare_process(group: &Group) {
    // Signals: defaults everywhere, SIGPIPE ignored; the stop signals are handled by a thread.
    for sig in 1..32 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
        libc::sigaddset(&mut set, sig);
    }
    libc::pthread_sigmask(libc::SIG_SETMASK, &set, ptr::null_mut());
    // Apache's listening sockets belong to Apache.
    crate::apache::ffi::ap_close_listeners();
    // Other groups' sockets are not ours either.
    for g in super::supervisor::GROUPS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        if g.listener != group.listener {
            libc::close(g.listener);
        }
    }
    let spec = &group.spec;
    // As in mod_wsgi: without display-name the daemon keeps the Apache parent's name.
    if let Some(title) = spec.title() {
        set_title(&title);
    }
    if let Some(mask) = spec.umask {
        libc::umask(mask as libc::mode_t);
    }
    if let Some(lang) = &spec.lang {
        std::env::set_var("LANG", lang);
    }
    if let Some(locale) = &spec.locale {
        std::env::set_var("LC_ALL", locale);
        if let Ok(c) = CString::new(locale.as_str()) {
            libc::setlocale(libc::LC_ALL, c.as_ptr());
        }
    }
    // Become the group's user (never root: checked when the group was set up).
    if libc::geteuid() == 0 {
        let user = CString::new(group.user_name.as_str()).unwrap_or_default();
        if libc::setgid(group.gid) != 0
            || libc::initgroups(user.as_ptr(), group.gid) != 0
            || libc::setuid(group.uid) != 0
        {
            log_server(
                ptr::null(),
                util::LOG_EMERG,
                &format!("oxwsgi: daemon group '{}': cannot switch to uid {} gid {}", spec.name, group.uid, group.gid),
            );
            libc::_exit(1);
        }
    }
    // Changing credentials clears the parent-death signal: set it now.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    // As in mod_wsgi: HOME is the user's home directory; the working directory changes only
    // when home= says so.
    let pw = libc::getpwuid(group.uid);
    if !pw.is_null() {
        if let Some(dir) = util::cstr((*pw).pw_dir) {
            std::env::set_var("HOME", dir);
        }
    }
    if let Some(home) = &spec.home {
        let _ = std::env::set_current_dir(home);
    }
}

/// Shows `title` as this process's command line in ps: the kernel reports the memory that held
/// the original argv, so it is overwritten in place (its length is what /proc says it is).
unsafe fn set_title(title: &str) {
    let process = (*crate::apache::ffi::ap_server_conf).process;
    let room = std::fs::read("/proc/self/cmdline").map(|c| c.len()).unwrap_or(0);
    if process.is_null() || (*process).argc < 1 || room == 0 {
        return;
    }
    let start = *(*process).argv as *mut u8;
    let bytes = title.as_bytes();
    ptr::write_bytes(start, 0, room);
    ptr::copy_nonoverlapping(bytes.as_ptr(), start, bytes.len().min(room - 1));
    if let Ok(c) = CString::new(&bytes[..bytes.len().min(15)]) {
        libc::prctl(libc::PR_SET_NAME, c.as_ptr());
    }
}

/// Is a connection waiting on the group's socket (within `wait_ms`)?
fn listener_ready(listener: RawFd, wait_ms: i32) -> bool {
    let mut pfd = libc::pollfd { fd: listener, events: libc::POLLIN, revents: 0 };
    unsafe { libc::poll(&mut pfd, 1, wait_ms) > 0 }
}

/// Leader and followers: a worker takes an event already waiting without sleeping. When there
/// is none, it becomes the leader (the one worker blocking in `epoll_wait`) or, if there is
/// one, parks as a follower. A leader that takes an event wakes a follower to lead in its place,
/// and so does a worker that takes a waiting event while no one leads.
///
/// With every idle worker blocking in `epoll_wait`, as before, each event woke an idle thread
/// (which then queued for the GIL), while the worker that had just finished a request went to
/// sleep: 15 threads served a hello-world application at 60% of the rate of 2. Now the worker
/// that finishes a request takes the next waiting one itself.
fn worker(shared: &Arc<Shared>) {
    let mut ev = libc::epoll_event { events: 0, u64: 0 };
    loop {
        if unsafe { libc::epoll_wait(shared.epoll, &mut ev, 1, 0) } == 1 {
            // Read without the lock: if it is stale, a leader that just left has woken a
            // follower itself (or one that just came is seen under the lock).
            if !shared.has_leader.load(Ordering::Relaxed) {
                shared.took_event(*shared.followers.lock().unwrap());
            }
            handle_event(shared, ev.u64);
            continue;
        }
        let mut followers = shared.followers.lock().unwrap();
        if shared.has_leader.load(Ordering::Relaxed) {
            *followers += 1;
            followers = shared.follower_wake.wait(followers).unwrap();
            *followers -= 1;
            continue;
        }
        shared.has_leader.store(true, Ordering::Relaxed);
        drop(followers);
        let n = unsafe { libc::epoll_wait(shared.epoll, &mut ev, 1, 250) };
        let followers = shared.followers.lock().unwrap();
        shared.has_leader.store(false, Ordering::Relaxed);
        if n == 1 {
            shared.took_event(*followers);
            drop(followers);
            handle_event(shared, ev.u64);
        }
    }
}

fn handle_event(shared: &Arc<Shared>, token: u64) {
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
            if let Some(conn) = Conn::new(unsafe { UnixStream::from_raw_fd(fd) }, shared) {
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

/// One connection from an Apache child.
struct Conn {
    writer: Arc<Writer>,
    /// Lent to the request's backend while a request runs.
    reader: Option<FrameReader<UnixStream>>,
    out: Vec<u8>,
    greeted: bool,
    registered: bool,
}

impl Conn {
    /// None when the process is out of descriptors (the connection is closed).
    fn new(stream: UnixStream, shared: &Shared) -> Option<Conn> {
        let timeout = Some(shared.group.spec.socket_timeout);
        let _ = stream.set_read_timeout(timeout);
        let _ = stream.set_write_timeout(timeout);
        let read_half = stream.try_clone().ok()?;
        Some(Conn {
            writer: Arc::new(Writer {
                state: Mutex::new(WriterState { stream, greeted: false, started: false, taken_over: false }),
            }),
            reader: Some(FrameReader::new(read_half)),
            out: Vec::with_capacity(4096),
            greeted: false,
            registered: false,
        })
    }
}

/// Serves one request on `conn`, then hands the connection back to the epoll set (or closes it).
fn serve(shared: &Arc<Shared>, mut conn: Box<Conn>) {
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

/// The write half of a connection, shared with the monitor so it can answer a request that
/// ran past request-timeout.
struct Writer {
    state: Mutex<WriterState>,
}

struct WriterState {
    stream: UnixStream,
    /// Something was written: the HELLO_OK that leads the first buffered output went out.
    greeted: bool,
    started: bool,
    taken_over: bool,
}

impl Writer {
    fn write(&self, bytes: &[u8], starts: bool) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        if st.taken_over {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "request was answered by the request-timeout monitor",
            ));
        }
        st.greeted = true;
        st.stream.write_all(bytes)?;
        st.started |= starts;
        Ok(())
    }
}

/// Reads and answers one request (after the HELLO on a new connection). True when the
/// connection may carry another request.
fn serve_one(shared: &Arc<Shared>, conn: &mut Conn) -> bool {
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
    let uri = environ.get(b"REQUEST_URI").map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
    shared
        .active
        .lock()
        .unwrap()
        .insert(id, Active { started: Instant::now(), uri, writer: conn.writer.clone(), timed_out: false });
    *shared.last_activity.lock().unwrap() = Instant::now();
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
    shared.active.lock().unwrap().remove(&id);
    *shared.last_activity.lock().unwrap() = Instant::now();
    shared.count_request();
    keep
}

fn send(writer: &Writer, frame: &Frame, starts: bool) -> io::Result<()> {
    let mut buf = Vec::new();
    protocol::encode_frame(frame, &mut buf).map_err(io::Error::other)?;
    writer.write(&buf, starts)
}

/// Runs one request; false when the connection cannot carry another one.
fn handle_request(
    shared: &Shared,
    environ: &PairBuf,
    body_length: Option<u64>,
    eager_body: bool,
    backend: &mut DaemonBackend,
) -> bool {
    let spec = &shared.group.spec;
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
            backend.log(
                util::LOG_ERR,
                &format!(
                    "oxwsgi: request waited {:.1}s for daemon group '{}' (queue-timeout {}s): 503",
                    waited.as_secs_f64(),
                    spec.name,
                    limit.as_secs()
                ),
            );
            return backend.send_error(503, "queue-timeout exceeded");
        }
    }
    let script = text(b"SCRIPT_FILENAME").unwrap_or("").to_string();
    let mtime = match std::fs::metadata(&script) {
        Ok(m) => {
            use std::os::unix::fs::MetadataExt;
            m.mtime() * 1_000_000 + m.mtime_nsec() / 1000
        }
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
    let daemon_start = wsgi::now_micros().to_string();
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
    let request = Request {
        script: Path::new(&script),
        mtime,
        reload: text(b"mod_wsgi.script_reloading") != Some("0"),
        callable: &callable,
        cgi: &cgi,
        https: text(b"HTTPS").is_some_and(|v| v.eq_ignore_ascii_case("on")),
        multithread: spec.threads > 1,
        multiprocess: spec.multiprocess,
        content_length: body_length,
        head: text(b"REQUEST_METHOD") == Some("HEAD"),
    };
    let outcome = wsgi::run(&interp, &request, backend);
    match outcome {
        Outcome::Done => true,
        Outcome::Failed(status) => backend.send_error(status, "request failed"),
        Outcome::Aborted => false,
    }
}

/// Daemon mode's [`Backend`]: frames to and from Apache over the group's socket.
struct DaemonBackend {
    shared: Arc<Shared>,
    writer: Arc<Writer>,
    reader: FrameReader<UnixStream>,
    out: Vec<u8>,
    buffered: usize,
    /// `out` holds the START frame.
    starts: bool,
    pending: Vec<u8>,
    pending_pos: usize,
    body_done: bool,
    body_error: Option<BodyError>,
    /// The response ended with END: Apache may send another request on this connection.
    reusable: bool,
    /// REMOTE_ADDR:REMOTE_PORT, for the error log.
    client: String,
}

impl DaemonBackend {
    /// Reads Apache's reply to an (implicit or explicit) READ. False if the connection broke.
    fn receive_body(&mut self) -> bool {
        match self.reader.read_frame() {
            Ok(Frame::Body(data)) => {
                let used = std::mem::replace(&mut self.pending, data);
                self.reader.recycle(used);
                self.pending_pos = 0;
                true
            }
            Ok(Frame::BodyEnd) => {
                self.body_done = true;
                true
            }
            Ok(Frame::BodyError { status }) => {
                self.body_error =
                    Some(BodyError { status, message: "the client's request body could not be read".into() });
                true
            }
            _ => {
                self.body_error = Some(BodyError {
                    status: 400,
                    message: "connection to Apache broken while reading the body".into(),
                });
                false
            }
        }
    }

    fn send_error(&mut self, status: u16, message: &str) -> bool {
        let _ = protocol::encode_frame(&Frame::error(status.clamp(400, 599), message), &mut self.out);
        self.flush().is_ok()
    }
}

impl Backend for DaemonBackend {
    fn read_body(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, BodyError> {
        loop {
            if self.pending_pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pending_pos);
                wsgi::copy_to_uninit(buf, &self.pending[self.pending_pos..self.pending_pos + n]);
                self.pending_pos += n;
                return Ok(n);
            }
            if let Some(e) = &self.body_error {
                return Err(e.clone());
            }
            if self.body_done || buf.is_empty() {
                return Ok(0);
            }
            let max = buf.len().min(MAX_DATA) as u32;
            let _ = protocol::encode_frame(&Frame::Read { max }, &mut self.out);
            if self.flush().is_err() || !self.receive_body() {
                return Err(self
                    .body_error
                    .clone()
                    .unwrap_or(BodyError { status: 400, message: "connection to Apache broken".into() }));
            }
        }
    }

    fn start(&mut self, status: u16, status_line: &str, headers: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
        let reason = status_line.get(4..).unwrap_or("").as_bytes();
        protocol::encode_start(status, reason, headers, &mut self.out).map_err(|e| e.to_string())?;
        self.starts = true;
        Ok(())
    }

    fn write(&mut self, data: &[u8]) {
        protocol::encode_data(data, &mut self.out);
        self.buffered += data.len();
    }

    fn write_now(&mut self, data: &[u8]) -> io::Result<()> {
        self.flush()?;
        let mut st = self.writer.state.lock().unwrap();
        if st.taken_over {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "taken over"));
        }
        st.greeted = true;
        protocol::write_data(&mut st.stream, data).map_err(io::Error::other)
    }

    fn buffered(&self) -> usize {
        self.buffered
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = if self.out.is_empty() { Ok(()) } else { self.writer.write(&self.out, self.starts) };
        self.out.clear();
        self.buffered = 0;
        r
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
        self.flush()?;
        let st = self.writer.state.lock().unwrap();
        if st.taken_over {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "taken over"));
        }
        let file = unsafe { BorrowedFd::borrow_raw(fd) };
        protocol::send_frame_with_fd(&st.stream, &Frame::SendFile { offset, length: len }, file)
            .map_err(io::Error::other)
    }

    fn finish(&mut self) -> io::Result<()> {
        // A stopping process ends the connection with the response (END_CLOSE).
        let reusable = !self.shared.stopping();
        let _ = protocol::encode_frame(if reusable { &Frame::End } else { &Frame::EndClose }, &mut self.out);
        self.flush()?;
        self.reusable = reusable;
        Ok(())
    }

    fn abort(&mut self) {
        let _ =
            protocol::encode_frame(&Frame::abort("the application failed after the response started"), &mut self.out);
        let _ = self.flush();
    }

    fn log(&mut self, level: u8, msg: &str) {
        // As mod_wsgi's daemon lines do, name the client the request came from.
        log_server(ptr::null(), level, &format!("[remote {}] {msg}", self.client));
    }
}

fn signals(shared: &Shared) {
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGUSR1] {
            libc::sigaddset(&mut set, sig);
        }
    }
    loop {
        let mut sig = 0;
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            continue;
        }
        if sig == libc::SIGUSR1 {
            // Apache's graceful restart: the next generation takes over the socket at once.
            shared.begin_stop(StopKind::Graceful, shared.graceful(), "graceful restart requested");
        } else {
            shared.begin_stop(StopKind::Drain, shared.group.spec.shutdown_timeout, "Apache is stopping or restarting");
        }
    }
}

fn monitor(shared: &Shared) -> ! {
    let spec = &shared.group.spec;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if unsafe { libc::getppid() } != shared.parent {
            log_server(
                ptr::null(),
                util::LOG_ERR,
                &format!("oxwsgi: daemon group '{}': Apache's parent is gone; exiting", spec.name),
            );
            unsafe { libc::_exit(0) };
        }
        if let Some(limit) = spec.request_timeout {
            check_request_timeouts(shared, limit);
        }
        // startup-timeout: a script that failed to load, and has not loaded since, gets a fresh
        // process (state an import left behind may be what keeps it failing), as in mod_wsgi.
        if let Some(t) = spec.startup_timeout {
            let loads = &wsgi::SCRIPT_LOADS;
            let failed_at = loads.first_failure.load(Ordering::Relaxed);
            if !loads.loaded.load(Ordering::Relaxed)
                && failed_at != 0
                && wsgi::now_micros().saturating_sub(failed_at) >= t.as_micros() as u64
            {
                shared.begin_stop(
                    StopKind::Replace,
                    shared.graceful(),
                    &format!("startup-timeout ({}s): the WSGI script has not loaded", t.as_secs()),
                );
            }
        }
        if let Some(t) = spec.restart_interval {
            if shared.started.elapsed() >= t {
                shared.begin_stop(
                    StopKind::Replace,
                    shared.graceful(),
                    &format!("restart-interval ({}s) reached", t.as_secs()),
                );
            }
        }
        // Armed by the first request: a fresh process has no application memory to give back,
        // and restarting it would only repeat its start-up every `t` while the group is idle.
        if let (Some(t), true) = (spec.inactivity_timeout, shared.served.load(Ordering::SeqCst) > 0) {
            let idle = {
                let active = shared.active.lock().unwrap();
                active.is_empty() && shared.busy.load(Ordering::SeqCst) == 0
            };
            if idle && shared.last_activity.lock().unwrap().elapsed() >= t {
                shared.begin_stop(
                    StopKind::Replace,
                    Duration::ZERO,
                    &format!("inactivity-timeout ({}s) reached", t.as_secs()),
                );
            }
        }
        if shared.stop.load(Ordering::SeqCst) {
            shared.close_idle();
            let done = shared.finished();
            let late = shared.deadline.lock().unwrap().is_some_and(|d| Instant::now() >= d);
            if done || late {
                if late && !done {
                    log_server(ptr::null(), util::LOG_WARNING, &format!(
                        "oxwsgi: daemon group '{}': requests still running at the shutdown deadline; exiting anyway", spec.name));
                }
                unsafe { libc::_exit(0) };
            }
        }
    }
}

/// A request past request-timeout is answered 504 (or aborted if its response had started),
/// every thread's Python stack is logged, and the process restarts.
fn check_request_timeouts(shared: &Shared, limit: Duration) {
    let mut overdue = Vec::new();
    {
        let mut active = shared.active.lock().unwrap();
        for a in active.values_mut() {
            if !a.timed_out && a.started.elapsed() > limit {
                a.timed_out = true;
                overdue.push((a.uri.clone(), a.writer.clone(), a.started.elapsed()));
            }
        }
    }
    if overdue.is_empty() {
        return;
    }
    let spec = &shared.group.spec;
    for (uri, writer, ran) in &overdue {
        log_server(ptr::null(), util::LOG_ERR, &format!(
            "oxwsgi: request-timeout ({}s) exceeded by request '{uri}' after {:.1}s in daemon process {} of group '{}' (pid {}); answering 504 and restarting the process",
            limit.as_secs(), ran.as_secs_f64(), shared.index, spec.name, std::process::id()));
        let mut st = writer.state.lock().unwrap();
        let frame =
            if st.started { Frame::abort("request-timeout") } else { Frame::error(504, "request-timeout exceeded") };
        let mut buf = Vec::new();
        if !st.greeted {
            // HELLO_OK waits in the worker's output buffer until its first flush: Apache
            // expects it before anything else.
            let _ = protocol::encode_frame(&Frame::HelloOk { pid: std::process::id() }, &mut buf);
        }
        let _ = protocol::encode_frame(&frame, &mut buf);
        let _ = st.stream.write_all(&buf);
        let _ = st.stream.shutdown(std::net::Shutdown::Write);
        st.taken_over = true;
    }
    shared.begin_stop(StopKind::Abandon, shared.graceful().min(Duration::from_secs(5)), "request-timeout exceeded");
    // The stacks need the GIL, which the stuck request may never give up: take them on another
    // thread and wait a little, so the monitor itself can never hang.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(python_stacks());
    });
    let stacks = rx
        .recv_timeout(Duration::from_secs(2))
        .unwrap_or_else(|_| "(Python stacks unavailable: a thread holds the GIL)".to_string());
    for line in stacks.lines() {
        log_server(ptr::null(), util::LOG_ERR, line);
    }
}

/// Every thread's Python stack, as text (taken in the main interpreter).
fn python_stacks() -> String {
    const CODE: &str = "def _oxwsgi_stacks():\n    import sys, threading, traceback\n    names = {t.ident: t.name for t in threading.enumerate()}\n    out = []\n    for ident, frame in sys._current_frames().items():\n        out.append('Python stack of thread %s (%s):' % (ident, names.get(ident, 'request thread')))\n        out.extend(l.rstrip() for l in traceback.format_stack(frame))\n    return '\\n'.join(out)\n";
    let Ok(main) = interp::interpreter("") else { return String::new() };
    let _at = main.attach();
    unsafe {
        let result = (|| {
            let globals = obj::dict()?;
            obj::dict_set_str(&globals, c"__builtins__", &Obj::borrowed(py::PyEval_GetBuiltins()))?;
            let src = CString::new(CODE).expect("no NUL");
            Obj::owned(py::PyRun_String(src.as_ptr(), py::Py_file_input, globals.as_ptr(), globals.as_ptr()))?;
            let f = Obj::borrowed(py::PyDict_GetItemString(globals.as_ptr(), c"_oxwsgi_stacks".as_ptr()));
            f.call0()
        })();
        match result {
            Ok(text) => text.as_str().unwrap_or("").to_string(),
            Err(_) => {
                py::PyErr_Clear();
                String::from("(Python stacks unavailable)")
            }
        }
    }
}
