//! How a sub-interpreter is made: with the GIL it shares with every other interpreter
//! (`Py_NewInterpreter`, as on every Python before 3.12), or, with WSGIPerInterpreterGIL On on
//! Python 3.12 or later, with a GIL of its own (PEP 684), so that two application groups of one
//! process run Python at the same time.
//!
//! An own-GIL interpreter is isolated as CPython's `_PyInterpreterConfig_INIT` makes it (its own
//! object allocator, and extension modules must support several interpreters: a single-phase
//! init module fails its import with an ImportError), except that it may fork, exec and start
//! daemon threads, as the interpreters `Py_NewInterpreter` makes may: applications run
//! subprocesses and agents (New Relic's) start daemon threads.
//!
//! What oxwsgi shares between interpreters is safe without a shared GIL: the registry and
//! telemetry's and metrics' state are behind Rust locks or atomics; each interpreter has its own
//! copy of the `_oxwsgi` package, its own interned strings and capsules; the native functions'
//! `PyMethodDef`s are static and only read; `None`/`True`/`False` are immortal. A thread holds
//! at most one interpreter's GIL at a time: every path that visits several interpreters (process
//! events, interrupt-timeout, script calls) releases one before it attaches to the next.

use pyo3::ffi;

/// The GIL a new sub-interpreter gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gil {
    /// The one GIL of the process (every Python; the only kind before 3.12).
    Shared,
    /// Its own (WSGIPerInterpreterGIL On, Python 3.12 or later).
    Own,
}

impl Gil {
    /// The GIL an interpreter gets when WSGIPerInterpreterGIL resolves to `per_interpreter_gil`
    /// for it: its own where this Python can (3.12+), for sub-interpreters only (the main
    /// interpreter, `%{GLOBAL}`, is made by Python's start-up).
    pub fn for_option(per_interpreter_gil: bool, main: bool) -> Gil {
        if per_interpreter_gil && cfg!(Py_3_12) && !main {
            Gil::Own
        } else {
            Gil::Shared
        }
    }
}

/// Makes a sub-interpreter. Call with a thread state of the main interpreter current (its GIL
/// held). On success the new interpreter's thread state is current, with its GIL held; with
/// [`Gil::Own`] the main interpreter's GIL has been released. On failure the caller's thread
/// state is current again, GIL held, and the error says why.
pub unsafe fn new_interpreter(gil: Gil) -> Result<*mut ffi::PyThreadState, String> {
    match gil {
        Gil::Shared => legacy(),
        Gil::Own => own(),
    }
}

unsafe fn legacy() -> Result<*mut ffi::PyThreadState, String> {
    let tstate = ffi::Py_NewInterpreter();
    if tstate.is_null() {
        ffi::PyErr_Clear();
        return Err("Py_NewInterpreter failed".into());
    }
    Ok(tstate)
}

#[cfg(Py_3_12)]
unsafe fn own() -> Result<*mut ffi::PyThreadState, String> {
    let config = ffi::PyInterpreterConfig {
        allow_fork: 1,
        allow_exec: 1,
        allow_daemon_threads: 1,
        ..ffi::_PyInterpreterConfig_INIT
    };
    debug_assert_eq!(config.gil, ffi::PyInterpreterConfig_OWN_GIL);
    let mut tstate = std::ptr::null_mut();
    let status = ffi::Py_NewInterpreterFromConfig(&mut tstate, &config);
    if ffi::PyStatus_Exception(status) != 0 || tstate.is_null() {
        ffi::PyErr_Clear();
        let msg = if status.err_msg.is_null() {
            "unknown error".to_string()
        } else {
            std::ffi::CStr::from_ptr(status.err_msg).to_string_lossy().into_owned()
        };
        return Err(format!("Py_NewInterpreterFromConfig (own GIL) failed: {msg}"));
    }
    OWN_GIL_MADE.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(tstate)
}

/// Whether this process has made an interpreter with its own GIL.
static OWN_GIL_MADE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether `sys._current_frames()` may be called: up to Python 3.13 it walks the threads of
/// every interpreter and makes frame objects for them, which is a data race against an
/// interpreter with its own GIL (and its own allocator) running at the same time. From 3.14 it
/// walks only the calling interpreter's threads.
pub fn current_frames_is_safe() -> bool {
    cfg!(Py_3_14) || !OWN_GIL_MADE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Said in the log instead of a stack dump that [`current_frames_is_safe`] forbids.
pub const NO_STACKS: &str = "(Python stacks not taken: before Python 3.14, sys._current_frames() reads \
                             the threads of interpreters with their own GIL (WSGIPerInterpreterGIL On) \
                             without that GIL)";

#[cfg(not(Py_3_12))]
unsafe fn own() -> Result<*mut ffi::PyThreadState, String> {
    // Gil::for_option never chooses Own before 3.12.
    legacy()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_gil_only_for_sub_interpreters_and_only_from_3_12() {
        assert_eq!(Gil::for_option(false, false), Gil::Shared);
        assert_eq!(Gil::for_option(true, true), Gil::Shared, "the main interpreter keeps its GIL");
        let expected = if cfg!(Py_3_12) { Gil::Own } else { Gil::Shared };
        assert_eq!(Gil::for_option(true, false), expected);
    }
}
