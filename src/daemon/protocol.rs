//! Daemon-mode wire protocol: Apache worker threads (the client) talk to WSGI daemon processes
//! (the server) over a UNIX stream socket.
//!
//! This module is pure: it knows nothing of Apache or Python. It encodes and decodes framed
//! messages over byte buffers and offers blocking helpers over [`Read`]/[`Write`] and over raw
//! sockets for file-descriptor passing. The specification is `docs/protocol.md`; the summary:
//!
//! * Every message is a frame: 1 byte type, 4 byte little-endian payload length, payload.
//! * Each frame type has a payload length range ([`FrameType::payload_range`]). It is checked on
//!   the 5 byte header, before anything is allocated, so a hostile length costs nothing.
//! * Decoding is strict and canonical: a byte string decodes to at most one frame and
//!   re-encoding that frame yields the same bytes. Malformed input is a [`ProtocolError`],
//!   never a panic.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The protocol version carried by HELLO. Both ends must speak exactly this version.
pub const PROTOCOL_VERSION: u8 = 2;
/// Length of the shared secret carried by HELLO.
pub const SECRET_LEN: usize = 16;
/// Length of a frame header: type byte + u32 LE payload length.
pub const HEADER_LEN: usize = 5;
/// Maximum payload of BODY and DATA frames, and maximum `max` of a READ frame.
pub const MAX_DATA: usize = 1 << 20;
/// Maximum payload of REQUEST and START frames (CGI environment, response headers).
pub const MAX_HEAD_PAYLOAD: usize = 16 << 20;
/// Maximum size of any frame, header included.
pub const MAX_FRAME: usize = HEADER_LEN + MAX_HEAD_PAYLOAD;
/// Maximum length in bytes of the message of HELLO_REJECT, ABORT and ERROR.
pub const MAX_MESSAGE: usize = 64 << 10;
/// Maximum payload of a HELLO frame (version 1 uses exactly 17 bytes; later versions may grow).
pub const MAX_HELLO_PAYLOAD: usize = 64;
/// Maximum number of name/value pairs in REQUEST `environ` and START `headers`.
pub const MAX_PAIRS: usize = 65_536;
/// A REQUEST with `eager_body` counts as an implicit `READ { max: EAGER_BODY_MAX }`.
pub const EAGER_BODY_MAX: usize = 64 << 10;

/// Read-ahead buffer size of [`FrameReader`]; its buffer shrinks back to this after a big frame.
const READ_AHEAD: usize = 16 << 10;

/// Frame type byte. Bit 7 set: sent by the daemon; clear: sent by Apache. 0x00 is never valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameType {
    Hello = 0x01,
    Request = 0x02,
    Body = 0x03,
    BodyEnd = 0x04,
    BodyError = 0x05,
    HelloOk = 0x81,
    HelloReject = 0x82,
    Read = 0x83,
    Start = 0x84,
    Data = 0x85,
    SendFile = 0x86,
    End = 0x87,
    Abort = 0x88,
    Error = 0x89,
    EndClose = 0x8a,
}

impl FrameType {
    /// Every frame type, in type-byte order.
    pub const ALL: [FrameType; 15] = [
        FrameType::Hello,
        FrameType::Request,
        FrameType::Body,
        FrameType::BodyEnd,
        FrameType::BodyError,
        FrameType::HelloOk,
        FrameType::HelloReject,
        FrameType::Read,
        FrameType::Start,
        FrameType::Data,
        FrameType::SendFile,
        FrameType::End,
        FrameType::Abort,
        FrameType::Error,
        FrameType::EndClose,
    ];

    /// The frame type for a type byte, or `None` if the byte is not a frame type.
    pub const fn from_u8(byte: u8) -> Option<FrameType> {
        Some(match byte {
            0x01 => FrameType::Hello,
            0x02 => FrameType::Request,
            0x03 => FrameType::Body,
            0x04 => FrameType::BodyEnd,
            0x05 => FrameType::BodyError,
            0x81 => FrameType::HelloOk,
            0x82 => FrameType::HelloReject,
            0x83 => FrameType::Read,
            0x84 => FrameType::Start,
            0x85 => FrameType::Data,
            0x86 => FrameType::SendFile,
            0x87 => FrameType::End,
            0x88 => FrameType::Abort,
            0x89 => FrameType::Error,
            0x8a => FrameType::EndClose,
            _ => return None,
        })
    }

    /// True for frames the daemon sends, false for frames Apache sends.
    pub const fn sent_by_daemon(self) -> bool {
        self as u8 & 0x80 != 0
    }

