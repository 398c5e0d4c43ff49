//! `deadlock-timeout=`: a thread that takes the GIL once a second and notes when it got it. If
//! it has not got it for the timeout (a C extension holding the GIL forever, a deadlock
//! between the GIL and a lock of the application's), the monitor restarts the process, as
//! mod_wsgi does (default 300 s). No request can run in such a process anyway.

use super::shared::{Shared, StopKind};
use crate::python::interp;
use crate::python::wsgi::now_micros;
use crate::sys::util::{self, log_server};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// When the heartbeat thread last held the GIL (µs since the epoch; 0 before it started).
static LAST_HELD: AtomicU64 = AtomicU64::new(0);

/// Starts the heartbeat thread (once Python runs).
pub(super) fn start() {
    LAST_HELD.store(now_micros(), Ordering::Relaxed);
    std::thread::spawn(|| {
        let Ok(main) = interp::interpreter("") else { return };
        loop {
            std::thread::sleep(Duration::from_secs(1));
            drop(main.attach());
            LAST_HELD.store(now_micros(), Ordering::Relaxed);
        }
    });
}

/// Called by the monitor: restarts the process if the GIL has been held for `timeout`.
pub(super) fn check(shared: &Shared, timeout: Duration) {
    let last = LAST_HELD.load(Ordering::Relaxed);
    if last == 0 || shared.stopping() {
        return;
    }
    let held = Duration::from_micros(now_micros().saturating_sub(last));
    if held >= timeout {
        log_server(
            ptr::null(),
            util::LOG_ERR,
            &format!(
                "oxwsgi: daemon process {} of group '{}' (pid {}): the Python GIL has not been released for {}s \
                 (deadlock-timeout {}s): restarting the process",
                shared.index,
                shared.group.spec.name,
                std::process::id(),
                held.as_secs(),
                timeout.as_secs()
            ),
        );
        // Nothing can run Python here any more: no grace, the process is replaced now.
        shared.begin_stop(StopKind::Abandon, "deadlock_timeout", Duration::ZERO, "Python GIL deadlock");
    }
}
