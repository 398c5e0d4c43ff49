//! The frame type byte: which types exist, who sends each, and the payload lengths each allows.

use std::fmt;

use super::consts::{MAX_DATA, MAX_HEAD_PAYLOAD, MAX_HELLO_PAYLOAD, MAX_MESSAGE};

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
    Restart = 0x8b,
    Taken = 0x8c,
}

impl FrameType {
    /// Every frame type, in type-byte order.
    pub const ALL: [FrameType; 17] = [
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
        FrameType::Restart,
        FrameType::Taken,
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
            0x8b => FrameType::Restart,
            0x8c => FrameType::Taken,
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
            FrameType::BodyEnd | FrameType::End | FrameType::EndClose | FrameType::Restart | FrameType::Taken => (0, 0),
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
            FrameType::Restart => "RESTART",
            FrameType::Taken => "TAKEN",
        }
    }
}

impl fmt::Display for FrameType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
