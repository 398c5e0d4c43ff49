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

use super::python_start::mpm_query;
use super::request_body::{arrived, read_input};
use super::request_note::{note, note_or_new, Body};
use super::response::poll_client;
use crate::collected_body::Collected;
use crate::python::backend::BodyError;
use crate::sys::ffi;
use crate::sys::util::{self, cbytes, log_request, module_config, pool_box, set_module_config};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Apache 2.4.63's values (older headers lack them; the MPM's answer to the query says at run
/// time whether they mean anything).
const AP_MPMQ_CAN_WAITIO: i32 = 19;
const CONN_STATE_ASYNC_WAITIO: ffi::conn_state_e = 8;

/// scoreboard.h's START_PREQUEST.
const START_PREQUEST: i32 = 1;

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
    /// The body failed on the way: answer this status (the reason is logged).
    Refuse(u32),
    /// The body failed on the way and Apache's input filter has answered already: return
    /// `AP_FILTER_ERROR`.
    Answered,
}

/// Requests of this process waiting in the MPM for their bodies, and how many may: twice
/// `ThreadsPerChild`, the connections the event MPM itself keeps per child beyond its busy
/// workers (`AsyncRequestWorkerFactor` 2). A parked request is idle for up to `Timeout`, not
/// mod_reqtimeout's `body=` time (which is checked only when bytes come): past the cap a
/// worker waits for the body, and mod_reqtimeout's limits hold it as before.
struct Parked {
    count: AtomicUsize,
    cap: OnceLock<usize>,
}

static PARKED: Parked = Parked { count: AtomicUsize::new(0), cap: OnceLock::new() };

impl Parked {
    /// Counts one more, if there is room.
    fn take(&self) -> bool {
        let cap = *self.cap.get_or_init(|| 2 * mpm_query(ffi::AP_MPMQ_MAX_THREADS).max(1) as usize);
        self.count.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < cap).then_some(n + 1)).is_ok()
    }

    fn give_back(&self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Collects `r`'s body (`length` bytes, None: chunked), at most `limit` bytes (0: none), before
/// its application runs. What has come is read at once; if that is not all, the request waits
/// in the MPM where the connection can (then `handler` runs again once the body has come), else
/// this thread reads the rest. A body of up to 64 KiB that has all come (a fast client's, sent
/// with its headers) is not read: it stays in Apache's input filters, and the application's
/// reads take it from there without waiting, with no copy made before. (Over TLS, mod_ssl's
/// speculative read gives at most 8 KiB: larger bodies are collected.)
///
/// # Safety
/// `r` must be the live request this thread's handler runs.
pub unsafe fn collect_first(
    r: *mut ffi::request_rec,
    length: Option<u64>,
    limit: u64,
    handler: Handler,
) -> BeforeApplication {
    let rn = note_or_new(r);
    if !matches!(*rn.body.borrow(), Body::Unread) || limit == 0 {
        return BeforeApplication::Run;
    }
    let c = (*r).connection;
    let driven = conn_note(c).filter(|n| n.driving.get() == r);
    // A brigade of the request's own (made by the first read) where no connection note has one.
    let mut input = driven.map_or(ptr::null_mut(), |n| n.input(c));
    let input = &mut input;
    if let (Some(_), Some(len)) = (driven, length) {
        if Collected::may_stay(len, limit) && arrived(r, input, len) {
            *rn.body.borrow_mut() = Body::Ready(Some(Collected::arrived(len)));
            return BeforeApplication::Run;
        }
    }
    let mut body = Collected::new(limit);
    let mut filled = match driven {
        Some(_) => fill_in_flight(r, input, &mut body),
        None => Ok(()),
    };
    let park = match driven {
        Some(n) if filled.is_ok() && !body.stopped() && PARKED.take() => Some(n),
        _ => None,
    };
    if park.is_none() && filled.is_ok() {
        filled = fill(r, input, &mut body, true);
    }
    if let Err(e) = filled {
        *rn.body.borrow_mut() = Body::Ready(None);
        return refused(r, e);
    }
    match park {
        Some(n) => {
            *rn.body.borrow_mut() = Body::Parked(body);
            n.waiting.set(r);
            n.handler.set(Some(handler));
            ffi::apr_pool_pre_cleanup_register((*r).pool, r.cast(), Some(parked_request_ends));
            BeforeApplication::Suspend
        }
        None => {
            *rn.body.borrow_mut() = Body::Ready(Some(body));
            BeforeApplication::Run
        }
    }
}

impl ConnNote {
    /// The brigade bodies are read through, made in the connection's pool when first needed.
    unsafe fn input(&self, c: *mut ffi::conn_rec) -> *mut ffi::apr_bucket_brigade {
        if self.input.get().is_null() {
            self.input.set(ffi::apr_brigade_create((*c).pool, (*c).bucket_alloc));
        }
        self.input.get()
    }
}

/// Reads `r`'s body into `body`: without waiting for more (`block` false), or to its end.
unsafe fn fill(
    r: *mut ffi::request_rec,
    input: &mut *mut ffi::apr_bucket_brigade,
    body: &mut Collected,
    block: bool,
) -> Result<(), BodyError> {
    body.fill(|buf| read_input(r, input, buf, block), |line| log_request(r, util::LOG_ERR, line))
}

/// How long a body that has not all come with its headers may take to come before the request
/// is parked: a fast client's rest is in flight (a 64 KiB POST over loopback or a LAN), and
/// waiting for it here costs less than the MPM's two hand-offs of a parked request.
const IN_FLIGHT: Duration = Duration::from_millis(2);

/// Reads what has come of `r`'s body, and what comes within [`IN_FLIGHT`].
unsafe fn fill_in_flight(
    r: *mut ffi::request_rec,
    input: &mut *mut ffi::apr_bucket_brigade,
    body: &mut Collected,
) -> Result<(), BodyError> {
    fill(r, input, body, false)?;
    let until = Instant::now() + IN_FLIGHT;
    while !body.stopped() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || !poll_client((*r).connection, libc::POLLIN, left.as_millis().max(1) as i32) {
            break;
        }
        fill(r, input, body, false)?;
    }
    Ok(())
}

