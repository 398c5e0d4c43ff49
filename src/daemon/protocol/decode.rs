//! Decoding: whole frames from a buffer ([`decode_frame`]), payloads whose header is already
//! parsed, and the [`Cursor`] that reads a payload's fields.

use super::consts::{HEADER_LEN, PROTOCOL_VERSION};
use super::cursor::Cursor;
use super::error::ProtocolError;
use super::frame::validate_fields;
use super::frame::{parse_header, Frame};
use super::frame_type::FrameType;
use super::request::decode_request;
use super::start::decode_start;

/// Result of [`decode_frame`].
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A complete frame and the number of bytes it occupied at the start of the buffer.
    Frame(Frame, usize),
    /// The buffer holds an incomplete frame: at least this many more bytes are needed. Before
    /// the header is complete this is what completes the header; after, what completes the frame.
    NeedMore(usize),
}

/// Decodes the frame at the start of `buf`. Never allocates more than the frame's payload
/// (plus the pair vector of REQUEST/START, bounded by the payload size).
pub fn decode_frame(buf: &[u8]) -> Result<Decoded, ProtocolError> {
    decode_frame_limited(buf, usize::MAX)
}

/// [`decode_frame`] with an extra cap on the payload length, e.g. [`MAX_HELLO_PAYLOAD`] while
/// a connection is not yet authenticated.
///
/// [`MAX_HELLO_PAYLOAD`]: super::consts::MAX_HELLO_PAYLOAD
pub fn decode_frame_limited(buf: &[u8], max_payload: usize) -> Result<Decoded, ProtocolError> {
    let Some(&type_byte) = buf.first() else {
        return Ok(Decoded::NeedMore(HEADER_LEN));
    };
    if FrameType::from_u8(type_byte).is_none() {
        return Err(ProtocolError::UnknownType(type_byte));
    }
    let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(Decoded::NeedMore(HEADER_LEN - buf.len()));
    };
    let (frame_type, len) = parse_header(header, max_payload)?;
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Ok(Decoded::NeedMore(total - buf.len()));
    }
    let frame = decode_payload(frame_type, &buf[HEADER_LEN..total])?;
    Ok(Decoded::Frame(frame, total))
}

/// Decodes a payload whose header has already been parsed.
pub fn decode_payload(frame_type: FrameType, payload: &[u8]) -> Result<Frame, ProtocolError> {
    let (min, max) = frame_type.payload_range();
    if payload.len() < min || payload.len() > max {
        return Err(ProtocolError::BadLength { frame_type, len: payload.len() as u64 });
    }
    let mut c = Cursor::new(frame_type, payload);
    let frame = match frame_type {
        FrameType::Hello => {
            let version = c.u8()?;
            if version != PROTOCOL_VERSION {
                return Err(ProtocolError::Version { got: version });
            }
            Frame::Hello { version, secret: c.array()? }
        }
        FrameType::HelloOk => Frame::HelloOk { pid: c.u32()? },
        FrameType::HelloReject => Frame::HelloReject { version: c.u8()?, message: c.rest_utf8()? },
        FrameType::Request => decode_request(&mut c)?,
        FrameType::Read => Frame::Read { max: c.u32()? },
        FrameType::Body => Frame::Body(c.rest().to_vec()),
        FrameType::BodyEnd => Frame::BodyEnd,
        FrameType::BodyError => Frame::BodyError { status: c.u16()? },
        FrameType::Start => decode_start(&mut c)?,
        FrameType::Data => Frame::Data(c.rest().to_vec()),
        FrameType::SendFile => Frame::SendFile { offset: c.u64()?, length: c.u64()? },
        FrameType::End => Frame::End,
        FrameType::EndClose => Frame::EndClose,
        FrameType::Restart => Frame::Restart,
        FrameType::Taken => Frame::Taken,
        FrameType::Abort => Frame::Abort { message: c.rest_utf8()? },
        FrameType::Error => Frame::Error { status: c.u16()?, message: c.rest_utf8()? },
    };
    c.finish()?;
    validate_fields(&frame)?;
    Ok(frame)
}

