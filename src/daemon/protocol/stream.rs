//! Blocking I/O over [`Read`]/[`Write`]: [`write_frame`] and the buffered [`FrameReader`].

use std::io::{self, Read, Write};

use super::body::write_bytes_frame;
use super::consts::{HEADER_LEN, READ_AHEAD};
use super::decode::decode_owned_payload;
use super::decode::decode_payload;
use super::encode::encode_frame;
use super::error::ProtocolError;
use super::frame::{parse_header, Frame};
use super::frame_type::FrameType;

/// Writes one frame. BODY and DATA go out as header + payload in one vectored write without
/// copying the payload; other frames are encoded into a temporary buffer first.
pub fn write_frame<W: Write + ?Sized>(w: &mut W, frame: &Frame) -> Result<(), ProtocolError> {
    match frame {
        Frame::Body(bytes) => write_bytes_frame(w, FrameType::Body, bytes),
        Frame::Data(bytes) => write_bytes_frame(w, FrameType::Data, bytes),
        _ => {
            let mut buf = Vec::new();
            encode_frame(frame, &mut buf)?;
            w.write_all(&buf)?;
            Ok(())
        }
    }
}

/// Reads frames from a byte stream through an internal read-ahead buffer that is reused from
/// frame to frame (and shrunk back to 64 KiB after an unusually big frame).
///
/// Bytes read ahead belong to the reader: do not read from the inner stream directly while the
/// reader is in use (see [`FrameReader::buffered`]). On a socket that may carry file
/// descriptors, read through an [`FdStream`] with `read_frame_fd`, which checks them.
///
/// [`FdStream`]: super::fd::FdStream
pub struct FrameReader<R> {
    inner: R,
    /// Initialized storage; `buf[start..end]` holds bytes read but not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// A payload buffer handed back with [`FrameReader::recycle`], reused for the next bulk
    /// BODY/DATA payload.
    spare: Vec<u8>,
}

impl<R: Read> FrameReader<R> {
    /// Wraps a stream. Allocates nothing until the first read.
    pub fn new(inner: R) -> Self {
        FrameReader { inner, buf: Vec::new(), start: 0, end: 0, spare: Vec::new() }
    }

