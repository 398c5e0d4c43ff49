//! The REQUEST payload: `u8 flags`, `u64 body_length`, `pairs environ`.

use super::consts::{HEADER_LEN, MAX_PAIRS};
use super::cursor::Cursor;
use super::error::ProtocolError;
use super::frame::Frame;
use super::frame::{checked_len, header_bytes};
use super::frame_type::FrameType;
use super::pairs::{pairs_len, put_pairs};

const REQ_HAS_LENGTH: u8 = 0x01;
const REQ_EAGER_BODY: u8 = 0x02;

fn request_flags(body_length: Option<u64>, eager_body: bool) -> u8 {
    let mut flags = 0;
    if body_length.is_some() {
        flags |= REQ_HAS_LENGTH;
    }
    if eager_body {
        flags |= REQ_EAGER_BODY;
    }
    flags
}

/// A REQUEST's payload length: flags, body length, environ.
pub(super) fn request_len<'a>(environ: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> usize {
    pairs_len(environ).saturating_add(1 + 8)
}

/// Reads a REQUEST payload's fields (the caller checks that nothing follows them).
pub(super) fn decode_request(c: &mut Cursor<'_>) -> Result<Frame, ProtocolError> {
    let flags = c.u8()?;
    if flags & !(REQ_HAS_LENGTH | REQ_EAGER_BODY) != 0 {
        return Err(c.malformed("unknown REQUEST flag bits"));
    }
    let raw_length = c.u64()?;
    let body_length = if flags & REQ_HAS_LENGTH != 0 {
        Some(raw_length)
    } else if raw_length == 0 {
        None
    } else {
        return Err(c.malformed("body length set without its flag"));
    };
    let eager_body = flags & REQ_EAGER_BODY != 0;
    Ok(Frame::Request { environ: c.pair_buf()?, body_length, eager_body })
}

/// Appends a REQUEST payload (the header is the caller's).
pub(super) fn put_request<'a>(
    out: &mut Vec<u8>,
    environ: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
    body_length: Option<u64>,
    eager_body: bool,
) {
    out.push(request_flags(body_length, eager_body));
    out.extend_from_slice(&body_length.unwrap_or(0).to_le_bytes());
    put_pairs(out, environ);
}

/// Appends a REQUEST frame built from borrowed pairs: the same bytes as `encode_frame` of a
/// `Frame::Request`, without copying every name and value into owned vectors first.
pub fn encode_request(
    environ: &[(&[u8], &[u8])],
    body_length: Option<u64>,
    eager_body: bool,
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    if environ.len() > MAX_PAIRS {
        return Err(ProtocolError::Malformed { frame_type: FrameType::Request, reason: "too many name/value pairs" });
    }
    let len = request_len(environ.iter().copied());
    checked_len(FrameType::Request, len)?;
    out.reserve(HEADER_LEN + len);
    out.extend_from_slice(&header_bytes(FrameType::Request, len));
    put_request(out, environ.iter().copied(), body_length, eager_body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::daemon::protocol;

    #[test]
    fn encode_request_matches_encode_frame() {
        let environ: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (b"REQUEST_METHOD".to_vec(), b"GET".to_vec()),
            (b"PATH_INFO".to_vec(), b"/caf\xc3\xa9".to_vec()),
            (b"E".to_vec(), vec![]),
        ];
        for (body_length, eager_body) in [(None, false), (Some(0), false), (Some(12345), true), (None, true)] {
            let borrowed: Vec<(&[u8], &[u8])> = environ.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            let mut direct = Vec::new();
            protocol::encode_request(&borrowed, body_length, eager_body, &mut direct).unwrap();
            let mut framed = Vec::new();
            protocol::encode_frame(
                &protocol::Frame::Request { environ: environ.iter().cloned().collect(), body_length, eager_body },
                &mut framed,
            )
            .unwrap();
            assert_eq!(direct, framed);
        }
    }
}