    /// Inclusive `(min, max)` payload length for this frame type, enforced on every header.
    pub const fn payload_range(self) -> (usize, usize) {
        match self {
            FrameType::Hello => (1, MAX_HELLO_PAYLOAD),
            FrameType::BodyEnd | FrameType::End | FrameType::EndClose => (0, 0),
            FrameType::HelloOk => (4, 4),
            FrameType::HelloReject => (1, 1 + MAX_MESSAGE),
            FrameType::Request => (1 + 8 + 4, MAX_HEAD_PAYLOAD),
            FrameType::Read => (4, 4),
            FrameType::Body | FrameType::Data => (1, MAX_DATA),
            FrameType::BodyError => (2, 2),
            FrameType::Start => (2 + 4 + 4, MAX_HEAD_PAYLOAD),
            FrameType::SendFile => (16, 16),
            FrameType::Abort => (0, MAX_MESSAGE),
            FrameType::Error => (2, 2 + MAX_MESSAGE),
        }
    }

    /// The name used in docs/protocol.md, e.g. `"BODY_END"`.
    pub const fn name(self) -> &'static str {
        match self {
            FrameType::Hello => "HELLO",
            FrameType::Request => "REQUEST",
            FrameType::Body => "BODY",
            FrameType::BodyEnd => "BODY_END",
            FrameType::BodyError => "BODY_ERROR",
            FrameType::HelloOk => "HELLO_OK",
            FrameType::HelloReject => "HELLO_REJECT",
            FrameType::Read => "READ",
            FrameType::Start => "START",
            FrameType::Data => "DATA",
            FrameType::SendFile => "SENDFILE",
            FrameType::End => "END",
            FrameType::Abort => "ABORT",
            FrameType::Error => "ERROR",
            FrameType::EndClose => "END_CLOSE",
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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
    #[error("unexpected file descriptor with a {frame_type} frame")]
    UnexpectedFd { frame_type: FrameType },
    /// The kernel truncated ancillary data (more descriptors than expected were sent).
    #[error("ancillary data truncated while receiving a frame")]
    ControlTruncated,
}

/// Result of [`decode_frame`].
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A complete frame and the number of bytes it occupied at the start of the buffer.
    Frame(Frame, usize),
    /// The buffer holds an incomplete frame: at least this many more bytes are needed. Before
    /// the header is complete this is what completes the header; after, what completes the frame.
    NeedMore(usize),
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

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

/// Decodes the frame at the start of `buf`. Never allocates more than the frame's payload
/// (plus the pair vector of REQUEST/START, bounded by the payload size).
pub fn decode_frame(buf: &[u8]) -> Result<Decoded, ProtocolError> {
    decode_frame_limited(buf, usize::MAX)
}

/// [`decode_frame`] with an extra cap on the payload length, e.g. [`MAX_HELLO_PAYLOAD`] while
/// a connection is not yet authenticated.
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
    let mut c = Cursor { frame_type, rest: payload };
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
        FrameType::Request => {
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
            Frame::Request { environ: c.pair_buf()?, body_length, eager_body }
        }
        FrameType::Read => Frame::Read { max: c.u32()? },
        FrameType::Body => Frame::Body(c.rest().to_vec()),
        FrameType::BodyEnd => Frame::BodyEnd,
        FrameType::BodyError => Frame::BodyError { status: c.u16()? },
        FrameType::Start => {
            let status = c.u16()?;
            let reason = c.bytes()?;
            Frame::Start { status, reason, headers: c.pairs()? }
        }
        FrameType::Data => Frame::Data(c.rest().to_vec()),
        FrameType::SendFile => Frame::SendFile { offset: c.u64()?, length: c.u64()? },
        FrameType::End => Frame::End,
        FrameType::EndClose => Frame::EndClose,
        FrameType::Abort => Frame::Abort { message: c.rest_utf8()? },
        FrameType::Error => Frame::Error { status: c.u16()?, message: c.rest_utf8()? },
    };
    c.finish()?;
    validate_fields(&frame)?;
    Ok(frame)
}

/// Like [`decode_payload`] but takes ownership, so BODY and DATA keep the buffer (no copy).
/// The caller has already checked the length with [`parse_header`].
fn decode_owned_payload(frame_type: FrameType, payload: Vec<u8>) -> Result<Frame, ProtocolError> {
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

/// Ordered name/value pairs (START headers).
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Ordered name/value pairs kept in one buffer: a REQUEST's few dozen environ pairs are
/// decoded with two allocations, not two per pair.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PairBuf {
    bytes: Vec<u8>,
    /// Per pair, where its name ends and where its value ends in `bytes`.
    ends: Vec<(usize, usize)>,
}