    /// Gives back the buffer of a BODY/DATA frame once it has been used, so the next large
    /// payload is read into it instead of a new allocation.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if buf.capacity() > self.spare.capacity() {
            self.spare = buf;
        }
    }

    /// Reads the next frame. `Err(ProtocolError::Closed)` means the peer closed the connection
    /// between frames (a normal end of a kept-alive connection).
    pub fn read_frame(&mut self) -> Result<Frame, ProtocolError> {
        self.read_frame_limited(usize::MAX)
    }

    /// [`FrameReader::read_frame`] with an extra payload cap, e.g. [`MAX_HELLO_PAYLOAD`] for the
    /// first frame of an unauthenticated connection.
    ///
    /// [`MAX_HELLO_PAYLOAD`]: super::consts::MAX_HELLO_PAYLOAD
    pub fn read_frame_limited(&mut self, max_payload: usize) -> Result<Frame, ProtocolError> {
        self.fill(1)?;
        let type_byte = self.buf[self.start];
        if FrameType::from_u8(type_byte).is_none() {
            return Err(ProtocolError::UnknownType(type_byte));
        }
        self.fill(HEADER_LEN)?;
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
        let (frame_type, len) = parse_header(&header, max_payload)?;
        let have = self.end - self.start - HEADER_LEN;
        if have < len && matches!(frame_type, FrameType::Body | FrameType::Data) {
            // Bulk payload not yet buffered: read it straight into the frame's own Vec.
            // A recycled buffer holds bytes of an earlier frame: initialized, so it is only
            // resized, not cleared and zeroed again.
            let mut payload = std::mem::take(&mut self.spare);
            if payload.len() < len {
                payload.resize(len, 0);
            } else {
                payload.truncate(len);
            }
            payload[..have].copy_from_slice(&self.buf[self.start + HEADER_LEN..self.end]);
            self.start = 0;
            self.end = 0;
            self.inner.read_exact(&mut payload[have..]).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    ProtocolError::Truncated
                } else {
                    ProtocolError::Io(e)
                }
            })?;
            return decode_owned_payload(frame_type, payload);
        }
        self.fill(HEADER_LEN + len)?;
        let payload_start = self.start + HEADER_LEN;
        let result = decode_payload(frame_type, &self.buf[payload_start..payload_start + len]);
        self.start = payload_start + len;
        self.maybe_shrink();
        result
    }

    /// Bytes already read from the inner stream but not yet returned as frames.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Returns the inner stream; any [`FrameReader::buffered`] bytes are lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Ensures at least `n` unconsumed bytes are buffered. The buffer starts at 64 KiB and
    /// then at most doubles per step, so its size follows the bytes actually received rather
    /// than a length the peer merely announced.
    fn fill(&mut self, n: usize) -> Result<(), ProtocolError> {
        while self.end - self.start < n {
            if self.end == self.buf.len() {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.end, 0);
                    self.end -= self.start;
                    self.start = 0;
                } else {
                    // start == 0 and end < n here, so the new length exceeds end.
                    let want = READ_AHEAD.max(self.buf.len().saturating_mul(2).min(n));
                    self.buf.reserve_exact(want - self.buf.len());
                    self.buf.resize(want, 0);
                }
            }
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) if self.end == self.start => return Err(ProtocolError::Closed),
                Ok(0) => return Err(ProtocolError::Truncated),
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn maybe_shrink(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let pending = self.end - self.start;
        if self.buf.len() > READ_AHEAD && pending <= READ_AHEAD {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
            self.buf.truncate(READ_AHEAD);
            self.buf.shrink_to(READ_AHEAD);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::test_support::*;
    use crate::daemon::protocol::{decode_frame, Decoded, MAX_DATA, MAX_HELLO_PAYLOAD, PROTOCOL_VERSION};
    use std::io::IoSlice;

    /// A reader that hands out at most a random few bytes per call.
    struct Chunky<'a> {
        data: &'a [u8],
        rng: Rng,
        max: usize,
    }

    impl Read for Chunky<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = (1 + self.rng.below(self.max)).min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// A writer that accepts a random prefix of what it is given (vectored writes included).
    struct ChunkyWriter {
        out: Vec<u8>,
        rng: Rng,
    }

    impl Write for ChunkyWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = (1 + self.rng.below(7)).min(buf.len());
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let mut budget = 1 + self.rng.below(12);
            let mut n = 0;
            for b in bufs {
                let k = budget.min(b.len());
                self.out.extend_from_slice(&b[..k]);
                n += k;
                budget -= k;
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// (a) Random frames round-trip exactly, alone and as a stream through FrameReader with
    /// random read sizes, written by write_frame through a writer taking random prefixes.
    #[test]
    fn prop_random_frames_round_trip() {
        let mut rng = Rng::new(1);
        let mut frames = Vec::new();
        let mut stream = ChunkyWriter { out: Vec::new(), rng: Rng::new(2) };
        for i in 0..3000 {
            let max_bulk = if i % 200 == 0 { MAX_DATA } else { 2048 };
            let frame = random_frame(&mut rng, max_bulk);
            let bytes = encode(&frame);
            assert_eq!(decode_frame(&bytes).unwrap(), Decoded::Frame(frame.clone(), bytes.len()));
            write_frame(&mut stream, &frame).unwrap();
            frames.push(frame);
        }
        let mut expected = Vec::new();
        frames.iter().for_each(|f| encode_frame(f, &mut expected).unwrap());
        assert_eq!(stream.out, expected);
        for max_read in [1, 7, 100_000] {
            let chunky = Chunky { data: &stream.out, rng: Rng::new(3), max: max_read };
            let mut reader = FrameReader::new(chunky);
            for frame in &frames {
                assert_eq!(&reader.read_frame().unwrap(), frame);
            }
            assert!(matches!(reader.read_frame(), Err(ProtocolError::Closed)));
        }
    }

    #[test]
    fn reader_eof_handling_and_limits() {
        let mut reader = FrameReader::new(&[][..]);
        assert!(matches!(reader.read_frame(), Err(ProtocolError::Closed)));
        for bytes in [&[0x87u8, 0, 0][..], &[0x85, 3, 0, 0, 0, b'a'][..], &[0x02, 20, 0, 0, 0, 1][..]] {
            let mut reader = FrameReader::new(bytes);
            assert!(matches!(reader.read_frame(), Err(ProtocolError::Truncated)), "{bytes:?}");
        }
        let request = encode(&Frame::Request {
            environ: [(b"HTTP_COOKIE".to_vec(), vec![b'c'; 100])].into_iter().collect(),
            body_length: None,
            eager_body: false,
        });
        let mut reader = FrameReader::new(&request[..]);
        assert!(matches!(reader.read_frame_limited(MAX_HELLO_PAYLOAD), Err(ProtocolError::BadLength { .. })));
        let mut hello = encode(&Frame::Hello { version: PROTOCOL_VERSION, secret: [1; 16] });
        hello.extend(encode(&Frame::End));
        let mut reader = FrameReader::new(&hello[..]);
        assert!(matches!(reader.read_frame_limited(MAX_HELLO_PAYLOAD), Ok(Frame::Hello { .. })));
        assert_eq!(reader.buffered(), [0x87, 0, 0, 0, 0]);
    }

    #[test]
    fn reader_buffer_shrinks_after_big_frame() {
        let big = Frame::Start {
            status: 200,
            reason: vec![b'x'; 3 * READ_AHEAD],
            headers: vec![(b"a".to_vec(), b"b".to_vec())],
        };
        let mut bytes = encode(&big);
        bytes.extend(encode(&Frame::Data(vec![9; 2 * READ_AHEAD])));
        bytes.extend(encode(&Frame::End));
        let mut reader = FrameReader::new(Chunky { data: &bytes, rng: Rng::new(5), max: 50_000 });
        assert_eq!(reader.read_frame().unwrap(), big);
        assert!(reader.buf.capacity() <= READ_AHEAD);
        assert_eq!(reader.read_frame().unwrap(), Frame::Data(vec![9; 2 * READ_AHEAD]));
        assert_eq!(reader.read_frame().unwrap(), Frame::End);
        assert!(reader.buf.capacity() <= READ_AHEAD);
    }
}