/// Like [`decode_payload`] but takes ownership, so BODY and DATA keep the buffer (no copy).
/// The caller has already checked the length with [`parse_header`].
pub(super) fn decode_owned_payload(frame_type: FrameType, payload: Vec<u8>) -> Result<Frame, ProtocolError> {
    match frame_type {
        FrameType::Body | FrameType::Data => {
            let (min, max) = frame_type.payload_range();
            if payload.len() < min || payload.len() > max {
                return Err(ProtocolError::BadLength { frame_type, len: payload.len() as u64 });
            }
            Ok(if frame_type == FrameType::Body { Frame::Body(payload) } else { Frame::Data(payload) })
        }
        _ => decode_payload(frame_type, &payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::consts::READ_AHEAD;
    use crate::daemon::protocol::test_support::*;
    use crate::daemon::protocol::{
        recv_frame_maybe_fd, FrameReader, PairBuf, MAX_DATA, MAX_HEAD_PAYLOAD, MAX_HELLO_PAYLOAD,
    };
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    /// Allocation tracking: a pass-through global allocator that, on threads that opt in,
    /// records the largest single allocation request. Lets the tests prove that hostile input
    /// never makes the decoder allocate past the caps.
    mod alloc_track {
        use std::alloc::{GlobalAlloc, Layout, System};
        use std::cell::Cell;

        thread_local! {
            static TRACKING: Cell<bool> = const { Cell::new(false) };
            static PEAK: Cell<usize> = const { Cell::new(0) };
        }

        struct Tracking;

        fn note(size: usize) {
            let _ = TRACKING.try_with(|t| {
                if t.get() {
                    let _ = PEAK.try_with(|p| p.set(p.get().max(size)));
                }
            });
        }

        // SAFETY: every call is forwarded unchanged to the system allocator.
        unsafe impl GlobalAlloc for Tracking {
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                note(layout.size());
                System.alloc(layout)
            }
            unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
                note(layout.size());
                System.alloc_zeroed(layout)
            }
            unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                note(new_size);
                System.realloc(ptr, layout, new_size)
            }
            unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
                System.dealloc(ptr, layout)
            }
        }

        #[global_allocator]
        static GLOBAL: Tracking = Tracking;

        /// Runs `f` and returns its result with the largest single allocation it made.
        pub fn peak<T>(f: impl FnOnce() -> T) -> (T, usize) {
            PEAK.with(|p| p.set(0));
            TRACKING.with(|t| t.set(true));
            let out = f();
            TRACKING.with(|t| t.set(false));
            (out, PEAK.with(|p| p.get()))
        }
    }
    use alloc_track::peak;

    #[test]
    fn need_more_is_exact() {
        let mut rng = Rng::new(7);
        for _ in 0..300 {
            let bytes = encode(&random_frame(&mut rng, 300));
            for cut in 0..bytes.len() {
                let want = if cut < HEADER_LEN { HEADER_LEN - cut } else { bytes.len() - cut };
                assert_eq!(decode_frame(&bytes[..cut]).unwrap(), Decoded::NeedMore(want));
            }
        }
    }

    #[test]
    fn decode_reports_consumed_with_trailing_data() {
        let mut bytes = encode(&Frame::Data(b"hello".to_vec()));
        let first_len = bytes.len();
        bytes.extend(encode(&Frame::End));
        assert_eq!(decode_frame(&bytes).unwrap(), Decoded::Frame(Frame::Data(b"hello".to_vec()), first_len));
        assert_eq!(decode_frame(&bytes[first_len..]).unwrap(), Decoded::Frame(Frame::End, 5));
    }

    fn assert_bad_length(bytes: &[u8]) {
        match decode_frame(bytes) {
            Err(ProtocolError::BadLength { .. }) => {}
            other => panic!("{bytes:?} gave {other:?}"),
        }
    }

    #[test]
    fn header_checks() {
        assert!(matches!(decode_frame(&[0x00]), Err(ProtocolError::UnknownType(0))));
        assert!(matches!(decode_frame(&[0x42, 0, 0]), Err(ProtocolError::UnknownType(0x42))));
        assert_bad_length(&[0x87, 1, 0, 0, 0, 0]); // END with a payload
        assert_bad_length(&[0x83, 3, 0, 0, 0]); // READ too short
        assert_bad_length(&[0x85, 0, 0, 0, 0]); // empty DATA
        assert_bad_length(&[0x03, 0, 0, 0, 0]); // empty BODY
        let over = (MAX_DATA as u32 + 1).to_le_bytes();
        assert_bad_length(&[0x85, over[0], over[1], over[2], over[3]]);
        let over = (MAX_HEAD_PAYLOAD as u32 + 1).to_le_bytes();
        assert_bad_length(&[0x02, over[0], over[1], over[2], over[3]]);
        // A big but legal REQUEST length is only NeedMore.
        let max = (MAX_HEAD_PAYLOAD as u32).to_le_bytes();
        assert_eq!(decode_frame(&[0x02, max[0], max[1], max[2], max[3]]).unwrap(), Decoded::NeedMore(MAX_HEAD_PAYLOAD));
        // ... unless the caller limits it.
        assert!(matches!(
            decode_frame_limited(&[0x02, max[0], max[1], max[2], max[3]], MAX_HELLO_PAYLOAD),
            Err(ProtocolError::BadLength { frame_type: FrameType::Request, .. })
        ));
    }

    #[test]
    fn field_checks() {
        assert_malformed(&[0x83, 4, 0, 0, 0, 0, 0, 0, 0]); // READ max 0
        let big = (MAX_DATA as u32 + 1).to_le_bytes();
        assert_malformed(&[0x83, 4, 0, 0, 0, big[0], big[1], big[2], big[3]]);
        assert_malformed(&[0x05, 2, 0, 0, 0, 200, 0]); // BODY_ERROR 200
        assert_malformed(&[0x89, 2, 0, 0, 0, 99, 0]); // ERROR 99
        assert_malformed(&[0x84, 10, 0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // START 99
        assert_malformed(&[0x88, 2, 0, 0, 0, 0xC3, 0x28]); // ABORT, invalid UTF-8
                                                           // REQUEST: unknown flag, length without flag, trailing byte, runaway item length.
        let mut req = vec![0x02, 13, 0, 0, 0, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_malformed(&req);
        req[5] = 0;
        req[6] = 1;
        assert_malformed(&req);
        req[6] = 0;
        assert_eq!(
            decode_one(&req),
            Frame::Request { environ: PairBuf::default(), body_length: None, eager_body: false }
        );
        let mut trailing = req.clone();
        trailing[1] = 14;
        trailing.push(0);
        assert_malformed(&trailing);
        let runaway = [0x02, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_malformed(&runaway);
        // Pair counts: over MAX_PAIRS, and over what the payload could hold.
        let mut count = req.clone();
        count[14..18].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_malformed(&count);
        count[14..18].copy_from_slice(&1u32.to_le_bytes());
        assert_malformed(&count);
        // SENDFILE: zero length, overflow past i64::MAX.
        let sendfile = |offset: u64, length: u64| {
            let mut b = vec![0x86, 16, 0, 0, 0];
            b.extend(offset.to_le_bytes());
            b.extend(length.to_le_bytes());
            b
        };
        assert_malformed(&sendfile(0, 0));
        assert_malformed(&sendfile(i64::MAX as u64, 1));
        assert_malformed(&sendfile(u64::MAX, u64::MAX));
        assert_eq!(
            decode_one(&sendfile(i64::MAX as u64 - 1, 1)),
            Frame::SendFile { offset: i64::MAX as u64 - 1, length: 1 }
        );
    }

    fn check_canonical(input: &[u8], result: &Result<Decoded, ProtocolError>) {
        if let Ok(Decoded::Frame(frame, used)) = result {
            assert_eq!(&encode(frame)[..], &input[..*used], "decode is not canonical");
        }
    }

    fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
        for _ in 0..1 + rng.below(3) {
            match rng.below(6) {
                0 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 if !bytes.is_empty() => {
                    let i = rng.below(bytes.len());
                    bytes[i] = rng.next() as u8;
                }
                2 => bytes.truncate(rng.below(bytes.len() + 1)),
                3 => {
                    let i = rng.below(bytes.len() + 1);
                    bytes.insert(i, rng.next() as u8);
                }
                4 if bytes.len() >= HEADER_LEN => {
                    // Rewrite the length field, often to something near the truth.
                    let len = match rng.below(3) {
                        0 => rng.next() as u32,
                        1 => (bytes.len() - HEADER_LEN) as u32 ^ (1 << rng.below(32)),
                        _ => (bytes.len() - HEADER_LEN + rng.below(9)).saturating_sub(4) as u32,
                    };
                    bytes[1..5].copy_from_slice(&len.to_le_bytes());
                }
                _ if bytes.len() > 13 => {
                    // Overwrite a 4-byte window (often a nested length or count).
                    let i = HEADER_LEN + rng.below(bytes.len() - HEADER_LEN - 3);
                    let v = if rng.chance(2) { u32::MAX } else { rng.below(64) as u32 };
                    bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
                }
                _ => {}
            }
        }
    }

    /// (b) Random byte strings and random mutations/truncations of valid encodings never
    /// panic, never allocate past the cap, and decode canonically when they decode at all.
    #[test]
    fn prop_hostile_input_is_harmless() {
        let mut rng = Rng::new(42);
        let mut decoded = 0;
        for i in 0..100_000 {
            let input = if i % 2 == 0 {
                // Random bytes, usually starting with a valid type byte and a small length.
                let mut b = rng.blob(0, 96);
                if b.len() >= HEADER_LEN && !rng.chance(4) {
                    b[0] = FrameType::ALL[rng.below(FrameType::ALL.len())] as u8;
                    let len = (b.len() - HEADER_LEN + rng.below(3)).saturating_sub(1) as u32;
                    b[1..5].copy_from_slice(&len.to_le_bytes());
                }
                b
            } else {
                let mut b = encode(&random_frame(&mut rng, 64));
                mutate(&mut rng, &mut b);
                b
            };
            let (result, peak_alloc) = peak(|| decode_frame(&input));
            // Payload copies plus at most 48 bytes of pair vector per 8 payload bytes.
            assert!(peak_alloc <= 6 * input.len(), "{peak_alloc} bytes for {input:?}");
            check_canonical(&input, &result);
            if matches!(result, Ok(Decoded::Frame(..))) {
                decoded += 1;
            }
            if i % 10 == 0 {
                let ((), peak_alloc) = peak(|| {
                    let mut reader = FrameReader::new(&input[..]);
                    while reader.read_frame().is_ok() {}
                });
                assert!(peak_alloc <= MAX_DATA.max(READ_AHEAD), "{peak_alloc} for {input:?}");
            }
        }
        // The generators must actually reach the payload decoders.
        assert!(decoded > 10_000, "only {decoded} inputs decoded");
    }

    /// (c) A length field of u32::MAX is rejected on the header, allocating nothing.
    #[test]
    fn prop_huge_length_rejected_without_allocating() {
        for ty in FrameType::ALL {
            let mut bytes = vec![ty as u8, 0xff, 0xff, 0xff, 0xff];
            let (result, peak_alloc) = peak(|| decode_frame(&bytes));
            assert!(matches!(result, Err(ProtocolError::BadLength { len: 0xffff_ffff, .. })));
            assert_eq!(peak_alloc, 0);
            bytes.extend([0u8; 64]);
            let (result, peak_alloc) = peak(|| FrameReader::new(&bytes[..]).read_frame());
            assert!(matches!(result, Err(ProtocolError::BadLength { .. })));
            assert!(peak_alloc <= READ_AHEAD);
            let (a, mut b) = UnixStream::pair().unwrap();
            b.write_all(&bytes).unwrap();
            let (result, peak_alloc) = peak(|| recv_frame_maybe_fd(&a));
            assert!(matches!(result, Err(ProtocolError::BadLength { .. })));
            assert_eq!(peak_alloc, 0);
        }
    }
}
