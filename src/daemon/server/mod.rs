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

mod backend;
mod conn;
mod process;

use super::dispatch::{Events, LeaderFollowers};
use super::group::Group;
use crate::python::interp::RuntimeConfig;
use crate::sys::util::{self, log_server};
use conn::{Conn, Writer};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The epoll token of the listening socket (connections use their Box address).
const LISTENER: u64 = u64::MAX;

/// Runs a daemon process; never returns. `server_python_home` is the server's WSGIPythonHome,
/// used when the group has no python-home= (as in mod_wsgi).
pub fn run(group: &Group, index: usize, server_python_home: Option<String>) -> ! {
    let parent = unsafe { libc::getppid() };
    unsafe { process::prepare_process(group) };
    crate::python::set_server_log(|level, msg| log_server(ptr::null(), level, msg));
    let spec = &group.spec;
    let config = RuntimeConfig {
        python_home: spec.python_home.clone().or(server_python_home),
        python_path: spec.python_path.clone(),
        process_group: spec.name.clone(),
        restrict_signal: false,
        threads_per_process: spec.threads as i64,
        maximum_processes: spec.processes as i64,
    };
    if let Err(e) = crate::python::interp::initialize(config) {
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
        dispatch: LeaderFollowers::new(),
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
        std::thread::spawn(move || process::signals(&s));
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
    process::monitor(&shared);
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
    /// How the workers share the epoll set (see `crate::daemon::dispatch`).
    dispatch: LeaderFollowers,
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

/// Is a connection waiting on the group's socket (within `wait_ms`)?
fn listener_ready(listener: RawFd, wait_ms: i32) -> bool {
    let mut pfd = libc::pollfd { fd: listener, events: libc::POLLIN, revents: 0 };
    unsafe { libc::poll(&mut pfd, 1, wait_ms) > 0 }
}

/// The epoll set as the workers' event source: ready events first, then a bounded wait (so a
/// leader sees a stop within 250 ms).
struct Epoll(RawFd);

impl Events for Epoll {
    fn take_ready(&self) -> Option<u64> {
        self.poll(0)
    }
    fn wait(&self) -> Option<u64> {
        self.poll(250)
    }
}

impl Epoll {
    fn poll(&self, timeout_ms: i32) -> Option<u64> {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        (unsafe { libc::epoll_wait(self.0, &mut ev, 1, timeout_ms) } == 1).then_some(ev.u64)
    }
}

/// A worker thread: takes events (see `crate::daemon::dispatch`) and handles each.
fn worker(shared: &Arc<Shared>) {
    let events = Epoll(shared.epoll);
    loop {
        let token = shared.dispatch.next(&events);
        conn::handle_event(shared, token);
    }
}
