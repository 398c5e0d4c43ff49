//! The response sink both modes share: a request's input and output filter chains, seen as the
//! WSGI adapter's [`Backend`]. Neither mode's handler owns it (`request` runs the app here,
//! `relay` copies a daemon's response into it).

use super::request_body::read_input;
use super::xsendfile::{self, Replacement};
use crate::collected_body::{Chunk, Collected};
use crate::python::backend::{Backend, BodyError};
use crate::sys::ffi;
use crate::sys::util::{log_request, pstr};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, RawFd};
use std::os::raw::c_char;
use std::ptr;

/// The [`Backend`] of a request Apache is serving: its input and output filter chains. Embedded
/// mode's adapter writes to it directly; daemon mode's relay writes what the daemon sends.
pub struct ApacheBackend {
    r: *mut ffi::request_rec,
    /// The response head has been handed to Apache.
    pub started: bool,
    out: *mut ffi::apr_bucket_brigade,
    input: *mut ffi::apr_bucket_brigade,
    buffered: usize,
    input_eos: bool,
    /// A file was handed to Apache (see `finish`).
    sent_file: bool,
    /// X-Sendfile: the body is this file, or a refusal, instead of what the application writes.
    replacement: Option<Replacement>,
    /// Counts the body bytes read for the metrics (None: a request they do not count).
    mark: Option<&'static super::metrics::Mark>,
    /// Files are marked for sendfile(2), so Apache's core filter can keep them aside and
    /// leave a slow client to write completion; with `WSGIEnableSendfile Off` (as mod_wsgi's
    /// default) Apache maps and writes them from memory, which holds the worker thread while a
    /// client is slow but is faster on a fast link.
    sendfile: bool,
    /// The part of the body collected before the application ran (`request_body`), read
    /// before the client's.
    collected: Option<Collected>,
}

impl ApacheBackend {
    pub unsafe fn new(r: *mut ffi::request_rec) -> ApacheBackend {
        let c = (*r).connection;
        ApacheBackend {
            r,
            started: false,
            out: ffi::apr_brigade_create((*r).pool, (*c).bucket_alloc),
            input: ptr::null_mut(),
            buffered: 0,
            input_eos: false,
            sent_file: false,
            replacement: None,
            mark: super::metrics::mark_of(r),
            sendfile: super::conf::dir_conf(r).enable_sendfile != Some(false),
            collected: super::request_note::note(r).and_then(|n| n.take_collected()),
        }
    }

    /// Some of the body was collected before the application ran, or all of it.
    pub fn body_collected(&self) -> bool {
        self.collected.as_ref().is_some_and(Collected::any)
    }

    /// Passes what is in the output brigade down the request's filters.
    unsafe fn pass(&mut self) -> io::Result<()> {
        self.pass_to((*self.r).output_filters)
    }

    /// Passes what is in the output brigade on, without asking Apache to write it out now.
    pub fn pass_pending(&mut self) -> io::Result<()> {
        unsafe { self.pass() }
    }

    /// Passes `data` on from the caller's memory, without asking Apache to write it out now
    /// (what Apache keeps, it copies before this returns).
    pub fn pass_transient(&mut self, data: &[u8]) -> io::Result<()> {
        self.pass_memory(data, false)
    }

    /// A transient bucket pointing at `data`, then (with `flush`) a FLUSH bucket that makes
    /// Apache write it out (or copy it, in a filter that sets data aside) before this returns.
    fn pass_memory(&mut self, data: &[u8], flush: bool) -> io::Result<()> {
        if self.replacement.is_some() {
            return Ok(());
        }
        unsafe {
            let c = (*self.r).connection;
            let b = ffi::apr_bucket_transient_create(data.as_ptr() as *const c_char, data.len(), (*c).bucket_alloc);
            ffi::oxwsgi_brigade_append(self.out, b);
            if flush {
                ffi::oxwsgi_brigade_append(self.out, ffi::oxwsgi_bucket_flush_create((*c).bucket_alloc));
            }
            self.pass()
        }
    }

