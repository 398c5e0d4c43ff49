//! The WSGI adapter (PEP 3333): environ, start_response, write, the response loop, close.
//!
//! It talks to the client only through [`Backend`], so embedded mode (Apache's brigades) and
//! daemon mode (the wire protocol) run exactly the same adapter and answer byte for byte alike.

use super::interp::{Attached, Interp, InterpData, LoadError};
use super::native::{CurrentRequest, RequestCapsule, START_RESPONSE_DEF, WRITE_DEF};
use super::obj::{self, raise, BytesBuf, Obj, PyErrSet, PyResult};
use pyo3::ffi;
use std::cell::{Cell, RefCell};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub const LOG_ERR: u8 = 3;
pub const LOG_WARNING: u8 = 4;
pub const LOG_INFO: u8 = 6;

/// Output buffered before it is pushed to the client even when more is immediately available.
const FLUSH_THRESHOLD: usize = 256 * 1024;
/// How many environ key strings an interpreter keeps for reuse.
const ENVIRON_KEY_CACHE: usize = 256;
/// Blocks at least this large are sent at once rather than copied into the output buffer.
const DIRECT_WRITE: usize = 64 * 1024;
/// Largest single read from the client when the application asks for everything.
const READ_CHUNK: u64 = 64 * 1024;

/// Copies `src` into the start of `dst`, which may be uninitialised (for [`Backend::read_body`]).
pub fn copy_to_uninit(dst: &mut [MaybeUninit<u8>], src: &[u8]) {
    assert!(src.len() <= dst.len());
    // SAFETY: both are valid for src.len() bytes and a &mut cannot overlap a &.
    unsafe { ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr().cast::<u8>(), src.len()) };
}

