//! The WSGI adapter (PEP 3333): environ, start_response, write, the response loop, close.
//!
//! It talks to the client only through [`Backend`], so embedded mode (Apache's brigades) and
//! daemon mode (the wire protocol) run exactly the same adapter and answer byte for byte alike.

use super::backend::{Backend, LOG_ERR, LOG_INFO};
use super::interp::{without_gil, Attached, Interp, InterpData, LoadError};
use super::native::{CurrentRequest, RequestCapsule, START_RESPONSE_DEF};
use super::obj::{self, Obj, Py, PyErrSet, PyResult};
use super::own_gil::Gil;
use super::request_stats;
use super::state::RequestState;
use pyo3::ffi;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// What the host needs to know to run one request.
pub struct Request<'a> {
    pub script: &'a Path,
    pub mtime: i64,
    pub reload: bool,
    pub callable: &'a str,
    /// CGI variables and `mod_wsgi.*` string keys, as bytes (decoded as latin-1).
    pub cgi: &'a [(&'a [u8], &'a [u8])],
    pub https: bool,
    pub multithread: bool,
    pub multiprocess: bool,
    /// The declared request body length; None for a chunked body read to its end.
    pub content_length: Option<u64>,
    /// A HEAD request: the response has no body, whatever its Content-Length says.
    pub head: bool,
    /// A changed script is not reloaded in place: the request ends with [`Outcome::Restart`]
    /// (daemon mode, where the process restarts instead).
    pub restart_on_change: bool,
    /// WSGIPassApacheRequest (embedded mode): Apache's `request_rec`, shown to the application
    /// as `apache.request_rec` (an unnamed capsule, as in mod_wsgi); null when not passed.
    pub apache_request: *mut std::ffi::c_void,
}

/// How a request ended, for the host.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The response was sent.
    Done,
    /// Nothing was sent: the host answers with this status.
    Failed(u16),
    /// The response was cut short; the connection is being dropped.
    Aborted,
    /// Nothing was sent: the script changed and `restart_on_change` was set.
    Restart,
}

