//! Frames: [`Frame`] itself, the 5-byte header (parsing,
//! building, the per-type length check), the field rules shared by encoder and decoder, and the
//! HELLO secret comparison.

use super::consts::{HEADER_LEN, MAX_DATA, MAX_MESSAGE, MAX_PAIRS, PROTOCOL_VERSION, SECRET_LEN};
use super::error::ProtocolError;
use super::frame_type::FrameType;
use super::pairs::PairBuf;

/// One protocol message. See docs/protocol.md for who sends what and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Apache -> daemon, first frame of a connection.
    Hello { version: u8, secret: [u8; SECRET_LEN] },
    /// Daemon -> Apache: HELLO accepted, by the daemon process `pid` (Apache spreads its
    /// requests over a group's processes by it).
    HelloOk { pid: u32 },
    /// Daemon -> Apache: HELLO refused (bad secret, version mismatch); the daemon then closes.
    /// `version` is the daemon's own protocol version.
    HelloReject { version: u8, message: String },
    /// Apache -> daemon: a request. `body_length` is `None` for chunked/unknown-length bodies.
    /// `eager_body`: Apache follows this frame with exactly one body reply (BODY, BODY_END or
    /// BODY_ERROR), as if the daemon had sent `READ { max: EAGER_BODY_MAX }`.
    Request { environ: PairBuf, body_length: Option<u64>, eager_body: bool },
    /// Daemon -> Apache: send me up to `max` (1..=MAX_DATA) more bytes of request body.
    Read { max: u32 },
    /// Apache -> daemon: request body bytes (1..=the READ's max), reply to READ.
    Body(Vec<u8>),
    /// Apache -> daemon: the request body is complete, reply to READ.
    BodyEnd,
    /// Apache -> daemon: reading the request body failed (400..=599), reply to READ.
    BodyError { status: u16 },
    /// Daemon -> Apache: response status (100..=999) and headers, repeats kept in order.
    Start { status: u16, reason: Vec<u8>, headers: Vec<(Vec<u8>, Vec<u8>)> },
    /// Daemon -> Apache: response body bytes (1..=MAX_DATA).
    Data(Vec<u8>),
    /// Daemon -> Apache: send `length` (>= 1) bytes at `offset` of the file whose descriptor
    /// travels with this frame (SCM_RIGHTS). `offset + length <= i64::MAX`.
    SendFile { offset: u64, length: u64 },
    /// Daemon -> Apache: the response is complete.
    End,
    /// Daemon -> Apache: the response is complete and the daemon closes this connection (it is
    /// stopping): do not use the connection for another request.
    EndClose,
    /// Daemon -> Apache, instead of any answer: the request was not run, because this process
    /// is restarting to load a changed WSGI script; send it again on a new connection. The
    /// daemon closes this connection.
    Restart,
    /// Daemon -> Apache, first for a request of a group with `queue-timeout=`: a daemon thread
    /// has taken the request off the queue. Apache stops waiting for it once the queue time
    /// runs out (504) and closes the connection, so a request taken later never answers.
    Taken,
    /// Daemon -> Apache: the application failed after START; Apache drops the client connection.
    Abort { message: String },
    /// Daemon -> Apache: the request failed before START; Apache answers with `status`
    /// (400..=599).
    Error { status: u16, message: String },
}

impl Frame {
    /// The type byte of this frame.
    pub const fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello { .. } => FrameType::Hello,
            Frame::HelloOk { .. } => FrameType::HelloOk,
            Frame::HelloReject { .. } => FrameType::HelloReject,
            Frame::Request { .. } => FrameType::Request,
            Frame::Read { .. } => FrameType::Read,
            Frame::Body(_) => FrameType::Body,
            Frame::BodyEnd => FrameType::BodyEnd,
            Frame::BodyError { .. } => FrameType::BodyError,
            Frame::Start { .. } => FrameType::Start,
            Frame::Data(_) => FrameType::Data,
            Frame::SendFile { .. } => FrameType::SendFile,
            Frame::End => FrameType::End,
            Frame::EndClose => FrameType::EndClose,
            Frame::Restart => FrameType::Restart,
            Frame::Taken => FrameType::Taken,
            Frame::Abort { .. } => FrameType::Abort,
            Frame::Error { .. } => FrameType::Error,
        }
    }

    /// An ABORT frame, its message cut to [`MAX_MESSAGE`] bytes at a character boundary.
    pub fn abort(message: impl Into<String>) -> Frame {
        Frame::Abort { message: truncate_message(message.into()) }
    }

    /// An ERROR frame, its message cut to [`MAX_MESSAGE`] bytes at a character boundary.
    pub fn error(status: u16, message: impl Into<String>) -> Frame {
        Frame::Error { status, message: truncate_message(message.into()) }
    }

    /// A HELLO_REJECT frame for this side's version, message cut to [`MAX_MESSAGE`] bytes.
    pub fn hello_reject(message: impl Into<String>) -> Frame {
        Frame::HelloReject { version: PROTOCOL_VERSION, message: truncate_message(message.into()) }
    }
}

fn truncate_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    message
}

