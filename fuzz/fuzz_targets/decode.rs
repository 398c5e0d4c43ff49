//! Fuzz the daemon protocol decoder: `cargo +nightly fuzz run decode` (from /work/main).
//!
//! Checks, on arbitrary bytes: no panic; a successful decode is canonical (re-encoding the
//! frame gives back exactly the bytes it was decoded from); `NeedMore` is consistent with the
//! header; and the streaming `FrameReader` agrees with `decode_frame` frame by frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mod_oxwsgi::daemon::protocol::{
    decode_frame, decode_frame_limited, encode_frame, Decoded, FrameReader, ProtocolError,
    HEADER_LEN, MAX_HELLO_PAYLOAD,
};

fuzz_target!(|data: &[u8]| {
    // Walk the input as a stream of frames with the buffer decoder.
    let mut frames = Vec::new();
    let mut rest = data;
    loop {
        match decode_frame(rest) {
            Ok(Decoded::Frame(frame, used)) => {
                assert!(used >= HEADER_LEN && used <= rest.len());
                let mut encoded = Vec::new();
                encode_frame(&frame, &mut encoded).expect("a decoded frame must re-encode");
                assert_eq!(&encoded[..], &rest[..used], "decoding is not canonical");
                frames.push(frame);
                rest = &rest[used..];
            }
            Ok(Decoded::NeedMore(n)) => {
                assert!(n > 0);
                break;
            }
            Err(_) => break,
        }
    }

    // The limited decoder never accepts more than the plain one.
    if let Ok(Decoded::Frame(frame, _)) = decode_frame_limited(data, MAX_HELLO_PAYLOAD) {
        assert!(matches!(decode_frame(data), Ok(Decoded::Frame(ref f, _)) if *f == frame));
    }

    // The streaming reader yields the same frames, then stops with an error.
    let mut reader = FrameReader::new(data);
    for frame in &frames {
        assert_eq!(&reader.read_frame().expect("reader agrees with decode_frame"), frame);
    }
    let end = reader.read_frame();
    assert!(end.is_err());
    if rest.is_empty() {
        assert!(matches!(end, Err(ProtocolError::Closed)));
    }
});
