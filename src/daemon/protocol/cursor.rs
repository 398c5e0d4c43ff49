//! Reading a payload field by field, each read checked against what is left.

use super::consts::MAX_PAIRS;
use super::error::ProtocolError;
use super::frame_type::FrameType;
use super::pairs::{PairBuf, Pairs, MIN_PAIR_LEN};

pub(super) struct Cursor<'a> {
    frame_type: FrameType,
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(super) fn new(frame_type: FrameType, rest: &'a [u8]) -> Cursor<'a> {
        Cursor { frame_type, rest }
    }

    pub(super) fn malformed(&self, reason: &'static str) -> ProtocolError {
        ProtocolError::Malformed { frame_type: self.frame_type, reason }
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.rest.len() {
            return Err(self.malformed("field runs past the end of the payload"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    pub(super) fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(super) fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(super) fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, ProtocolError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// u32 length + bytes. The length is checked against the remaining payload first.
    pub(super) fn slice(&mut self) -> Result<&'a [u8], ProtocolError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    pub(super) fn bytes(&mut self) -> Result<Vec<u8>, ProtocolError> {
        Ok(self.slice()?.to_vec())
    }

    /// u32 count; the count is checked against the remaining payload before reserving.
    pub(super) fn pair_count(&mut self) -> Result<usize, ProtocolError> {
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
    pub(super) fn pairs(&mut self) -> Result<Pairs, ProtocolError> {
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
    pub(super) fn pair_buf(&mut self) -> Result<PairBuf, ProtocolError> {
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

    pub(super) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    pub(super) fn rest_utf8(&mut self) -> Result<String, ProtocolError> {
        let bytes = self.rest();
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.malformed("message is not UTF-8")),
        }
    }

    pub(super) fn finish(&self) -> Result<(), ProtocolError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.malformed("trailing bytes after the last field"))
        }
    }
}
