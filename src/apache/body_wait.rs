//! A request's body arrives before its application runs, and on the event MPM no thread waits
//! for a slow upload: the request is parked in the MPM until the client has sent the rest.
//!
//! How: this module reads HTTP/1 requests itself on an event MPM that can wait for a connection
//! on a module's behalf (`CONN_STATE_ASYNC_WAITIO`, Apache 2.4.63), with http_core's own steps
//! (`ap_read_request`, `ap_process_async_request`), and remembers which request it is driving.
//! When the content handler finds that request's body incomplete, [`collect_first`] returns
//! `SUSPENDED`; this hook then hands the connection to the MPM to wait until it is readable
//! (within `Timeout`), reads what came without blocking, and once the body is collected runs
//! the handler again and finishes the request as Apache does (`ap_die`,
//! `ap_process_request_after_handler`). Elsewhere (worker, prefork, HTTP/2, a sub-request) the
//! body is collected by the handler's thread, blocking, before the application runs.

use super::request_body::{read_input, Collected};
use super::request_note::{note, note_or_new};
use crate::python::backend::BodyError;
use crate::sys::ffi;
use crate::sys::util::{self, cbytes, log_request, module_config, pool_box, set_module_config};
use std::cell::Cell;
use std::ptr;
use std::sync::OnceLock;

/// Apache 2.4.63's values (older headers lack them; the MPM's answer to the query says at run
/// time whether they mean anything).
const AP_MPMQ_CAN_WAITIO: i32 = 19;
const CONN_STATE_ASYNC_WAITIO: ffi::conn_state_e = 8;

/// What this module keeps for a connection it reads requests of (in its conn_config slot).
struct ConnNote {
    /// The request this hook's `ap_process_async_request` is running: only it (no sub-request,
    /// no internal redirect) may be suspended.
    driving: Cell<*mut ffi::request_rec>,
    /// A request suspended until the rest of its body has come.
    waiting: Cell<*mut ffi::request_rec>,
    /// The brigade bodies are read through, in the connection's pool.
    input: Cell<*mut ffi::apr_bucket_brigade>,
    /// The handler to run again once the waiting request's body has come.
    handler: Cell<Option<Handler>>,
}

/// A content handler (`request::handler`).
pub type Handler = unsafe extern "C" fn(*mut ffi::request_rec) -> i32;

pub fn register() {
    // Before http_core's (APR_HOOK_REALLY_LAST), after the protocol modules' (mod_http2).
    unsafe {
        ffi::ap_hook_process_connection(Some(process_connection), ptr::null(), ptr::null(), ffi::APR_HOOK_LAST as i32)
    };
}

/// The MPM waits for a connection on the module's behalf.
fn mpm_can_wait() -> bool {
    static CAN: OnceLock<bool> = OnceLock::new();
    *CAN.get_or_init(|| {
        let (mut is_async, mut waitio) = (0, 0);
        let answered = unsafe {
            ffi::ap_mpm_query(ffi::AP_MPMQ_IS_ASYNC as i32, &mut is_async) == 0
                && ffi::ap_mpm_query(AP_MPMQ_CAN_WAITIO, &mut waitio) == 0
        };
        answered && is_async == 1 && waitio == 1
    })
}

unsafe fn conn_note<'a>(c: *mut ffi::conn_rec) -> Option<&'a ConnNote> {
    module_config::<ConnNote>((*c).conn_config).as_ref()
}

unsafe extern "C" fn process_connection(c: *mut ffi::conn_rec) -> i32 {
    let cs = (*c).cs;
    if cs.is_null()
        || !(*c).master.is_null()
        || (*c).clogging_input_filters() != 0
        || !mpm_can_wait()
        || cbytes(ffi::ap_get_protocol(c)) != b"http/1.1"
    {
        return ffi::DECLINED as i32;
    }
    let note = match conn_note(c) {
        Some(n) => n,
        None => {
            let n = pool_box(
                (*c).pool,
                ConnNote {
                    driving: Cell::new(ptr::null_mut()),
                    waiting: Cell::new(ptr::null_mut()),
                    input: Cell::new(ptr::null_mut()),
                    handler: Cell::new(None),
                },
            );
            set_module_config((*c).conn_config, n);
            &*n
        }
    };
    let waiting = note.waiting.replace(ptr::null_mut());
    if !waiting.is_null() {
        util::guard("the rest of a request body", (), || resume(c, note, waiting));
        return ffi::OK as i32;
    }
    if (*cs).state != ffi::conn_state_e_CONN_STATE_PROCESSING {
        return ffi::DECLINED as i32;
    }
    // http_core's ap_process_http_async_connection, remembering the request it runs.
    let sbh = (*c).sbh.cast::<ffi::ap_sb_handle_t>();
    ffi::ap_update_child_status_from_conn(sbh, ffi::SERVER_BUSY_READ as i32, c);
    if ffi::ap_extended_status != 0 {
        ffi::ap_set_conn_count(sbh, ptr::null_mut(), (*c).keepalives as u16);
    }
    let r = ffi::ap_read_request(c);
    if r.is_null() {
        (*cs).state = ffi::conn_state_e_CONN_STATE_LINGER;
        return ffi::OK as i32;
    }
    if (*r).status == ffi::HTTP_OK as i32 {
        (*cs).state = ffi::conn_state_e_CONN_STATE_HANDLER;
        if ffi::ap_extended_status != 0 {
            ffi::ap_set_conn_count(sbh, r, ((*c).keepalives + 1) as u16);
        }
        ffi::ap_update_child_status(sbh, ffi::SERVER_BUSY_WRITE as i32, r);
        note.driving.set(r);
        ffi::ap_process_async_request(r);
        // r may be gone from here on, unless its handler suspended it (then it is waiting).
        note.driving.set(ptr::null_mut());
        if !note.waiting.get().is_null() {
            (*cs).state = CONN_STATE_ASYNC_WAITIO;
            return ffi::OK as i32;
        }
    }
    let state = (*cs).state;
    if state != ffi::conn_state_e_CONN_STATE_WRITE_COMPLETION && state != ffi::conn_state_e_CONN_STATE_SUSPENDED {
        (*cs).state = ffi::conn_state_e_CONN_STATE_LINGER;
    }
    ffi::OK as i32
}

