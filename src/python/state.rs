//! One request's state as the application changes it: where its response is ([`Response`]:
//! not started, started with a status and headers, sent with the body bytes written so far
//! (clipped to its Content-Length), or cut off by the client leaving) and where its body is
//! for wsgi.input ([`Input`]). Reached from Python through the request capsule (`native`); the
//! adapter (`wsgi`) creates it and reads the end state. The host's backend is lent to one call
//! at a time (`with_backend`).

use super::backend::{Backend, BodyError};
use super::interp::without_gil;
use super::obj::{self, raise, BytesBuf, Obj, Py, PyErrSet, PyResult};
use super::response_head::{self, Head};
use pyo3::ffi;
use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;

/// Output buffered before it is pushed to the client even when more is immediately available.
const FLUSH_THRESHOLD: usize = 256 * 1024;
/// Blocks at least this large are sent at once rather than copied into the output buffer.
const DIRECT_WRITE: usize = 64 * 1024;
/// Largest single read from the client when the application asks for everything.
const READ_CHUNK: u64 = 64 * 1024;

/// One request's state, reached from Python through the request capsule.
pub struct RequestState {
    /// The host's backend, lent to one call at a time (see [`RequestState::with_backend`]).
    backend: *mut (dyn Backend + 'static),
    backend_lent: Cell<bool>,
    pub(super) capsule: RefCell<Option<Obj>>,
    pub(super) write_fn: RefCell<Option<Obj>>,
    response: RefCell<Response>,
    input: RefCell<Input>,
    /// `mod_wsgi.request_data()`: made on first use.
    pub(super) data: RefCell<Option<Obj>>,
    /// Reads and writes, for the request_finished event.
    pub(super) io: super::request_stats::IoStats,
}

/// Where the response is.
#[derive(Debug, PartialEq, Eq)]
enum Response {
    /// start_response() has not been called.
    NotStarted,
    /// start_response() was called and its head has not gone out: a later call with exc_info
    /// may still replace it.
    Started { status: u16, line: String, headers: Vec<(Vec<u8>, Vec<u8>)>, content_length: Option<u64> },
    /// The head went out (or was handed to the backend, which may have refused it); `written`
    /// body bytes since, never more than `content_length`.
    Sent { status: u16, content_length: Option<u64>, written: u64 },
    /// The client went away while the body was being sent: nothing more is written.
    ClientGone { status: u16, written: u64 },
}

impl Response {
    fn status(&self) -> Option<u16> {
        match *self {
            Response::NotStarted => None,
            Response::Started { status, .. } | Response::Sent { status, .. } | Response::ClientGone { status, .. } => {
                Some(status)
            }
        }
    }

    fn content_length(&self) -> Option<u64> {
        match *self {
            Response::Started { content_length, .. } | Response::Sent { content_length, .. } => content_length,
            Response::NotStarted | Response::ClientGone { .. } => None,
        }
    }

    fn written(&self) -> u64 {
        match *self {
            Response::Sent { written, .. } | Response::ClientGone { written, .. } => written,
            Response::NotStarted | Response::Started { .. } => 0,
        }
    }

    /// Takes up to `len` body bytes (fewer when Content-Length has less room left) and counts
    /// them as written; None when nothing may be written (the client is gone, or the head has
    /// not gone out).
    fn take(&mut self, len: u64) -> Option<u64> {
        let Response::Sent { content_length, written, .. } = self else { return None };
        let n = content_length.map_or(len, |cl| len.min(cl.saturating_sub(*written)));
        *written += n;
        Some(n)
    }

    /// Whether the declared Content-Length has been written in full.
    fn complete(&self) -> bool {
        matches!(*self, Response::Sent { content_length: Some(cl), written, .. } if written >= cl)
    }

