//! Native functions Python calls: `log` and `read` of the module `_oxwsgi_native` (used by the
//! `_oxwsgi` package's log streams and wsgi.input), and the per-request `start_response` and
//! `write` callables.
//!
//! Per-interpreter safety: no static type objects. Functions are `PyCFunction`s made from static
//! method tables (plain C data, as CPython's own builtins are) in each interpreter; per-request
//! state reaches them through a capsule whose pointer is cleared when the request ends, so a
//! callable kept by an application after its request raises instead of touching freed memory.

use super::backend::server_log;
use super::obj::{self, raise, Obj, Py, PyResult};
use super::state::RequestState;
use pyo3::ffi;
use std::cell::Cell;
use std::ptr;

const CAPSULE_NAME: &std::ffi::CStr = c"oxwsgi.request";

/// The capsule's payload: the live request, or null once it has ended.
pub struct Slot {
    state: Cell<*const RequestState>,
    thread: libc::pthread_t,
}

/// A capsule naming one request. `close()` it when the request ends.
pub struct RequestCapsule {
    pub capsule: Obj,
    slot: *const Slot,
}

impl RequestCapsule {
    pub fn new(_py: Py<'_>, state: *const RequestState) -> PyResult<RequestCapsule> {
        let slot = Box::into_raw(Box::new(Slot { state: Cell::new(state), thread: unsafe { libc::pthread_self() } }));
        let capsule = unsafe { Obj::owned(ffi::PyCapsule_New(slot.cast(), CAPSULE_NAME.as_ptr(), Some(free_slot))) };
        match capsule {
            Ok(capsule) => Ok(RequestCapsule { capsule, slot }),
            Err(e) => {
                drop(unsafe { Box::from_raw(slot) });
                Err(e)
            }
        }
    }

    /// Detaches the request: later calls through this capsule raise.
    pub fn close(&self) {
        unsafe { (*self.slot).state.set(ptr::null()) };
    }

    /// A `PyCFunction` bound to this request.
    pub fn function(&self, _py: Py<'_>, def: *mut ffi::PyMethodDef) -> PyResult<Obj> {
        unsafe { Obj::owned(ffi::PyCFunction_NewEx(def, self.capsule.as_ptr(), ptr::null_mut())) }
    }
}

unsafe extern "C" fn free_slot(capsule: *mut ffi::PyObject) {
    let p = ffi::PyCapsule_GetPointer(capsule, CAPSULE_NAME.as_ptr());
    if !p.is_null() {
        drop(Box::from_raw(p as *mut Slot));
    } else {
        ffi::PyErr_Clear();
    }
}

thread_local! {
    /// The request this thread is running (null between requests).
    static CURRENT: Cell<*const RequestState> = const { Cell::new(ptr::null()) };
}

/// Marks `state` as this thread's current request until the guard is dropped.
pub struct CurrentRequest(*const RequestState);

impl CurrentRequest {
    pub fn enter(state: &RequestState) -> CurrentRequest {
        CurrentRequest(CURRENT.with(|c| c.replace(state)))
    }
}