/// What the handler does about the body before the application runs.
pub enum BeforeApplication {
    /// Collected (as far as it is to be): run the application.
    Run,
    /// Return `SUSPENDED`: the connection waits for the rest, and the handler runs again then.
    Suspend,
    /// The body failed on the way: answer this (the reason is logged).
    Refuse(u32),
}

/// Collects `r`'s body, at most `limit` bytes (0: none), before its application runs: without
/// blocking where the connection can wait in the MPM (then `handler` runs again once the body
/// has come), else by reading until it has come.
///
/// # Safety
/// `r` must be the live request this thread's handler runs.
pub unsafe fn collect_first(r: *mut ffi::request_rec, limit: u64, handler: Handler) -> BeforeApplication {
    let rn = note_or_new(r);
    if rn.body_collected.get() || limit == 0 {
        return BeforeApplication::Run;
    }
    let c = (*r).connection;
    let parked = conn_note(c).filter(|n| n.driving.get() == r);
    let mut body = Collected::new(limit);
    let filled = match parked {
        Some(n) => fill(r, n, &mut body),
        None => {
            let mut input = ptr::null_mut();
            body.fill(|buf| read_input(r, &mut input, buf, true), |line| log_request(r, util::LOG_ERR, line))
        }
    };
    if let Err(e) = filled {
        rn.body_collected.set(true);
        return BeforeApplication::Refuse(refused(r, e));
    }
    let stopped = body.stopped();
    rn.body.set(Some(body));
    match parked {
        Some(n) if !stopped => {
            n.waiting.set(r);
            n.handler.set(Some(handler));
            ffi::apr_pool_cleanup_register((*r).pool, r.cast(), Some(never_resumed), Some(ffi::apr_pool_cleanup_null));
            BeforeApplication::Suspend
        }
        _ => {
            rn.body_collected.set(true);
            BeforeApplication::Run
        }
    }
}

/// Reads what the client has sent of `r`'s body without waiting for more.
unsafe fn fill(r: *mut ffi::request_rec, n: &ConnNote, body: &mut Collected) -> Result<(), BodyError> {
    let c = (*r).connection;
    if n.input.get().is_null() {
        n.input.set(ffi::apr_brigade_create((*c).pool, (*c).bucket_alloc));
    }
    let mut input = n.input.get();
    body.fill(|buf| read_input(r, &mut input, buf, false), |line| log_request(r, util::LOG_ERR, line))
}

/// The status a body that failed on the way is answered with; the reason is logged.
unsafe fn refused(r: *mut ffi::request_rec, e: BodyError) -> u32 {
    log_request(r, util::LOG_INFO, &format!("oxwsgi: {}; the application was not called", e.message));
    u32::from(e.status.clamp(400, 599))
}

/// The connection of a suspended request is readable again: read what came; once the body is
/// collected, run the handler and finish the request. (A connection that stays silent for
/// `Timeout` is closed by the MPM: see [`never_resumed`].)
unsafe fn resume(c: *mut ffi::conn_rec, n: &ConnNote, r: *mut ffi::request_rec) {
    let cs = (*c).cs;
    ffi::ap_update_child_status((*c).sbh.cast(), ffi::SERVER_BUSY_READ as i32, r);
    let rn = note_or_new(r);
    let mut body = rn.body.take().unwrap_or_else(|| Collected::new(0));
    let status = match fill(r, n, &mut body) {
        Ok(()) if !body.stopped() => {
            rn.body.set(Some(body));
            n.waiting.set(r);
            (*cs).state = CONN_STATE_ASYNC_WAITIO;
            return;
        }
        Ok(()) => {
            rn.body.set(Some(body));
            rn.body_collected.set(true);
            ffi::ap_update_child_status((*c).sbh.cast(), ffi::SERVER_BUSY_WRITE as i32, r);
            match n.handler.get().map(|handler| handler(r)) {
                Some(s) if s != ffi::DECLINED as i32 && s != ffi::SUSPENDED => s,
                _ => ffi::HTTP_INTERNAL_SERVER_ERROR as i32,
            }
        }
        Err(e) => {
            rn.body_collected.set(true);
            refused(r, e) as i32
        }
    };
    // ap_process_async_request's end, as for a handler that returned `status`.
    ffi::ap_die(status, r);
    ffi::ap_process_request_after_handler(r);
}

/// A suspended request whose connection was closed before its body came (the client gave up,
/// or sent nothing for `Timeout`): said in the log, as nothing else says it.
unsafe extern "C" fn never_resumed(data: *mut std::ffi::c_void) -> ffi::apr_status_t {
    let r = data as *mut ffi::request_rec;
    if note(r).is_some_and(|n| !n.body_collected.get()) {
        log_request(
            r,
            util::LOG_INFO,
            "oxwsgi: the connection closed before the request body had come (the client gave up, or sent nothing \
             for Timeout seconds); the application was not called",
        );
    }
    0
}