    fn client_gone(&mut self) {
        if let Response::Sent { status, written, .. } = *self {
            *self = Response::ClientGone { status, written };
        }
    }
}

/// Where the request body (wsgi.input) is.
#[derive(Debug)]
enum Input {
    /// This many bytes of a declared Content-Length are still to come (never 0: that is Done).
    Remaining(u64),
    /// A chunked body, read until the backend reports its end.
    Chunked,
    /// The body has been read to its end.
    Done,
    /// Reading it failed: every later read raises this error.
    Failed(BodyError),
}

impl Input {
    fn new(content_length: Option<u64>) -> Input {
        match content_length {
            Some(0) => Input::Done,
            Some(n) => Input::Remaining(n),
            None => Input::Chunked,
        }
    }

    /// The state after a read that brought `len` bytes and ended with `result` (true: the
    /// backend reported the end of the body).
    fn after_read(self, len: u64, result: Result<bool, BodyError>) -> Input {
        match (result, self) {
            (Err(e), _) => Input::Failed(e),
            (Ok(true), _) => Input::Done,
            (Ok(false), Input::Remaining(n)) if n <= len => Input::Done,
            (Ok(false), Input::Remaining(n)) => Input::Remaining(n - len),
            (Ok(false), other) => other,
        }
    }
}

pub(super) enum Step {
    Continue,
    Stop,
}

impl RequestState {
    /// The state of a request whose input comes from and response goes to `backend`, which
    /// the caller lends it for as long as the state lives and does not use meanwhile.
    pub(super) fn new(backend: &mut (dyn Backend + 'static), content_length: Option<u64>) -> RequestState {
        RequestState {
            backend,
            backend_lent: Cell::new(false),
            capsule: RefCell::new(None),
            write_fn: RefCell::new(None),
            response: RefCell::new(Response::NotStarted),
            input: RefCell::new(Input::new(content_length)),
            data: RefCell::new(None),
            io: Default::default(),
        }
    }

    /// Runs `f` with the backend. `f` must not call back into this request (it may release the
    /// GIL, which lets other threads run, but never another request's state this one's); a
    /// call that did would get a second `&mut` to the backend, so it panics instead (a native
    /// callback turns the panic into a SystemError).
    pub(super) fn with_backend<R>(&self, f: impl FnOnce(&mut dyn Backend) -> R) -> R {
        struct Lent<'a>(&'a Cell<bool>);
        impl Drop for Lent<'_> {
            fn drop(&mut self) {
                self.0.set(false);
            }
        }
        assert!(!self.backend_lent.replace(true), "oxwsgi: the request's backend is already in use");
        let _lent = Lent(&self.backend_lent);
        // Safe: the backend outlives the state (both live for the duration of `wsgi::run`, which
        // does not touch the backend while the state exists), and `backend_lent` makes this the
        // only reference to it.
        f(unsafe { &mut *self.backend })
    }

    /// The status code start_response() set, if it was called.
    pub(super) fn status(&self) -> Option<u16> {
        self.response.borrow().status()
    }

    /// Whether the response head has been handed to the backend.
    pub(super) fn headers_sent(&self) -> bool {
        matches!(*self.response.borrow(), Response::Sent { .. } | Response::ClientGone { .. })
    }

    /// The Content-Length the application declared (while the client is there).
    pub(super) fn content_length(&self) -> Option<u64> {
        self.response.borrow().content_length()
    }

    /// Body bytes written so far.
    pub(super) fn written(&self) -> u64 {
        self.response.borrow().written()
    }

    pub(super) fn client_gone(&self) -> bool {
        matches!(*self.response.borrow(), Response::ClientGone { .. })
    }

    /// Why the request body could not be read, if it could not.
    pub(super) fn input_error(&self) -> Option<BodyError> {
        match &*self.input.borrow() {
            Input::Failed(e) => Some(e.clone()),
            _ => None,
        }
    }

    pub fn log(&self, level: u8, msg: &str) {
        self.with_backend(|b| b.log(level, msg));
    }

