//! Thin safe helpers over Apache/APR: logging, pools, tables, strings.

use super::ffi;
use std::ffi::{c_void, CStr, CString};
use std::os::raw::c_char;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Apache log levels (APLOG_*).
pub const LOG_EMERG: u8 = 0;
pub const LOG_ERR: u8 = 3;
pub const LOG_WARNING: u8 = 4;
pub const LOG_INFO: u8 = 6;

/// oxwsgi's module record, told by `register_hooks` (Apache calls it as it adds the module,
/// before any configuration callback or log line), so these helpers need not know where the
/// record is defined.
static MODULE: AtomicPtr<ffi::module> = AtomicPtr::new(std::ptr::null_mut());

pub fn set_module(module: *mut ffi::module) {
    MODULE.store(module, Ordering::Release);
}

/// The index Apache gave the module (read each time: Apache assigns it as it loads modules).
fn module_index() -> i32 {
    let m = MODULE.load(Ordering::Acquire);
    assert!(!m.is_null(), "oxwsgi: module record used before register_hooks");
    unsafe { (*m).module_index }
}

fn c_message(msg: &str) -> CString {
    CString::new(msg.replace('\0', "\\0")).unwrap_or_default()
}

/// One line to the error log, attributed to a request.
pub fn log_request(r: *const ffi::request_rec, level: u8, msg: &str) {
    let m = c_message(msg);
    unsafe { ffi::oxwsgi_log_rerror(c"mod_oxwsgi".as_ptr(), 0, module_index(), level as i32, 0, r, m.as_ptr()) }
}

/// One line to the error log of a server (null: the main server).
pub fn log_server(s: *const ffi::server_rec, level: u8, msg: &str) {
    let m = c_message(msg);
    let s = if s.is_null() { unsafe { ffi::ap_server_conf as *const _ } } else { s };
    unsafe { ffi::oxwsgi_log_error(c"mod_oxwsgi".as_ptr(), 0, module_index(), level as i32, 0, s, m.as_ptr()) }
}

/// Each line of `text` (a traceback, a stack dump) as its own log line, attributed to a request.
pub fn log_request_lines(r: *const ffi::request_rec, level: u8, text: &str) {
    for line in text.lines() {
        log_request(r, level, line);
    }
}

/// Each line of `text` as its own line in a server's error log (null: the main server).
pub fn log_server_lines(s: *const ffi::server_rec, level: u8, text: &str) {
    for line in text.lines() {
        log_server(s, level, line);
    }
}

/// Moves `value` into memory owned by `pool`: it is dropped when the pool is cleared.
pub fn pool_box<T>(pool: *mut ffi::apr_pool_t, value: T) -> *mut T {
    unsafe extern "C" fn drop_box<T>(data: *mut c_void) -> ffi::apr_status_t {
        drop(Box::from_raw(data as *mut T));
        0
    }
    let p = Box::into_raw(Box::new(value));
    unsafe {
        ffi::apr_pool_cleanup_register(pool, p as *const c_void, Some(drop_box::<T>), Some(ffi::apr_pool_cleanup_null))
    };
    p
}

/// A NUL-terminated copy of `bytes` in `pool`.
pub fn pstr(pool: *mut ffi::apr_pool_t, bytes: &[u8]) -> *mut c_char {
    unsafe { ffi::apr_pstrmemdup(pool, bytes.as_ptr() as *const c_char, bytes.len()) }
}

/// A C string as a Rust &str (lossy for non-UTF-8 is not wanted: None instead). Null -> None.
///
/// # Safety
/// `p` is null or a NUL-terminated string that stays valid and unchanged for `'a` (for
/// Apache's strings: as long as the pool or record that holds them).
pub unsafe fn cstr<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        None
    } else {
        unsafe { CStr::from_ptr(p) }.to_str().ok()
    }
}

/// A C string's bytes; null is empty.
///
/// # Safety
/// As [`cstr`].
pub unsafe fn cbytes<'a>(p: *const c_char) -> &'a [u8] {
    if p.is_null() {
        b""
    } else {
        unsafe { CStr::from_ptr(p) }.to_bytes()
    }
}

/// Every (key, value) of an APR table, in order.
///
/// # Safety
/// `t` is a live table whose entries stay valid and unchanged for `'a`.
pub unsafe fn table_entries<'a>(t: *const ffi::apr_table_t) -> impl Iterator<Item = (&'a [u8], &'a [u8])> {
    let arr = unsafe { ffi::apr_table_elts(t) };
    let (elts, n) = unsafe { ((*arr).elts as *const ffi::apr_table_entry_t, (*arr).nelts as usize) };
    (0..n).filter_map(move |i| {
        let e = unsafe { &*elts.add(i) };
        (!e.key.is_null()).then(|| (cbytes(e.key), cbytes(e.val)))
    })
}

/// A table's value for `key`.
///
/// # Safety
/// As [`table_entries`].
pub unsafe fn table_get<'a>(t: *const ffi::apr_table_t, key: &CStr) -> Option<&'a str> {
    cstr(ffi::apr_table_get(t, key.as_ptr()))
}

/// A module's slot in a config vector (per-server, per-dir or per-request).
pub fn module_config<T>(vector: *mut ffi::ap_conf_vector_t) -> *mut T {
    if vector.is_null() {
        return std::ptr::null_mut();
    }
    unsafe { *(vector as *mut *mut c_void).add(module_index() as usize) as *mut T }
}

pub fn set_module_config<T>(vector: *mut ffi::ap_conf_vector_t, value: *mut T) {
    unsafe { *(vector as *mut *mut c_void).add(module_index() as usize) = value as *mut c_void }
}

/// Runs the body of a hook or callback that Apache (or Python) calls through C: a panic must
/// not unwind into C (it would abort the whole process), so it is logged and `fallback` returned.
pub fn guard<T>(what: &str, fallback: T, f: impl FnOnce() -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(e) => {
            let msg = e
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| e.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            log_server(std::ptr::null(), LOG_ERR, &format!("oxwsgi: internal error in {what}: {msg}"));
            fallback
        }
    }
}
