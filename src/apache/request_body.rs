//! Request bodies, read from Apache's input filters: [`read_input`] (blocking or not) and the
//! body a request collects before its application runs ([`Collected`]: 64 KiB in memory, the
//! rest in a temporary file, `crate::spool`), up to `WSGIRequestSpoolSize` (embedded mode) or
//! `request-spool-size=` (daemon mode). How the collecting is driven (without a thread on the
//! event MPM) is in `body_wait.rs`; `ApacheBackend::read_body` hands the collected bytes to
//! the application, or to the daemon, before reading the client's.
//!
//! A body that fails on the way (the client gives up, `mod_reqtimeout`, `LimitRequestBody` on a
//! chunked body) is answered with its status before anything runs, so the application sees a
//! complete `wsgi.input` or is not called. Past the limit collecting stops, and the application
//! reads the rest from the client as in mod_wsgi.

use crate::python::backend::{copy_to_uninit, BodyError};
use crate::spool::Spool;
use crate::sys::ffi;
use std::mem::MaybeUninit;
use std::os::raw::c_char;
use std::ptr;

/// Bytes of a body kept in memory before the rest goes to the file.
const IN_MEMORY: usize = 64 << 10;

/// Bytes read from the client at a time.
const PIECE: usize = 64 << 10;

/// What one read of the body gave.
#[derive(Debug, PartialEq)]
pub enum Chunk {
    /// Bytes at the start of the buffer.
    Bytes(usize),
    /// The body has ended.
    End,
    /// Nothing yet (a non-blocking read): the client has not sent more.
    Again,
}

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
    if input.is_null() {
        *input = ffi::apr_brigade_create((*r).pool, (*(*r).connection).bucket_alloc);
    }
    let bb = *input;
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
            // An EOS behind the bytes is seen again by the next read.
            return Ok(Chunk::Bytes(n));
        }
        if end {
            return Ok(Chunk::End);
        }
        if !block {
            return Ok(Chunk::Again);
        }
    }
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

/// The part of a request's body collected before its application runs.
pub struct Collected {
    spool: Spool,
    /// A piece read from the client that the file could not take (a full disk): handed on after
    /// the spool's bytes, before the client's.
    held: Vec<u8>,
    /// The client's body ended within what was collected.
    complete: bool,
    /// Collecting has stopped: the body ended, the limit was reached, or the file failed.
    stopped: bool,
    /// The most bytes collected.
    limit: u64,
}

impl Collected {
    /// Nothing yet; at most `limit` bytes will be collected.
    pub fn new(limit: u64) -> Collected {
        Collected { spool: Spool::new(IN_MEMORY), held: Vec::new(), complete: false, stopped: limit == 0, limit }
    }

    /// Collecting has stopped: the application can run.
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// The body was collected whole or in part: the daemon can have its first piece with the
    /// request without making the client send it (`Expect: 100-continue`).
    pub fn any(&self) -> bool {
        self.complete || self.spool.len() > 0
    }

    /// Reads with `read` until the body ends, the limit is reached, or `read` has nothing more
    /// for now ([`Chunk::Again`]: call again when the client has sent more). A file that cannot
    /// be written stops collecting (logged with `log`); the application reads the rest from the
    /// client.
    pub fn fill(
        &mut self,
        mut read: impl FnMut(&mut [MaybeUninit<u8>]) -> Result<Chunk, BodyError>,
        log: impl FnOnce(&str),
    ) -> Result<(), BodyError> {
        // Read in place while the body fits in memory, through `buf` once it goes to the file.
        let mut buf: Vec<u8> = Vec::new();
        while !self.stopped {
            if self.spool.len() >= self.limit {
                self.stopped = true;
                break;
            }
            let max = (self.limit - self.spool.len()).min(PIECE as u64) as usize;
            // Memory grows with the body (from 8 KiB), so a parked upload that has sent little
            // holds little.
            let in_memory = max.min((self.spool.len() as usize).max(8 << 10));
            if let Some(room) = self.spool.memory_room(in_memory) {
                match read(room)? {
                    // SAFETY: read initialised the first n bytes of the room.
                    Chunk::Bytes(n) => unsafe { self.spool.filled(n) },
                    Chunk::End => self.end(),
                    Chunk::Again => return Ok(()),
                }
                continue;
            }
            buf.reserve(PIECE);
            match read(&mut buf.spare_capacity_mut()[..max])? {
                // SAFETY: read initialised the first n bytes of the spare capacity.
                Chunk::Bytes(n) => unsafe { buf.set_len(n) },
                Chunk::End => {
                    self.end();
                    break;
                }
                Chunk::Again => return Ok(()),
            }
            if let Err(e) = self.spool.append(&buf) {
                log(&format!(
                    "oxwsgi: cannot keep a request body in a temporary file ({e}); the application reads the rest \
                     from the client"
                ));
                self.held = std::mem::take(&mut buf);
                self.stopped = true;
                break;
            }
            buf.clear();
        }
        Ok(())
    }

