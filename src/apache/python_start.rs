//! Starting Python in an Apache child: once, on the first embedded-mode request or at child start
//! when embedded-mode import scripts need it (never in Apache's parent, which reloads the module),
//! with the main server's WSGIPythonHome, WSGIPythonPath and WSGIRestrictSignal.

use super::conf::server_conf;
use crate::python::interp;
use crate::sys::ffi;
use crate::sys::util;
use std::ptr;

pub fn mpm_query(what: u32) -> i32 {
    let mut v = 0;
    unsafe { ffi::ap_mpm_query(what as i32, &mut v) };
    v
}

pub fn ensure_python() {
    static START: std::sync::Once = std::sync::Once::new();
    START.call_once(|| {
        let conf = server_conf(unsafe { ffi::ap_server_conf });
        let config = interp::RuntimeConfig {
            python_home: conf.python_home.as_ref().map(|(h, _)| h.clone()),
            python_path: conf.python_path.clone(),
            process_group: String::new(),
            restrict_signal: conf.restrict_signal.unwrap_or(true),
            threads_per_process: mpm_query(ffi::AP_MPMQ_MAX_THREADS).max(1) as i64,
            maximum_processes: mpm_query(ffi::AP_MPMQ_MAX_DAEMONS).max(1) as i64,
        };
        if let Err(e) = crate::python::initialize(config) {
            util::log_server(ptr::null(), util::LOG_ERR, &format!("oxwsgi: {e}"));
        }
    });
}
