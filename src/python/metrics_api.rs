//! The native half of `mod_wsgi.process_metrics()`, `request_metrics()`, `server_metrics()` and
//! `request_data()` (the `_oxwsgi` package's `metrics_api.py` builds the dictionaries): this
//! process' counters from the shared metrics region, Apache's scoreboard (from the host, where
//! WSGIServerMetrics or server-metrics= turns it on), and the dictionary of the request this
//! thread runs.

use super::native::{current_request, py_guard};
use super::obj::{self, raise, Obj, Py, PyResult};
use super::request_stats;
use pyo3::ffi;
use std::ptr;
use std::sync::OnceLock;

/// A `PyMethodDef` of a function without arguments.
macro_rules! noargs {
    ($name:literal, $f:ident, $doc:literal) => {
        ffi::PyMethodDef {
            ml_name: $name.as_ptr(),
            ml_meth: ffi::PyMethodDefPointer { PyCFunction: $f },
            ml_flags: ffi::METH_NOARGS,
            ml_doc: $doc.as_ptr(),
        }
    };
}

/// Where `mod_wsgi.server_metrics()` gets Apache's scoreboard (as JSON); unset: it returns None.
static SERVER_METRICS: OnceLock<fn() -> Option<String>> = OnceLock::new();

pub fn set_server_metrics_source(f: fn() -> Option<String>) {
    let _ = SERVER_METRICS.set(f);
}

static mut SERVER_METRICS_DEF: ffi::PyMethodDef = noargs!(
    c"server_metrics_json",
    native_server_metrics,
    c"server_metrics_json() -> Apache's scoreboard as JSON, or None"
);

unsafe extern "C" fn native_server_metrics(_slf: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    py_guard(|py| {
        // The scoreboard is read without the GIL: it is Apache's shared memory, not Python's.
        // Safe: the server-metrics source reads shared memory, no Python.
        let json = SERVER_METRICS.get().and_then(|f| unsafe { super::interp::without_gil(py, f) });
        match json {
            Some(text) => obj::text(py, &text).map_or(ptr::null_mut(), Obj::into_ptr),
            None => obj::none(py).into_ptr(),
        }
    })
}

static mut PROCESS_STATS_DEF: ffi::PyMethodDef = noargs!(
    c"process_stats",
    native_process_stats,
    c"process_stats() -> (start_us, requests, busy_us, threads, busy) or None"
);

static mut REQUEST_DATA_DEF: ffi::PyMethodDef =
    noargs!(c"request_data", native_request_data, c"request_data() -> the dict of the request this thread is running");

static mut START_RECORDING_DEF: ffi::PyMethodDef = noargs!(
    c"start_recording",
    native_start_recording,
    c"start_recording() -> None: measure every request's I/O and GIL waits from now"
);

static mut RECORDED_DEF: ffi::PyMethodDef =
    noargs!(c"recorded", native_recorded, c"recorded() -> the I/O and GIL figures since the last call, or None");

/// Puts `process_stats`, `start_recording`, `recorded`, `server_metrics_json`, `request_data` and `telemetry` into
/// `_oxwsgi_native`'s dictionary.
pub fn install(py: Py<'_>, native: &Obj) -> PyResult<()> {
    unsafe {
        let stats =
            Obj::owned(ffi::PyCFunction_NewEx(ptr::addr_of_mut!(PROCESS_STATS_DEF), ptr::null_mut(), ptr::null_mut()))?;
        let data =
            Obj::owned(ffi::PyCFunction_NewEx(ptr::addr_of_mut!(REQUEST_DATA_DEF), ptr::null_mut(), ptr::null_mut()))?;
        obj::dict_set_str(py, native, c"process_stats", &stats)?;
        let sm = Obj::owned(ffi::PyCFunction_NewEx(
            ptr::addr_of_mut!(SERVER_METRICS_DEF),
            ptr::null_mut(),
            ptr::null_mut(),
        ))?;
        obj::dict_set_str(py, native, c"server_metrics_json", &sm)?;
        obj::dict_set_str(py, native, c"request_data", &data)?;
        for (name, def) in [
            (c"start_recording", ptr::addr_of_mut!(START_RECORDING_DEF)),
            (c"recorded", ptr::addr_of_mut!(RECORDED_DEF)),
        ] {
            obj::dict_set_str(
                py,
                native,
                name,
                &Obj::owned(ffi::PyCFunction_NewEx(def, ptr::null_mut(), ptr::null_mut()))?,
            )?;
        }
        // WSGITelemetryService: process_metrics() and request_metrics() give None (mod_wsgi 6).
        obj::dict_set_str(py, native, c"telemetry", &obj::boolean(py, crate::telemetry::configured()))?;
    }
    Ok(())
}

unsafe extern "C" fn native_process_stats(_slf: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    py_guard(|py| {
        let Some(v) = crate::metrics::shm::current_process().and_then(|row| row.read()) else {
            return obj::none(py).into_ptr();
        };
        let items = [v.started_us as i64, v.requests as i64, v.busy_us as i64, v.threads as i64, v.busy as i64];
        let ints: PyResult<Vec<Obj>> = items.iter().map(|&i| obj::int(py, i)).collect();
        match ints.and_then(|ints| obj::tuple(py, &ints.iter().collect::<Vec<_>>())) {
            Ok(t) => t.into_ptr(),
            Err(_) => ptr::null_mut(),
        }
    })
}

unsafe extern "C" fn native_start_recording(_slf: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    request_stats::start_recording();
    // SAFETY: CPython holds the GIL while it runs a native function.
    obj::none(Py::assume()).into_ptr()
}

unsafe extern "C" fn native_recorded(_slf: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    py_guard(|py| request_stats::take_recorded(py).map_or(ptr::null_mut(), Obj::into_ptr))
}

unsafe extern "C" fn native_request_data(_slf: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    py_guard(|py| {
        let Some(state) = current_request() else {
            return raise(py, ffi::PyExc_RuntimeError, "no active request for thread");
        };
        let mut data = state.data.borrow_mut();
        if data.is_none() {
            match obj::dict(py) {
                Ok(d) => *data = Some(d),
                Err(_) => return ptr::null_mut(),
            }
        }
        data.as_ref().expect("just set").clone_ref(py).into_ptr()
    })
}
