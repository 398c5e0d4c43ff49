//! WSGITelemetryService and WSGITelemetryOptions (mod_wsgi 6), and where Apache's processes
//! start and stop their reporters (`crate::telemetry`): the configuration is handed over in
//! Apache's parent, before daemons are forked; every Apache child starts a reporter in
//! child_init (it also sends the slow-request records of the requests it relays to daemons)
//! and, under a threaded MPM, sends its last interval and PROCESS_STOPPED when it exits.
//! Daemon processes start theirs in `daemon::server`.

use super::conf::{server_conf, server_conf_mut, server_setter};
use super::directive::{answer, args, directive_name, global_only, Result};
use super::request_view::RequestView;
use crate::sys::ffi;
use crate::sys::util::{self, cstr};
use crate::telemetry::SlowRequest;
use std::ffi::c_void;
use std::os::raw::c_char;
use std::ptr;
use std::time::Duration;

server_setter!(cmd_telemetry_service, global = true, |conf, cmd, name, raw| {
    let _ = (cmd, name);
    conf.telemetry = Some(crate::config::parse_telemetry_service(raw)?);
    Ok(())
});

server_setter!(cmd_telemetry_options, global = true, |conf, cmd, name, raw| {
    let _ = (cmd, name);
    conf.telemetry_capture_user_agent = crate::config::parse_telemetry_options(raw, conf.telemetry_capture_user_agent)?;
    Ok(())
});

pub unsafe fn register() {
    // FIRST: before the supervisor forks daemon processes (post_config, MIDDLE).
    ffi::ap_hook_post_config(Some(post_config), ptr::null(), ptr::null(), ffi::APR_HOOK_FIRST as i32);
    ffi::ap_hook_child_init(Some(child_init), ptr::null(), ptr::null(), ffi::APR_HOOK_MIDDLE as i32);
}

unsafe extern "C" fn post_config(
    _pconf: *mut ffi::apr_pool_t,
    _plog: *mut ffi::apr_pool_t,
    _ptemp: *mut ffi::apr_pool_t,
    s: *mut ffi::server_rec,
) -> i32 {
    util::guard("telemetry post_config", ffi::OK as i32, || {
        let conf = server_conf(s);
        let config = conf.telemetry.as_ref().map(|(target, interval)| crate::telemetry::Config {
            target: target.clone(),
            interval: *interval,
            slow_threshold: conf.slow_requests,
            capture_user_agent: conf.telemetry_capture_user_agent,
            apache_version: cstr(ffi::ap_get_server_description())
                .and_then(|d| d.split_whitespace().next())
                .unwrap_or("")
                .to_string(),
            mpm: cstr(ffi::ap_show_mpm()).unwrap_or("").to_string(),
        });
        crate::telemetry::configure(config);
        ffi::OK as i32
    })
}

unsafe extern "C" fn child_init(p: *mut ffi::apr_pool_t, s: *mut ffi::server_rec) {
    let conf = server_conf(s);
    // Also with WSGIRestrictEmbedded On: the children are where slow requests are seen (for
    // daemon mode too), so they report even when no application runs in them.
    if conf.telemetry.is_none() {
        return;
    }
    let threads = super::python_start::mpm_query(ffi::AP_MPMQ_MAX_THREADS).max(1) as u64;
    match crate::telemetry::start("", threads, &crate::python::version()) {
        Ok(_) => {
            let (target, interval) = conf.telemetry.as_ref().expect("checked");
            util::log_server(
                s,
                util::LOG_INFO,
                &format!(
                    "oxwsgi: telemetry reporter started; target='unix:{}', interval={:.3}s",
                    target.display(),
                    interval.as_secs_f64()
                ),
            );
        }
        Err(e) => util::log_server(s, util::LOG_WARNING, &format!("oxwsgi: {e}")),
    }
    unsafe extern "C" fn ended(_data: *mut c_void) -> ffi::apr_status_t {
        crate::telemetry::stopping("", 0);
        crate::telemetry::stop("", 0);
        0
    }
    // A prefork child may run its pool cleanups in a signal handler (SIGTERM), where joining
    // the reporter or taking its locks could hang: there the process just goes.
    if super::python_start::mpm_query(ffi::AP_MPMQ_IS_THREADED) != ffi::AP_MPMQ_NOT_SUPPORTED as i32 {
        ffi::apr_pool_cleanup_register(p, ptr::null(), Some(ended), Some(ffi::apr_pool_cleanup_null));
    }
}

/// The telemetry record of slow request `req` (answered as `last`, in `elapsed`).
pub fn slow_record(req: RequestView, last: RequestView, elapsed: Duration) -> SlowRequest {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    SlowRequest {
        start_stamp: req.request_time() as f64 / 1e6,
        duration: elapsed.as_secs_f64(),
        thread_id: unsafe { libc::pthread_self() } as u64,
        server_pid: std::process::id(),
        status: last.status().clamp(0, u16::MAX as i32) as u16,
        // SAFETY: a live request.
        input_bytes: unsafe { super::metrics::mark_of(req.raw()) }
            .map_or(0, |m| m.read.load(std::sync::atomic::Ordering::Relaxed)),
        output_bytes: last.bytes_sent(),
        method: text(req.method()),
        scheme: text(req.scheme()),
        hostname: req.hostname().unwrap_or("").to_string(),
        script_name: String::new(),
        path_info: text(req.uri()),
        protocol: text(req.protocol()),
        peer_ip: text(req.useragent_ip()),
        user_agent: crate::telemetry::capture_user_agent()
            .then(|| req.header_in(c"User-Agent").unwrap_or("").to_string()),
        active: false,
    }
}

/// While the handler of WSGI request `req` runs: reported as an active slow request once it has
/// run for WSGISlowRequests (with WSGITelemetryService).
pub fn in_flight(req: RequestView) -> Option<crate::telemetry::InFlight> {
    if !crate::telemetry::reports_slow_requests() {
        return None;
    }
    let started = slow_record(req, req, Duration::ZERO);
    // Timed from Apache accepting it, as the completed record is.
    let ago = Duration::from_micros(req.elapsed_micros());
    crate::telemetry::request_begins(SlowRequest { status: 0, input_bytes: 0, output_bytes: 0, ..started }, ago)
}
