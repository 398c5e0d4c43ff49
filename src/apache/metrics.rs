//! Apache's side of the metrics (see `crate::metrics`): the shared region made once per Apache
//! parent, the count of every request a WSGI application answered (at log_transaction, when its
//! status and bytes are final), and the `oxwsgi-metrics` handler that serves them.
//!
//! ```apache
//! <Location /server-metrics>
//!     SetHandler oxwsgi-metrics
//!     Require ip 127.0.0.1
//! </Location>
//! ```
//! Prometheus text format by default; `?format=json` for JSON.

use super::conf::server_conf;
use super::request_view::RequestView;
use crate::metrics::{json, prometheus, shm, snapshot::Snapshot};
use crate::sys::ffi;
use crate::sys::util::{self, cbytes, log_server};
use std::ffi::{c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

pub const HANDLER_NAME: &[u8] = b"oxwsgi-metrics";

pub unsafe fn register() {
    let middle = ffi::APR_HOOK_MIDDLE as i32;
    ffi::ap_hook_post_config(Some(post_config), ptr::null(), ptr::null(), ffi::APR_HOOK_FIRST as i32);
    ffi::ap_hook_child_init(Some(child_init), ptr::null(), ptr::null(), middle);
    ffi::ap_hook_log_transaction(Some(log_transaction), ptr::null(), ptr::null(), middle);
    ffi::ap_hook_handler(Some(handler), ptr::null(), ptr::null(), middle);
}

/// post_config, before daemon processes are forked: the region of this Apache parent (made on
/// its first start, found again in its process pool after a restart reloaded this module).
unsafe extern "C" fn post_config(
    _pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
) -> i32 {
    let key = CString::new(format!(
        "oxwsgi-metrics-{}-{}",
        env!("CARGO_PKG_VERSION"),
        std::mem::size_of::<crate::metrics::Region>()
    ))
    .expect("no NUL");
    let pool = (*(*s).process).pool;
    let mut data: *mut c_void = ptr::null_mut();
    ffi::apr_pool_userdata_get(&mut data, key.as_ptr(), pool);
    if data.is_null() {
        match shm::create() {
            Ok(region) => {
                data = region as *mut c_void;
                ffi::apr_pool_userdata_set(data, key.as_ptr(), None, pool);
            }
            Err(e) => {
                log_server(s, util::LOG_WARNING, &format!("oxwsgi: no shared memory for metrics ({e}); none are kept"));
                return ffi::OK as i32;
            }
        }
    }
    shm::attach(data as *mut crate::metrics::Region, server_conf(s).metrics != Some(false));
    ffi::OK as i32
}

/// An Apache child's row (if it served embedded requests) is freed when the child exits.
unsafe extern "C" fn child_init(p: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) {
    // WSGIServerMetrics On: mod_wsgi.server_metrics() reads the scoreboard.
    if server_conf(s).server_metrics == Some(true) {
        crate::python::set_server_metrics_source(crate::sys::scoreboard::json);
    }
    unsafe extern "C" fn ended(_data: *mut c_void) -> ffi::apr_status_t {
        if let Some(region) = shm::region() {
            region.end(std::process::id());
        }
        0
    }
    ffi::apr_pool_cleanup_register(p, ptr::null(), Some(ended), Some(ffi::apr_pool_cleanup_null));
}

pub use super::request_note::{mark_of, Mark};

/// Counts request `r` (answered by `group`'s `application_group`) when it is logged.
pub unsafe fn mark(r: *mut ffi::request_rec, group: &str, application_group: &str) {
    let Some(series) = shm::region().and_then(|m| m.series(group, application_group)) else { return };
    let _ = super::request_note::note_or_new(r).mark.set(Mark { series, read: AtomicU64::new(0) });
}

unsafe extern "C" fn log_transaction(r: *mut ffi::request_rec) -> i32 {
    util::guard("log_transaction", ffi::DECLINED, || {
        if let Some(mark) = mark_of(r) {
            let req = RequestView::new(r);
            let last = req.last();
            let status = last.status().clamp(0, u16::MAX as i32) as u16;
            mark.series.done(status, req.elapsed_micros(), mark.read.load(Ordering::Relaxed), last.bytes_sent());
        }
        ffi::DECLINED
    })
}

/// Resident memory of a live process, or None once it has gone.
fn resident(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64)
}

/// Every daemon group this server defines, in configuration order.
unsafe fn daemon_groups() -> Vec<String> {
    let mut names = Vec::new();
    let mut server = ffi::ap_server_conf;
    while !server.is_null() {
        for (d, _) in &server_conf(server).daemons {
            if !names.contains(&d.name) {
                names.push(d.name.clone());
            }
        }
        server = (*server).next;
    }
    names
}

unsafe extern "C" fn handler(r: *mut ffi::request_rec) -> i32 {
    if cbytes((*r).handler) != HANDLER_NAME {
        return ffi::DECLINED;
    }
    util::guard("oxwsgi-metrics", ffi::HTTP_INTERNAL_SERVER_ERROR as i32, || serve(r))
}

unsafe fn serve(r: *mut ffi::request_rec) -> i32 {
    if (*r).method_number != ffi::M_GET as i32 {
        (*r).allowed = 1 << ffi::M_GET;
        return ffi::HTTP_METHOD_NOT_ALLOWED as i32;
    }
    let Some(region) = shm::region() else {
        util::log_request(r, util::LOG_ERR, "oxwsgi: no metrics are kept (WSGIMetrics Off): nothing to serve");
        return ffi::HTTP_SERVICE_UNAVAILABLE as i32;
    };
    // Rows of processes that ended without saying so (killed children) are freed here.
    for p in region.process_values() {
        if resident(p.pid).is_none() {
            region.end(p.pid);
        }
    }
    let snap = Snapshot::read(region, &daemon_groups(), resident);
    let json = cbytes((*r).args).split(|&b| b == b'&').any(|kv| kv == b"format=json");
    let (body, content_type) = if json {
        (json::render(&snap), json::CONTENT_TYPE)
    } else {
        (prometheus::render(&snap), prometheus::CONTENT_TYPE)
    };
    let ct = CString::new(content_type).expect("no NUL");
    ffi::ap_set_content_type(r, ffi::apr_pstrdup((*r).pool, ct.as_ptr()));
    ffi::apr_table_setn((*r).headers_out, c"Cache-Control".as_ptr(), c"no-store".as_ptr());
    if (*r).header_only == 0 {
        ffi::ap_rwrite(body.as_ptr() as *const c_void, body.len() as i32, r);
    }
    ffi::OK as i32
}
