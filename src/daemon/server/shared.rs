//! What a daemon process's threads share: the group, the epoll set, the idle connections, the
//! requests in flight, and the stop (`crate::daemon::stop`: how it was asked for; here: when
//! it is finished).

use super::conn::{Conn, Writer};
use crate::daemon::dispatch::LeaderFollowers;
use crate::daemon::group::Group;
pub(super) use crate::daemon::stop::StopKind;
use crate::daemon::stop::{Stop, StopState};
use crate::sys::util::{self, log_server};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, RawFd};
use std::ptr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
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
    /// Running or stopping, and how (see `begin_stop`).
    pub(super) stop: StopState,
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

impl Shared {
    /// Arms `fd` (one-shot) in the epoll set with `token`.
    pub(super) fn arm(&self, op: i32, fd: RawFd, token: u64) -> bool {
        let mut ev =
            libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32, u64: token };
        unsafe { libc::epoll_ctl(self.epoll, op, fd, &mut ev) == 0 }
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.phase().stopping()
    }

    /// Whether new connections are taken from the group's socket (see `StopKind`).
    pub(super) fn accepts(&self) -> bool {
        self.stop.phase().accepts()
    }

    /// Begins an orderly stop; the process leaves once in-flight requests are done and no
    /// connection Apache may still reuse is open, or at `grace` from now.
    /// `reason` is mod_wsgi's `shutdown_reason` of the `process_stopping` event; the first
    /// stop's reason is the one reported. A second stop may make the first stronger or sooner
    /// (`Stop::then`).
    pub(super) fn begin_stop(&self, kind: StopKind, reason: &'static str, grace: Duration, why: &str) {
        if self.stop.request(kind, reason, Instant::now() + grace) {
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
        let drains = matches!(self.stop.get(), Stop::Stopping { kind, .. } if kind.drains());
        if drains && listener_ready(self.group.listener, 0) {
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