impl Drop for CurrentRequest {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// The live request behind a capsule, if it is still running and this is its thread.
unsafe fn request<'a>(capsule: *mut ffi::PyObject) -> Option<&'a RequestState> {
    if capsule.is_null() || ffi::PyCapsule_IsValid(capsule, CAPSULE_NAME.as_ptr()) == 0 {
        return None;
    }
    let slot = &*(ffi::PyCapsule_GetPointer(capsule, CAPSULE_NAME.as_ptr()) as *const Slot);
    let state = slot.state.get();
    if state.is_null() || libc::pthread_equal(slot.thread, libc::pthread_self()) == 0 {
        return None;
    }
    Some(&*state)
}

macro_rules! method {
    ($name:literal, $f:ident, $doc:literal) => {
        ffi::PyMethodDef {
            ml_name: $name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer { PyCFunctionFast: $f },
            ml_flags: ffi::METH_FASTCALL,
            ml_doc: $doc.as_ptr(),
        }
    };
}

static mut LOG_DEF: ffi::PyMethodDef =
    method!(c"log", native_log, c"log(ctx, level, text): one line to Apache's error log");
static mut READ_DEF: ffi::PyMethodDef = method!(
    c"read",
    native_read,
    c"read(ctx, size, partial=False): request body bytes; `size` of them (fewer only at the end of \
the body), or with `partial` as soon as at least one byte is available"
);
pub static mut START_RESPONSE_DEF: ffi::PyMethodDef =
    method!(c"start_response", native_start_response, c"start_response(status, response_headers, exc_info=None)");
pub static mut WRITE_DEF: ffi::PyMethodDef = method!(c"write", native_write, c"write(data): send bytes to the client");

/// Puts `log` and `read` into `_oxwsgi_native`'s dictionary.
pub fn install(py: Py<'_>, native: &Obj) -> PyResult<()> {
    unsafe {
        let log = Obj::owned(ffi::PyCFunction_NewEx(ptr::addr_of_mut!(LOG_DEF), ptr::null_mut(), ptr::null_mut()))?;
        let read = Obj::owned(ffi::PyCFunction_NewEx(ptr::addr_of_mut!(READ_DEF), ptr::null_mut(), ptr::null_mut()))?;
        obj::dict_set_str(py, native, c"log", &log)?;
        obj::dict_set_str(py, native, c"read", &read)?;
    }
    Ok(())
}

/// The request this thread is running, if any.
pub(super) fn current_request<'a>() -> Option<&'a RequestState> {
    // Safe: CURRENT is set only for the duration of the request (see CurrentRequest).
    unsafe { CURRENT.with(Cell::get).as_ref() }
}

/// The body of a native function: `f` gets the GIL token, and a panic must not unwind into the
/// interpreter: it becomes a SystemError instead.
///
/// # Safety
/// Call it only from a function CPython calls with the GIL held (a native function's entry).
pub(super) unsafe fn py_guard(f: impl FnOnce(Py<'_>) -> *mut ffi::PyObject) -> *mut ffi::PyObject {
    // SAFETY: CPython holds the GIL while it runs a native function (this function's contract).
    let py = Py::assume();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(py)))
        .unwrap_or_else(|_| raise(py, ffi::PyExc_SystemError, "oxwsgi: internal error (see the error log)"))
}

unsafe fn args<'a>(args: *mut *mut ffi::PyObject, n: ffi::Py_ssize_t) -> &'a [*mut ffi::PyObject] {
    if n <= 0 {
        &[]
    } else {
        std::slice::from_raw_parts(args, n as usize)
    }
}

fn wrong_args(py: Py<'_>, name: &str, want: &str) -> *mut ffi::PyObject {
    raise(py, unsafe { ffi::PyExc_TypeError }, &format!("{name}() takes {want}"))
}

unsafe extern "C" fn native_log(
    _slf: *mut ffi::PyObject,
    argv: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    py_guard(|py| {
        let a = args(argv, n);
        if a.len() != 3 {
            return wrong_args(py, "log", "3 arguments");
        }
        let level = ffi::PyLong_AsLong(a[1]);
        if level == -1 && !ffi::PyErr_Occurred().is_null() {
            return ptr::null_mut();
        }
        let text = Obj::borrowed(a[2]);
        let Some(msg) = text.as_str(py).map(str::to_string).or_else(|| Some(text.display(py))) else {
            return ptr::null_mut();
        };
        let level = level.clamp(0, 7) as u8;
        // sys.stdout/sys.stderr pass no request: a line written while this thread runs a
        // request is still attributed to it (the error log names the client), as in mod_wsgi.
        let current = CURRENT.with(Cell::get);
        match request(a[0]).or(current.as_ref()) {
            Some(req) => req.log(level, &msg),
            None => server_log(level, &msg),
        }
        obj::none(py).into_ptr()
    })
}

