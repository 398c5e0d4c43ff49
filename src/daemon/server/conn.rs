//! One connection from an Apache child: its read half (lent to a request's backend while the
//! request runs) and its write half, which the monitor may take over to answer a request that
//! ran past request-timeout.

use crate::daemon::protocol::FrameReader;
use std::io::{self, Write};
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One connection from an Apache child.
pub(super) struct Conn {
    pub(super) writer: Arc<Writer>,
    /// Lent to the request's backend while a request runs.
    pub(super) reader: Option<FrameReader<UnixStream>>,
    pub(super) out: Vec<u8>,
    pub(super) greeted: bool,
    pub(super) registered: bool,
}

impl Conn {
    /// None when the process is out of descriptors (the connection is closed).
    pub(super) fn new(stream: UnixStream, socket_timeout: Duration) -> Option<Conn> {
        let timeout = Some(socket_timeout);
        let _ = stream.set_read_timeout(timeout);
        let _ = stream.set_write_timeout(timeout);
        let read_half = stream.try_clone().ok()?;
        Some(Conn {
            writer: Arc::new(Writer {
                state: Mutex::new(WriterState { stream, greeted: false, started: false, taken_over: false }),
            }),
            reader: Some(FrameReader::new(read_half)),
            out: Vec::with_capacity(4096),
            greeted: false,
            registered: false,
        })
    }
}

/// The write half of a connection, shared with the monitor so it can answer a request that
/// ran past request-timeout.
pub(super) struct Writer {
    pub(super) state: Mutex<WriterState>,
}

pub(super) struct WriterState {
    pub(super) stream: UnixStream,
    /// Something was written: the HELLO_OK that leads the first buffered output went out.
    pub(super) greeted: bool,
    pub(super) started: bool,
    pub(super) taken_over: bool,
}

impl Writer {
    pub(super) fn write(&self, bytes: &[u8], starts: bool) -> io::Result<()> {
        let mut st = self.state.lock().unwrap();
        if st.taken_over {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "request was answered by the request-timeout monitor",
            ));
        }
        st.greeted = true;
        st.stream.write_all(bytes)?;
        st.started |= starts;
        Ok(())
    }
}
