//! The protocol's constants: its version, the frame header, and every size limit.

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

/// Read-ahead buffer size of [`FrameReader`](super::stream::FrameReader); its buffer shrinks back to this after a big frame.
pub(super) const READ_AHEAD: usize = 16 << 10;
