//! A daemon process's stop as one value: running, or stopping in one way, for a reason, by a
//! deadline. Whether new connections are still accepted and whether the group's backlog must
//! be empty before the process leaves follow from the way ([`StopKind`]), so no combination of
//! flags can contradict it. Pure: the daemon (`server::shared`) holds a [`StopState`].

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// How a stop was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopKind {
    /// Apache's graceful restart (or an eviction): the next generation takes the socket at once.
    Graceful,
    /// Apache stops or fully restarts: no new daemon may take what its children have already
    /// sent, so this one answers everything, the backlog included.
    Drain,
    /// maximum-requests, restart-interval, inactivity-timeout, startup-timeout, a changed
    /// script: this process takes no new connection and leaves once its requests are done;
    /// connections Apache makes meanwhile wait in the group's backlog for the replacement,
    /// which starts when this process is gone. (Taking them would keep a busy process from
    /// ever being done: it would be cut off at its deadline with requests in flight.)
    Replace,
    /// request-timeout or deadlock-timeout: the process may be wedged.
    Abandon,
}

impl StopKind {
    /// Whether a process stopping this way still accepts connections, and leaves only once
    /// the group's backlog is empty: only when no new daemon will take it.
    pub fn drains(self) -> bool {
        self == StopKind::Drain
    }

    /// Which kind wins when a process is asked to stop again: a wedged process is abandoned
    /// whatever else was asked, and one that must drain keeps draining (a request finishing
    /// past maximum-requests while Apache stops must not leave the backlog unanswered).
    fn strength(self) -> u8 {
        match self {
            StopKind::Graceful | StopKind::Replace => 0,
            StopKind::Drain => 1,
            StopKind::Abandon => 2,
        }
    }
}

/// Whether and how a process stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Running,
    Stopping {
        kind: StopKind,
        /// mod_wsgi's `shutdown_reason` (of the `process_stopping` event): the first stop's.
        reason: &'static str,
        /// When the process leaves even with requests still running: the earliest asked for.
        deadline: Instant,
    },
}

impl Stop {
    /// The stop after one more is asked for (see [`StopKind::strength`] for which kind wins).
    pub fn then(self, kind: StopKind, reason: &'static str, deadline: Instant) -> Stop {
        match self {
            Stop::Running => Stop::Stopping { kind, reason, deadline },
            Stop::Stopping { kind: was, reason, deadline: by } => Stop::Stopping {
                kind: if kind.strength() > was.strength() { kind } else { was },
                reason,
                deadline: by.min(deadline),
            },
        }
    }

    /// What the workers need to know of it, per event.
    pub fn phase(&self) -> Phase {
        match self {
            Stop::Running => Phase::Running,
            Stop::Stopping { kind, .. } if kind.drains() => Phase::Draining,
            Stop::Stopping { .. } => Phase::Closing,
        }
    }
}

/// A [`Stop`] reduced to what is checked on every event, kept in one atomic byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Running = 0,
    /// Stopping, still accepting connections (see [`StopKind::drains`]).
    Draining = 1,
    /// Stopping, accepting none.
    Closing = 2,
}

impl Phase {
    pub fn stopping(self) -> bool {
        self != Phase::Running
    }

    pub fn accepts(self) -> bool {
        self != Phase::Closing
    }
}

/// The stop of a process, shared by its threads: the whole value behind a lock, and its
/// [`Phase`] in an atomic that only [`StopState::request`] writes (under the lock).
pub struct StopState {
    stop: Mutex<Stop>,
    phase: AtomicU8,
}

impl Default for StopState {
    fn default() -> StopState {
        StopState { stop: Mutex::new(Stop::Running), phase: AtomicU8::new(Phase::Running as u8) }
    }
}

impl StopState {
    pub fn get(&self) -> Stop {
        *self.stop.lock().unwrap()
    }

    /// Without taking the lock.
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::SeqCst) {
            0 => Phase::Running,
            1 => Phase::Draining,
            _ => Phase::Closing,
        }
    }

    /// Asks for a stop; true when it is the first (the process was running).
    pub fn request(&self, kind: StopKind, reason: &'static str, deadline: Instant) -> bool {
        let mut stop = self.stop.lock().unwrap();
        let first = *stop == Stop::Running;
        *stop = stop.then(kind, reason, deadline);
        self.phase.store(stop.phase() as u8, Ordering::SeqCst);
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_stop_accepts_and_drains_only_when_no_new_daemon_will() {
        let now = Instant::now();
        for (kind, phase) in [
            (StopKind::Graceful, Phase::Closing),
            (StopKind::Drain, Phase::Draining),
            (StopKind::Replace, Phase::Closing),
            (StopKind::Abandon, Phase::Closing),
        ] {
            let stop = Stop::Running.then(kind, "r", now);
            assert_eq!(stop.phase(), phase, "{kind:?}");
            assert_eq!(phase.accepts(), kind.drains());
            assert!(phase.stopping());
        }
        assert!(Phase::Running.accepts() && !Phase::Running.stopping());
    }

    #[test]
    fn a_second_stop_keeps_the_first_reason_and_the_earliest_deadline() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let stop = Stop::Running.then(StopKind::Replace, "maximum_requests", later).then(
            StopKind::Graceful,
            "graceful_signal",
            now,
        );
        assert_eq!(stop, Stop::Stopping { kind: StopKind::Replace, reason: "maximum_requests", deadline: now });
        let stop = Stop::Running.then(StopKind::Graceful, "graceful_signal", now).then(StopKind::Drain, "x", later);
        assert_eq!(stop, Stop::Stopping { kind: StopKind::Drain, reason: "graceful_signal", deadline: now });
    }

    #[test]
    fn draining_survives_a_weaker_stop_and_abandoning_wins() {
        let now = Instant::now();
        let draining = Stop::Running.then(StopKind::Drain, "shutdown_signal", now);
        // maximum-requests reached by a request that ends while Apache stops.
        assert_eq!(draining.then(StopKind::Replace, "maximum_requests", now).phase(), Phase::Draining);
        assert_eq!(draining.then(StopKind::Graceful, "graceful_signal", now).phase(), Phase::Draining);
        let abandoned = draining.then(StopKind::Abandon, "request_timeout", now);
        assert!(matches!(abandoned, Stop::Stopping { kind: StopKind::Abandon, .. }));
        assert_eq!(abandoned.then(StopKind::Drain, "shutdown_signal", now).phase(), Phase::Closing);
    }

    #[test]
    fn the_state_reports_the_first_request_and_keeps_its_phase_in_step() {
        let state = StopState::default();
        let now = Instant::now();
        assert_eq!((state.get(), state.phase()), (Stop::Running, Phase::Running));
        assert!(state.request(StopKind::Replace, "restart_interval", now));
        assert_eq!(state.phase(), Phase::Closing);
        assert!(!state.request(StopKind::Drain, "shutdown_signal", now));
        assert_eq!(state.phase(), Phase::Draining);
        assert!(matches!(state.get(), Stop::Stopping { reason: "restart_interval", kind: StopKind::Drain, .. }));
    }
}