unsafe extern "C" fn native_read(
    _slf: *mut ffi::PyObject,
    argv: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    py_guard(|py| {
        let a = args(argv, n);
        if a.len() != 2 && a.len() != 3 {
            return wrong_args(py, "read", "2 or 3 arguments (ctx, size, partial=False)");
        }
        let size = ffi::PyLong_AsLongLong(a[1]);
        if size == -1 && !ffi::PyErr_Occurred().is_null() {
            return ptr::null_mut();
        }
        let partial = match a.get(2) {
            None => false,
            Some(&p) => match ffi::PyObject_IsTrue(p) {
                -1 => return ptr::null_mut(),
                v => v == 1,
            },
        };
        let Some(req) = request(a[0]) else {
            return raise(py, ffi::PyExc_OSError, "wsgi.input used outside its request");
        };
        let size = if size < 0 { None } else { Some(size as u64) };
        let len = |r: &PyResult<Obj>| r.as_ref().map_or(0, |b| unsafe { ffi::PyBytes_Size(b.as_ptr()) }.max(0) as u64);
        req.io.read(|| req.read_input(py, size, partial), len).map(Obj::into_ptr).unwrap_or(ptr::null_mut())
    })
}

unsafe extern "C" fn native_start_response(
    slf: *mut ffi::PyObject,
    argv: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    py_guard(|py| {
        let a = args(argv, n);
        if a.len() != 2 && a.len() != 3 {
            return wrong_args(py, "start_response", "2 or 3 arguments (status, response_headers, exc_info=None)");
        }
        let Some(req) = request(slf) else {
            return raise(py, ffi::PyExc_RuntimeError, "start_response() called outside its request");
        };
        let exc_info = a.get(2).copied().filter(|p| *p != ffi::Py_None());
        match req.start_response(py, &Obj::borrowed(a[0]), &Obj::borrowed(a[1]), exc_info.map(|p| Obj::borrowed(p))) {
            Ok(()) => write_callable(py, req).map(Obj::into_ptr).unwrap_or(ptr::null_mut()),
            Err(_) => ptr::null_mut(),
        }
    })
}

unsafe extern "C" fn native_write(
    slf: *mut ffi::PyObject,
    argv: *mut *mut ffi::PyObject,
    n: ffi::Py_ssize_t,
) -> *mut ffi::PyObject {
    py_guard(|py| {
        let a = args(argv, n);
        if a.len() != 1 {
            return wrong_args(py, "write", "exactly one argument");
        }
        let Some(req) = request(slf) else {
            return raise(py, ffi::PyExc_RuntimeError, "write() called outside its request");
        };
        let data = Obj::borrowed(a[0]);
        let Some(bytes) = data.as_bytes(py) else {
            let msg = format!("write() argument must be bytes, not {}", data.type_name(py));
            return raise(py, ffi::PyExc_TypeError, &msg);
        };
        match req.write_from_app(py, bytes) {
            Ok(()) => obj::none(py).into_ptr(),
            Err(_) => ptr::null_mut(),
        }
    })
}

/// The `write()` callable returned by start_response.
fn write_callable(py: Py<'_>, state: &RequestState) -> PyResult<Obj> {
    if let Some(w) = state.write_fn.borrow().as_ref() {
        return Ok(w.clone_ref(py));
    }
    let capsule = state.capsule.borrow().as_ref().map(|c| c.clone_ref(py)).ok_or(obj::PyErrSet)?;
    let w =
        unsafe { Obj::owned(ffi::PyCFunction_NewEx(ptr::addr_of_mut!(WRITE_DEF), capsule.as_ptr(), ptr::null_mut()))? };
    *state.write_fn.borrow_mut() = Some(w.clone_ref(py));
    Ok(w)
}