/// Validates a frame header: known type, payload length within the type's range and within
/// `max_payload` (pass `usize::MAX` for no extra limit). Returns the type and payload length.
pub fn parse_header(header: &[u8; HEADER_LEN], max_payload: usize) -> Result<(FrameType, usize), ProtocolError> {
    let frame_type = FrameType::from_u8(header[0]).ok_or(ProtocolError::UnknownType(header[0]))?;
    let len32 = u32::from_le_bytes([header[1], header[2], header[3], header[4]]);
    let len = usize::try_from(len32).unwrap_or(usize::MAX);
    let (min, max) = frame_type.payload_range();
    if len < min || len > max || len > max_payload {
        return Err(ProtocolError::BadLength { frame_type, len: u64::from(len32) });
    }
    Ok((frame_type, len))
}

/// The 5-byte header of a frame whose payload is `len` bytes (for callers that write a BODY or
/// DATA payload in place; `len` must be in the type's range).
pub fn frame_header(frame_type: FrameType, len: usize) -> [u8; HEADER_LEN] {
    header_bytes(frame_type, len)
}

pub(super) fn header_bytes(frame_type: FrameType, len: usize) -> [u8; HEADER_LEN] {
    // Callers have checked len <= MAX_HEAD_PAYLOAD, so it fits in a u32.
    let l = (len as u32).to_le_bytes();
    [frame_type as u8, l[0], l[1], l[2], l[3]]
}

pub(super) fn checked_len(frame_type: FrameType, len: usize) -> Result<(), ProtocolError> {
    let (min, max) = frame_type.payload_range();
    if len < min || len > max {
        return Err(ProtocolError::BadLength { frame_type, len: len as u64 });
    }
    Ok(())
}

/// Field rules shared by the encoder and the decoder (length ranges are checked separately).
pub(super) fn validate_fields(frame: &Frame) -> Result<(), ProtocolError> {
    let bad = |reason| Err(ProtocolError::Malformed { frame_type: frame.frame_type(), reason });
    match frame {
        Frame::Request { environ, .. } if environ.len() > MAX_PAIRS => bad("too many name/value pairs"),
        Frame::Start { headers, .. } if headers.len() > MAX_PAIRS => bad("too many name/value pairs"),
        Frame::Start { status, .. } if !(100..=999).contains(status) => bad("status outside 100..=999"),
        Frame::Read { max } if *max == 0 || *max as usize > MAX_DATA => bad("max outside 1..=MAX_DATA"),
        Frame::BodyError { status } | Frame::Error { status, .. } if !(400..=599).contains(status) => {
            bad("status outside 400..=599")
        }
        Frame::SendFile { length: 0, .. } => bad("zero length"),
        Frame::SendFile { offset, length } if offset.checked_add(*length).map_or(true, |end| end > i64::MAX as u64) => {
            bad("offset + length exceeds i64::MAX")
        }
        _ => Ok(()),
    }
}

/// Constant-time comparison of HELLO secrets.
pub fn secrets_equal(a: &[u8; SECRET_LEN], b: &[u8; SECRET_LEN]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::test_support::*;
    use crate::daemon::protocol::{decode_frame, MAX_HEAD_PAYLOAD};

    #[test]
    fn hello_versions() {
        let secret = [7u8; SECRET_LEN];
        let hello = Frame::Hello { version: PROTOCOL_VERSION, secret };
        assert_eq!(decode_one(&encode(&hello)), hello);
        // Another version (older or future) is reported as a version mismatch, whatever its
        // HELLO layout.
        let other = PROTOCOL_VERSION + 1;
        let v_next = encode(&Frame::Hello { version: other, secret });
        assert!(matches!(decode_frame(&v_next), Err(ProtocolError::Version { got }) if got == other));
        let mut long_next = vec![0x01, 40, 0, 0, 0, other];
        long_next.extend([0; 39]);
        assert!(matches!(decode_frame(&long_next), Err(ProtocolError::Version { got }) if got == other));
        let v1 = encode(&Frame::Hello { version: 1, secret });
        assert!(matches!(decode_frame(&v1), Err(ProtocolError::Version { got: 1 })));
        // This version with the wrong length is malformed.
        let mut long_v1 = encode(&hello);
        long_v1[1] += 1;
        long_v1.push(0);
        assert_malformed(&long_v1);
        let reject = Frame::hello_reject("bad secret");
        assert_eq!(decode_one(&encode(&reject)), reject);
        assert!(secrets_equal(&secret, &[7u8; SECRET_LEN]));
        let mut other = secret;
        other[15] ^= 1;
        assert!(!secrets_equal(&secret, &other));
    }

    #[test]
    fn message_constructors_truncate_at_char_boundary() {
        let long = "\u{20ac}".repeat(MAX_MESSAGE); // 3 bytes each
        let Frame::Abort { message } = Frame::abort(long.clone()) else { unreachable!() };
        assert!(message.len() <= MAX_MESSAGE && message.len() > MAX_MESSAGE - 3);
        let frame = Frame::error(500, long);
        assert_eq!(decode_one(&encode(&frame)), frame);
        assert_eq!(Frame::abort("short"), Frame::Abort { message: "short".into() });
    }

    #[test]
    fn frame_type_table_is_consistent() {
        for ty in FrameType::ALL {
            assert_eq!(FrameType::from_u8(ty as u8), Some(ty));
            let (min, max) = ty.payload_range();
            assert!(min <= max && max <= MAX_HEAD_PAYLOAD);
        }
        let known = (0..=255u8).filter(|b| FrameType::from_u8(*b).is_some()).count();
        assert_eq!(known, FrameType::ALL.len());
        assert!(FrameType::Data.sent_by_daemon() && !FrameType::Body.sent_by_daemon());
    }
}