impl PairBuf {
    pub fn push(&mut self, name: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(name);
        let name_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.ends.push((name_end, self.bytes.len()));
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> + '_ {
        (0..self.ends.len()).map(|i| {
            let start = if i == 0 { 0 } else { self.ends[i - 1].1 };
            let (name_end, value_end) = self.ends[i];
            (&self.bytes[start..name_end], &self.bytes[name_end..value_end])
        })
    }

    /// The value of the first pair named `name`.
    pub fn get(&self, name: &[u8]) -> Option<&[u8]> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

impl<N: AsRef<[u8]>, V: AsRef<[u8]>> FromIterator<(N, V)> for PairBuf {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> PairBuf {
        let mut buf = PairBuf::default();
        for (name, value) in pairs {
            buf.push(name.as_ref(), value.as_ref());
        }
        buf
    }
}

impl fmt::Debug for PairBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(k, v)| (String::from_utf8_lossy(k), String::from_utf8_lossy(v))))
            .finish()
    }
}

/// Bytes per name/value pair at minimum: two u32 length prefixes.
const MIN_PAIR_LEN: usize = 8;

struct Cursor<'a> {
    frame_type: FrameType,
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn malformed(&self, reason: &'static str) -> ProtocolError {
        ProtocolError::Malformed { frame_type: self.frame_type, reason }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.rest.len() {
            return Err(self.malformed("field runs past the end of the payload"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// u32 length + bytes. The length is checked against the remaining payload first.
    fn slice(&mut self) -> Result<&'a [u8], ProtocolError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, ProtocolError> {
        Ok(self.slice()?.to_vec())
    }

    /// u32 count; the count is checked against the remaining payload before reserving.
    fn pair_count(&mut self) -> Result<usize, ProtocolError> {
        let n = self.u32()? as usize;
        if n > MAX_PAIRS {
            return Err(self.malformed("too many name/value pairs"));
        }
        if n > self.rest.len() / MIN_PAIR_LEN {
            return Err(self.malformed("pair count exceeds the payload"));
        }
        Ok(n)
    }

    /// u32 count + pairs.
    fn pairs(&mut self) -> Result<Pairs, ProtocolError> {
        let n = self.pair_count()?;
        let mut pairs = Vec::with_capacity(n);
        for _ in 0..n {
            let name = self.bytes()?;
            let value = self.bytes()?;
            pairs.push((name, value));
        }
        Ok(pairs)
    }

    /// u32 count + pairs, into one buffer.
    fn pair_buf(&mut self) -> Result<PairBuf, ProtocolError> {
        let n = self.pair_count()?;
        let mut pairs =
            PairBuf { bytes: Vec::with_capacity(self.rest.len() - n * MIN_PAIR_LEN), ends: Vec::with_capacity(n) };
        for _ in 0..n {
            let name = self.slice()?;
            let value = self.slice()?;
            pairs.push(name, value);
        }
        Ok(pairs)
    }

    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    fn rest_utf8(&mut self) -> Result<String, ProtocolError> {
        let bytes = self.rest();
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.malformed("message is not UTF-8")),
        }
    }

    fn finish(&self) -> Result<(), ProtocolError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("trailing bytes after the last field"))
        }
    }
}

/// Field rules shared by the encoder and the decoder (length ranges are checked separately).
fn validate_fields(frame: &Frame) -> Result<(), ProtocolError> {
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

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

fn pairs_len<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> usize {
    pairs.fold(4usize, |acc, (name, value)| {
        acc.saturating_add(MIN_PAIR_LEN).saturating_add(name.len()).saturating_add(value.len())
    })
}

/// A REQUEST's payload length: flags, body length, environ.
fn request_len<'a>(environ: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> usize {
    pairs_len(environ).saturating_add(1 + 8)
}

/// A START's payload length: status, reason (length-prefixed), headers.
fn start_len(reason: &[u8], headers: &[(Vec<u8>, Vec<u8>)]) -> usize {
    pairs_len(borrowed(headers)).saturating_add(reason.len()).saturating_add(2 + 4)
}

fn borrowed(pairs: &[(Vec<u8>, Vec<u8>)]) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
    pairs.iter().map(|(name, value)| (name.as_slice(), value.as_slice()))
}