    /// Sends the body of `iterable`.
    pub(super) fn consume(&self, py: Py<'_>, file_wrapper_cls: *mut ffi::PyObject, iterable: &Obj) -> PyResult<()> {
        unsafe {
            if ffi::Py_TYPE(iterable.as_ptr()) as *mut ffi::PyObject == file_wrapper_cls
                && self.try_send_file(py, iterable)?
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
                let Some(bytes) = item.as_bytes(py) else {
                    raise(
                        py,
                        ffi::PyExc_TypeError,
                        &format!("response iterable must yield bytes, not {}", item.type_name(py)),
                    );
                    return Err(PyErrSet);
                };
                if bytes.is_empty() {
                    continue;
                }
                match self.write_counted(py, bytes, !listlike)? {
                    Step::Continue => {}
                    Step::Stop => return Ok(()),
                }
            }
        }
    }

    /// wsgi.file_wrapper over a real file: hand the descriptor to the backend (sendfile).
    /// Ok(false) when the object is not a regular file; the caller then iterates it.
    pub(super) fn try_send_file(&self, py: Py<'_>, wrapper: &Obj) -> PyResult<bool> {
        let filelike = wrapper.getattr(py, c"filelike")?;
        let fd = match filelike.getattr(py, c"fileno").and_then(|f| f.call0(py)) {
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
        let pos = match filelike.getattr(py, c"tell").and_then(|f| f.call0(py)) {
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
        self.require_started(py)?;
        let size = st.st_size as u64;
        let mut len = size.saturating_sub(pos as u64);
        if let Some(cl) = self.content_length() {
            len = len.min(cl.saturating_sub(self.written()));
        }
        if len == 0 {
            return Ok(true);
        }
        self.ensure_headers(py)?;
        let Some(len) = self.response.borrow_mut().take(len) else { return Ok(true) };
        // Safe: sendfile is the backend's I/O, no Python.
        if self.with_backend(|b| unsafe { without_gil(py, || b.send_file(fd, pos as u64, len)) }).is_err() {
            self.response.borrow_mut().client_gone();
        }
        Ok(true)
    }

    pub(super) fn require_started(&self, py: Py<'_>) -> PyResult<()> {
        if *self.response.borrow() == Response::NotStarted {
            raise(
                py,
                unsafe { ffi::PyExc_RuntimeError },
                "start_response() must be called before response content is produced",
            );
            return Err(PyErrSet);
        }
        Ok(())
    }

    pub(super) fn ensure_headers(&self, py: Py<'_>) -> PyResult<()> {
        if let Err(msg) = self.send_headers() {
            raise(py, unsafe { ffi::PyExc_ValueError }, &msg);
            return Err(PyErrSet);
        }
        Ok(())
    }

    /// Hands the response head to the backend, unless it already has it. The head counts as
    /// sent even when the backend refuses it (there is no taking it back).
    pub(super) fn send_headers(&self) -> Result<(), String> {
        let (status, line, headers) = {
            let mut response = self.response.borrow_mut();
            match &mut *response {
                Response::NotStarted => return Err("start_response() was not called".into()),
                Response::Sent { .. } | Response::ClientGone { .. } => return Ok(()),
                Response::Started { status, line, headers, content_length } => {
                    let head = (*status, std::mem::take(line), std::mem::take(headers));
                    *response = Response::Sent { status: head.0, content_length: *content_length, written: 0 };
                    head
                }
            }
        };
        self.with_backend(|b| b.start(status, &line, &headers))
    }

    /// Body bytes from the iterable or write(): clipped to Content-Length, then buffered or
    /// flushed. Stop when the client is gone or the declared length is complete.
    pub(super) fn write_body(&self, py: Py<'_>, data: &[u8], flush: bool) -> PyResult<Step> {
        self.require_started(py)?;
        self.ensure_headers(py)?;
        let Some(len) = self.response.borrow_mut().take(data.len() as u64) else { return Ok(Step::Stop) };
        let data = &data[..len as usize];
        let sent = self.with_backend(|backend| {
            if data.len() >= DIRECT_WRITE {
                // A large block goes out straight from the Python object's memory (kept alive
                // by the caller), without the copy that buffering makes.
                // Safe: the backend's I/O on bytes already copied out of Python, no Python.
                unsafe { without_gil(py, || backend.write_now(data)) }?;
            } else {
                backend.write(data);
            }
            if flush || backend.buffered() >= FLUSH_THRESHOLD {
                // Safe: as above.
                unsafe { without_gil(py, || backend.flush()) }?;
            }
            Ok::<(), std::io::Error>(())
        });
        let mut response = self.response.borrow_mut();
        if sent.is_err() {
            response.client_gone();
            return Ok(Step::Stop);
        }
        Ok(if response.complete() { Step::Stop } else { Step::Continue })
    }

    /// One write of the response body (`write_body`), counted for request_finished.
    pub(super) fn write_counted(&self, py: Py<'_>, data: &[u8], flush: bool) -> PyResult<Step> {
        self.io.write(|| self.write_body(py, data, flush))
    }

    pub fn write_from_app(&self, py: Py<'_>, data: &[u8]) -> PyResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.client_gone() {
            raise(py, unsafe { ffi::PyExc_OSError }, "client connection closed");
            return Err(PyErrSet);
        }
        self.write_counted(py, data, true).map(|_| ())?;
        if self.client_gone() {
            raise(py, unsafe { ffi::PyExc_OSError }, "client connection closed");
            return Err(PyErrSet);
        }
        Ok(())
    }

    pub fn start_response(&self, py: Py<'_>, status: &Obj, headers: &Obj, exc_info: Option<Obj>) -> PyResult<()> {
        // mod_wsgi 6's Adapter_start_response, its checks in its order and with its messages.
        let fail = |exc: *mut ffi::PyObject, msg: &str| {
            raise(py, exc, msg);
            Err(PyErrSet)
        };
        if unsafe { ffi::PyList_Check(headers.as_ptr()) } == 0 {
            let msg = format!("start_response() argument 2 must be list, not {}", headers.type_name(py));
            return fail(unsafe { ffi::PyExc_TypeError }, &msg);
        }
        if exc_info.as_ref().is_some_and(|info| unsafe { ffi::PyTuple_Check(info.as_ptr()) } == 0) {
            let msg = "start_response() argument 'exc_info' must be a 3-tuple or None";
            return fail(unsafe { ffi::PyExc_RuntimeError }, msg);
        }
        if self.headers_sent() {
            let Some(info) = exc_info else {
                let msg = "start_response() called more than once without exc_info";
                return fail(unsafe { ffi::PyExc_RuntimeError }, msg);
            };
            // PEP 3333: the headers have gone out, so the application's exception is re-raised.
            unsafe {
                if ffi::PyTuple_Size(info.as_ptr()) != 3 {
                    let msg = "start_response() argument 'exc_info' must be a 3-tuple or None";
                    return fail(ffi::PyExc_TypeError, msg);
                }
                let value = ffi::PyTuple_GetItem(info.as_ptr(), 1);
                if !value.is_null() && value != ffi::Py_None() {
                    obj::restore_error(py, Obj::borrowed(value));
                    return Err(PyErrSet);
                }
            }
            return fail(
                unsafe { ffi::PyExc_RuntimeError },
                "start_response() called with exc_info after headers were sent",
            );
        }
        // Before any output a later call replaces the head, with exc_info or without (mod_wsgi
        // is more tolerant here than PEP 3333).
        let Head { status, line, headers, content_length } = response_head::convert(py, status, headers)?;
        *self.response.borrow_mut() = Response::Started { status, line, headers, content_length };
        Ok(())
    }

    /// Request body for wsgi.input, as a new `bytes`: `size` bytes at most (None: to the end).
    /// Never past the body. Fewer than `size` only at the end of the body, unless `partial`:
    /// then whatever the first read that returns data brings (a line reader must not wait for
    /// bytes after its line). Raises OSError on a body error.
    pub fn read_input(&self, py: Py<'_>, size: Option<u64>, partial: bool) -> PyResult<Obj> {
        let failed = |message: &str| {
            obj::raise(py, unsafe { ffi::PyExc_OSError }, &format!("request body read error: {message}"));
            PyErrSet
        };
        let want = match &*self.input.borrow() {
            Input::Failed(err) => return Err(failed(&err.message)),
            Input::Done => return obj::bytes(py, b""),
            Input::Remaining(rem) => size.unwrap_or(u64::MAX).min(*rem),
            Input::Chunked => size.unwrap_or(u64::MAX),
        };
        if want == 0 {
            return obj::bytes(py, b"");
        }
        // The body is read into the bytes object itself. Past READ_CHUNK it grows by doubling
        // as bytes arrive, so its size follows what the client sent, not what it announced.
        let mut buf = BytesBuf::new(py, want.min(READ_CHUNK) as usize)?;
        let mut len = 0;
        let result = self.with_backend(|backend| loop {
            // A body collected in memory is copied with the GIL held: letting it go for a copy
            // would hand it to another thread and wait to have it back.
            let in_memory = backend.body_in_memory(want - len as u64);
            let spare = buf.spare(py, len);
            let mut fill = || {
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
            };
            // Safe: fill reads the client's body into memory the bytes object owns, which
            // nothing else touches until it is finished; no Python.
            let filled = if in_memory { fill() } else { unsafe { without_gil(py, fill) } };
            len += filled.0;
            match filled.1 {
                Ok(false) if !partial && (len as u64) < want => {
                    let cap = (buf.capacity() as u64).saturating_mul(2).min(want);
                    buf.resize(py, cap as usize)?;
                }
                other => break Ok(other),
            }
        })?;
        let raised = result.as_ref().err().map(|e| failed(&e.message));
        {
            let mut input = self.input.borrow_mut();
            let before = std::mem::replace(&mut *input, Input::Done);
            *input = before.after_read(len as u64, result);
        }
        match raised {
            Some(err) => Err(err),
            None => buf.finish(py, len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(content_length: Option<u64>) -> Response {
        Response::Sent { status: 200, content_length, written: 0 }
    }

    #[test]
    fn the_body_is_clipped_to_content_length_and_counted() {
        let mut r = sent(Some(10));
        assert_eq!(r.take(4), Some(4));
        assert!(!r.complete());
        assert_eq!(r.take(100), Some(6));
        assert!(r.complete());
        assert_eq!(r.take(5), Some(0));
        assert_eq!(r.written(), 10);
        let mut open = sent(None);
        assert_eq!(open.take(1 << 20), Some(1 << 20));
        assert!(!open.complete());
    }

    #[test]
    fn nothing_is_written_before_the_head_or_after_the_client_left() {
        let started =
            Response::Started { status: 200, line: "200 OK".into(), headers: vec![], content_length: Some(3) };
        for mut r in [Response::NotStarted, started] {
            assert_eq!(r.take(3), None);
            assert_eq!(r.written(), 0);
        }
        let mut r = sent(Some(10));
        r.take(4);
        r.client_gone();
        assert_eq!(r, Response::ClientGone { status: 200, written: 4 });
        assert_eq!((r.take(1), r.status(), r.content_length(), r.written()), (None, Some(200), None, 4));
        // Only a response whose head went out can lose its client.
        let mut r = Response::NotStarted;
        r.client_gone();
        assert_eq!(r, Response::NotStarted);
    }

    #[test]
    fn input_ends_at_its_length_at_eof_or_at_an_error() {
        assert!(matches!(Input::new(Some(0)), Input::Done));
        assert!(matches!(Input::new(None), Input::Chunked));
        assert!(matches!(Input::new(Some(10)).after_read(4, Ok(false)), Input::Remaining(6)));
        assert!(matches!(Input::new(Some(10)).after_read(10, Ok(false)), Input::Done));
        assert!(matches!(Input::new(Some(10)).after_read(3, Ok(true)), Input::Done));
        assert!(matches!(Input::new(None).after_read(3, Ok(false)), Input::Chunked));
        assert!(matches!(Input::new(None).after_read(0, Ok(true)), Input::Done));
        let err = BodyError { status: 400, message: "bad chunk".into() };
        assert!(matches!(Input::new(Some(10)).after_read(2, Err(err)), Input::Failed(e) if e.status == 400));
    }
}
