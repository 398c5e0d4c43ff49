//! Daemon mode's response buffering: the body a daemon sends is taken off its socket as fast as
//! the daemon produces it, whatever the client's speed, so a slow client never holds a daemon
//! thread.
//!
//! While the client keeps up, body bytes go to Apache's output filters as they come. Once the
//! client falls behind (Apache's core output filter holds unsent data and the socket stays
//! unwritable for a moment), they are appended to a temporary file (unlinked, `O_TMPFILE` in
//! the temporary directory) and each appended range is handed to Apache as a file bucket:
//! Apache sends it as the client reads, after the handler has returned (the event MPM's write
//! completion), and a file bucket never makes Apache's filters block. So the Apache child's
//! memory holds at most `response-buffer-size` bytes of a response (Apache's own set-aside
//! data), the file at most `response-spool-size`; past that, writes block as in mod_wsgi.

use super::response::ApacheBackend;
use crate::python::backend::Backend;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// How long a client that is behind gets to catch up before the body goes to the file (once
/// per response: after that the file is used whenever the client is behind).
const GRACE_MS: i32 = 10;

pub struct ResponseBuffer {
    piece: usize,
    spool_limit: u64,
    spool: Option<OwnedFd>,
    spooled: u64,
    /// The temporary file could not be made: do not try again for this response.
    no_spool: bool,
}

impl ResponseBuffer {
    pub fn new(piece: u64, spool_limit: u64) -> ResponseBuffer {
        ResponseBuffer { piece: piece.clamp(4096, 1 << 30) as usize, spool_limit, spool: None, spooled: 0, no_spool: false }
    }

    /// Sends `data` on to the client, or to the file if the client is behind. `push`: the
    /// daemon has nothing more queued right now, so what the client can take should go out.
    pub fn send(&mut self, backend: &mut ApacheBackend, data: &[u8], push: bool) -> io::Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            if self.can_spool(rest.len()) && self.behind(backend) {
                return self.spool(backend, rest);
            }
            let n = rest.len().min(self.piece);
            backend.write(&rest[..n]);
            rest = &rest[n..];
            if !self.can_spool(rest.len().max(1)) {
                // No file to fall back on: the old way, Apache writes it before we go on.
                backend.flush()?;
            } else if rest.is_empty() && push && n <= 16 * 1024 && !self.behind_now(backend) {
                // The end of what the daemon has sent for now, to a client that keeps up:
                // small enough to go out at once (Apache would hold a few bytes back).
                backend.flush()?;
            } else {
                backend.pass_pending()?;
            }
        }
        Ok(())
    }

    fn can_spool(&self, len: usize) -> bool {
        !self.no_spool && self.spooled + len as u64 <= self.spool_limit
    }

    /// The client's socket has no room right now (a FLUSH would wait for the client).
    fn behind_now(&self, backend: &ApacheBackend) -> bool {
        !backend.client_writable(0)
    }

    /// Whether the client is behind: Apache holds bytes it could not write (not only the few
    /// it keeps back to coalesce small writes) and the socket stays full, for a short grace
    /// the first time.
    fn behind(&self, backend: &ApacheBackend) -> bool {
        backend.output_pending() && !backend.client_writable(if self.spool.is_some() { 0 } else { GRACE_MS })
    }

    fn spool(&mut self, backend: &mut ApacheBackend, data: &[u8]) -> io::Result<()> {
        if self.spool.is_none() {
            match temp_file() {
                Ok(fd) => self.spool = Some(fd),
                Err(e) => {
                    backend.log_error(&format!("oxwsgi: cannot make a temporary file for a slow client's response: {e}"));
                    self.no_spool = true;
                    backend.write(data);
                    return backend.flush();
                }
            }
        }
        let fd = self.spool.as_ref().expect("just made").as_raw_fd();
        let offset = self.spooled;
        let mut done = 0;
        while done < data.len() {
            let n = unsafe {
                libc::pwrite(fd, data[done..].as_ptr().cast(), data.len() - done, (offset + done as u64) as libc::off_t)
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // A full disk: what was not written goes the old way.
                backend.log_error(&format!("oxwsgi: cannot spool a slow client's response: {e}"));
                self.no_spool = true;
                if done > 0 {
                    backend.send_file(fd, offset, done as u64)?;
                }
                backend.write(&data[done..]);
                return backend.flush();
            }
            done += n as usize;
        }
        self.spooled += done as u64;
        backend.send_file(fd, offset, done as u64)?;
        backend.pass_pending()
    }
}

/// An unlinked temporary file.
fn temp_file() -> io::Result<OwnedFd> {
    let dir = std::ffi::CString::new(std::env::temp_dir().into_os_string().into_encoded_bytes())
        .map_err(|_| io::Error::other("temporary directory name has a NUL"))?;
    let fd = unsafe { libc::open(dir.as_ptr(), libc::O_TMPFILE | libc::O_RDWR | libc::O_CLOEXEC, 0o600) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
