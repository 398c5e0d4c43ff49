//! A request running in this process: its queue wait is recorded when it starts, and this
//! process' busy count covers it until it ends.

use super::region::ProcessRow;
use super::shm;
use std::time::Instant;

/// Held while an application runs on a request (both modes).
pub struct Running {
    row: Option<&'static ProcessRow>,
    start: Instant,
}

impl Running {
    /// The application of `group` (the process group, "" for embedded mode) and
    /// `application_group` starts on a request Apache accepted at `accepted_us` (microseconds
    /// since the epoch); `threads` is this process' number of request threads.
    pub fn begin(group: &str, application_group: &str, threads: u32, accepted_us: u64, now_us: u64) -> Running {
        if let Some(series) = shm::region().and_then(|r| r.series(group, application_group)) {
            series.started(now_us.saturating_sub(accepted_us));
        }
        let row = shm::this_process(group, threads, now_us);
        if let Some(row) = row {
            row.enter();
        }
        Running { row, start: Instant::now() }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(row) = self.row {
            row.leave(self.start.elapsed().as_micros() as u64);
        }
    }
}
