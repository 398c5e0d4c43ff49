//! BODY and DATA payloads (request and response body bytes): writers that split any amount
//! of bytes into frames of at most [`MAX_DATA`] bytes.

use std::io::{self, IoSlice, Write};

use super::consts::{HEADER_LEN, MAX_DATA};
use super::error::ProtocolError;
use super::frame::{checked_len, header_bytes};
use super::frame_type::FrameType;

/// Appends `bytes` to `out` as DATA frames of at most [`MAX_DATA`] bytes each (one copy, no
/// intermediate frame). Empty input appends nothing.
pub fn encode_data(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in bytes.chunks(MAX_DATA) {
        out.extend_from_slice(&header_bytes(FrameType::Data, chunk.len()));
        out.extend_from_slice(chunk);
    }
}

/// Writes `bytes` as DATA frames of at most [`MAX_DATA`] bytes each, without copying.
/// Empty input writes nothing.
pub fn write_data<W: Write + ?Sized>(w: &mut W, bytes: &[u8]) -> Result<(), ProtocolError> {
    bytes.chunks(MAX_DATA).try_for_each(|chunk| write_bytes_frame(w, FrameType::Data, chunk))
}

/// Writes `bytes` as BODY frames of at most [`MAX_DATA`] bytes each, without copying.
/// Empty input writes nothing. (A reply to READ must be a single BODY of at most `max` bytes.)
pub fn write_body<W: Write + ?Sized>(w: &mut W, bytes: &[u8]) -> Result<(), ProtocolError> {
    bytes.chunks(MAX_DATA).try_for_each(|chunk| write_bytes_frame(w, FrameType::Body, chunk))
}

pub(super) fn write_bytes_frame<W: Write + ?Sized>(
    w: &mut W,
    frame_type: FrameType,
    bytes: &[u8],
) -> Result<(), ProtocolError> {
    checked_len(frame_type, bytes.len())?;
    let header = header_bytes(frame_type, bytes.len());
    let mut written = loop {
        match w.write_vectored(&[IoSlice::new(&header), IoSlice::new(bytes)]) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    };
    if written < HEADER_LEN {
        w.write_all(&header[written..])?;
        written = HEADER_LEN;
    }
    w.write_all(&bytes[written - HEADER_LEN..])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::{self, Frame, FrameReader};

    #[test]
    fn encode_data_matches_encode_frame() {
        for len in [1usize, 10, protocol::MAX_DATA, protocol::MAX_DATA + 1, 2 * protocol::MAX_DATA + 7] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut direct = Vec::new();
            protocol::encode_data(&bytes, &mut direct);
            let mut framed = Vec::new();
            for chunk in bytes.chunks(protocol::MAX_DATA) {
                protocol::encode_frame(&protocol::Frame::Data(chunk.to_vec()), &mut framed).unwrap();
            }
            assert_eq!(direct, framed, "len {len}");
        }
        let mut empty = Vec::new();
        protocol::encode_data(&[], &mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn write_data_splits_into_max_data_frames() {
        let payload: Vec<u8> = (0..2 * MAX_DATA + 10).map(|i| i as u8).collect();
        let mut out = Vec::new();
        write_data(&mut out, &payload).unwrap();
        write_body(&mut out, b"").unwrap();
        let mut reader = FrameReader::new(&out[..]);
        let mut got = Vec::new();
        for expected_len in [MAX_DATA, MAX_DATA, 10] {
            let Frame::Data(chunk) = reader.read_frame().unwrap() else { panic!("not DATA") };
            assert_eq!(chunk.len(), expected_len);
            got.extend(chunk);
        }
        assert_eq!(got, payload);
        assert!(matches!(reader.read_frame(), Err(ProtocolError::Closed)));
    }
}
