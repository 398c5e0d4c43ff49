//! A request running in this process: its queue wait is recorded when it starts, and this
//! process' busy count covers it until it ends.

use super::region::ProcessRow;
use super::shm;
use std::time::Instant;

/// Held while an application runs on a request (both modes).
pub struct Running {
    row: Option<&'static ProcessRow>,
    start: Instant,
    phases: Phases,
    started_us: u64,
}

/// When the request reached each stage before its application started (microseconds since the
/// epoch), for the telemetry reporter: Apache accepted it, and in daemon mode Apache's child
/// queued it for the daemon and a daemon thread took it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Phases {
    pub accepted_us: u64,
    pub queued_us: Option<u64>,
    pub daemon_us: Option<u64>,
}

impl Running {
    /// The application of `group` (the process group, "" for embedded mode) and
    /// `application_group` starts on a request Apache accepted at `accepted_us` (microseconds
    /// since the epoch); `threads` is this process' number of request threads.
    pub fn begin(group: &str, application_group: &str, threads: u32, phases: Phases, now_us: u64) -> Running {
        if let Some(series) = shm::region().and_then(|r| r.series(group, application_group)) {
            series.started(now_us.saturating_sub(phases.accepted_us));
        }
        let row = shm::this_process(group, threads, now_us);
        if let Some(row) = row {
            row.enter();
        }
        Running { row, start: Instant::now(), phases, started_us: now_us }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(row) = self.row {
            row.leave(self.start.elapsed().as_micros() as u64);
        }
        if crate::telemetry::active() {
            let p = self.phases;
            let first_us = p.queued_us.unwrap_or(self.started_us);
            crate::telemetry::finished(crate::telemetry::Finished {
                server_us: first_us.saturating_sub(p.accepted_us),
                queue_us: p.queued_us.map(|q| p.daemon_us.unwrap_or(q).saturating_sub(q)),
                daemon_us: p.daemon_us.map(|d| self.started_us.saturating_sub(d)),
                application_us: self.start.elapsed().as_micros() as u64,
                ..Default::default()
            });
        }
    }
}