    /// Apache's core output filter holds bytes the client has not taken yet.
    pub fn output_pending(&self) -> bool {
        unsafe { (*(*self.r).connection).data_in_output_filters != 0 }
    }

    /// Whether the client's socket has room to write, waiting up to `ms` milliseconds.
    pub fn client_writable(&self, ms: i32) -> bool {
        unsafe { poll_client((*self.r).connection, libc::POLLOUT, ms) }
    }

    pub fn log_error(&self, msg: &str) {
        log_request(self.r, crate::sys::util::LOG_ERR, msg);
    }

    unsafe fn pass_to(&mut self, filters: *mut ffi::ap_filter_t) -> io::Result<()> {
        let rv = ffi::ap_pass_brigade(filters, self.out);
        ffi::apr_brigade_cleanup(self.out as *mut _);
        self.buffered = 0;
        if rv != 0 || (*(*self.r).connection).aborted != 0 {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "client connection closed"));
        }
        Ok(())
    }

    /// Hands `len` bytes of the open file `fd` from `offset` to Apache as a file bucket.
    fn insert_file(&mut self, fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
        // SAFETY: the request is live; its pool outlives the bucket.
        let file = unsafe { self.apache_file(fd, (*self.r).pool)? };
        self.insert(&file, offset, len);
        Ok(())
    }

    /// A file that several ranges of the response are sent from (a slow client's spool file):
    /// one descriptor and one `apr_file_t` for all of them, however many pieces are spooled.
    pub fn shared_file(&self, fd: RawFd) -> io::Result<ApacheFile> {
        // In the connection's pool: Apache's core output filter sets a file bucket it cannot
        // send yet aside into a pool of the connection, and moves an `apr_file_t` from any
        // other pool (`apr_file_setaside`, which leaves the original unusable for the next
        // range); from the connection's pool it stays where it is. The descriptor is still
        // closed with the request.
        unsafe { self.apache_file(fd, (*(*self.r).connection).pool) }
    }

    /// Hands `len` bytes of `file` from `offset` to Apache as a file bucket.
    pub fn send_shared(&mut self, file: &ApacheFile, offset: u64, len: u64) -> io::Result<()> {
        if self.replacement.is_none() {
            self.insert(file, offset, len);
        }
        Ok(())
    }

    fn insert(&mut self, file: &ApacheFile, offset: u64, len: u64) {
        unsafe {
            ffi::apr_brigade_insert_file(self.out, file.0, offset as i64, len as i64, (*self.r).pool);
        }
        self.sent_file = true;
    }

    /// Our own descriptor for the file `fd`, closed with the request pool (which lives until
    /// the response has been written): the application may close its file object as soon as
    /// we return. A duplicate, not a reopen, so a file only a daemon's user may open can still
    /// be sent by Apache. Its `apr_file_t` is made in `pool`.
    unsafe fn apache_file(&self, fd: RawFd, pool: *mut ffi::apr_pool_t) -> io::Result<ApacheFile> {
        let own = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0);
        if own < 0 {
            return Err(io::Error::last_os_error());
        }
        unsafe extern "C" fn close_fd(data: *mut std::ffi::c_void) -> ffi::apr_status_t {
            libc::close(data as usize as i32);
            0
        }
        ffi::apr_pool_cleanup_register(
            (*self.r).pool,
            own as usize as *const std::ffi::c_void,
            Some(close_fd),
            Some(ffi::apr_pool_cleanup_null),
        );
        let mut file: *mut ffi::apr_file_t = ptr::null_mut();
        let mut os_fd = own;
        let rv = ffi::apr_os_file_put(
            &mut file,
            &mut os_fd,
            (ffi::APR_FOPEN_READ | if self.sendfile { ffi::APR_FOPEN_SENDFILE_ENABLED } else { 0 }) as i32,
            pool,
        );
        if rv != 0 {
            return Err(io::Error::other(format!("cannot hand the file to Apache (APR status {rv})")));
        }
        Ok(ApacheFile(file))
    }

    fn finish_body(&mut self) -> io::Result<()> {
        unsafe {
            let c = (*self.r).connection;
            ffi::oxwsgi_brigade_append(self.out, ffi::oxwsgi_bucket_eos_create((*c).bucket_alloc));
            self.pass()?;
            // A file, or anything a slow client has not taken yet, is left to Apache: its core
            // output filter keeps it, and the event MPM finishes the transfer (write
            // completion) without this thread, so a slow client holds no worker thread.
            if self.sent_file || self.output_pending() {
                return Ok(());
            }
            // Write the response out now rather than after the handler returns. Apache checks
            // for the client's next keep-alive request right after the handler; a small
            // response still held in the core output filter at that point cannot have been
            // answered yet, so the check always fails and the connection goes back through
            // the MPM's listener (two epoll_ctl calls and two thread handoffs per request).
            // Written first, the next request is often already there and this worker serves
            // it at once, as Apache does for static files. Only the connection's filters see
            // this FLUSH, as with the one Apache sends itself, so no content filter (deflate)
            // is made to flush mid-stream.
            ffi::oxwsgi_brigade_append(self.out, ffi::oxwsgi_bucket_flush_create((*c).bucket_alloc));
            self.pass_to((*c).output_filters)
        }
    }
}

