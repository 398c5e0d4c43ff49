//! Daemon mode's request bodies: the Apache child collects a request's body (64 KiB in memory,
//! the rest in a temporary file, `crate::spool`) before it sends the request to the group, so a
//! slow upload holds an Apache worker thread, never a daemon thread. The daemon still asks for
//! the body with READ frames, as before; they are answered from what was collected.
//!
//! A body that fails on the way (the client gives up, `mod_reqtimeout`, `LimitRequestBody` on a
//! chunked body) is answered with its status before the request is sent, so the application
//! sees a complete `wsgi.input` or is not called. Past `request-spool-size` bytes collecting
//! stops, and the application reads the rest from the client as in mod_wsgi.

use super::response::ApacheBackend;
use crate::python::backend::{copy_to_uninit, Backend, BodyError};
use crate::spool::Spool;
use std::mem::MaybeUninit;

/// Bytes of a body kept in memory before the rest goes to the file.
const IN_MEMORY: usize = 64 << 10;

/// Bytes read from the client at a time.
const PIECE: usize = 64 << 10;

/// A request's body as the relay hands it to the daemon: what was collected, then the client's.
pub struct RequestBody {
    spool: Spool,
    /// A piece read from the client that the file could not take (a full disk): sent after the
    /// spool's bytes, before the client's.
    held: Vec<u8>,
    /// The client's body ended within what was collected.
    complete: bool,
}

impl RequestBody {
    /// Nothing collected: every read goes to the client.
    pub fn streamed() -> RequestBody {
        RequestBody { spool: Spool::new(0), held: Vec::new(), complete: false }
    }

    /// Reads the client's body until it ends or `limit` bytes have come.
    pub fn collect(backend: &mut ApacheBackend, limit: u64) -> Result<RequestBody, BodyError> {
        let mut body = RequestBody { spool: Spool::new(IN_MEMORY), held: Vec::new(), complete: false };
        // Read in place while the body fits in memory, through `buf` once it goes to the file.
        let mut buf: Vec<u8> = Vec::new();
        while body.spool.len() < limit {
            let max = (limit - body.spool.len()).min(PIECE as u64) as usize;
            if let Some(room) = body.spool.memory_room(max) {
                let n = backend.read_body(room)?;
                // SAFETY: read_body initialised the first n bytes of the room.
                unsafe { body.spool.filled(n) };
                if n == 0 {
                    body.complete = true;
                    break;
                }
                continue;
            }
            buf.reserve(PIECE);
            let n = backend.read_body(&mut buf.spare_capacity_mut()[..max])?;
            if n == 0 {
                body.complete = true;
                break;
            }
            // SAFETY: read_body initialised the first n bytes of the spare capacity.
            unsafe { buf.set_len(n) };
            if let Err(e) = body.spool.append(&buf) {
                backend.log_error(&format!(
                    "oxwsgi: cannot keep a request body in a temporary file ({e}); the application reads the rest \
                     from the client"
                ));
                body.held = buf;
                break;
            }
            buf.clear();
        }
        Ok(body)
    }

    /// The client's body was collected whole or in part: the daemon can have its first piece
    /// with the request without making the client send it (`Expect: 100-continue`).
    pub fn collected(&self) -> bool {
        self.complete || self.spool.len() > 0
    }

    /// The next bytes of the body into the start of `buf`; `Ok(0)` at its end.
    pub fn read(&mut self, backend: &mut ApacheBackend, buf: &mut [MaybeUninit<u8>]) -> Result<usize, BodyError> {
        let n = self.spool.read(buf).map_err(|e| BodyError {
            status: 500,
            message: format!("cannot read the request body back from its temporary file: {e}"),
        })?;
        if n > 0 {
            return Ok(n);
        }
        if !self.held.is_empty() {
            let n = self.held.len().min(buf.len());
            copy_to_uninit(buf, &self.held[..n]);
            self.held.drain(..n);
            return Ok(n);
        }
        if self.complete {
            return Ok(0);
        }
        backend.read_body(buf)
    }
}
