//! The native half of `mod_wsgi.process_metrics()`, `request_metrics()`, `server_metrics()` and
//! `request_data()` (the `_oxwsgi` package's `metrics_api.py` builds the dictionaries): this
//! process' counters from the shared metrics region, Apache's scoreboard (from the host, where
//! WSGIServerMetrics or server-metrics= turns it on), and the dictionary of the request this
//! thread runs.

use super::native::{current_request, py_guard};
use super::obj::{self, raise, Obj, PyResult};
use pyo3::ffi;
use std::ptr;
use std::sync::OnceLock;

/// Where `mod_wsgi.server_metrics()` gets Apache's scoreboard (as JSON); unset: it returns None.
static SERVER_METRICS: OnceLock<fn() -> Option<String>> = OnceLock::new();

pub fn set_server_metrics_source(f: fn() -> Option<String>) {
    let _ = SERVER_METRICS.set(f);
}

static mut SERVER_METRICS_DEF: ffi::PyMethodDef = ffi::PyMethodDef {
    ml_name: c"server_metrics_json".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer { PyCFunction: native_server_metrics },
    ml_flags: ffi::METH_NOARGS,
    ml_doc: c"server_metrics_json() -> Apache's scoreboard as JSON, or None".as_ptr(),
};

unsafe extern "C" fn native_server_metrics(_slf: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    py_guard(|| {
        // The scoreboard is read without the GIL: it is Apache's shared memory, not Python's.
        let json = SERVER_METRICS.get().and_then(|f| super::interp::without_gil(f));
        match json {
            Some(text) => obj::text(&text).map_or(ptr::null_mut(), Obj::into_ptr),
            None => obj::none().into_ptr(),
        }
    })
}

static mut PROCESS_STATS_DEF: ffi::PyMethodDef = ffi::PyMethodDef {
    ml_name: c"process_stats".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer { PyCFunction: native_process_stats },
    ml_flags: ffi::METH_NOARGS,
    ml_doc: c"process_stats() -> (start_us, requests, busy_us, threads, busy) or None".as_ptr(),
};

static mut REQUEST_DATA_DEF: ffi::PyMethodDef = ffi::PyMethodDef {
    ml_name: c"request_data".as_ptr(),
    ml_meth: ffi::PyMethodDefPointer { PyCFunction: native_request_data },
    ml_flags: ffi::METH_NOARGS,
    ml_doc: c"request_data() -> the dict of the request this thread is running".as_ptr(),
};

/// Puts `process_stats`, `server_metrics_json`, `request_data` and `telemetry` into
/// `_oxwsgi_native`'s dictionary.
pub fn install(native: &Obj) -> PyResult<()> {
    unsafe {
        let stats =
            Obj::owned(ffi::PyCFunction_NewEx(ptr::addr_of_mut!(PROCESS_STATS_DEF), ptr::null_mut(), ptr::null_mut()))?;
        let data =
            Obj::owned(ffi::PyCFunction_NewEx(ptr::addr_of_mut!(REQUEST_DATA_DEF), ptr::null_mut(), ptr::null_mut()))?;
        obj::dict_set_str(native, c"process_stats", &stats)?;
        let sm = Obj::owned(ffi::PyCFunction_NewEx(
            ptr::addr_of_mut!(SERVER_METRICS_DEF),
            ptr::null_mut(),
            ptr::null_mut(),
        ))?;
        obj::dict_set_str(native, c"server_metrics_json", &sm)?;
        obj::dict_set_str(native, c"request_data", &data)?;
        // WSGITelemetryService: process_metrics() and request_metrics() give None (mod_wsgi 6).
        obj::dict_set_str(native, c"telemetry", &obj::boolean(crate::telemetry::configured()))?;
    }
    Ok(())
}

unsafe extern "C" fn native_process_stats(_slf: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    py_guard(|| {
        let Some(v) = crate::metrics::shm::current_process().and_then(|row| row.read()) else {
            return obj::none().into_ptr();
        };
        let items = [v.started_us as i64, v.requests as i64, v.busy_us as i64, v.threads as i64, v.busy as i64];
        let ints: PyResult<Vec<Obj>> = items.iter().map(|&i| obj::int(i)).collect();
        match ints.and_then(|ints| obj::tuple(&ints.iter().collect::<Vec<_>>())) {
            Ok(t) => t.into_ptr(),
            Err(_) => ptr::null_mut(),
        }
    })
}

unsafe extern "C" fn native_request_data(_slf: *mut ffi::PyObject, _args: *mut ffi::PyObject) -> *mut ffi::PyObject {
    py_guard(|| {
        let Some(state) = current_request() else {
            return raise(ffi::PyExc_RuntimeError, "no active request for thread");
        };
        let mut data = state.data.borrow_mut();
        if data.is_none() {
            match obj::dict() {
                Ok(d) => *data = Some(d),
                Err(_) => return ptr::null_mut(),
            }
        }
        data.as_ref().expect("just set").clone().into_ptr()
    })
}
