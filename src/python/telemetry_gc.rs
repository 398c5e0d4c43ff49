//! The native end of the `_oxwsgi` package's `gc.callbacks` hook (`gc_telemetry.py`), installed
//! where WSGITelemetryService is set: `_oxwsgi_native.telemetry_gc(interpreter, values)` queues
//! one collection pass for the reporter.

use super::native::py_guard;
use super::obj::{self, raise, Obj, Py, PyResult};
use pyo3::ffi;
use std::ptr;

static mut GC_DEF: ffi::PyMethodDef = ffi::PyMethodDef {
    ml_name: c"telemetry_gc".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer { PyCFunction: native_telemetry_gc },
    ml_flags: ffi::METH_VARARGS,
    ml_doc: c"telemetry_gc(interpreter, (start, duration, generation, collected, uncollectable, *state))".as_ptr(),
};

/// Puts `telemetry_gc` into `_oxwsgi_native`'s dictionary.
pub fn install(py: Py<'_>, native: &Obj) -> PyResult<()> {
    unsafe {
        let f = Obj::owned(ffi::PyCFunction_NewEx(ptr::addr_of_mut!(GC_DEF), ptr::null_mut(), ptr::null_mut()))?;
        obj::dict_set_str(py, native, c"telemetry_gc", &f)
    }
}

unsafe extern "C" fn native_telemetry_gc(_slf: *mut ffi::PyObject, args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    py_guard(|py| {
        let bad = || raise(py, ffi::PyExc_TypeError, "telemetry_gc(interpreter, tuple of 22 numbers)");
        if ffi::PyTuple_Size(args) != 2 {
            return bad();
        }
        let name = Obj::borrowed(ffi::PyTuple_GetItem(args, 0));
        let values = ffi::PyTuple_GetItem(args, 1);
        if ffi::PyTuple_Check(values) == 0 || ffi::PyTuple_Size(values) != 22 {
            return bad();
        }
        let float = |i| ffi::PyFloat_AsDouble(ffi::PyTuple_GetItem(values, i));
        let int = |i| ffi::PyLong_AsUnsignedLongLongMask(ffi::PyTuple_GetItem(values, i));
        let pass = crate::telemetry::GcPass {
            start_stamp: float(0),
            duration: float(1),
            generation: int(2),
            collected: int(3),
            uncollectable: int(4),
            state: std::array::from_fn(|i| int(5 + i as isize)),
        };
        if !ffi::PyErr_Occurred().is_null() {
            return ptr::null_mut();
        }
        crate::telemetry::gc_pass(name.as_str(py).unwrap_or(""), pass);
        obj::none(py).into_ptr()
    })
}
