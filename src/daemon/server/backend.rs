//! Daemon mode's [`Backend`]: the WSGI adapter's output becomes frames to the Apache child over
//! the group's socket, and the request body arrives as frames from it.

use super::conn::Writer;
use super::shared::Shared;
use crate::daemon::protocol::{self, Frame, FrameReader, MAX_DATA};
use crate::python::backend::{Backend, BodyError};
use crate::spool::copy_to_uninit;
use crate::sys::util::log_server;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::ptr;
use std::sync::Arc;

pub(super) struct DaemonBackend {
    pub(super) shared: Arc<Shared>,
    pub(super) writer: Arc<Writer>,
    pub(super) reader: FrameReader<UnixStream>,
    pub(super) out: Vec<u8>,
    pub(super) buffered: usize,
    /// `out` holds the START frame.
    pub(super) starts: bool,
    pub(super) pending: Vec<u8>,
    pub(super) pending_pos: usize,
    pub(super) body_done: bool,
    pub(super) body_error: Option<BodyError>,
    /// The response ended with END: Apache may send another request on this connection.
    pub(super) reusable: bool,
    /// REMOTE_ADDR:REMOTE_PORT, for the error log.
    pub(super) client: String,
}

impl DaemonBackend {
    /// Reads Apache's reply to an (implicit or explicit) READ. False if the connection broke.
    pub(super) fn receive_body(&mut self) -> bool {
        match self.reader.read_frame() {
            Ok(Frame::Body(data)) => {
                let used = std::mem::replace(&mut self.pending, data);
                self.reader.recycle(used);
                self.pending_pos = 0;
                true
            }
            Ok(Frame::BodyEnd) => {
                self.body_done = true;
                true
            }
            Ok(Frame::BodyError { status }) => {
                self.body_error =
                    Some(BodyError { status, message: "the client's request body could not be read".into() });
                true
            }
            _ => {
                self.body_error = Some(BodyError {
                    status: 400,
                    message: "connection to Apache broken while reading the body".into(),
                });
                false
            }
        }
    }

    pub(super) fn send_error(&mut self, status: u16, message: &str) -> bool {
        let _ = protocol::encode_frame(&Frame::error(status.clamp(400, 599), message), &mut self.out);
        self.flush().is_ok()
    }
}

impl Backend for DaemonBackend {
    fn read_body(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, BodyError> {
        loop {
            if self.pending_pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pending_pos);
                copy_to_uninit(buf, &self.pending[self.pending_pos..self.pending_pos + n]);
                self.pending_pos += n;
                return Ok(n);
            }
            if let Some(e) = &self.body_error {
                return Err(e.clone());
            }
            if self.body_done || buf.is_empty() {
                return Ok(0);
            }
            let max = buf.len().min(MAX_DATA) as u32;
            let _ = protocol::encode_frame(&Frame::Read { max }, &mut self.out);
            if self.flush().is_err() || !self.receive_body() {
                return Err(self
                    .body_error
                    .clone()
                    .unwrap_or(BodyError { status: 400, message: "connection to Apache broken".into() }));
            }
        }
    }

    fn start(&mut self, status: u16, status_line: &str, headers: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String> {
        let reason = status_line.get(4..).unwrap_or("").as_bytes();
        protocol::encode_start(status, reason, headers, &mut self.out).map_err(|e| e.to_string())?;
        self.starts = true;
        Ok(())
    }

    fn write(&mut self, data: &[u8]) {
        protocol::encode_data(data, &mut self.out);
        self.buffered += data.len();
    }

    fn write_now(&mut self, data: &[u8]) -> io::Result<()> {
        self.flush()?;
        let mut st = self.writer.state.lock().unwrap();
        if st.taken_over {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "taken over"));
        }
        st.greeted = true;
        protocol::write_data(&mut st.stream, data).map_err(io::Error::other)
    }

    fn buffered(&self) -> usize {
        self.buffered
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = if self.out.is_empty() { Ok(()) } else { self.writer.write(&self.out, self.starts) };
        self.out.clear();
        self.buffered = 0;
        r
    }

    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> io::Result<()> {
        self.flush()?;
        let st = self.writer.state.lock().unwrap();
        if st.taken_over {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "taken over"));
        }
        let file = unsafe { BorrowedFd::borrow_raw(fd) };
        protocol::send_frame_with_fd(&st.stream, &Frame::SendFile { offset, length: len }, file)
            .map_err(io::Error::other)
    }

    fn finish(&mut self) -> io::Result<()> {
        // A stopping process ends the connection with the response (END_CLOSE).
        let reusable = !self.shared.stopping();
        let _ = protocol::encode_frame(if reusable { &Frame::End } else { &Frame::EndClose }, &mut self.out);
        self.flush()?;
        self.reusable = reusable;
        Ok(())
    }

    fn abort(&mut self) {
        let _ =
            protocol::encode_frame(&Frame::abort("the application failed after the response started"), &mut self.out);
        let _ = self.flush();
    }

    fn log(&mut self, level: u8, msg: &str) {
        // As mod_wsgi's daemon lines do, name the client the request came from.
        log_server(ptr::null(), level, &format!("[remote {}] {msg}", self.client));
    }
}