    fn end(&mut self) {
        self.complete = true;
        self.stopped = true;
    }

    /// The next collected bytes into the start of `buf`: `Some(0)` at the end of a body
    /// collected whole, `None` once the client has the rest.
    pub fn read(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<Option<usize>, BodyError> {
        let n = self.spool.read(buf).map_err(|e| BodyError {
            status: 500,
            message: format!("cannot read the request body back from its temporary file: {e}"),
        })?;
        if n > 0 {
            return Ok(Some(n));
        }
        if !self.held.is_empty() {
            let n = self.held.len().min(buf.len());
            copy_to_uninit(buf, &self.held[..n]);
            self.held.drain(..n);
            return Ok(Some(n));
        }
        Ok(self.complete.then_some(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that sends `pieces`, with `None` for "nothing yet".
    fn client<'a>(
        pieces: &'a mut Vec<Option<&'static [u8]>>,
    ) -> impl FnMut(&mut [MaybeUninit<u8>]) -> Result<Chunk, BodyError> + 'a {
        move |buf| {
            if pieces.is_empty() {
                return Ok(Chunk::End);
            }
            match pieces[0] {
                None => {
                    pieces.remove(0);
                    Ok(Chunk::Again)
                }
                Some(data) => {
                    let n = data.len().min(buf.len());
                    copy_to_uninit(buf, &data[..n]);
                    if n == data.len() {
                        pieces.remove(0);
                    } else {
                        pieces[0] = Some(&data[n..]);
                    }
                    Ok(Chunk::Bytes(n))
                }
            }
        }
    }

    fn read_back(c: &mut Collected) -> (Vec<u8>, Option<usize>) {
        let mut out = Vec::new();
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 7];
        loop {
            match c.read(&mut buf).unwrap() {
                Some(0) => return (out, Some(0)),
                None => return (out, None),
                // SAFETY: read initialised the first n bytes.
                Some(n) => out.extend(buf[..n].iter().map(|b| unsafe { b.assume_init() })),
            }
        }
    }

    #[test]
    fn a_body_that_comes_in_pieces_is_collected_whole() {
        let mut pieces = vec![Some(&b"hello "[..]), None, Some(&b"world"[..]), None];
        let mut c = Collected::new(1 << 20);
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(!c.stopped() && c.any());
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(!c.stopped());
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(c.stopped());
        assert_eq!(read_back(&mut c), (b"hello world".to_vec(), Some(0)));
    }

    #[test]
    fn past_the_limit_the_rest_is_the_clients() {
        let mut pieces = vec![Some(&b"0123456789"[..])];
        let mut c = Collected::new(4);
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(c.stopped());
        assert_eq!(read_back(&mut c), (b"0123".to_vec(), None));
        assert_eq!(pieces, vec![Some(&b"456789"[..])], "not read from the client");
    }

    #[test]
    fn nothing_collected_with_a_limit_of_zero() {
        let mut c = Collected::new(0);
        assert!(c.stopped() && !c.any());
        c.fill(|_| panic!("not read"), |_| panic!()).unwrap();
        assert_eq!(read_back(&mut c), (Vec::new(), None));
    }

    #[test]
    fn an_error_on_the_way_is_the_callers() {
        let mut c = Collected::new(100);
        let e = c.fill(|_| Err(BodyError { status: 408, message: "slow".into() }), |_| ()).unwrap_err();
        assert_eq!(e.status, 408);
    }

    #[test]
    fn bodies_past_memory_go_to_the_file_and_come_back_in_order() {
        let data: &'static [u8] =
            Box::leak((0..300_000u32).map(|i| (i % 251) as u8).collect::<Vec<_>>().into_boxed_slice());
        let mut pieces = vec![Some(data)];
        let mut c = Collected::new(u64::MAX);
        c.fill(client(&mut pieces), |_| panic!()).unwrap();
        assert!(c.stopped());
        assert_eq!(read_back(&mut c), (data.to_vec(), Some(0)));
    }
}
