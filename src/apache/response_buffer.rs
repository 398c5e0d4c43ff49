//! Response buffering for slow clients, in both modes: the body a daemon sends is taken off its
//! socket as fast as the daemon produces it, and the body an embedded-mode application produces
//! is taken as fast as it produces it ([`Spooled`]), whatever the client's speed, so a slow
//! client holds neither a daemon thread nor (once the application is done) an Apache worker.
//!
//! While the client keeps up, body bytes go to Apache's output filters as they come. Once the
//! client falls behind (the socket stays unwritable for a moment while Apache's core output
//! filter holds unsent data, or before a small piece would be flushed, since a FLUSH is a
//! blocking write), they are appended to a temporary file (unlinked, `O_TMPFILE` in
//! the temporary directory) and each appended range is handed to Apache as a file bucket:
//! Apache sends it as the client reads, after the handler has returned (the event MPM's write
//! completion), and a file bucket never makes Apache's filters block. So the Apache child's
//! memory holds at most what Apache's core output filter sets aside (less than its
//! `FlushMaxThreshold`, 64 KiB by default: bytes are passed in smaller pieces, from the frame's
//! own buffer), the file at most `response-spool-size` (daemon mode) or `WSGIResponseSpoolSize`
//! (embedded mode); past that, writes block as in mod_wsgi.
//!
//! Only over plain HTTP. With mod_ssl on the connection, its output filter reads each file
//! bucket as soon as it is passed, encrypts it and hands memory to the core output filter, which
//! waits for the client once it holds more than `FlushMaxThreshold`: the thread passing the
//! file waits for a slow HTTPS client as before (in daemon mode the relay, and then the daemon
//! thread whose frames it no longer reads). See docs/operations.md, "HTTPS".

use super::response::{ApacheBackend, ApacheFile};
use crate::python::backend::{Backend, BodyError};
use crate::spool::{temp_file, write_at};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// How long a client that is behind gets to catch up before the body goes to the file (once
/// per response: after that the file is used whenever the client is behind).
const GRACE_MS: i32 = 50;

/// Bytes handed to Apache at a time while the client keeps up: less than Apache's
/// FlushMaxThreshold (64 KiB), so whatever its core filter cannot write at once it keeps
/// without waiting for the client.
const PIECE: usize = 48 * 1024;

/// Apache's core output filter writes at once (without a FLUSH) once it holds this much
/// (`THRESHOLD_MIN_WRITE`); less than this at the end of what the daemon has sent for now, or
/// of an application's write, is FLUSHed, or Apache would hold it back to coalesce it with more.
const MIN_WRITE: usize = 4096;

/// A last piece up to this much larger than [`PIECE`] goes with it in one pass (see
/// [`ResponseBuffer::piece`]).
const TAIL: usize = 16 * 1024;

pub struct ResponseBuffer {
    spool_limit: u64,
    /// The temporary file, and Apache's handle on it, through which every range is sent.
    spool: Option<(OwnedFd, ApacheFile)>,
    spooled: u64,
    /// The temporary file could not be made or written: not tried again for this response.
    no_spool: bool,
}

impl ResponseBuffer {
    pub fn new(spool_limit: u64) -> ResponseBuffer {
        ResponseBuffer { spool_limit, spool: None, spooled: 0, no_spool: spool_limit == 0 }
    }

    /// Sends `data` on to the client, or to the file if the client is behind. `push`: the
    /// daemon has nothing more queued right now, so what the client can take should go out.
    pub fn send(&mut self, backend: &mut ApacheBackend, data: &[u8], push: bool) -> io::Result<()> {
        if !self.can_spool(data.len()) {
            // No file to fall back on: the old way, Apache writes it before we go on.
            return backend.write_now(data);
        }
        let mut rest = data;
        while !rest.is_empty() {
            if self.behind(backend) {
                return self.spool(backend, rest);
            }
            let n = self.piece(backend, rest.len());
            if rest.len() == n && push && n < MIN_WRITE {
                // A FLUSH is a blocking write: only while the client's socket has room. With
                // nothing held by Apache the kernel may still have taken all it can (a client
                // that stopped reading a stream of small pieces); then the piece is spooled.
                if !self.room(backend) {
                    return self.spool(backend, rest);
                }
                backend.write(rest);
                return backend.flush();
            }
            // From the frame's own buffer: Apache copies only what it cannot write at once.
            backend.pass_transient(&rest[..n])?;
            rest = &rest[n..];
        }
        Ok(())
    }