/// Where a request's input comes from and its response goes.
///
/// Methods marked "GIL held" are called while Python is locked and must not block; the others
/// are called with the GIL released.
pub trait Backend {
    /// Reads request body bytes into the start of `buf` (which may be uninitialised) and
    /// returns how many it wrote; `Ok(0)` at the end of the body.
    fn read_body(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, BodyError>;
    /// The response head (GIL held). Called once, before any body bytes.
    fn start(&mut self, status: u16, status_line: &str, headers: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String>;
    /// Buffers body bytes (GIL held).
    fn write(&mut self, data: &[u8]);
    /// Bytes buffered by `write` and not yet flushed.
    fn buffered(&self) -> usize;
    /// Pushes buffered output towards the client. An error means the client is gone.
    fn flush(&mut self) -> io::Result<()>;
    /// Sends buffered output and then `data`, keeping no reference to `data` after returning
    /// (so an implementation may send it without copying).
    fn write_now(&mut self, data: &[u8]) -> io::Result<()> {
        self.write(data);
        self.flush()
    }
    /// Sends `len` bytes of the open file `fd` from `offset`. The caller may close `fd` as soon
    /// as this returns.
    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> io::Result<()>;
    /// Completes the response.
    fn finish(&mut self) -> io::Result<()>;
    /// The response cannot be completed: push what is buffered, then drop the connection so
    /// the client sees the failure.
    fn abort(&mut self);
    /// One line to the error log, attributed to this request (GIL held).
    fn log(&mut self, level: u8, msg: &str);
}

#[derive(Debug, Clone)]
pub struct BodyError {
    /// The HTTP status that describes the failure (400 malformed, 408 timeout, 413 too large).
    pub status: u16,
    pub message: String,
}

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
}

/// Runs the WSGI application of `req` on this thread. Takes the interpreter's GIL once; the
/// last push of the response to the client happens after it is released.
pub fn run(interp: &Interp, req: &Request, backend: &mut (dyn Backend + 'static)) -> Outcome {
    let pending = {
        let at = interp.attach();
        run_attached(&at, req, backend)
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

fn run_attached(at: &Attached, req: &Request, backend: &mut (dyn Backend + 'static)) -> Pending {
    let script = req.script.display().to_string();
    let app = match at.application(req.script, req.mtime, req.reload, req.callable) {
        Ok(app) => {
            SCRIPT_LOADS.loaded.store(true, Ordering::Relaxed);
            app
        }
        Err(LoadError::Exception(exc)) => {
            let _ = SCRIPT_LOADS.first_failure.compare_exchange(0, now_micros(), Ordering::Relaxed, Ordering::Relaxed);
            backend.log(LOG_ERR, &format!("{}: Failed to exec Python script file '{script}'.", who(at)));
            log_exception(at, backend, &script, exc);
            return Pending::Done(Outcome::Failed(500));
        }
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
    match RequestCapsule::new(&state) {
        Ok(capsule) => {
            *state.capsule.borrow_mut() = Some(capsule.capsule.clone());
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
            let pending = state.call(at, req, &app, &capsule, &script);
            flush_pending(at.data());
            drop(current);
            drop(detach);
            pending
        }
        Err(PyErrSet) => {
            log_exception(at, state.backend(), &script, obj::take_error());
            Pending::Done(Outcome::Failed(500))
        }
    }
}

/// Logs the partial lines of the streams in boot.py's `_pending` set (the only Python call at
/// the end of a request, and only when some stream holds one).
fn flush_pending(data: &InterpData) {
    if unsafe { ffi::PySet_Size(data.pending_streams.as_ptr()) } > 0 && data.flush_pending.call0().is_err() {
        unsafe { ffi::PyErr_Clear() };
    }
}

/// The iterable's `close` method, if it has one: `getattr(iterable, 'close', None)` with one
/// lookup, any error (not only AttributeError) counting as absent, as `hasattr` had it. A plain
/// list or tuple (what most applications return) has none, and skipping the lookup saves making
/// and clearing an AttributeError.
fn close_method(iterable: &Obj, close: &Obj) -> Option<Obj> {
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

fn log_exception(at: &Attached, backend: &mut dyn Backend, script: &str, exc: Option<Obj>) {
    backend.log(LOG_ERR, &format!("{}: Exception occurred processing WSGI script '{script}'.", who(at)));
    let Some(exc) = exc else { return };
    let text = at.format_exception(&exc);
    for line in text.lines() {
        backend.log(LOG_ERR, line);
    }
    // pyo3-built extensions (cryptography, bcrypt, pydantic-core) refuse sub-interpreters. The
    // traceback includes chained exceptions (an ImportError wrapped by the application).
    if !at.interp.name.is_empty() && (text.contains("subinterpreter") || text.contains("sub-interpreter")) {
        backend.log(
            LOG_ERR,
            &format!(
                "{}: an extension module in this application does not support Python sub-interpreters; \
                 run the application in the main interpreter with 'WSGIApplicationGroup %{{GLOBAL}}' \
                 (or application-group=%{{GLOBAL}} on its WSGIScriptAlias).",
                who(at)
            ),
        );
    }
}

/// Runs `f` with the current thread state's GIL released.
pub fn without_gil<R>(f: impl FnOnce() -> R) -> R {
    let ts = unsafe { ffi::PyEval_SaveThread() };
    let r = f();
    unsafe { ffi::PyEval_RestoreThread(ts) };
    r
}

/// One request's response state, reached from Python through the request capsule.
pub struct RequestState {
    backend: *mut (dyn Backend + 'static),
    capsule: RefCell<Option<Obj>>,
    write_fn: RefCell<Option<Obj>>,
    status: RefCell<Option<(u16, String)>>,
    headers: RefCell<Vec<(Vec<u8>, Vec<u8>)>>,
    headers_sent: Cell<bool>,
    content_length: Cell<Option<u64>>,
    written: Cell<u64>,
    input_remaining: Cell<Option<u64>>,
    input_done: Cell<bool>,
    input_error: RefCell<Option<BodyError>>,
    client_gone: Cell<bool>,
}

enum Step {
    Continue,
    Stop,
}

impl RequestState {
    fn new(backend: &mut (dyn Backend + 'static), content_length: Option<u64>) -> RequestState {
        RequestState {
            backend,
            capsule: RefCell::new(None),
            write_fn: RefCell::new(None),
            status: RefCell::new(None),
            headers: RefCell::new(Vec::new()),
            headers_sent: Cell::new(false),
            content_length: Cell::new(None),
            written: Cell::new(0),
            input_remaining: Cell::new(content_length),
            input_done: Cell::new(content_length == Some(0)),
            input_error: RefCell::new(None),
            client_gone: Cell::new(false),
        }
    }

    /// The backend, for one call at a time: never held across a call into Python (which may
    /// call back into this request).
    #[allow(clippy::mut_from_ref)]
    fn backend(&self) -> &mut (dyn Backend + 'static) {
        // The backend outlives the request state: both live for the duration of `run`.
        unsafe { &mut *self.backend }
    }

    pub fn log(&self, level: u8, msg: &str) {
        self.backend().log(level, msg);
    }

    fn call(&self, at: &Attached, req: &Request, app: &Obj, capsule: &RequestCapsule, script: &str) -> Pending {
        let data = at.data();
        let environ = match build_environ(at, req, capsule) {
            Ok(e) => e,
            Err(_) => {
                log_exception(at, self.backend(), script, obj::take_error());
                return Pending::Done(Outcome::Failed(500));
            }
        };

        let start_response = match capsule.function(ptr::addr_of_mut!(START_RESPONSE_DEF)) {
            Ok(f) => f,
            Err(_) => return Pending::Done(Outcome::Failed(500)),
        };
        let mut failure: Option<Option<Obj>> = None;
        match app.call(&[&environ, &start_response]) {
            Err(_) => failure = Some(obj::take_error()),
            Ok(iterable) => {
                if let Err(PyErrSet) = self.consume(data.file_wrapper_cls.as_ptr(), &iterable) {
                    failure = Some(obj::take_error());
                }
                // close() exactly once, on every path.
                if let Some(close) = close_method(&iterable, &data.names.close) {
                    if let Err(PyErrSet) = close.call0() {
                        let exc = obj::take_error();
                        if failure.is_none() {
                            failure = Some(exc);
                        } else {
                            log_exception(at, self.backend(), script, exc);
                        }
                    }
                }
            }
        }
        // A partial line the application left in wsgi.errors (or in sys.stdout) is logged now,
        // before any traceback of this request.
        flush_pending(data);
        if let Some(exc) = failure {
            return Pending::Done(self.fail(at, script, exc));
        }
        if self.client_gone.get() {
            return Pending::Done(self.client_gone_outcome());
        }
        if self.status.borrow().is_none() {
            self.log(LOG_ERR, &format!("{}: start_response() was not called by WSGI script '{script}'.", who(at)));
            return Pending::Done(Outcome::Failed(500));
        }
        if !self.headers_sent.get() {
            if let Err(msg) = self.send_headers() {
                self.log(LOG_ERR, &msg);
                return Pending::Done(Outcome::Failed(500));
            }
        }
        // A HEAD answer, and a status that has no body (1xx, 204, 304), may declare the
        // Content-Length of the body it does not send.
        let bodiless = req.head || matches!(self.status.borrow().as_ref().map(|s| s.0), Some(100..=199 | 204 | 304));
        let short = self.content_length.get().filter(|&cl| self.written.get() < cl && !bodiless).map(|cl| {
            format!(
                "{}: WSGI script '{script}' declared Content-Length {cl} but sent {} bytes; closing the connection.",
                who(at),
                self.written.get()
            )
        });
        Pending::Finish { short }
    }

    fn client_gone_outcome(&self) -> Outcome {
        self.log(LOG_INFO, "oxwsgi: client closed the connection before the response was complete");
        self.backend().abort();
        Outcome::Aborted
    }

    fn fail(&self, at: &Attached, script: &str, exc: Option<Obj>) -> Outcome {
        if self.client_gone.get() {
            return self.client_gone_outcome();
        }
        if let (false, Some(err)) = (self.headers_sent.get(), self.input_error.borrow().clone()) {
            self.log(
                LOG_INFO,
                &format!("{}: request body could not be read ({}); answering {}", who(at), err.message, err.status),
            );
            return Outcome::Failed(err.status);
        }
        log_exception(at, self.backend(), script, exc);
        if self.headers_sent.get() {
            // What the application produced before failing still reaches the client (it may be
            // buffered, and dropping the connection would discard it); then the connection is
            // dropped without ending the response, so it cannot pass for a complete one.
            let backend = self.backend();
            let _ = without_gil(|| backend.flush());
            self.backend().abort();
            Outcome::Aborted
        } else {
            Outcome::Failed(500)
        }
    }

    /// Sends the body of `iterable`.
    fn consume(&self, file_wrapper_cls: *mut ffi::PyObject, iterable: &Obj) -> PyResult<()> {
        unsafe {
            if ffi::Py_TYPE(iterable.as_ptr()) as *mut ffi::PyObject == file_wrapper_cls
                && self.try_send_file(iterable)?
            {
                return Ok(());
            }
            let listlike =
                ffi::PyList_CheckExact(iterable.as_ptr()) != 0 || ffi::PyTuple_CheckExact(iterable.as_ptr()) != 0;
            let iter = Obj::owned(ffi::PyObject_GetIter(iterable.as_ptr()))?;
            loop {
                let item = ffi::PyIter_Next(iter.as_ptr());
                if item.is_null() {
                    return if ffi::PyErr_Occurred().is_null() { Ok(()) } else { Err(PyErrSet) };
                }
                let item = Obj::owned(item)?;
                let Some(bytes) = item.as_bytes() else {
                    raise(
                        ffi::PyExc_TypeError,
                        &format!("sequence of byte string values expected, value of type {} found", item.type_name()),
                    );
                    return Err(PyErrSet);
                };
                if bytes.is_empty() {
                    continue;
                }
                match self.write_body(bytes, !listlike)? {
                    Step::Continue => {}
                    Step::Stop => return Ok(()),
                }
            }
        }
    }

    /// wsgi.file_wrapper over a real file: hand the descriptor to the backend (sendfile).
    /// Ok(false) when the object is not a regular file; the caller then iterates it.
    fn try_send_file(&self, wrapper: &Obj) -> PyResult<bool> {
        let filelike = wrapper.getattr(c"filelike")?;
        let fd = match filelike.getattr(c"fileno").and_then(|f| f.call0()) {
            Ok(fd) => unsafe { ffi::PyLong_AsLong(fd.as_ptr()) },
            Err(_) => {
                unsafe { ffi::PyErr_Clear() };
                return Ok(false);
            }
        };
        if fd < 0 {
            unsafe { ffi::PyErr_Clear() };
            return Ok(false);
        }
        let fd = fd as RawFd;
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 || (st.st_mode & libc::S_IFMT) != libc::S_IFREG {
            return Ok(false);
        }
        // The logical position (a buffered reader may have read ahead of the descriptor).
        let pos = match filelike.getattr(c"tell").and_then(|f| f.call0()) {
            Ok(p) => unsafe { ffi::PyLong_AsLongLong(p.as_ptr()) },
            Err(_) => {
                unsafe { ffi::PyErr_Clear() };
                unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) }
            }
        };
        if pos < 0 {
            unsafe { ffi::PyErr_Clear() };
            return Ok(false);
        }
        self.require_started()?;
        let size = st.st_size as u64;
        let mut len = size.saturating_sub(pos as u64);
        if let Some(cl) = self.content_length.get() {
            len = len.min(cl.saturating_sub(self.written.get()));
        }
        if len == 0 {
            return Ok(true);
        }
        self.ensure_headers()?;
        let backend = self.backend();
        match without_gil(|| backend.send_file(fd, pos as u64, len)) {
            Ok(()) => self.written.set(self.written.get() + len),
            Err(_) => self.client_gone.set(true),
        }
        Ok(true)
    }

    fn require_started(&self) -> PyResult<()> {
        if self.status.borrow().is_none() {
            raise(unsafe { ffi::PyExc_AssertionError }, "response body produced before start_response() was called");
            return Err(PyErrSet);
        }
        Ok(())
    }

    fn ensure_headers(&self) -> PyResult<()> {
        if !self.headers_sent.get() {
            if let Err(msg) = self.send_headers() {
                raise(unsafe { ffi::PyExc_ValueError }, &msg);
                return Err(PyErrSet);
            }
        }
        Ok(())
    }

    fn send_headers(&self) -> Result<(), String> {
        let (code, line) = self.status.borrow().clone().ok_or("start_response() was not called")?;
        let headers = self.headers.take();
        self.headers_sent.set(true);
        self.backend().start(code, &line, &headers)
    }

    /// Body bytes from the iterable or write(): clipped to Content-Length, then buffered or
    /// flushed. Stop when the client is gone or the declared length is complete.
    fn write_body(&self, data: &[u8], flush: bool) -> PyResult<Step> {
        self.require_started()?;
        self.ensure_headers()?;
        let data = match self.content_length.get() {
            Some(cl) => &data[..data.len().min(cl.saturating_sub(self.written.get()) as usize)],
            None => data,
        };
        self.written.set(self.written.get() + data.len() as u64);
        let backend = self.backend();
        if data.len() >= DIRECT_WRITE {
            // A large block goes out straight from the Python object's memory (kept alive by
            // the caller), without the copy that buffering makes.
            if without_gil(|| backend.write_now(data)).is_err() {
                self.client_gone.set(true);
                return Ok(Step::Stop);
            }
        } else {
            backend.write(data);
        }
        if (flush || backend.buffered() >= FLUSH_THRESHOLD) && without_gil(|| backend.flush()).is_err() {
            self.client_gone.set(true);
            return Ok(Step::Stop);
        }
        if self.content_length.get().is_some_and(|cl| self.written.get() >= cl) {
            return Ok(Step::Stop);
        }
        Ok(Step::Continue)
    }

    /// The `write()` callable returned by start_response.
    pub fn write_callable(&self) -> PyResult<Obj> {
        if let Some(w) = self.write_fn.borrow().as_ref() {
            return Ok(w.clone());
        }
        let capsule = self.capsule.borrow().clone().ok_or(PyErrSet)?;
        let w = unsafe {
            Obj::owned(ffi::PyCFunction_NewEx(ptr::addr_of_mut!(WRITE_DEF), capsule.as_ptr(), ptr::null_mut()))?
        };
        *self.write_fn.borrow_mut() = Some(w.clone());
        Ok(w)
    }

    pub fn write_from_app(&self, data: &[u8]) -> PyResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.client_gone.get() {
            raise(unsafe { ffi::PyExc_OSError }, "client connection closed");
            return Err(PyErrSet);
        }
        self.write_body(data, true).map(|_| ())?;
        if self.client_gone.get() {
            raise(unsafe { ffi::PyExc_OSError }, "client connection closed");
            return Err(PyErrSet);
        }
        Ok(())
    }

    pub fn start_response(&self, status: &Obj, headers: &Obj, exc_info: Option<Obj>) -> PyResult<()> {
        let fail = |exc: *mut ffi::PyObject, msg: String| {
            raise(exc, &msg);
        };
        // (Each early return below leaves the exception set for the caller.)
        match (&exc_info, self.status.borrow().is_some()) {
            (Some(info), _) if self.headers_sent.get() => {
                // PEP 3333: re-raise when the headers have already gone out.
                unsafe {
                    if ffi::PyTuple_Check(info.as_ptr()) != 0 && ffi::PyTuple_Size(info.as_ptr()) == 3 {
                        let value = ffi::PyTuple_GetItem(info.as_ptr(), 1);
                        if !value.is_null() && value != ffi::Py_None() {
                            obj::restore_error(Obj::borrowed(value));
                            return Err(PyErrSet);
                        }
                    }
                }
                fail(
                    unsafe { ffi::PyExc_RuntimeError },
                    "start_response() called with exc_info after headers were sent".into(),
                );
                return Err(PyErrSet);
            }
            (None, true) => {
                fail(
                    unsafe { ffi::PyExc_RuntimeError },
                    "headers have already been set: start_response() called twice without exc_info".into(),
                );
                return Err(PyErrSet);
            }
            _ => {}
        }
        let Some(status_text) = status.as_str() else {
            fail(unsafe { ffi::PyExc_TypeError }, format!("status must be str, not {}", status.type_name()));
            return Err(PyErrSet);
        };
        let code = match parse_status(status_text) {
            Ok(code) => code,
            Err(msg) => {
                fail(unsafe { ffi::PyExc_ValueError }, msg);
                return Err(PyErrSet);
            }
        };
        if unsafe { ffi::PyList_Check(headers.as_ptr()) } == 0 {
            fail(
                unsafe { ffi::PyExc_TypeError },
                format!("response headers must be a list, not {}", headers.type_name()),
            );
            return Err(PyErrSet);
        }
        let n = unsafe { ffi::PyList_Size(headers.as_ptr()) };
        let mut parsed = Vec::with_capacity(n as usize);
        let mut content_length = None;
        for i in 0..n {
            let item = unsafe { Obj::borrowed(ffi::PyList_GetItem(headers.as_ptr(), i)) };
            let pair = unsafe {
                if ffi::PyTuple_Check(item.as_ptr()) == 0 || ffi::PyTuple_Size(item.as_ptr()) != 2 {
                    fail(
                        ffi::PyExc_TypeError,
                        format!("response header must be a (name, value) tuple, not {}", item.display()),
                    );
                    return Err(PyErrSet);
                }
                (
                    Obj::borrowed(ffi::PyTuple_GetItem(item.as_ptr(), 0)),
                    Obj::borrowed(ffi::PyTuple_GetItem(item.as_ptr(), 1)),
                )
            };
            let (Some(name), Some(value)) = (pair.0.as_str(), pair.1.as_str()) else {
                fail(
                    unsafe { ffi::PyExc_TypeError },
                    format!(
                        "response header name and value must be str, not {} and {}",
                        pair.0.type_name(),
                        pair.1.type_name()
                    ),
                );
                return Err(PyErrSet);
            };
            let (name, value) = match validate_header(name, value) {
                Ok(nv) => nv,
                Err(msg) => {
                    fail(unsafe { ffi::PyExc_ValueError }, msg);
                    return Err(PyErrSet);
                }
            };
            if name.eq_ignore_ascii_case(b"content-length") {
                match std::str::from_utf8(&value).ok().and_then(|v| v.trim().parse::<u64>().ok()) {
                    Some(v) => content_length = Some(v),
                    None => {
                        fail(
                            unsafe { ffi::PyExc_ValueError },
                            format!("invalid Content-Length value {:?}", String::from_utf8_lossy(&value)),
                        );
                        return Err(PyErrSet);
                    }
                }
            }
            parsed.push((name, value));
        }
        *self.status.borrow_mut() = Some((code, status_text.to_string()));
        *self.headers.borrow_mut() = parsed;
        self.content_length.set(content_length);
        Ok(())
    }

    /// Request body for wsgi.input, as a new `bytes`: `size` bytes at most (None: to the end).
    /// Never past the body. Fewer than `size` only at the end of the body, unless `partial`:
    /// then whatever the first read that returns data brings (a line reader must not wait for
    /// bytes after its line). Raises OSError on a body error.
    pub fn read_input(&self, size: Option<u64>, partial: bool) -> PyResult<Obj> {
        let failed = |message: &str| {
            obj::raise(unsafe { ffi::PyExc_OSError }, &format!("request body read error: {message}"));
            PyErrSet
        };
        if let Some(err) = self.input_error.borrow().as_ref() {
            return Err(failed(&err.message));
        }
        let mut want = size.unwrap_or(u64::MAX);
        if let Some(rem) = self.input_remaining.get() {
            want = want.min(rem);
        }
        if self.input_done.get() || want == 0 {
            return obj::bytes(b"");
        }
        // The body is read into the bytes object itself. Past READ_CHUNK it grows by doubling
        // as bytes arrive, so its size follows what the client sent, not what it announced.
        let mut buf = BytesBuf::new(want.min(READ_CHUNK) as usize)?;
        let mut len = 0;
        let backend = self.backend();
        let result = loop {
            let spare = buf.spare(len);
            let filled = without_gil(|| {
                let mut n = 0;
                while n < spare.len() {
                    match backend.read_body(&mut spare[n..]) {
                        Ok(0) => return (n, Ok(true)),
                        Ok(got) => n += got,
                        Err(e) => return (n, Err(e)),
                    }
                    if partial {
                        break;
                    }
                }
                (n, Ok(false))
            });
            len += filled.0;
            match filled.1 {
                Ok(false) if !partial && (len as u64) < want => {
                    let cap = (buf.capacity() as u64).saturating_mul(2).min(want);
                    buf.resize(cap as usize)?;
                }
                other => break other,
            }
        };
        if let Some(rem) = self.input_remaining.get() {
            self.input_remaining.set(Some(rem - len as u64));
        }
        match result {
            Ok(eof) => {
                if eof || self.input_remaining.get() == Some(0) {
                    self.input_done.set(true);
                }
                buf.finish(len)
            }
            Err(e) => {
                let err = failed(&e.message);
                *self.input_error.borrow_mut() = Some(e);
                Err(err)
            }
        }
    }
}

/// "NNN Reason": three digits, a space, a reason without control characters.
pub fn parse_status(s: &str) -> Result<u16, String> {
    let b = s.as_bytes();
    let ok = b.len() >= 5
        && b[..3].iter().all(u8::is_ascii_digit)
        && b[0] != b'0'
        && b[3] == b' '
        && s.chars().all(|c| (c as u32) <= 0xff && !c.is_control());
    if !ok {
        return Err(format!("invalid status {s:?}: want three digits, a space and a reason, e.g. '200 OK'"));
    }
    Ok(s[..3].parse().expect("digits"))
}

/// A header name must be an RFC 9110 token; a value latin-1 text with no control characters
/// (tab allowed). CR or LF anywhere is refused, so no header can be injected.
pub fn validate_header(name: &str, value: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!("invalid response header name {name:?}"));
    }
    let mut v = Vec::with_capacity(value.len());
    for c in value.chars() {
        let c = c as u32;
        if c > 0xff {
            return Err(format!("response header {name:?} has a value that is not latin-1: {value:?}"));
        }
        if (c < 0x20 && c != 0x09) || c == 0x7f {
            return Err(format!(
                "response header {name:?} has a control character (CR, LF or other) in its value {value:?}"
            ));
        }
        v.push(c as u8);
    }
    Ok((name.as_bytes().to_vec(), v))
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// The rules of [`validate_header`] for a header that arrives already encoded (from a daemon
/// process, whose applications could write to their socket directly).
pub fn header_bytes_ok(name: &[u8], value: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|&c| is_tchar(c))
        && value.iter().all(|&c| (c >= 0x20 && c != 0x7f) || c == b'\t')
}

/// The rules of [`parse_status`] for a reason phrase that arrives already encoded.
pub fn reason_bytes_ok(reason: &[u8]) -> bool {
    !reason.is_empty() && reason.iter().all(|&c| c >= 0x20 && c != 0x7f)
}

/// The environ's CGI key strings, made once per interpreter. Requests list their CGI variables
/// in much the same order (Apache's fixed ones, then the client's headers), so each position
/// first checks the key the previous request had there (a byte comparison, no hashing); the
/// map by name catches the rest. Clients choose header names, so both stay bounded.
#[derive(Default)]
pub struct EnvironKeys {
    by_name: super::interp::FastMap<Box<[u8]>, Obj>,
    last: Vec<(Box<[u8]>, Obj)>,
}

impl EnvironKeys {
    fn key(&mut self, position: usize, name: &[u8]) -> PyResult<Obj> {
        if let Some((last, key)) = self.last.get(position) {
            if **last == *name {
                return Ok(key.clone());
            }
        }
        let key = match self.by_name.get(name) {
            Some(key) => key.clone(),
            None => {
                let key = obj::latin1(name)?;
                if self.by_name.len() < ENVIRON_KEY_CACHE {
                    self.by_name.insert(name.into(), key.clone());
                }
                key
            }
        };
        if position < self.last.len() {
            self.last[position] = (name.into(), key.clone());
        } else if position == self.last.len() && position < ENVIRON_KEY_CACHE {
            self.last.push((name.into(), key.clone()));
        }
        Ok(key)
    }
}

fn build_environ(at: &Attached, req: &Request, capsule: &RequestCapsule) -> PyResult<Obj> {
    let data = at.data();
    let n = &data.names;
    let env = obj::dict()?;
    {
        let mut keys = data.environ_keys.borrow_mut();
        for (i, (k, v)) in req.cgi.iter().enumerate() {
            obj::dict_set(&env, &keys.key(i, k)?, &obj::latin1(v)?)?;
        }
    }
    let set = |k: &Obj, v: &Obj| obj::dict_set(&env, k, v);
    let flag = |b: bool| if b { &data.true_ } else { &data.false_ };
    set(&n.wsgi_version, &data.wsgi_version)?;
    set(&n.wsgi_url_scheme, if req.https { &n.https } else { &n.http })?;
    set(&n.wsgi_input, &data.input_cls.call1(&capsule.capsule)?)?;
    // LogStream's defaults are wsgi.errors' level (LOG_ERR) and name.
    set(&n.wsgi_errors, &data.log_cls.call1(&capsule.capsule)?)?;
    set(&n.wsgi_multithread, flag(req.multithread))?;
    set(&n.wsgi_multiprocess, flag(req.multiprocess))?;
    set(&n.wsgi_run_once, &data.false_)?;
    set(&n.wsgi_input_terminated, &data.true_)?;
    set(&n.wsgi_file_wrapper, &data.file_wrapper_cls)?;
    set(&n.mod_wsgi_version, &data.mod_wsgi_version)?;
    set(&n.apache_version, &data.apache_version)?;
    // mod_wsgi's per-thread and per-process request counters.
    let (thread_id, thread_requests) = THREAD_COUNTS.with(|c| {
        let (id, n) = c.get();
        let id = if id == 0 { NEXT_THREAD_ID.fetch_add(1, Ordering::Relaxed) } else { id };
        c.set((id, n + 1));
        (id, n + 1)
    });
    set(&n.thread_id, &obj::int(thread_id as i64)?)?;
    set(&n.thread_requests, &obj::int(thread_requests as i64)?)?;
    set(&n.total_requests, &obj::int(TOTAL_REQUESTS.fetch_add(1, Ordering::Relaxed) as i64 + 1)?)?;
    Ok(env)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert_eq!(parse_status("404 Not Found"), Ok(404));
        assert!(parse_status("200").is_err());
        assert!(parse_status("200 ").is_err());
        assert!(parse_status("20 OK").is_err());
        assert!(parse_status("200OK").is_err());
        assert!(parse_status("200 OK\r\nX: y").is_err());
        assert!(parse_status("abc OK").is_err());
    }

    #[test]
    fn header_validation() {
        assert!(validate_header("Set-Cookie", "a=1; Path=/").is_ok());
        assert_eq!(validate_header("X", "caf\u{e9}").unwrap().1, b"caf\xe9");
        assert!(validate_header("X", "a\r\nInjected: 1").is_err());
        assert!(validate_header("X", "a\nb").is_err());
        assert!(validate_header("X-A\r\nB", "v").is_err());
        assert!(validate_header("Bad Name", "v").is_err());
        assert!(validate_header("", "v").is_err());
        assert!(validate_header("X", "\u{20ac}").is_err());
        assert!(validate_header("X", "tab\tok").is_ok());
        assert!(header_bytes_ok(b"Set-Cookie", b"a=1"));
        assert!(!header_bytes_ok(b"X", b"a\r\nInjected: 1"));
        assert!(!header_bytes_ok(b"X Y", b"v"));
        assert!(reason_bytes_ok(b"OK"));
        assert!(!reason_bytes_ok(b"OK\r\nX: y"));
        assert!(!reason_bytes_ok(b""));
    }
}