/// How a body that failed on the way is answered; the reason is logged.
unsafe fn refused(r: *mut ffi::request_rec, e: BodyError) -> BeforeApplication {
    log_request(r, util::LOG_INFO, &format!("oxwsgi: {}; the application was not called", e.message));
    if (*r).eos_sent != 0 {
        // Apache's input filter sent its error response already (a bad chunk, LimitRequestBody).
        return BeforeApplication::Answered;
    }
    BeforeApplication::Refuse(u32::from(e.status.clamp(400, 599)))
}

/// The connection of a suspended request is readable again: read what came; once the body is
/// collected, run the handler and finish the request. (A connection that stays silent for
/// `Timeout` is closed by the MPM: see [`parked_request_ends`].)
unsafe fn resume(c: *mut ffi::conn_rec, n: &ConnNote, r: *mut ffi::request_rec) {
    let cs = (*c).cs;
    let sbh = (*c).sbh.cast::<ffi::ap_sb_handle_t>();
    ffi::ap_update_child_status(sbh, ffi::SERVER_BUSY_READ as i32, r);
    let rn = note_or_new(r);
    let mut body = match rn.body.replace(Body::Ready(None)) {
        Body::Parked(body) => body,
        _ => Collected::new(0),
    };
    let status = match fill(r, &mut n.input(c), &mut body, false) {
        Ok(()) if !body.stopped() => {
            *rn.body.borrow_mut() = Body::Parked(body);
            n.waiting.set(r);
            (*cs).state = CONN_STATE_ASYNC_WAITIO;
            return;
        }
        Ok(()) => {
            *rn.body.borrow_mut() = Body::Ready(Some(body));
            ffi::ap_update_child_status(sbh, ffi::SERVER_BUSY_WRITE as i32, r);
            if ffi::ap_extended_status != 0 {
                // Suspending stopped the request's clock on the thread that read it.
                ffi::ap_time_process_request(sbh, START_PREQUEST);
            }
            match n.handler.get().map(|handler| handler(r)) {
                Some(s) if s != ffi::DECLINED as i32 && s != ffi::SUSPENDED => s,
                _ => ffi::HTTP_INTERNAL_SERVER_ERROR as i32,
            }
        }
        Err(e) => match refused(r, e) {
            BeforeApplication::Refuse(status) => status as i32,
            _ => ffi::AP_FILTER_ERROR,
        },
    };
    // ap_process_async_request's end, as for a handler that returned `status`
    // (`ap_die_r(status, r, HTTP_OK)`: an error's ErrorDocument is not taken for a second one).
    if status != ffi::OK as i32 && status != ffi::DONE {
        (*r).status = ffi::HTTP_OK as i32;
    }
    ffi::ap_die(status, r);
    ffi::ap_process_request_after_handler(r);
}

/// The end of a request that waited in the MPM (its pool going). One whose body never came
/// whole (the client gave up, or sent nothing for `Timeout` seconds, and the MPM closed the
/// connection) is logged as Apache logs a request, with 408 (400 if the client went), since
/// nothing else does: no response went out.
unsafe extern "C" fn parked_request_ends(data: *mut std::ffi::c_void) -> ffi::apr_status_t {
    PARKED.give_back();
    let r = data as *mut ffi::request_rec;
    if note(r).is_some_and(|n| matches!(*n.body.borrow(), Body::Parked(_))) {
        let gone = (*(*r).connection).aborted != 0;
        (*r).status = if gone { ffi::HTTP_BAD_REQUEST } else { ffi::HTTP_REQUEST_TIME_OUT } as i32;
        ffi::ap_run_log_transaction(r);
        log_request(
            r,
            util::LOG_INFO,
            "oxwsgi: the connection closed before the request body had come (the client gave up, or sent nothing \
             for Timeout seconds); the application was not called",
        );
    }
    0
}
