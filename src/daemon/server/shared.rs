//! What a daemon process's threads share: the group, the epoll set, the idle connections, the
//! requests in flight, and the stop (how it was asked for, when it is finished).

use super::conn::{Conn, Writer};
use crate::daemon::dispatch::LeaderFollowers;
use crate::daemon::group::Group;
use crate::sys::util::{self, log_server};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The epoll token of the listening socket (connections use their Box address).
pub(super) const LISTENER: u64 = u64::MAX;

pub(super) struct Shared {
    pub(super) group: Group,
    pub(super) index: usize,
    pub(super) parent: i32,
    pub(super) started: Instant,
    pub(super) epoll: RawFd,
    pub(super) stop: AtomicBool,
    /// While stopping, new connections are still accepted (a self-initiated restart, whose
    /// replacement starts only when this process is gone, or a drain).
    pub(super) accept_while_stopping: AtomicBool,
    /// Stopping because Apache stops or fully restarts: its children may already have sent
    /// requests that no new daemon will take before they are gone, so the backlog must be
    /// empty before this process leaves.
    pub(super) drain: AtomicBool,
    pub(super) deadline: Mutex<Option<Instant>>,
    /// Workers handling an event (accepting or serving a request).
    pub(super) busy: AtomicUsize,
    /// Events taken by workers, ever (lets the monitor see one being taken).
    pub(super) events: AtomicU64,
    /// Tokens of the connections armed in the epoll set, waiting for Apache's next request.
    /// Whoever removes a token owns that connection: a worker that got its event, or a stop
    /// that closes idle connections.
    pub(super) idle: Mutex<HashSet<u64>>,
    /// How the workers share the epoll set (see `crate::daemon::dispatch`).
    pub(super) dispatch: LeaderFollowers,
    /// Shared with interrupt-timeout's helper threads (see process::check_request_timeouts).
    pub(super) active: Arc<Mutex<HashMap<u64, Active>>>,
    pub(super) next_id: AtomicU64,
    pub(super) served: AtomicU64,
    pub(super) last_activity: Mutex<Instant>,
    /// mod_wsgi's name for why the process stops, once it does (see `begin_stop`).
    pub(super) stop_reason: Mutex<&'static str>,
}

pub(super) struct Active {
    pub(super) started: Instant,
    pub(super) uri: String,
    pub(super) writer: Arc<Writer>,
    pub(super) timed_out: bool,
    /// The thread running it (its Python `threading.get_ident()`) and its interpreter, and
    /// when interrupt-timeout interrupted it.
    pub(super) thread: u64,
    pub(super) application_group: String,
    pub(super) interrupted: Option<Instant>,
}

/// How a stop was asked for, which decides whether new connections are still taken.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum StopKind {
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
    pub(super) fn arm(&self, op: i32, fd: RawFd, token: u64) -> bool {
        let mut ev =
            libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32, u64: token };
        unsafe { libc::epoll_ctl(self.epoll, op, fd, &mut ev) == 0 }
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub(super) fn accepts(&self) -> bool {
        !self.stopping() || self.accept_while_stopping.load(Ordering::SeqCst)
    }

    /// Begins an orderly stop; the process leaves once in-flight requests are done and no
    /// connection Apache may still reuse is open, or at `grace` from now.
    /// `reason` is mod_wsgi's `shutdown_reason` of the `process_stopping` event; the first
    /// stop's reason is the one reported.
    pub(super) fn begin_stop(&self, kind: StopKind, reason: &'static str, grace: Duration, why: &str) {
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
            *self.stop_reason.lock().unwrap() = reason;
            crate::telemetry::stopping(reason, self.busy.load(Ordering::SeqCst) as u64);
            if let Some(region) = crate::metrics::shm::region() {
                region.record_restart(&self.group.spec.name, crate::metrics::restart_label(reason));
            }
            if let Some(row) = crate::metrics::shm::current_process() {
                row.set_stopping();
            }
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
    pub(super) fn close_idle(&self) {
        let tokens: Vec<u64> = self.idle.lock().unwrap().drain().collect();
        for token in tokens {
            // Safe: the token was removed from `idle` here, so no worker will use it.
            let conn = unsafe { Box::from_raw(token as *mut Conn) };
            self.forget(*conn);
        }
    }

    /// Takes a connection out of the epoll set and closes it (by dropping it).
    pub(super) fn forget(&self, conn: Conn) {
        let fd = conn.writer.state.lock().unwrap().stream.as_raw_fd();
        if conn.registered {
            unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_DEL, fd, ptr::null_mut()) };
        }
    }

    /// Only requests that request-timeout gave up on are left and (when draining) nothing
    /// waits in the backlog.
    pub(super) fn finished(&self) -> bool {
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
    pub(super) fn count_request(&self) {
        let served = self.served.fetch_add(1, Ordering::SeqCst) + 1;
        let max = self.group.spec.maximum_requests;
        if max > 0 && served >= max {
            self.begin_stop(
                StopKind::Replace,
                "maximum_requests",
                self.graceful(),
                &format!("maximum-requests ({max}) reached"),
            );
        }
    }

    pub(super) fn graceful(&self) -> Duration {
        self.group.spec.graceful_timeout.unwrap_or(self.group.spec.shutdown_timeout)
    }
}

/// Is a connection waiting on the group's socket (within `wait_ms`)?
pub(super) fn listener_ready(listener: RawFd, wait_ms: i32) -> bool {
    let mut pfd = libc::pollfd { fd: listener, events: libc::POLLIN, revents: 0 };
    unsafe { libc::poll(&mut pfd, 1, wait_ms) > 0 }
}
