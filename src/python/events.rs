//! Process events for every interpreter's `mod_wsgi` subscribers: `process_stopping` (the
//! process is going; `subscribe_shutdown` and `subscribe_events`) and `process_signal` (a
//! daemon process got SIGHUP or SIGUSR2; `subscribe_signals`, mod_wsgi 6). Each interpreter's
//! callbacks run with its GIL held, in turn; what a callback raises is logged.

use super::backend::{server_log, LOG_WARNING};
use super::interp::{interpreters, Attached};
use super::obj::{self, Obj};
use std::time::Duration;

fn publish(call: impl Fn(&Attached) -> Result<Obj, obj::PyErrSet>) {
    for interp in interpreters() {
        let attached = interp.attach();
        let _ = call(&attached);
        let _ = attached.data().flush_pending.call0(attached.py());
        obj::take_error(attached.py());
        drop(attached);
    }
}

/// `process_stopping` with mod_wsgi's `shutdown_reason`.
pub fn process_stopping(reason: &str) {
    publish(|at| at.data().process_stopping.call1(at.py(), &obj::text(at.py(), reason)?));
}

/// [`process_stopping`] in a thread of its own, waiting for it at most `limit`: a request still
/// running may hold the GIL, and a stop must not hang (a warning says so when it did not finish).
pub fn process_stopping_within(reason: &'static str, limit: Duration) {
    let (done, wait) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("oxwsgi-stop".into()).spawn(move || {
        process_stopping(reason);
        let _ = done.send(());
    });
    if spawned.is_ok() && wait.recv_timeout(limit).is_err() {
        server_log(
            LOG_WARNING,
            &format!(
                "oxwsgi: the process_stopping callbacks did not finish within {}s; exiting anyway",
                limit.as_secs()
            ),
        );
    }
}

/// `process_signal` (`signame`, `signum`), in a thread of its own so that a slow callback holds
/// up neither requests nor the handling of the next signal.
pub fn process_signal(signame: &'static str, signum: i32) {
    let _ = std::thread::Builder::new().name("oxwsgi-signal".into()).spawn(move || {
        publish(|at| {
            let py = at.py();
            at.data().process_signal.call(py, &[&obj::text(py, signame)?, &obj::int(py, signum as i64)?])
        });
    });
}
