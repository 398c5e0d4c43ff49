//! Reading a request's body from Apache's input filters ([`read_input`], blocking or not),
//! for the body collected before the application runs (`crate::collected_body`, driven by
//! `body_wait.rs`) and for `wsgi.input` past it (`ApacheBackend::read_body`).

use crate::collected_body::Chunk;
use crate::python::backend::BodyError;
use crate::spool::copy_to_uninit;
use crate::sys::ffi;
use std::mem::MaybeUninit;
use std::os::raw::c_char;
use std::ptr;

/// Reads the next bytes of `r`'s body into `buf` through its input filters, in `input` (the
/// request's brigade, made on the first call). Blocking reads never give [`Chunk::Again`].
///
/// # Safety
/// `r` must be a live request handled by this thread; `input` null or a brigade of its pool.
pub unsafe fn read_input(
    r: *mut ffi::request_rec,
    input: &mut *mut ffi::apr_bucket_brigade,
    buf: &mut [MaybeUninit<u8>],
    block: bool,
) -> Result<Chunk, BodyError> {
    let bb = brigade(r, input);
    if !block {
        send_continue(r);
    }
    let mode = if block { ffi::apr_read_type_e_APR_BLOCK_READ } else { ffi::apr_read_type_e_APR_NONBLOCK_READ };
    loop {
        let rv =
            ffi::ap_get_brigade((*r).input_filters, bb, ffi::ap_input_mode_t_AP_MODE_READBYTES, mode, buf.len() as i64);
        if !block && rv == libc::EAGAIN {
            ffi::apr_brigade_cleanup(bb as *mut _);
            return Ok(Chunk::Again);
        }
        if rv != 0 {
            ffi::apr_brigade_cleanup(bb as *mut _);
            let mut status = ffi::ap_map_http_request_error(rv, ffi::HTTP_BAD_REQUEST as i32);
            if !(400..600).contains(&status) {
                status = ffi::HTTP_BAD_REQUEST as i32;
            }
            return Err(BodyError {
                status: status as u16,
                message: format!("client sent a malformed or incomplete body (APR status {rv})"),
            });
        }
        let mut n = 0usize;
        let mut end = false;
        let mut b = ffi::oxwsgi_brigade_first(bb);
        while b != ffi::oxwsgi_brigade_sentinel(bb) {
            let mut err = 0;
            if ffi::oxwsgi_bucket_is_eos(b) != 0 {
                end = true;
                break;
            }
            if ffi::oxwsgi_bucket_is_error(b, &mut err) != 0 {
                ffi::apr_brigade_cleanup(bb as *mut _);
                return Err(BodyError { status: err as u16, message: "error while reading the request body".into() });
            }
            let mut data: *const c_char = ptr::null();
            let mut len: usize = 0;
            let rv = ffi::oxwsgi_bucket_read(b, &mut data, &mut len, 1);
            if rv != 0 {
                ffi::apr_brigade_cleanup(bb as *mut _);
                return Err(BodyError { status: 400, message: format!("request body read failed (APR status {rv})") });
            }
            let take = len.min(buf.len() - n);
            copy_to_uninit(&mut buf[n..], std::slice::from_raw_parts(data as *const u8, take));
            n += take;
            b = ffi::oxwsgi_bucket_next(b);
        }
        ffi::apr_brigade_cleanup(bb as *mut _);
        if n > 0 {
            return Ok(if end { Chunk::Last(n) } else { Chunk::Bytes(n) });
        }
        if end {
            return Ok(Chunk::End);
        }
        if !block {
            return Ok(Chunk::Again);
        }
    }
}

/// Whether the next `len` bytes of `r`'s body have all come: a non-blocking look through its
/// input filters (`AP_MODE_SPECULATIVE`), which consumes nothing; what they take from the
/// socket for it they keep for the reads that follow.
///
/// # Safety
/// As [`read_input`].
pub unsafe fn arrived(r: *mut ffi::request_rec, input: &mut *mut ffi::apr_bucket_brigade, len: u64) -> bool {
    let bb = brigade(r, input);
    let rv = ffi::ap_get_brigade(
        (*r).input_filters,
        bb,
        ffi::ap_input_mode_t_AP_MODE_SPECULATIVE,
        ffi::apr_read_type_e_APR_NONBLOCK_READ,
        len as ffi::apr_off_t,
    );
    let mut got: ffi::apr_off_t = 0;
    let whole = rv == 0 && ffi::apr_brigade_length(bb, 0, &mut got) == 0 && got >= 0 && got as u64 >= len;
    ffi::apr_brigade_cleanup(bb as *mut _);
    whole
}

/// `input`, made in `r`'s pool on the first call.
unsafe fn brigade(r: *mut ffi::request_rec, input: &mut *mut ffi::apr_bucket_brigade) -> *mut ffi::apr_bucket_brigade {
    if input.is_null() {
        *input = ffi::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc);
    }
    *input
}

/// `100 Continue` for a client that waits for it (`Expect: 100-continue`): Apache's input filter
/// sends it on a blocking read only.
unsafe fn send_continue(r: *mut ffi::request_rec) {
    let ok = (200..300).contains(&(*r).status);
    if (*r).expecting_100 != 0 && (*r).proto_num >= 1001 && ok && (*r).eos_sent == 0 && (*r).bytes_sent == 0 {
        let (status, line) = ((*r).status, (*r).status_line);
        (*r).status = ffi::HTTP_CONTINUE as i32;
        (*r).status_line = ptr::null();
        ffi::ap_send_interim_response(r, 0);
        (*r).expecting_100 = 0;
        ((*r).status, (*r).status_line) = (status, line);
    }
}
