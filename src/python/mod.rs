//! Python: interpreters and thread states, the per-interpreter support code, and the WSGI
//! adapter. Uses `pyo3::ffi` directly: pyo3's safe API does not support sub-interpreters.

pub mod interp;
mod native;
pub mod obj;
pub mod wsgi;

pub use native::set_server_log;
