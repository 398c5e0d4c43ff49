//! Encoding any [`Frame`] into a buffer ([`encode_frame`]).

use super::consts::{HEADER_LEN, SECRET_LEN};
use super::error::ProtocolError;
use super::frame::Frame;
use super::frame::{checked_len, header_bytes, validate_fields};
use super::request::{put_request, request_len};
use super::start::{put_start, start_len};

fn payload_len(frame: &Frame) -> usize {
    match frame {
        Frame::Hello { .. } => 1 + SECRET_LEN,
        Frame::BodyEnd | Frame::End | Frame::EndClose | Frame::Restart | Frame::Taken => 0,
        Frame::HelloOk { .. } => 4,
        Frame::HelloReject { message, .. } => message.len().saturating_add(1),
        Frame::Request { environ, .. } => request_len(environ.iter()),
        Frame::Read { .. } => 4,
        Frame::Body(bytes) | Frame::Data(bytes) => bytes.len(),
        Frame::BodyError { .. } => 2,
        Frame::Start { reason, headers, .. } => start_len(reason, headers),
        Frame::SendFile { .. } => 16,
        Frame::Abort { message } => message.len(),
        Frame::Error { message, .. } => message.len().saturating_add(2),
    }
}

/// Appends the encoding of `frame` to `out` (reserving exactly once). On error `out` is left
/// unchanged. Errors: a field breaks the rules (`Malformed`) or the payload is out of range for
/// its type (`BadLength`, e.g. an empty DATA or a START over [`MAX_HEAD_PAYLOAD`]).
///
/// [`MAX_HEAD_PAYLOAD`]: super::consts::MAX_HEAD_PAYLOAD
pub fn encode_frame(frame: &Frame, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    validate_fields(frame)?;
    let frame_type = frame.frame_type();
    let len = payload_len(frame);
    checked_len(frame_type, len)?;
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&header_bytes(frame_type, len));
    match frame {
        Frame::Hello { version, secret } => {
            out.push(*version);
            out.extend_from_slice(secret);
        }
        Frame::BodyEnd | Frame::End | Frame::EndClose | Frame::Restart | Frame::Taken => {}
        Frame::HelloOk { pid } => out.extend_from_slice(&pid.to_le_bytes()),
        Frame::HelloReject { version, message } => {
            out.push(*version);
            out.extend_from_slice(message.as_bytes());
        }
        Frame::Request { environ, body_length, eager_body } => {
            put_request(out, environ.iter(), *body_length, *eager_body)
        }
        Frame::Read { max } => out.extend_from_slice(&max.to_le_bytes()),
        Frame::Body(bytes) | Frame::Data(bytes) => out.extend_from_slice(bytes),
        Frame::BodyError { status } => out.extend_from_slice(&status.to_le_bytes()),
        Frame::Start { status, reason, headers } => put_start(out, *status, reason, headers),
        Frame::SendFile { offset, length } => {
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&length.to_le_bytes());
        }
        Frame::Abort { message } => out.extend_from_slice(message.as_bytes()),
        Frame::Error { status, message } => {
            out.extend_from_slice(&status.to_le_bytes());
            out.extend_from_slice(message.as_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::test_support::*;
    use crate::daemon::protocol::{write_frame, MAX_DATA, MAX_HEAD_PAYLOAD, MAX_MESSAGE};

    #[test]
    fn golden_encodings() {
        assert_eq!(encode(&Frame::End), [0x87, 0, 0, 0, 0]);
        assert_eq!(encode(&Frame::Read { max: 0x1_0000 }), [0x83, 4, 0, 0, 0, 0x00, 0x00, 0x01, 0x00]);
        assert_eq!(encode(&Frame::BodyError { status: 400 }), [0x05, 2, 0, 0, 0, 0x90, 0x01]);
        let hello = encode(&Frame::Hello { version: 2, secret: [0xAB; 16] });
        assert_eq!(&hello[..6], [0x01, 17, 0, 0, 0, 2]);
        assert_eq!(&hello[6..], [0xAB; 16]);
        assert_eq!(encode(&Frame::HelloOk { pid: 0x0102_0304 }), [0x81, 4, 0, 0, 0, 0x04, 0x03, 0x02, 0x01]);
        let request =
            Frame::Request { environ: [(b"A", b"xy")].into_iter().collect(), body_length: Some(3), eager_body: true };
        assert_eq!(
            encode(&request),
            [
                0x02, 24, 0, 0, 0, // header
                0x03, 3, 0, 0, 0, 0, 0, 0, 0, // flags, body_length
                1, 0, 0, 0, // one pair
                1, 0, 0, 0, b'A', 2, 0, 0, 0, b'x', b'y',
            ]
        );
        let start = Frame::Start { status: 200, reason: b"OK".to_vec(), headers: vec![] };
        assert_eq!(encode(&start), [0x84, 12, 0, 0, 0, 200, 0, 2, 0, 0, 0, b'O', b'K', 0, 0, 0, 0]);
        let error = Frame::Error { status: 503, message: "busy".into() };
        assert_eq!(encode(&error), [0x89, 6, 0, 0, 0, 0xF7, 0x01, b'b', b'u', b's', b'y']);
        let sendfile = encode(&Frame::SendFile { offset: 1, length: 2 });
        assert_eq!(sendfile, [0x86, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn encoder_refuses_invalid_frames_and_leaves_buffer_alone() {
        let invalid = [
            Frame::Data(vec![]),
            Frame::Body(vec![0; MAX_DATA + 1]),
            Frame::Read { max: 0 },
            Frame::Start { status: 1000, reason: vec![], headers: vec![] },
            Frame::Error { status: 302, message: String::new() },
            Frame::BodyError { status: 0 },
            Frame::SendFile { offset: 0, length: 0 },
            Frame::Abort { message: "x".repeat(MAX_MESSAGE + 1) },
            Frame::Request {
                environ: [(vec![0; MAX_HEAD_PAYLOAD], vec![])].into_iter().collect(),
                body_length: None,
                eager_body: false,
            },
        ];
        for frame in &invalid {
            let mut out = vec![1, 2, 3];
            assert!(encode_frame(frame, &mut out).is_err(), "{:?}", frame.frame_type());
            assert_eq!(out, [1, 2, 3]);
            assert!(write_frame(&mut Vec::new(), frame).is_err());
        }
    }
}
