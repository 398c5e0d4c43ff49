//! Python: interpreters and thread states, the per-interpreter support code, and the WSGI
//! adapter. Uses `pyo3::ffi` directly: pyo3's safe API does not support sub-interpreters.
//!
//! One order, bottom to top: `obj` (owned references, errors; `request_stats` beside it) ->
//! `bootstrap` (the `_oxwsgi` Python package, src/python/_oxwsgi/, in each interpreter) ->
//! `own_gil` (how a sub-interpreter is made: shared or own GIL) -> `interp` (interpreters,
//! thread states, script loading; `events` publishes process events to them) -> `backend` and
//! `headers` (the host interface, the status and header rules; `response_head` converts
//! start_response's arguments by them) -> `state` (one request's response and input state) ->
//! `native` (the functions Python
//! calls back into a request through; `metrics_api` beside it) -> `wsgi` (the adapter that runs a request). No file
//! imports one above it.

pub mod backend;
mod bootstrap;
mod environ_strings;
pub mod events;
pub mod headers;
pub mod interp;
mod interp_options;
pub mod interrupt;
mod metrics_api;
mod native;
pub mod obj;
pub mod own_gil;
mod request_stats;
mod response_head;
pub mod script_call;
pub mod stacks;
mod state;
mod telemetry_gc;
pub mod wsgi;

pub use backend::set_server_log;
pub use metrics_api::set_server_metrics_source;

/// Starts Python for this process (once) with oxwsgi's native functions in every interpreter.
pub fn initialize(config: interp::RuntimeConfig) -> Result<(), String> {
    interp::initialize(config, install_natives)
}

/// Fills the module `_oxwsgi_native`: every native function the `_oxwsgi` package and the
/// `mod_wsgi` module use (the list is in `_oxwsgi/__init__.py`'s docstring).
fn install_natives(py: obj::Py<'_>, native: &obj::Obj) -> obj::PyResult<()> {
    native::install(py, native)?;
    telemetry_gc::install(py, native)?;
    metrics_api::install(py, native)
}

/// The linked Python's version, e.g. "3.11.2" (Py_GetVersion up to its first space; callable
/// before Python starts).
pub fn version() -> String {
    let v = unsafe { std::ffi::CStr::from_ptr(pyo3::ffi::Py_GetVersion()) };
    v.to_string_lossy().split_whitespace().next().unwrap_or("").to_string()
}