/// Runs the WSGI application of `req` on this thread. Takes the interpreter's GIL once; the
/// last push of the response to the client happens after it is released.
pub fn run(interp: &Interp, req: &Request, backend: &mut (dyn Backend + 'static)) -> Outcome {
    let outcome = run_and_finish(interp, req, backend);
    if let Outcome::Failed(status) = outcome {
        crate::telemetry::set_status(status);
    }
    outcome
}

fn run_and_finish(interp: &Interp, req: &Request, backend: &mut (dyn Backend + 'static)) -> Outcome {
    let pending = {
        let waiting = std::time::Instant::now();
        let at = interp.attach();
        let gil_wait = waiting.elapsed();
        run_attached(&at, req, backend, gil_wait)
    };
    match pending {
        Pending::Done(outcome) => outcome,
        Pending::Finish { short: Some(msg) } => {
            // Shorter than its declared Content-Length: push out what there is (Apache may hold
            // it in its output filters until the end of the request, and dropping the connection
            // discards that), then drop the connection instead of ending the response, so the
            // client sees EOF rather than waiting for the missing bytes.
            let _ = backend.flush();
            backend.log(LOG_ERR, &msg);
            backend.abort();
            Outcome::Aborted
        }
        Pending::Finish { short: None } => {
            if backend.finish().is_err() {
                backend.log(LOG_INFO, "oxwsgi: client closed the connection before the response was complete");
                backend.abort();
                return Outcome::Aborted;
            }
            Outcome::Done
        }
    }
}

/// What is left to do once Python is released.
enum Pending {
    Done(Outcome),
    /// Call `finish()`; `short` is the error to log (and the connection to drop) when the body
    /// was shorter than its declared Content-Length.
    Finish {
        short: Option<String>,
    },
}

fn run_attached(at: &Attached, req: &Request, backend: &mut (dyn Backend + 'static), gil_wait: Duration) -> Pending {
    let py = at.py();
    let script = req.script.display().to_string();
    let resource = || {
        let file = req.cgi.iter().find(|(k, _)| *k == b"SCRIPT_FILENAME").map_or(&b""[..], |(_, v)| v);
        String::from_utf8_lossy(file).into_owned()
    };
    // A reload_required() that raised: logged as mod_wsgi logs it, and the loaded script kept.
    let check_failed = |exc| log_exception(at, &mut |level, msg| backend.log(level, msg), &script, exc);
    let app = match at.application(
        req.script,
        req.mtime,
        req.reload,
        req.callable,
        resource,
        req.restart_on_change,
        check_failed,
    ) {
        Ok(app) => {
            SCRIPT_LOADS.loaded.store(true, Ordering::Relaxed);
            app
        }
        Err(LoadError::Exception(exc)) => {
            let _ = SCRIPT_LOADS.first_failure.compare_exchange(0, now_micros(), Ordering::Relaxed, Ordering::Relaxed);
            backend.log(LOG_ERR, &format!("{}: Failed to exec Python script file '{script}'.", who(at)));
            log_exception(at, &mut |level, msg| backend.log(level, msg), &script, exc);
            return Pending::Done(Outcome::Failed(500));
        }
        Err(LoadError::Stale) => return Pending::Done(Outcome::Restart),
        Err(LoadError::NoCallable) => {
            backend.log(
                LOG_ERR,
                &format!(
                    "{}: Target WSGI script '{script}' does not contain WSGI application '{}'.",
                    who(at),
                    req.callable
                ),
            );
            return Pending::Done(Outcome::Failed(500));
        }
    };

    let state = RequestState::new(backend, req.content_length);
    match RequestCapsule::new(py, &state) {
        Ok(capsule) => {
            *state.capsule.borrow_mut() = Some(capsule.capsule.clone_ref(py));
            // Detach the capsule however `call` ends (a panic included): an application that
            // kept start_response or wsgi.input must never reach this stack frame later.
            struct Detach<'a>(&'a RequestCapsule);
            impl Drop for Detach<'_> {
                fn drop(&mut self) {
                    self.0.close();
                }
            }
            let detach = Detach(&capsule);
            let current = CurrentRequest::enter(&state);
            let pending = call(&state, at, req, &app, &capsule, &script, gil_wait);
            if crate::telemetry::active() {
                let status = state.status().unwrap_or(0);
                crate::telemetry::set_response(status, state.io.input_length.get(), state.written());
            }
            flush_pending(py, at.data());
            drop(current);
            drop(detach);
            pending
        }
        Err(PyErrSet) => {
            log_exception(at, &mut |level, msg| state.log(level, msg), &script, obj::take_error(py));
            Pending::Done(Outcome::Failed(500))
        }
    }
}

fn call(
    state: &RequestState,
    at: &Attached,
    req: &Request,
    app: &Obj,
    capsule: &RequestCapsule,
    script: &str,
    gil_wait: Duration,
) -> Pending {
    let (py, data) = (at.py(), at.data());
    let environ = match build_environ(at, req, capsule) {
        Ok(e) => Environ { at, dict: Some(e.0), errors: Some(e.1) },
        Err(_) => {
            log_exception(at, &mut |level, msg| state.log(level, msg), script, obj::take_error(py));
            return Pending::Done(Outcome::Failed(500));
        }
    };

    let mut start_response = match capsule.function(py, ptr::addr_of_mut!(START_RESPONSE_DEF)) {
        Ok(f) => f,
        Err(_) => return Pending::Done(Outcome::Failed(500)),
    };
    // mod_wsgi.subscribe_events(): only with subscribers is anything published.
    let events = unsafe { ffi::PyList_Size(data.event_callbacks.as_ptr()) } > 0;
    let started_at = if events { now_micros() as f64 / 1e6 } else { 0.0 };
    let mut cpu_at_start = (0.0, 0.0);
    // mod_wsgi.start_recording_metrics(): every request's I/O and GIL waits are measured.
    let recording = request_stats::recording();
    let outer_gil_wait = (events || recording).then(|| {
        state.io.timing.set(true);
        request_stats::gil_wait_start(gil_wait)
    });
    if events {
        cpu_at_start = request_stats::thread_cpu();
        let started = obj::float(py, started_at)
            .and_then(|t| data.request_started.call(py, &[environ.dict(), app, &start_response, &t]));
        match started.and_then(|pair| Ok((obj::tuple_item(py, &pair, 0)?, obj::tuple_item(py, &pair, 1)?))) {
            Ok((request_data, published)) => {
                *state.data.borrow_mut() = Some(request_data);
                start_response = published;
            }
            Err(_) => log_exception(at, &mut |level, msg| state.log(level, msg), script, obj::take_error(py)),
        }
    }
    let mut failure: Option<Option<Obj>> = None;
    match app.call(py, &[environ.dict(), &start_response]) {
        Err(_) => failure = Some(obj::take_error(py)),
        Ok(iterable) => {
            if let Err(PyErrSet) = state.consume(py, data.file_wrapper_cls.as_ptr(), &iterable) {
                failure = Some(obj::take_error(py));
            }
            // close() exactly once, on every path.
            if let Some(close) = close_method(py, &iterable, &data.names.close) {
                if let Err(PyErrSet) = close.call0(py) {
                    let exc = obj::take_error(py);
                    if failure.is_none() {
                        failure = Some(exc);
                    } else {
                        log_exception(at, &mut |level, msg| state.log(level, msg), script, exc);
                    }
                }
            }
        }
    }
    let gil_waits = outer_gil_wait.map(request_stats::gil_wait_end).unwrap_or_default();
    if recording {
        request_stats::record(&state.io, gil_waits, state.written());
    }
    if events {
        let request_data = state.data.borrow().as_ref().map_or_else(|| obj::none(py), |d| d.clone_ref(py));
        let exception = failure.as_ref().and_then(Option::as_ref).map_or_else(|| obj::none(py), |e| e.clone_ref(py));
        let finished = obj::float(py, started_at).and_then(|t| {
            let status = state.status().unwrap_or(0);
            let elapsed = (now_micros() as f64 / 1e6 - started_at).max(0.0);
            let stats =
                request_stats::finished(py, &state.io, cpu_at_start, gil_waits, elapsed, status, state.written())?;
            data.request_finished.call(py, &[environ.dict(), &request_data, &t, &stats, &exception])
        });
        if finished.is_err() {
            log_exception(at, &mut |level, msg| state.log(level, msg), script, obj::take_error(py));
        }
    }
    // A partial line the application left in wsgi.errors (or in sys.stdout) is logged now,
    // before any traceback of this request.
    flush_pending(py, data);
    if let Some(exc) = failure {
        return Pending::Done(fail(state, at, script, exc));
    }
    if state.client_gone() {
        return Pending::Done(client_gone_outcome(state));
    }
    if state.status().is_none() {
        state.log(LOG_ERR, &format!("{}: start_response() was not called by WSGI script '{script}'.", who(at)));
        return Pending::Done(Outcome::Failed(500));
    }
    if let Err(msg) = state.send_headers() {
        state.log(LOG_ERR, &msg);
        return Pending::Done(Outcome::Failed(500));
    }
    // A HEAD answer, and a status that has no body (1xx, 204, 304), may declare the
    // Content-Length of the body it does not send.
    let bodiless = req.head || matches!(state.status(), Some(100..=199 | 204 | 304));
    let short = state.content_length().filter(|&cl| state.written() < cl && !bodiless).map(|cl| {
        format!(
            "{}: WSGI script '{script}' declared Content-Length {cl} but sent {} bytes; closing the connection.",
            who(at),
            state.written()
        )
    });
    Pending::Finish { short }
}

fn client_gone_outcome(state: &RequestState) -> Outcome {
    state.log(LOG_INFO, "oxwsgi: client closed the connection before the response was complete");
    state.with_backend(|b| b.abort());
    Outcome::Aborted
}

fn fail(state: &RequestState, at: &Attached, script: &str, exc: Option<Obj>) -> Outcome {
    if state.client_gone() {
        return client_gone_outcome(state);
    }
    if let (false, Some(err)) = (state.headers_sent(), state.input_error()) {
        state.log(
            LOG_INFO,
            &format!("{}: request body could not be read ({}); answering {}", who(at), err.message, err.status),
        );
        return Outcome::Failed(err.status);
    }
    if exc.as_ref().is_some_and(|e| super::interrupt::is_request_timeout(at, e)) {
        // mod_wsgi.RequestTimeout (interrupt-timeout's, or raised by the application): not
        // an error of the application, so no traceback (the monitor logged the stack when it
        // raised it); mod_wsgi 6's line instead, and 504 if the response has not started.
        if !state.headers_sent() {
            state.log(LOG_INFO, "Request interrupted by RequestTimeout; thread recovered.");
            return Outcome::Failed(504);
        }
        state.log(LOG_INFO, "Request interrupted by RequestTimeout after headers sent; response truncated.");
    } else {
        log_exception(at, &mut |level, msg| state.log(level, msg), script, exc);
    }
    if state.headers_sent() {
        // What the application produced before failing still reaches the client (it may be
        // buffered, and dropping the connection would discard it); then the connection is
        // dropped without ending the response, so it cannot pass for a complete one.
        state.with_backend(|backend| {
            // Safe: the flush is the backend's I/O, no Python.
            let _ = unsafe { without_gil(at.py(), || backend.flush()) };
            backend.abort();
        });
        Outcome::Aborted
    } else {
        Outcome::Failed(500)
    }
}

/// Runs the import script `script` in interpreter `group` (WSGIImportScript: preloading, before
/// any request). The error is what to log, line by line: mod_wsgi's "Failed to exec" line, then
/// the traceback.
pub fn preload(group: &str, script: &Path) -> Result<(), String> {
    let failed = |detail: String| {
        format!(
            "mod_wsgi (pid={}): Failed to exec Python script file '{}'.\n{detail}",
            std::process::id(),
            script.display()
        )
    };
    let meta = std::fs::metadata(script).map_err(|e| failed(format!("cannot read it: {e}")))?;
    let mtime = super::interp::mtime_micros(&meta);
    let interp = super::interp::interpreter(group).map_err(failed)?;
    let at = interp.attach();
    at.preload(script, mtime).map_err(failed)
}

/// Logs the partial lines of the streams in the `_oxwsgi` package's `pending` set (the only
/// Python call at the end of a request, and only when some stream holds one).
fn flush_pending(py: Py<'_>, data: &InterpData) {
    if unsafe { ffi::PySet_Size(data.pending_streams.as_ptr()) } > 0 && data.flush_pending.call0(py).is_err() {
        unsafe { ffi::PyErr_Clear() };
    }
}

/// The iterable's `close` method, if it has one: `getattr(iterable, 'close', None)` with one
/// lookup, any error (not only AttributeError) counting as absent, as `hasattr` had it. A plain
/// list or tuple (what most applications return) has none, and skipping the lookup saves making
/// and clearing an AttributeError.
fn close_method(_py: Py<'_>, iterable: &Obj, close: &Obj) -> Option<Obj> {
    let o = iterable.as_ptr();
    if unsafe { ffi::PyList_CheckExact(o) != 0 || ffi::PyTuple_CheckExact(o) != 0 } {
        return None;
    }
    match unsafe { Obj::owned(ffi::PyObject_GetAttr(o, close.as_ptr())) } {
        Ok(attr) => Some(attr),
        Err(PyErrSet) => {
            unsafe { ffi::PyErr_Clear() };
            None
        }
    }
}

/// The prefix of error-log lines about an application, mod_wsgi's, so log watchers that match
/// `mod_wsgi (pid=` keep working.
fn who(_at: &Attached) -> String {
    format!("mod_wsgi (pid={})", std::process::id())
}

/// Logs an application's exception line by line through `log` (the backend's, or the
/// request's). Each call is one line: nothing holds the backend while Python formats the
/// traceback (which may run application code that logs too).
///
/// The traceback follows two header lines: mod_wsgi 6's ("WSGI0174: [script ...] RuntimeError
/// exception raised processing WSGI script '...' for sub-interpreter '...' ...", WSGI0175 for a
/// SystemExit), then mod_wsgi 4's ("mod_wsgi (pid=N): Exception occurred processing WSGI script
/// '...'.", or "... SystemExit exception raised by WSGI script '...' ignored."), so that log
/// watchers written for either version keep matching.
fn log_exception(at: &Attached, log: &mut dyn FnMut(u8, &str), script: &str, exc: Option<Obj>) {
    let Some(exc) = exc else {
        log(LOG_ERR, &format!("{}: Exception occurred processing WSGI script '{script}'.", who(at)));
        return;
    };
    let system_exit = unsafe { ffi::PyObject_IsInstance(exc.as_ptr(), ffi::PyExc_SystemExit) == 1 };
    let py = at.py();
    match obj::text(py, script).and_then(|s| at.data().exception_header.call(py, &[&exc, &s])) {
        Ok(header) => log(LOG_ERR, header.as_str(py).unwrap_or("")),
        Err(_) => unsafe { ffi::PyErr_Clear() },
    }
    if system_exit {
        log(LOG_ERR, &format!("{}: SystemExit exception raised by WSGI script '{script}' ignored.", who(at)));
    } else {
        log(LOG_ERR, &format!("{}: Exception occurred processing WSGI script '{script}'.", who(at)));
    }
    let text = at.format_exception(&exc);
    for line in text.lines() {
        log(LOG_ERR, line);
    }
    // pyo3-built extensions (cryptography, bcrypt, pydantic-core) refuse sub-interpreters. The
    // traceback includes chained exceptions (an ImportError wrapped by the application).
    // With its own GIL (WSGIPerInterpreterGIL On), CPython refuses every single-phase init
    // extension ("does not support loading in subinterpreters"): leaving the directive off is
    // the other fix.
    if !at.interp.name.is_empty() && (text.contains("subinterpreter") || text.contains("sub-interpreter")) {
        let own_gil = match at.interp.gil {
            Gil::Own => {
                " or leave WSGIPerInterpreterGIL off for it (this interpreter has its own GIL, which such a \
                         module cannot run in)"
            }
            Gil::Shared => "",
        };
        log(
            LOG_ERR,
            &format!(
                "{}: an extension module in this application does not support Python sub-interpreters; \
                 run the application in the main interpreter with 'WSGIApplicationGroup %{{GLOBAL}}' \
                 (or application-group=%{{GLOBAL}} on its WSGIScriptAlias){own_gil}.",
                who(at)
            ),
        );
    }
}

/// A request's environ, and its wsgi.errors. When the request ends the environ goes, and then
/// a wsgi.errors nothing else refers to is given back for a next request (`give_back`).
struct Environ<'a> {
    at: &'a Attached<'a>,
    dict: Option<Obj>,
    errors: Option<Obj>,
}