impl Backend for ApacheBackend {
    fn read_body(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, BodyError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let collected = self.collected.as_mut().map(|c| c.read(buf)).transpose().map_err(|e| BodyError {
            status: 500,
            message: format!("cannot read the request body back from its temporary file: {e}"),
        })?;
        let n = match collected.flatten() {
            Some(n) => n,
            None if self.input_eos => 0,
            None => {
                // SAFETY: the request is live while its backend is.
                let n = match unsafe { read_input(self.r, &mut self.input, buf, true) }? {
                    Chunk::Bytes(n) => n,
                    Chunk::Last(n) => {
                        self.input_eos = true;
                        n
                    }
                    Chunk::End | Chunk::Again => {
                        self.input_eos = true;
                        0
                    }
                };
                if let Some(c) = &mut self.collected {
                    c.read_from_client(n);
                }
                n
            }
        };
        if let Some(mark) = self.mark {
            mark.read.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(n)
    }

    fn body_in_memory(&self, want: u64) -> bool {
        self.collected.as_ref().is_some_and(|c| c.in_memory(want))
    }

    fn start(&mut self, status: u16, status_line: &str, headers: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
        unsafe {
            let r = self.r;
            let pool = (*r).pool;
            self.started = true;
            self.replacement = xsendfile::replacement(r, status, headers);
            if let Some(Replacement::Refused(why)) = &self.replacement {
                log_request(r, crate::sys::util::LOG_ERR, &format!("oxwsgi: refusing the response: {why}"));
                (*r).status = 500;
                (*r).status_line = pstr(pool, b"500 Internal Server Error");
                ffi::ap_set_content_type(r, pstr(pool, b"text/plain"));
                return Ok(());
            }
            if let Some(Replacement::File(_, size)) = &self.replacement {
                ffi::apr_table_setn(
                    (*r).headers_out,
                    c"Content-Length".as_ptr(),
                    pstr(pool, size.to_string().as_bytes()),
                );
            }
            (*r).status = status as i32;
            (*r).status_line = pstr(pool, status_line.as_bytes());
            for (name, value) in headers {
                if self.replacement.is_some()
                    && (crate::xsendfile::is_header(name) || name.eq_ignore_ascii_case(b"content-length"))
                {
                    continue;
                }
                if name.eq_ignore_ascii_case(b"content-type") {
                    ffi::ap_set_content_type(r, pstr(pool, value));
                } else {
                    ffi::apr_table_addn((*r).headers_out, pstr(pool, name), pstr(pool, value));
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, data: &[u8]) {
        if self.replacement.is_some() {
            return;
        }
        unsafe {
            ffi::apr_brigade_write(self.out, None, ptr::null_mut(), data.as_ptr() as *const c_char, data.len());
        }
        self.buffered += data.len();
    }

    fn buffered(&self) -> usize {
        self.buffered
    }

    fn flush(&mut self) -> io::Result<()> {
        unsafe {
            let c = (*self.r).connection;
            ffi::oxwsgi_brigade_append(self.out, ffi::oxwsgi_bucket_flush_create((*c).bucket_alloc));
            self.pass()
        }
    }

    fn write_now(&mut self, data: &[u8]) -> io::Result<()> {
        self.pass_memory(data, true)
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
        if self.replacement.is_some() {
            return Ok(());
        }
        self.insert_file(fd, offset, len)
    }

    fn finish(&mut self) -> io::Result<()> {
        match self.replacement.take() {
            Some(Replacement::File(file, size)) => self.insert_file(file.as_raw_fd(), 0, size)?,
            Some(Replacement::Refused(_)) => {
                let body = b"500 Internal Server Error\n";
                unsafe {
                    ffi::apr_brigade_write(self.out, None, ptr::null_mut(), body.as_ptr() as *const c_char, body.len());
                }
            }
            None => {}
        }
        self.finish_body()
    }

    fn abort(&mut self) {
        unsafe {
            // What was produced still reaches the client (a partial response says more than
            // none), then the connection is dropped so it cannot pass for a complete one.
            // (Also what Apache's core filter holds back: it would be dropped with the
            // connection.)
            let _ = self.flush();
            let c = (*self.r).connection;
            (*c).keepalive = ffi::ap_conn_keepalive_e_AP_CONN_CLOSE;
            (*c).aborted = 1;
        }
    }

    fn log(&mut self, level: u8, msg: &str) {
        log_request(self.r, level, msg);
    }
}

/// A file Apache sends ranges of the response from: our duplicate of its descriptor (closed
/// with the request), as an `apr_file_t` (see [`ApacheBackend::shared_file`]). Only good for
/// the request it was made for.
pub struct ApacheFile(*mut ffi::apr_file_t);

/// Whether the client's socket is ready for `events` (`POLLIN`, `POLLOUT`), waiting up to `ms`
/// milliseconds; true where there is no socket to ask.
///
/// # Safety
/// `c` must be a live connection handled by this thread.
pub unsafe fn poll_client(c: *mut ffi::conn_rec, events: i16, ms: i32) -> bool {
    let sock = ffi::ap_get_conn_socket(c);
    let mut fd: ffi::apr_os_sock_t = -1;
    if sock.is_null() || ffi::apr_os_sock_get(&mut fd, sock) != 0 {
        return true;
    }
    let mut p = libc::pollfd { fd, events, revents: 0 };
    libc::poll(&mut p, 1, ms) == 1
}

/// `response-socket-timeout=`: the timeout of writes to the client for the rest of this
/// request (Apache's `Timeout` again when dropped, for the connection's next request).
pub struct ClientTimeout {
    sock: *mut ffi::apr_socket_t,
    old: ffi::apr_interval_time_t,
}

impl ClientTimeout {
    pub unsafe fn set(r: *mut ffi::request_rec, t: std::time::Duration) -> ClientTimeout {
        let sock = ffi::ap_get_conn_socket((*r).connection);
        let mut old = 0;
        if !sock.is_null() {
            ffi::apr_socket_timeout_get(sock, &mut old);
            ffi::apr_socket_timeout_set(sock, t.as_micros() as ffi::apr_interval_time_t);
        }
        ClientTimeout { sock, old }
    }
}

impl Drop for ClientTimeout {
    fn drop(&mut self) {
        if !self.sock.is_null() {
            unsafe { ffi::apr_socket_timeout_set(self.sock, self.old) };
        }
    }
}
