//! The START payload (response status and headers): `u16 status`, `bytes reason`,
//! `pairs headers`.

use super::consts::{HEADER_LEN, MAX_PAIRS};
use super::cursor::Cursor;
use super::error::ProtocolError;
use super::frame::Frame;
use super::frame::{checked_len, header_bytes};
use super::frame_type::FrameType;
use super::pairs::{borrowed, pairs_len, put_bytes, put_pairs};

/// A START's payload length: status, reason (length-prefixed), headers.
pub(super) fn start_len(reason: &[u8], headers: &[(Vec<u8>, Vec<u8>)]) -> usize {
    pairs_len(borrowed(headers)).saturating_add(reason.len()).saturating_add(2 + 4)
}

/// Reads a START payload's fields (the caller checks that nothing follows them).
pub(super) fn decode_start(c: &mut Cursor<'_>) -> Result<Frame, ProtocolError> {
    let status = c.u16()?;
    let reason = c.bytes()?;
    Ok(Frame::Start { status, reason, headers: c.pairs()? })
}

/// Appends a START payload (the header is the caller's).
pub(super) fn put_start(out: &mut Vec<u8>, status: u16, reason: &[u8], headers: &[(Vec<u8>, Vec<u8>)]) {
    out.extend_from_slice(&status.to_le_bytes());
    put_bytes(out, reason);
    put_pairs(out, borrowed(headers));
}

/// Appends a START frame from borrowed parts: the same bytes as `encode_frame` of a
/// `Frame::Start`, without cloning the headers.
pub fn encode_start(
    status: u16,
    reason: &[u8],
    headers: &[(Vec<u8>, Vec<u8>)],
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    if !(100..=999).contains(&status) {
        return Err(ProtocolError::Malformed { frame_type: FrameType::Start, reason: "status outside 100..=999" });
    }
    if headers.len() > MAX_PAIRS {
        return Err(ProtocolError::Malformed { frame_type: FrameType::Start, reason: "too many name/value pairs" });
    }
    let len = start_len(reason, headers);
    checked_len(FrameType::Start, len)?;
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&header_bytes(FrameType::Start, len));
    put_start(out, status, reason, headers);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::daemon::protocol;

    #[test]
    fn encode_start_matches_encode_frame() {
        let headers = vec![(b"Set-Cookie".to_vec(), b"a=1".to_vec()), (b"Set-Cookie".to_vec(), b"b=2".to_vec())];
        for (status, reason) in [(200u16, b"OK".to_vec()), (599, vec![]), (100, b"Continue".to_vec())] {
            let mut direct = Vec::new();
            protocol::encode_start(status, &reason, &headers, &mut direct).unwrap();
            let mut framed = Vec::new();
            protocol::encode_frame(&protocol::Frame::Start { status, reason, headers: headers.clone() }, &mut framed)
                .unwrap();
            assert_eq!(direct, framed);
        }
        assert!(protocol::encode_start(99, b"x", &headers, &mut Vec::new()).is_err());
    }
}
