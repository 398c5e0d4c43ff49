//! `WSGISlowRequests SECONDS` (mod_wsgi 6): a request answered by a WSGI application that took
//! longer than SECONDS, from Apache accepting it to the end of its response, is logged at
//! `warn` level with its pid, thread, method, path (without the query string), status and time.
//! With WSGITelemetryService it goes to the telemetry ingester instead, as mod_wsgi 6 sends it
//! (the records are built in `telemetry.rs`).

use super::conf::{server_conf, server_conf_mut, server_setter};
use super::directive::{answer, args, directive_name, global_only, Result};
use super::request_view::RequestView;
use crate::sys::ffi;
use crate::sys::util;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::ptr;
use std::time::Duration;

server_setter!(cmd_slow_requests, global = true, |conf, cmd, name, raw| {
    let _ = (cmd, name);
    let raw = raw.trim();
    let secs: f64 = raw
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| format!("WSGISlowRequests needs a number of seconds (0 or more), not '{raw}'"))?;
    conf.slow_requests = Some(Duration::from_secs_f64(secs));
    Ok(())
});

pub unsafe fn register() {
    ffi::ap_hook_log_transaction(Some(log_transaction), ptr::null(), ptr::null(), ffi::APR_HOOK_MIDDLE as i32);
}

unsafe extern "C" fn log_transaction(r: *mut ffi::request_rec) -> i32 {
    util::guard("WSGISlowRequests", ffi::DECLINED, || {
        let Some(threshold) = server_conf(ffi::ap_server_conf).slow_requests else { return ffi::DECLINED };
        if super::metrics::mark_of(r).is_none() && !super::request::is_wsgi_handler(r) {
            return ffi::DECLINED;
        }
        let req = RequestView::new(r);
        let last = req.last();
        let elapsed = Duration::from_micros(req.elapsed_micros());
        if elapsed <= threshold {
            return ffi::DECLINED;
        }
        if crate::telemetry::active() {
            crate::telemetry::slow_request(&super::telemetry::slow_record(req, last, elapsed));
            return ffi::DECLINED;
        }
        let path = String::from_utf8_lossy(req.uri());
        req.log(
            util::LOG_WARNING,
            &format!(
                "oxwsgi: slow request (WSGISlowRequests {:.3}s): pid {} thread {} {} {} -> {} in {:.3}s",
                threshold.as_secs_f64(),
                std::process::id(),
                libc::pthread_self(),
                String::from_utf8_lossy(req.method()),
                path,
                last.status(),
                elapsed.as_secs_f64()
            ),
        );
        ffi::DECLINED
    })
}
