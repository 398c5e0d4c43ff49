//! `WSGISlowRequests SECONDS` (mod_wsgi 6): a request answered by a WSGI application that took
//! longer than SECONDS, from Apache accepting it to the end of its response, is logged at
//! `warn` level with its pid, thread, method, path (without the query string), status and time.
//! mod_wsgi 6 sends such records to its separate telemetry service; oxwsgi writes them to the
//! error log, where they need nothing else to be read.

use super::conf::{server_conf, server_conf_mut};
use super::directive::{answer, args, global_only};
use crate::sys::ffi;
use crate::sys::util::{self, cbytes, log_request};
use crate::telemetry::SlowRequest;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::ptr;
use std::time::Duration;

pub unsafe extern "C" fn cmd_slow_requests(
    cmd: *mut ffi::cmd_parms,
    _m: *mut c_void,
    a: *const c_char,
) -> *const c_char {
    let r = (|| {
        global_only(cmd)?;
        let raw = args(a).trim();
        let secs: f64 = raw
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| format!("WSGISlowRequests needs a number of seconds (0 or more), not '{raw}'"))?;
        server_conf_mut(cmd).slow_requests = Some(Duration::from_secs_f64(secs));
        Ok(())
    })();
    answer(cmd, r)
}

pub unsafe fn register() {
    ffi::ap_hook_log_transaction(Some(log_transaction), ptr::null(), ptr::null(), ffi::APR_HOOK_MIDDLE as i32);
}

unsafe extern "C" fn log_transaction(r: *mut ffi::request_rec) -> i32 {
    util::guard("WSGISlowRequests", ffi::DECLINED, || {
        let Some(threshold) = server_conf(ffi::ap_server_conf).slow_requests else { return ffi::DECLINED };
        if super::metrics::mark_of(r).is_none() && !super::request::is_wsgi_handler(r) {
            return ffi::DECLINED;
        }
        let (last, elapsed) = super::metrics::answered(r);
        let elapsed = Duration::from_micros(elapsed);
        if elapsed <= threshold {
            return ffi::DECLINED;
        }
        if crate::telemetry::active() {
            crate::telemetry::slow_request(&slow_record(r, last, elapsed));
            return ffi::DECLINED;
        }
        let path = String::from_utf8_lossy(cbytes((*r).uri));
        log_request(
            r,
            util::LOG_WARNING,
            &format!(
                "oxwsgi: slow request (WSGISlowRequests {:.3}s): pid {} thread {} {} {} -> {} in {:.3}s",
                threshold.as_secs_f64(),
                std::process::id(),
                libc::pthread_self(),
                String::from_utf8_lossy(cbytes((*r).method)),
                path,
                (*last).status,
                elapsed.as_secs_f64()
            ),
        );
        ffi::DECLINED
    })
}

/// The telemetry record of slow request `r` (answered as `last`, in `elapsed`).
unsafe fn slow_record(r: *const ffi::request_rec, last: *const ffi::request_rec, elapsed: Duration) -> SlowRequest {
    let text = |p: *const c_char| String::from_utf8_lossy(cbytes(p)).into_owned();
    let header = |name: &std::ffi::CStr| text(ffi::apr_table_get((*r).headers_in, name.as_ptr()));
    let c = (*r).connection;
    SlowRequest {
        start_stamp: (*r).request_time as f64 / 1e6,
        duration: elapsed.as_secs_f64(),
        thread_id: libc::pthread_self() as u64,
        server_pid: std::process::id(),
        status: (*last).status.clamp(0, u16::MAX as i32) as u16,
        input_bytes: super::metrics::mark_of(r).map_or(0, |m| m.read.load(std::sync::atomic::Ordering::Relaxed)),
        output_bytes: (*last).bytes_sent.max(0) as u64,
        method: text((*r).method),
        scheme: text(ffi::ap_run_http_scheme(r)),
        hostname: text((*r).hostname),
        script_name: String::new(),
        path_info: text((*r).uri),
        protocol: text((*r).protocol),
        peer_ip: if c.is_null() { String::new() } else { text((*r).useragent_ip) },
        user_agent: crate::telemetry::capture_user_agent().then(|| header(c"User-Agent")),
        active: false,
    }
}

/// While the handler of WSGI request `r` runs: reported as an active slow request once it has
/// run for WSGISlowRequests (with WSGITelemetryService).
pub unsafe fn in_flight(r: *const ffi::request_rec) -> Option<crate::telemetry::InFlight> {
    if !crate::telemetry::reports_slow_requests() {
        return None;
    }
    let started = slow_record(r, r, Duration::ZERO);
    crate::telemetry::request_begins(SlowRequest { status: 0, input_bytes: 0, output_bytes: 0, ..started })
}
