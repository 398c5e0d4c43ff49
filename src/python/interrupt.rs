//! interrupt-timeout (mod_wsgi 6): a request past its daemon group's request-timeout is
//! interrupted by raising `mod_wsgi.RequestTimeout` in its thread, which the adapter answers
//! with 504 while the process goes on serving.

use super::{interp, obj};
use pyo3::ffi;

/// Schedules `mod_wsgi.RequestTimeout` in the thread `ident` (its `threading.get_ident()`)
/// running in interpreter `application_group`, if `still_running()` says (with the GIL held)
/// that the request is still the one to interrupt. Takes that interpreter's GIL, so call it
/// where waiting is harmless. It fires when the thread next runs Python code. When it was
/// raised: the thread's Python stack just before (mod_wsgi 6 logs it), one line per call.
pub fn interrupt(
    application_group: &str,
    ident: u64,
    still_running: impl FnOnce(&dyn Fn() -> bool) -> bool,
) -> Option<String> {
    let interp = interp::interpreter(application_group).ok()?;
    interp.attach_once(|at| {
        // Safe: a new reference or NULL with an exception set, which owned() turns into Err.
        let id = unsafe { obj::Obj::owned(ffi::PyLong_FromUnsignedLongLong(ident)) };
        let py = at.py();
        let stack = match id.and_then(|id| {
            if !super::own_gil::current_frames_is_safe() {
                return obj::text(py, super::own_gil::NO_STACKS);
            }
            at.data().thread_stack.call1(py, &id)
        }) {
            Ok(text) => text.as_str(py).unwrap_or("").to_string(),
            Err(_) => {
                unsafe { ffi::PyErr_Clear() };
                String::new()
            }
        };
        let cls = at.data().request_timeout.as_ptr();
        still_running(&|| unsafe { ffi::PyThreadState_SetAsyncExc(ident as std::os::raw::c_long, cls) == 1 })
            .then_some(stack)
    })
}

/// On the thread of a request that was interrupted, once it has ended: a `RequestTimeout`
/// that has not fired (the request was blocked outside Python to its end) fires now, into a
/// call of nothing, and is dropped, so that it cannot hit the thread's next request.
/// (Clearing it with SetAsyncExc(NULL) would leave the interpreter's eval-breaker set.)
pub fn drain(application_group: &str) {
    let Ok(interp) = interp::interpreter(application_group) else { return };
    let at = interp.attach();
    let noop = at.data().request_timeout_drain.as_ptr();
    unsafe {
        let r = ffi::PyObject_CallNoArgs(noop);
        if r.is_null() {
            ffi::PyErr_Clear();
        } else {
            ffi::Py_DECREF(r);
        }
    }
}

/// Whether the pending exception `exc` is a `mod_wsgi.RequestTimeout`.
pub fn is_request_timeout(at: &interp::Attached, exc: &super::obj::Obj) -> bool {
    unsafe { ffi::PyObject_IsInstance(exc.as_ptr(), at.data().request_timeout.as_ptr()) == 1 }
}
