//! [`ProtocolError`]: everything that can go wrong on the wire.

use std::io;

use super::consts::PROTOCOL_VERSION;
use super::frame_type::FrameType;

/// Everything that can go wrong on the wire. After any error other than [`ProtocolError::Closed`]
/// the connection is out of sync and must be closed.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("daemon socket I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer closed the connection cleanly, between frames.
    #[error("peer closed the connection")]
    Closed,
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// Payload length outside the type's range (or above the caller's limit); also returned
    /// when encoding a frame whose payload would not fit.
    #[error("invalid payload length {len} for a {frame_type} frame")]
    BadLength { frame_type: FrameType, len: u64 },
    /// Payload structure or a field value is invalid.
    #[error("malformed {frame_type} frame: {reason}")]
    Malformed { frame_type: FrameType, reason: &'static str },
    /// HELLO carried a protocol version this side does not speak.
    #[error("unsupported protocol version {got} (this side speaks {})", PROTOCOL_VERSION)]
    Version { got: u8 },
    /// A SENDFILE frame arrived without a file descriptor.
    #[error("SENDFILE frame arrived without a file descriptor")]
    MissingFd,
    /// File descriptors arrived with a frame that is not SENDFILE (or more than one), or a
    /// frame other than SENDFILE was given to [`send_frame_with_fd`].
    ///
    /// [`send_frame_with_fd`]: super::fd::send_frame_with_fd
    #[error("unexpected file descriptor with a {frame_type} frame")]
    UnexpectedFd { frame_type: FrameType },
    /// The kernel truncated ancillary data (more descriptors than expected were sent).
    #[error("ancillary data truncated while receiving a frame")]
    ControlTruncated,
}
