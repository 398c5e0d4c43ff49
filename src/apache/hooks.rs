//! Hook registration and the process-level hooks: configuration checks and Python start-up.

use super::conf::{server_conf, DAEMON_NAMES};
use super::request;
use crate::sys::ffi;
use crate::sys::util::{self, log_server};
use std::ptr;

pub unsafe extern "C" fn register_hooks(_p: *mut ffi::apr_pool_t) {
    // mod_alias first, so `Alias /static ...` beside `WSGIScriptAlias / ...` serves static files.
    // Apache keeps these pointers for the life of the hook table: static storage.
    static mut PRE_TRANSLATE: [*const std::os::raw::c_char; 2] = [c"mod_alias.c".as_ptr(), ptr::null()];
    static mut SUCC_TRANSLATE: [*const std::os::raw::c_char; 3] =
        [c"mod_userdir.c".as_ptr(), c"mod_vhost_alias.c".as_ptr(), ptr::null()];
    let middle = ffi::APR_HOOK_MIDDLE as i32;
    ffi::ap_hook_pre_config(Some(pre_config), ptr::null(), ptr::null(), middle);
    ffi::ap_hook_check_config(Some(check_config), ptr::null(), ptr::null(), middle);
    ffi::ap_hook_post_config(Some(add_version), ptr::null(), ptr::null(), middle);
    ffi::ap_hook_post_config(Some(super::supervisor::post_config), ptr::null(), ptr::null(), middle);
    ffi::ap_hook_child_init(Some(child_init), ptr::null(), ptr::null(), middle);
    super::auth::register(_p);
    super::metrics::register();
    super::slow_requests::register();
    super::telemetry::register();
    super::body_wait::register();
    ffi::ap_hook_translate_name(
        Some(super::translate::translate_name),
        ptr::addr_of!(PRE_TRANSLATE) as *const _,
        ptr::addr_of!(SUCC_TRANSLATE) as *const _,
        middle,
    );
    ffi::ap_hook_handler(Some(request::handler), ptr::null(), ptr::null(), middle);
    ffi::ap_hook_fixups(Some(super::vhost::fixups), ptr::null(), ptr::null(), ffi::APR_HOOK_LAST as i32);
}

unsafe extern "C" fn pre_config(
    _p: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
) -> i32 {
    DAEMON_NAMES.lock().unwrap_or_else(|e| e.into_inner()).clear();
    ffi::OK as i32
}

/// Runs after the whole configuration is read (also for `apachectl configtest`): every process
/// group that a directive names must be defined by some WSGIDaemonProcess.
unsafe extern "C" fn check_config(
    _p: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
) -> i32 {
    let names = DAEMON_NAMES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut ok = true;
    let mut server = s;
    while !server.is_null() {
        for (group, origin) in &server_conf(server).group_references {
            if !names.iter().any(|(n, _)| n == group) {
                log_server(
                    s,
                    util::LOG_EMERG,
                    &format!(
                        "Syntax error on line {} of {}: process group '{group}' is not defined by any WSGIDaemonProcess directive",
                        origin.line, origin.file
                    ),
                );
                ok = false;
            }
        }
        server = (*server).next;
    }
    if ok {
        ffi::OK as i32
    } else {
        ffi::HTTP_INTERNAL_SERVER_ERROR as i32
    }
}

/// "oxwsgi/VERSION Python/X.Y" in Apache's version string (shown with `ServerTokens Full`), as
/// mod_wsgi adds its own.
unsafe extern "C" fn add_version(
    pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    _s: *mut ffi::server_rec,
) -> i32 {
    let component = std::ffi::CString::new(format!(
        "oxwsgi/{} Python/{}",
        env!("CARGO_PKG_VERSION"),
        crate::config::PYTHON_VERSION
    ))
    .expect("no NUL");
    ffi::ap_add_version_component(pconf, component.as_ptr());
    ffi::OK as i32
}

fn apache_log(level: u8, msg: &str) {
    log_server(ptr::null(), level, msg);
}

/// Python is not started here: it starts on a child's first embedded-mode request (see
/// python_start::ensure_python), never in Apache's parent (which reloads this module on restart).
unsafe extern "C" fn child_init(p: *mut ffi::apr_pool_t, _s: *mut ffi::server_rec) {
    // An Apache child that ran Python tells its interpreters' subscribers it is going, as
    // mod_wsgi does (with an empty shutdown_reason: Apache does not say why a child exits).
    unsafe extern "C" fn child_exit(_data: *mut std::ffi::c_void) -> ffi::apr_status_t {
        if crate::python::interp::is_initialized() {
            crate::python::events::process_stopping_within("", std::time::Duration::from_secs(5));
        }
        0
    }
    ffi::apr_pool_cleanup_register(p, ptr::null(), Some(child_exit), Some(ffi::apr_pool_cleanup_null));
    crate::python::set_server_log(apache_log);
    super::environ::CHILD_PID.store(std::process::id(), std::sync::atomic::Ordering::Relaxed);
    super::handler_script::run_embedded_imports();
}