fn payload_len(frame: &Frame) -> usize {
    match frame {
        Frame::Hello { .. } => 1 + SECRET_LEN,
        Frame::BodyEnd | Frame::End | Frame::EndClose => 0,
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

/// The 5-byte header of a frame whose payload is `len` bytes (for callers that write a BODY or
/// DATA payload in place; `len` must be in the type's range).
pub fn frame_header(frame_type: FrameType, len: usize) -> [u8; HEADER_LEN] {
    header_bytes(frame_type, len)
}

fn header_bytes(frame_type: FrameType, len: usize) -> [u8; HEADER_LEN] {
    // Callers have checked len <= MAX_HEAD_PAYLOAD, so it fits in a u32.
    let l = (len as u32).to_le_bytes();
    [frame_type as u8, l[0], l[1], l[2], l[3]]
}

fn checked_len(frame_type: FrameType, len: usize) -> Result<(), ProtocolError> {
    let (min, max) = frame_type.payload_range();
    if len < min || len > max {
        return Err(ProtocolError::BadLength { frame_type, len: len as u64 });
    }
    Ok(())
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_pairs<'a>(out: &mut Vec<u8>, pairs: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>) {
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (name, value) in pairs {
        put_bytes(out, name);
        put_bytes(out, value);
    }
}

/// Appends the encoding of `frame` to `out` (reserving exactly once). On error `out` is left
/// unchanged. Errors: a field breaks the rules (`Malformed`) or the payload is out of range for
/// its type (`BadLength`, e.g. an empty DATA or a START over [`MAX_HEAD_PAYLOAD`]).
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
        Frame::BodyEnd | Frame::End | Frame::EndClose => {}
        Frame::HelloOk { pid } => out.extend_from_slice(&pid.to_le_bytes()),
        Frame::HelloReject { version, message } => {
            out.push(*version);
            out.extend_from_slice(message.as_bytes());
        }
        Frame::Request { environ, body_length, eager_body } => {
            out.push(request_flags(*body_length, *eager_body));
            out.extend_from_slice(&body_length.unwrap_or(0).to_le_bytes());
            put_pairs(out, environ.iter());
        }
        Frame::Read { max } => out.extend_from_slice(&max.to_le_bytes()),
        Frame::Body(bytes) | Frame::Data(bytes) => out.extend_from_slice(bytes),
        Frame::BodyError { status } => out.extend_from_slice(&status.to_le_bytes()),
        Frame::Start { status, reason, headers } => {
            out.extend_from_slice(&status.to_le_bytes());
            put_bytes(out, reason);
            put_pairs(out, borrowed(headers));
        }
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

// ---------------------------------------------------------------------------------------------
// Blocking I/O over Read / Write
// ---------------------------------------------------------------------------------------------

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
    out.push(request_flags(body_length, eager_body));
    out.extend_from_slice(&body_length.unwrap_or(0).to_le_bytes());
    put_pairs(out, environ.iter().copied());
    Ok(())
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
    out.extend_from_slice(&status.to_le_bytes());
    put_bytes(out, reason);
    put_pairs(out, borrowed(headers));
    Ok(())
}

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

fn write_bytes_frame<W: Write + ?Sized>(w: &mut W, frame_type: FrameType, bytes: &[u8]) -> Result<(), ProtocolError> {
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

/// Reads frames from a byte stream through an internal read-ahead buffer that is reused from
/// frame to frame (and shrunk back to 64 KiB after an unusually big frame).
///
/// Bytes read ahead belong to the reader: do not read from the inner stream directly while the
/// reader is in use (see [`FrameReader::buffered`]). Do not use it on a socket that may carry
/// file descriptors; use [`recv_frame_maybe_fd`] there.
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

// ---------------------------------------------------------------------------------------------
// File descriptor passing (SENDFILE)
// ---------------------------------------------------------------------------------------------

/// Control buffer for recvmsg/sendmsg: 64 bytes, aligned for `cmsghdr`. Room for one SCM_RIGHTS
/// message of up to 12 descriptors, so a peer sending too many is detected (`MSG_CTRUNC`).
type ControlBuf = [u64; 8];

/// Sends a SENDFILE frame on a blocking UNIX stream socket with `fd` attached (SCM_RIGHTS) to
/// its first byte, in one `sendmsg` (the rest, if the kernel took only part, follows with
/// `send`). Any other frame type is refused with [`ProtocolError::UnexpectedFd`].
pub fn send_frame_with_fd(sock: impl AsFd, frame: &Frame, fd: impl AsFd) -> Result<(), ProtocolError> {
    if !matches!(frame, Frame::SendFile { .. }) {
        return Err(ProtocolError::UnexpectedFd { frame_type: frame.frame_type() });
    }
    let mut buf = Vec::with_capacity(HEADER_LEN + 16);
    encode_frame(frame, &mut buf)?;
    send_bytes_with_fd(sock.as_fd().as_raw_fd(), &buf, fd.as_fd().as_raw_fd())?;
    Ok(())
}

fn send_bytes_with_fd(sock: RawFd, bytes: &[u8], fd: RawFd) -> io::Result<()> {
    let mut control: ControlBuf = [0; 8];
    // SAFETY: CMSG_SPACE is pure arithmetic.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as libc::c_uint) };
    debug_assert!(space as usize <= std::mem::size_of::<ControlBuf>());
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    // SAFETY: msghdr is a plain C struct; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` bytes of suitably aligned, zeroed storage, so
    // CMSG_FIRSTHDR is non-null and the header plus one int fit.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<libc::c_int>() as libc::c_uint) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), fd);
    }
    let mut sent = loop {
        // SAFETY: msg and everything it points to are live for the call.
        let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    while sent < bytes.len() {
        let rest = &bytes[sent..];
        // SAFETY: rest is a live byte slice.
        let n = unsafe { libc::send(sock, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        sent += n as usize;
    }
    Ok(())
}

/// Receives one frame from a blocking UNIX stream socket, together with the file descriptor
/// passed with it. Reads exactly the frame's bytes (header, then payload; no read-ahead), so it
/// can be mixed with plain reads and writes on the same socket. Received descriptors are
/// close-on-exec.
///
/// A SENDFILE frame must come with exactly one descriptor ([`ProtocolError::MissingFd`]
/// otherwise); any other frame with none ([`ProtocolError::UnexpectedFd`]; stray descriptors
/// are closed). `Err(ProtocolError::Closed)` means a clean close between frames.
pub fn recv_frame_maybe_fd(sock: impl AsFd) -> Result<(Frame, Option<OwnedFd>), ProtocolError> {
    let sock = sock.as_fd().as_raw_fd();
    let mut fds = Vec::new();
    let mut header = [0u8; HEADER_LEN];
    match recv_exact(sock, &mut header, &mut fds)? {
        0 => return Err(ProtocolError::Closed),
        HEADER_LEN => {}
        _ => return Err(ProtocolError::Truncated),
    }
    let (frame_type, len) = parse_header(&header, usize::MAX)?;
    let mut payload = vec![0u8; len];
    if recv_exact(sock, &mut payload, &mut fds)? < len {
        return Err(ProtocolError::Truncated);
    }
    let frame = decode_owned_payload(frame_type, payload)?;
    let fd = match (frame_type == FrameType::SendFile, fds.len()) {
        (true, 1) => fds.pop(),
        (false, 0) => None,
        (true, 0) => return Err(ProtocolError::MissingFd),
        _ => return Err(ProtocolError::UnexpectedFd { frame_type }),
    };
    Ok((frame, fd))
}

/// recvmsg until `out` is full or EOF; returns the number of bytes read. Descriptors received
/// on the way are appended to `fds`.
fn recv_exact(sock: RawFd, out: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize, ProtocolError> {
    let mut got = 0;
    while got < out.len() {
        let mut control: ControlBuf = [0; 8];
        let rest = &mut out[got..];
        let mut iov = libc::iovec { iov_base: rest.as_mut_ptr().cast(), iov_len: rest.len() };
        // SAFETY: msghdr is a plain C struct; all-zero is a valid (empty) value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of::<ControlBuf>() as _;
        // SAFETY: msg and the buffers it points to are live and writable for the call.
        let n = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e.into());
        }
        // SAFETY: the kernel filled msg_control/msg_controllen for this msg.
        unsafe { collect_fds(&msg, fds) };
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(ProtocolError::ControlTruncated);
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    Ok(got)
}

/// Takes ownership of every SCM_RIGHTS descriptor in `msg`.
///
/// # Safety
/// `msg` must describe control data just filled in by `recvmsg`.
unsafe fn collect_fds(msg: &libc::msghdr, fds: &mut Vec<OwnedFd>) {
    let int = std::mem::size_of::<libc::c_int>();
    let mut cmsg = libc::CMSG_FIRSTHDR(msg);
    while !cmsg.is_null() {
        if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
            let data = libc::CMSG_DATA(cmsg).cast::<libc::c_int>();
            let data_len = ((*cmsg).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            for i in 0..data_len / int {
                let fd = std::ptr::read_unaligned(data.add(i));
                fds.push(OwnedFd::from_raw_fd(fd));
            }
        }
        cmsg = libc::CMSG_NXTHDR(msg, cmsg);
    }
}

/// Constant-time comparison of HELLO secrets.
pub fn secrets_equal(a: &[u8; SECRET_LEN], b: &[u8; SECRET_LEN]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
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
            super::encode_request(&borrowed, body_length, eager_body, &mut direct).unwrap();
            let mut framed = Vec::new();
            super::encode_frame(
                &super::Frame::Request { environ: environ.iter().cloned().collect(), body_length, eager_body },
                &mut framed,
            )
            .unwrap();
            assert_eq!(direct, framed);
        }
    }

    #[test]
    fn encode_start_matches_encode_frame() {
        let headers = vec![(b"Set-Cookie".to_vec(), b"a=1".to_vec()), (b"Set-Cookie".to_vec(), b"b=2".to_vec())];
        for (status, reason) in [(200u16, b"OK".to_vec()), (599, vec![]), (100, b"Continue".to_vec())] {
            let mut direct = Vec::new();
            super::encode_start(status, &reason, &headers, &mut direct).unwrap();
            let mut framed = Vec::new();
            super::encode_frame(&super::Frame::Start { status, reason, headers: headers.clone() }, &mut framed)
                .unwrap();
            assert_eq!(direct, framed);
        }
        assert!(super::encode_start(99, b"x", &headers, &mut Vec::new()).is_err());
    }

    #[test]
    fn encode_data_matches_encode_frame() {
        for len in [1usize, 10, super::MAX_DATA, super::MAX_DATA + 1, 2 * super::MAX_DATA + 7] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut direct = Vec::new();
            super::encode_data(&bytes, &mut direct);
            let mut framed = Vec::new();
            for chunk in bytes.chunks(super::MAX_DATA) {
                super::encode_frame(&super::Frame::Data(chunk.to_vec()), &mut framed).unwrap();
            }
            assert_eq!(direct, framed, "len {len}");
        }
        let mut empty = Vec::new();
        super::encode_data(&[], &mut empty);
        assert!(empty.is_empty());
    }

    use super::*;
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

    /// xorshift64* PRNG: deterministic, dependency-free.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        /// Uniform in 0..n (n > 0).
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn chance(&mut self, one_in: usize) -> bool {
            self.below(one_in) == 0
        }
        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
        /// Mostly short lengths, sometimes up to `max`.
        fn len(&mut self, max: usize) -> usize {
            match self.below(10) {
                0..=5 => self.below(17.min(max + 1)),
                6..=8 => self.below(257.min(max + 1)),
                _ => self.below(max + 1),
            }
        }
        /// Random bytes, length in min..=max, mostly short.
        fn blob(&mut self, min: usize, max: usize) -> Vec<u8> {
            let n = min + self.len(max - min);
            self.bytes(n)
        }
        fn text(&mut self, max: usize) -> String {
            const PIECES: [&str; 6] = ["a", "Z", " ", "\u{e9}", "\u{20ac}", "\u{1f600}"];
            let mut s = String::new();
            let n = self.len(max / 4);
            for _ in 0..n {
                s.push_str(PIECES[self.below(PIECES.len())]);
            }
            s
        }
        fn pairs(&mut self, max_pairs: usize, max_item: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
            let n = self.len(max_pairs);
            (0..n)
                .map(|_| {
                    let (a, b) = (self.len(max_item), self.len(max_item));
                    (self.bytes(a), self.bytes(b))
                })
                .collect()
        }
        fn status(&mut self, lo: u16, hi: u16) -> u16 {
            lo + self.below(usize::from(hi - lo) + 1) as u16
        }
    }

    /// A random valid frame. `max_bulk` bounds BODY/DATA sizes.
    fn random_frame(rng: &mut Rng, max_bulk: usize) -> Frame {
        match rng.below(15) {
            0 => Frame::Hello { version: PROTOCOL_VERSION, secret: rng.array() },
            1 => Frame::HelloOk { pid: rng.next() as u32 },
            2 => Frame::HelloReject { version: rng.next() as u8, message: rng.text(64) },
            3 => Frame::Request {
                environ: rng.pairs(64, 64).into_iter().collect(),
                body_length: if rng.chance(2) { Some(rng.next() >> rng.below(64)) } else { None },
                eager_body: rng.chance(2),
            },
            4 => Frame::Read { max: 1 + rng.below(MAX_DATA) as u32 },
            5 => Frame::Body(rng.blob(1, max_bulk)),
            6 => Frame::BodyEnd,
            7 => Frame::BodyError { status: rng.status(400, 599) },
            8 => Frame::Start { status: rng.status(100, 999), reason: rng.blob(0, 32), headers: rng.pairs(32, 64) },
            9 => Frame::Data(rng.blob(1, max_bulk)),
            10 => {
                let offset = rng.next() >> (2 + rng.below(62));
                let room = i64::MAX as u64 - offset;
                let length = 1 + (rng.next() >> rng.below(64)) % room;
                Frame::SendFile { offset, length }
            }
            11 => Frame::End,
            14 => Frame::EndClose,
            12 => Frame::Abort { message: rng.text(256) },
            _ => Frame::Error { status: rng.status(400, 599), message: rng.text(256) },
        }
    }

    impl Rng {
        fn array<const N: usize>(&mut self) -> [u8; N] {
            let mut a = [0u8; N];
            a.iter_mut().for_each(|b| *b = self.next() as u8);
            a
        }
    }

    fn encode(frame: &Frame) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(frame, &mut out).expect("valid frame encodes");
        out
    }

    fn decode_one(bytes: &[u8]) -> Frame {
        match decode_frame(bytes).expect("decodes") {
            Decoded::Frame(frame, used) => {
                assert_eq!(used, bytes.len());
                frame
            }
            other => panic!("incomplete: {other:?}"),
        }
    }

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
    fn pair_buf_keeps_order_repeats_and_empty_items() {
        let pairs: PairBuf = [("", ""), ("A", "1"), ("B", ""), ("A", "2"), ("", "v")].into_iter().collect();
        let back: Vec<(&[u8], &[u8])> = pairs.iter().collect();
        assert_eq!(back, [(&b""[..], &b""[..]), (b"A", b"1"), (b"B", b""), (b"A", b"2"), (b"", b"v")],);
        assert_eq!((pairs.len(), pairs.iter().len()), (5, 5));
        assert_eq!(pairs.get(b"A"), Some(&b"1"[..]));
        assert_eq!(pairs.get(b"B"), Some(&b""[..]));
        assert_eq!(pairs.get(b"C"), None);
        assert!(PairBuf::default().is_empty());
    }

    #[test]
    fn repeated_headers_and_environ_order_survive() {
        let headers: Vec<_> = ["a=1", "b=2", "c=3"]
            .iter()
            .map(|c| (b"Set-Cookie".to_vec(), c.as_bytes().to_vec()))
            .chain([(b"Content-Type".to_vec(), b"text/plain".to_vec())])
            .collect();
        let start = Frame::Start { status: 200, reason: b"OK".to_vec(), headers: headers.clone() };
        assert_eq!(decode_one(&encode(&start)), start);
        let environ = vec![
            (b"REQUEST_METHOD".to_vec(), b"POST".to_vec()),
            (b"HTTP_X".to_vec(), vec![0xff, 0x00, 0x80]),
            (b"HTTP_X".to_vec(), vec![]),
            (Vec::new(), Vec::new()),
        ];
        let request = Frame::Request { environ: environ.into_iter().collect(), body_length: None, eager_body: false };
        assert_eq!(decode_one(&encode(&request)), request);
    }

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

    fn assert_malformed(bytes: &[u8]) {
        match decode_frame(bytes) {
            Err(ProtocolError::Malformed { .. }) => {}
            other => panic!("{bytes:?} gave {other:?}"),
        }
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

    fn temp_file(tag: &str, contents: &[u8]) -> std::fs::File {
        let path = std::env::temp_dir().join(format!(
            "oxwsgi-protocol-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, contents).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file
    }

    fn read_fd_range(fd: OwnedFd, offset: u64, length: u64) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let mut out = vec![0u8; length as usize];
        std::fs::File::from(fd).read_exact_at(&mut out, offset).unwrap();
        out
    }

    #[test]
    fn sendfile_fd_passing_over_socketpair() {
        let (apache, mut daemon) = UnixStream::pair().unwrap();
        let one = temp_file("one", b"0123456789");
        let two = temp_file("two", b"abcdefghij");
        let big = Frame::Data(vec![5; 300_000]); // bigger than the socket buffer
        let first = Frame::SendFile { offset: 2, length: 5 };
        let second = Frame::SendFile { offset: 7, length: 3 };
        let writer = std::thread::spawn(move || {
            write_frame(&mut daemon, &Frame::Start { status: 200, reason: b"OK".to_vec(), headers: vec![] }).unwrap();
            send_frame_with_fd(&daemon, &first, &one).unwrap();
            write_frame(&mut daemon, &big).unwrap();
            send_frame_with_fd(&daemon, &second, &two).unwrap();
            write_frame(&mut daemon, &Frame::End).unwrap();
            // Refused: descriptors only travel with SENDFILE.
            assert!(matches!(
                send_frame_with_fd(&daemon, &Frame::End, &one),
                Err(ProtocolError::UnexpectedFd { frame_type: FrameType::End })
            ));
        });
        let (frame, fd) = recv_frame_maybe_fd(&apache).unwrap();
        assert!(matches!(frame, Frame::Start { status: 200, .. }) && fd.is_none());
        let (frame, fd) = recv_frame_maybe_fd(&apache).unwrap();
        assert_eq!(frame, Frame::SendFile { offset: 2, length: 5 });
        let fd = fd.expect("fd with SENDFILE");
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert!(flags & libc::FD_CLOEXEC != 0, "received fd must be close-on-exec");
        assert_eq!(read_fd_range(fd, 2, 5), b"23456");
        let (frame, fd) = recv_frame_maybe_fd(&apache).unwrap();
        assert!(matches!(&frame, Frame::Data(d) if d.len() == 300_000) && fd.is_none());
        let (frame, fd) = recv_frame_maybe_fd(&apache).unwrap();
        assert_eq!(frame, Frame::SendFile { offset: 7, length: 3 });
        assert_eq!(read_fd_range(fd.unwrap(), 7, 3), b"hij");
        assert_eq!(recv_frame_maybe_fd(&apache).unwrap().0, Frame::End);
        writer.join().unwrap();
        assert!(matches!(recv_frame_maybe_fd(&apache), Err(ProtocolError::Closed)));
    }

    #[test]
    fn fd_mismatches_are_errors() {
        let file = temp_file("mismatch", b"x");
        // SENDFILE without a descriptor.
        let (a, mut b) = UnixStream::pair().unwrap();
        write_frame(&mut b, &Frame::SendFile { offset: 0, length: 1 }).unwrap();
        assert!(matches!(recv_frame_maybe_fd(&a), Err(ProtocolError::MissingFd)));
        // A descriptor smuggled with a DATA frame.
        let (a, b) = UnixStream::pair().unwrap();
        send_bytes_with_fd(b.as_raw_fd(), &encode(&Frame::Data(b"hi".to_vec())), file.as_raw_fd()).unwrap();
        assert!(matches!(recv_frame_maybe_fd(&a), Err(ProtocolError::UnexpectedFd { frame_type: FrameType::Data })));
        // Truncated frame, then EOF.
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(&[0x85, 4, 0, 0, 0, 1]).unwrap();
        drop(b);
        assert!(matches!(recv_frame_maybe_fd(&a), Err(ProtocolError::Truncated)));
    }

    #[test]
    fn keep_alive_conversation_over_socketpair() {
        // Two requests on one connection: the handshake, an eager body, a pull, then reuse.
        let (apache, daemon) = UnixStream::pair().unwrap();
        let secret = [3u8; SECRET_LEN];
        let server = std::thread::spawn(move || {
            let mut out = &daemon;
            let mut reader = FrameReader::new(&daemon);
            let Frame::Hello { secret: got, .. } = reader.read_frame_limited(MAX_HELLO_PAYLOAD).unwrap() else {
                panic!("expected HELLO")
            };
            assert!(secrets_equal(&got, &secret));
            write_frame(&mut out, &Frame::HelloOk { pid: 7 }).unwrap();
            for _ in 0..2 {
                let Frame::Request { eager_body, body_length, .. } = reader.read_frame().unwrap() else {
                    panic!("expected REQUEST")
                };
                assert_eq!((eager_body, body_length), (true, None));
                let mut body = Vec::new();
                let mut reply = reader.read_frame().unwrap(); // the implicit READ's reply
                loop {
                    match reply {
                        Frame::Body(b) => body.extend(b),
                        Frame::BodyEnd => break,
                        other => panic!("unexpected {other:?}"),
                    }
                    write_frame(&mut out, &Frame::Read { max: 4 }).unwrap();
                    reply = reader.read_frame().unwrap();
                }
                write_frame(&mut out, &Frame::Start { status: 200, reason: b"OK".to_vec(), headers: vec![] }).unwrap();
                write_data(&mut out, &body).unwrap();
                write_frame(&mut out, &Frame::End).unwrap();
            }
            assert!(matches!(reader.read_frame(), Err(ProtocolError::Closed)));
        });
        let mut out = &apache;
        write_frame(&mut out, &Frame::Hello { version: PROTOCOL_VERSION, secret }).unwrap();
        assert_eq!(recv_frame_maybe_fd(&apache).unwrap().0, Frame::HelloOk { pid: 7 });
        for body in [&b"hello world"[..], b"x"] {
            let request = Frame::Request { environ: PairBuf::default(), body_length: None, eager_body: true };
            write_frame(&mut out, &request).unwrap();
            write_frame(&mut out, &Frame::Body(body[..1].to_vec())).unwrap();
            let mut sent = 1;
            let mut response = Vec::new();
            loop {
                match recv_frame_maybe_fd(&apache).unwrap().0 {
                    Frame::Read { max } => {
                        let n = (max as usize).min(body.len() - sent);
                        if n == 0 {
                            write_frame(&mut out, &Frame::BodyEnd).unwrap();
                        } else {
                            write_frame(&mut out, &Frame::Body(body[sent..sent + n].to_vec())).unwrap();
                            sent += n;
                        }
                    }
                    Frame::Start { status, .. } => assert_eq!(status, 200),
                    Frame::Data(d) => response.extend(d),
                    Frame::End => break,
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(response, body);
        }
        drop(apache);
        server.join().unwrap();
    }
}