impl Environ<'_> {
    fn dict(&self) -> &Obj {
        self.dict.as_ref().expect("until dropped")
    }
}

impl Drop for Environ<'_> {
    fn drop(&mut self) {
        let py = self.at.py();
        drop(self.dict.take());
        let Some(errors) = self.errors.take() else { return };
        // Safe: a live object, GIL held. 1: only this reference is left. (Not while an error
        // is set: a path that returns with one leaves it for its caller.)
        let alone = unsafe { ffi::Py_REFCNT(errors.as_ptr()) == 1 && ffi::PyErr_Occurred().is_null() };
        if alone && self.at.data().give_back.call1(py, &errors).is_err() {
            obj::take_error(py);
        }
    }
}

/// The environ of a request, and its wsgi.errors.
fn build_environ(at: &Attached, req: &Request, capsule: &RequestCapsule) -> PyResult<(Obj, Obj)> {
    let (py, data) = (at.py(), at.data());
    let n = &data.names;
    let env = obj::dict(py)?;
    {
        let mut strings = data.environ_strings.borrow_mut();
        for (i, (k, v)) in req.cgi.iter().enumerate() {
            let (key, value) = strings.item(py, i, k, v)?;
            obj::dict_set(py, &env, &key, &value)?;
        }
    }
    let set = |k: &Obj, v: &Obj| obj::dict_set(py, &env, k, v);
    let flag = |b: bool| if b { &data.true_ } else { &data.false_ };
    set(&n.wsgi_version, &data.wsgi_version)?;
    set(&n.wsgi_url_scheme, if req.https { &n.https } else { &n.http })?;
    set(&n.wsgi_input, &data.input_cls.call1(py, &capsule.capsule)?)?;
    let errors = data.errors_stream.call1(py, &capsule.capsule)?;
    set(&n.wsgi_errors, &errors)?;
    set(&n.wsgi_multithread, flag(req.multithread))?;
    set(&n.wsgi_multiprocess, flag(req.multiprocess))?;
    set(&n.wsgi_run_once, &data.false_)?;
    set(&n.wsgi_input_terminated, &data.true_)?;
    set(&n.wsgi_file_wrapper, &data.file_wrapper_cls)?;
    set(&n.mod_wsgi_version, &data.mod_wsgi_version)?;
    set(&n.apache_version, &data.apache_version)?;
    if !req.apache_request.is_null() {
        // Valid for this request only, as under mod_wsgi.
        // Safe: a new reference or NULL with an exception set, which owned() turns into Err.
        let capsule = unsafe { Obj::owned(ffi::PyCapsule_New(req.apache_request, std::ptr::null(), None)) }?;
        obj::dict_set_str(py, &env, c"apache.request_rec", &capsule)?;
    }
    // mod_wsgi's per-thread and per-process request counters.
    let (thread_id, thread_requests) = THREAD_COUNTS.with(|c| {
        let (id, n) = c.get();
        let id = if id == 0 { NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed) } else { id };
        c.set((id, n + 1));
        (id, n + 1)
    });
    set(&n.thread_id, &obj::int(py, thread_id as i64)?)?;
    set(&n.thread_requests, &obj::int(py, thread_requests as i64)?)?;
    set(&n.total_requests, &obj::int(py, TOTAL_REQUESTS.fetch_add(1, Ordering::Relaxed) as i64 + 1)?)?;
    Ok((env, errors))
}

/// Whether this process has loaded a WSGI script, and when one first failed to load (for a
/// daemon's startup-timeout).
pub struct ScriptLoads {
    pub loaded: AtomicBool,
    /// Microseconds since the epoch; 0 while no load has failed.
    pub first_failure: AtomicU64,
}

pub static SCRIPT_LOADS: ScriptLoads = ScriptLoads { loaded: AtomicBool::new(false), first_failure: AtomicU64::new(0) };

pub fn now_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

static NEXT_THREAD_ID: AtomicU64 = AtomicU64::new(1);
static TOTAL_REQUESTS: AtomicU64 = AtomicU64::new(0);
thread_local! {
    /// (mod_wsgi.thread_id, requests this thread has run)
    static THREAD_COUNTS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}
