//! Where a request's input comes from and its response goes: the one interface between the WSGI
//! adapter and a host (embedded mode writes into Apache's filters, a daemon process into frames
//! to the Apache child). The adapter knows nothing else of either.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;

/// Log levels a backend is asked to log at (Apache's APLOG_* numbers).
pub const LOG_ERR: u8 = 3;
pub const LOG_WARNING: u8 = 4;
pub const LOG_INFO: u8 = 6;

/// Where a request's input comes from and its response goes.
///
/// Methods marked "GIL held" are called while Python is locked and must not block; the others
/// are called with the GIL released.
pub trait Backend {
    /// Reads request body bytes into the start of `buf` (which may be uninitialised) and
    /// returns how many it wrote; `Ok(0)` at the end of the body.
    fn read_body(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<usize, BodyError>;
    /// Whether the next `want` body bytes (`u64::MAX`: to the end) are in memory, so that
    /// reading them neither waits nor does I/O and the GIL need not be released for it (GIL
    /// held).
    fn body_in_memory(&self, _want: u64) -> bool {
        false
    }
    /// The response head (GIL held). Called once, before any body bytes.
    fn start(&mut self, status: u16, status_line: &str, headers: &[(Vec<u8>, Vec<u8>)]) -> Result<(), String>;
    /// Buffers body bytes (GIL held).
    fn write(&mut self, data: &[u8]);
    /// Bytes buffered by `write` and not yet flushed.
    fn buffered(&self) -> usize;
    /// Pushes buffered output towards the client. An error means the client is gone.
    fn flush(&mut self) -> io::Result<()>;
    /// Sends buffered output and then `data`, keeping no reference to `data` after returning
    /// (so an implementation may send it without copying).
    fn write_now(&mut self, data: &[u8]) -> io::Result<()> {
        self.write(data);
        self.flush()
    }
    /// Sends `len` bytes of the open file `fd` from `offset`. The caller may close `fd` as soon
    /// as this returns.
    fn send_file(&mut self, fd: RawFd, offset: u64, len: u64) -> io::Result<()>;
    /// Completes the response.
    fn finish(&mut self) -> io::Result<()>;
    /// The response cannot be completed: push what is buffered, then drop the connection so
    /// the client sees the failure.
    fn abort(&mut self);
    /// One line to the error log, attributed to this request (GIL held).
    fn log(&mut self, level: u8, msg: &str);
}

#[derive(Debug, Clone)]
pub struct BodyError {
    /// The HTTP status that describes the failure (400 malformed, 408 timeout, 413 too large).
    pub status: u16,
    pub message: String,
}

/// Where lines that belong to no request go (sys.stdout/sys.stderr outside a request).
/// Set once by the host (Apache's error log); stderr otherwise.
static SERVER_LOG: std::sync::OnceLock<fn(u8, &str)> = std::sync::OnceLock::new();

pub fn set_server_log(f: fn(u8, &str)) {
    let _ = SERVER_LOG.set(f);
}

pub fn server_log(level: u8, msg: &str) {
    match SERVER_LOG.get() {
        Some(f) => f(level, msg),
        None => eprintln!("{msg}"),
    }
}
