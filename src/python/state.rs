//! One request's state as the application changes it: the status and headers it set, the body
//! written so far (clipped to its Content-Length, buffered or flushed), the request body read
//! for wsgi.input, and whether the client is gone. Reached from Python through the request
//! capsule (`native`); the adapter (`wsgi`) creates it and reads the end state.

use super::backend::{Backend, BodyError};
use super::headers::{parse_status, validate_header};
use super::interp::without_gil;
use super::obj::{self, raise, BytesBuf, Obj, PyErrSet, PyResult};
use pyo3::ffi;
use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;

/// Output buffered before it is pushed to the client even when more is immediately available.
const FLUSH_THRESHOLD: usize = 256 * 1024;
/// Blocks at least this large are sent at once rather than copied into the output buffer.
const DIRECT_WRITE: usize = 64 * 1024;
/// Largest single read from the client when the application asks for everything.
const READ_CHUNK: u64 = 64 * 1024;

/// One request's response state, reached from Python through the request capsule.
pub struct RequestState {
    pub(super) backend: *mut (dyn Backend + 'static),
    pub(super) capsule: RefCell<Option<Obj>>,
    pub(super) write_fn: RefCell<Option<Obj>>,
    pub(super) status: RefCell<Option<(u16, String)>>,
    pub(super) headers: RefCell<Vec<(Vec<u8>, Vec<u8>)>>,
    pub(super) headers_sent: Cell<bool>,
    pub(super) content_length: Cell<Option<u64>>,
    pub(super) written: Cell<u64>,
    pub(super) input_remaining: Cell<Option<u64>>,
    pub(super) input_done: Cell<bool>,
    pub(super) input_error: RefCell<Option<BodyError>>,
    pub(super) client_gone: Cell<bool>,
    /// `mod_wsgi.request_data()`: made on first use.
    pub(super) data: RefCell<Option<Obj>>,
    /// Reads and writes, for the request_finished event.
    pub(super) io: super::request_stats::IoStats,
}

pub(super) enum Step {
    Continue,
    Stop,
}

impl RequestState {
    pub(super) fn new(backend: &mut (dyn Backend + 'static), content_length: Option<u64>) -> RequestState {
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
            data: RefCell::new(None),
            io: Default::default(),
        }
    }

    /// The backend, for one call at a time: never held across a call into Python (which may
    /// call back into this request).
    #[allow(clippy::mut_from_ref)]
    pub(super) fn backend(&self) -> &mut (dyn Backend + 'static) {
        // The backend outlives the request state: both live for the duration of `run`.
        unsafe { &mut *self.backend }
    }

    pub fn log(&self, level: u8, msg: &str) {
        self.backend().log(level, msg);
    }

    /// Sends the body of `iterable`.
    pub(super) fn consume(&self, file_wrapper_cls: *mut ffi::PyObject, iterable: &Obj) -> PyResult<()> {
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
                match self.write_counted(bytes, !listlike)? {
                    Step::Continue => {}
                    Step::Stop => return Ok(()),
                }
            }
        }
    }

    /// wsgi.file_wrapper over a real file: hand the descriptor to the backend (sendfile).
    /// Ok(false) when the object is not a regular file; the caller then iterates it.
    pub(super) fn try_send_file(&self, wrapper: &Obj) -> PyResult<bool> {
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

    pub(super) fn require_started(&self) -> PyResult<()> {
        if self.status.borrow().is_none() {
            raise(unsafe { ffi::PyExc_AssertionError }, "response body produced before start_response() was called");
            return Err(PyErrSet);
        }
        Ok(())
    }

    pub(super) fn ensure_headers(&self) -> PyResult<()> {
        if !self.headers_sent.get() {
            if let Err(msg) = self.send_headers() {
                raise(unsafe { ffi::PyExc_ValueError }, &msg);
                return Err(PyErrSet);
            }
        }
        Ok(())
    }

    pub(super) fn send_headers(&self) -> Result<(), String> {
        let (code, line) = self.status.borrow().clone().ok_or("start_response() was not called")?;
        let headers = self.headers.take();
        self.headers_sent.set(true);
        self.backend().start(code, &line, &headers)
    }

    /// Body bytes from the iterable or write(): clipped to Content-Length, then buffered or
    /// flushed. Stop when the client is gone or the declared length is complete.
    pub(super) fn write_body(&self, data: &[u8], flush: bool) -> PyResult<Step> {
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

    /// One write of the response body (`write_body`), counted for request_finished.
    pub(super) fn write_counted(&self, data: &[u8], flush: bool) -> PyResult<Step> {
        self.io.write(|| self.write_body(data, flush))
    }

    pub fn write_from_app(&self, data: &[u8]) -> PyResult<()> {
        if data.is_empty() {
            return Ok(());
        }
        if self.client_gone.get() {
            raise(unsafe { ffi::PyExc_OSError }, "client connection closed");
            return Err(PyErrSet);
        }
        self.write_counted(data, true).map(|_| ())?;
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