    /// How much of `left` bytes to hand Apache in one pass: [`PIECE`], or all of them when they
    /// are at most [`TAIL`] more, Apache holds nothing unsent and the client's socket has room
    /// (the kernel takes part at once, so what Apache sets aside stays under its
    /// `FlushMaxThreshold`): a 64 KiB body goes in one write, not two. Larger bodies go
    /// [`PIECE`] by [`PIECE`], each taken by the kernel or set aside by Apache before the next
    /// is passed, so that a client that stops reading never makes Apache's filters block.
    fn piece(&self, backend: &ApacheBackend, left: usize) -> usize {
        if left > PIECE && left <= PIECE + TAIL && !backend.output_pending() && backend.client_writable(0) {
            return left;
        }
        left.min(PIECE)
    }

    fn can_spool(&self, len: usize) -> bool {
        !self.no_spool && self.spooled + len as u64 <= self.spool_limit
    }

    /// Apache's core output filter holds unsent bytes and the client's socket has no room.
    /// Nothing held: Apache's next non-blocking write can only set aside what the kernel does
    /// not take, and no poll is needed (a FLUSH, which blocks, checks [`Self::room`] itself).
    fn behind(&self, backend: &ApacheBackend) -> bool {
        backend.output_pending() && !self.room(backend)
    }

    /// The client's socket has room to write (after a short grace, until the file is in use).
    fn room(&self, backend: &ApacheBackend) -> bool {
        backend.client_writable(if self.spool.is_some() { 0 } else { GRACE_MS })
    }

    fn spool(&mut self, backend: &mut ApacheBackend, data: &[u8]) -> io::Result<()> {
        if self.spool.is_none() {
            let made = temp_file().and_then(|fd| Ok((backend.shared_file(fd.as_raw_fd())?, fd)));
            match made {
                Ok((apache, fd)) => self.spool = Some((fd, apache)),
                Err(e) => {
                    backend
                        .log_error(&format!("oxwsgi: cannot make a temporary file for a slow client's response: {e}"));
                    self.no_spool = true;
                    return backend.write_now(data);
                }
            }
        }
        let (file, apache) = self.spool.as_ref().expect("just made");
        let offset = self.spooled;
        let done = data.len();
        if let Err((done, e)) = write_at(file, data, offset) {
            // A full disk: what was not written goes the old way.
            backend.log_error(&format!("oxwsgi: cannot spool a slow client's response: {e}"));
            self.no_spool = true;
            if done > 0 {
                backend.send_shared(apache, offset, done as u64)?;
            }
            return backend.write_now(&data[done..]);
        }
        self.spooled += done as u64;
        backend.send_shared(apache, offset, done as u64)?;
        backend.pass_pending()
    }
}

/// Embedded mode's [`Backend`]: the request's [`ApacheBackend`], with the body the application
/// produces going through a [`ResponseBuffer`], as a daemon's does in the relay. What a slow
/// client cannot take yet goes to the file, so the application finishes at its own pace and
/// the event MPM's write completion sends the rest after the handler has returned.
pub struct Spooled {
    backend: ApacheBackend,
    buffer: ResponseBuffer,
    /// What `write` buffered, sent on `flush`.
    pending: Vec<u8>,
}

impl Spooled {
    pub fn new(backend: ApacheBackend, spool_limit: u64) -> Spooled {
        Spooled { backend, buffer: ResponseBuffer::new(spool_limit), pending: Vec::new() }
    }

    fn send_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let sent = self.buffer.send(&mut self.backend, &self.pending, true);
        self.pending.clear();
        sent
    }
}

impl Backend for Spooled {
    fn read_body(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, BodyError> {
        self.backend.read_body(buf)
    }

    fn body_in_memory(&self, want: u64) -> bool {
        self.backend.body_in_memory(want)
    }

    fn start(&mut self, status: u16, status_line: &str, headers: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
        self.backend.start(status, status_line, headers)
    }

    fn write(&mut self, data: &[u8]) {
        self.pending.extend_from_slice(data);
    }

    fn buffered(&self) -> usize {
        self.pending.len()
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_pending()
    }

    fn write_now(&mut self, data: &[u8]) -> io::Result<()> {
        self.send_pending()?;
        self.buffer.send(&mut self.backend, data, true)
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
        self.send_pending()?;
        self.backend.send_file(fd, offset, len)
    }

    fn finish(&mut self) -> io::Result<()> {
        self.send_pending()?;
        self.backend.finish()
    }

    fn abort(&mut self) {
        let _ = self.send_pending();
        self.backend.abort()
    }

    fn log(&mut self, level: u8, msg: &str) {
        self.backend.log(level, msg)
    }
}
