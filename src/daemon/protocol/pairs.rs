//! Name/value pair lists (REQUEST `environ`, START `headers`): [`PairBuf`] and their wire
//! form, `u32 count` + `count` x (`bytes name`, `bytes value`).

use std::fmt;

/// Ordered name/value pairs (START headers).
pub(super) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Ordered name/value pairs kept in one buffer: a REQUEST's few dozen environ pairs are
/// decoded with two allocations, not two per pair.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PairBuf {
    pub(super) bytes: Vec<u8>,
    /// Per pair, where its name ends and where its value ends in `bytes`.
    pub(super) ends: Vec<(usize, usize)>,
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
pub(super) const MIN_PAIR_LEN: usize = 8;

pub(super) fn pairs_len<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> usize {
    pairs.fold(4usize, |acc, (name, value)| {
        acc.saturating_add(MIN_PAIR_LEN).saturating_add(name.len()).saturating_add(value.len())
    })
}

pub(super) fn borrowed(pairs: &[(Vec<u8>, Vec<u8>)]) -> impl ExactSizeIterator<Item = (&[u8], &[u8])> {
    pairs.iter().map(|(name, value)| (name.as_slice(), value.as_slice()))
}

pub(super) fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

pub(super) fn put_pairs<'a>(out: &mut Vec<u8>, pairs: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>) {
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (name, value) in pairs {
        put_bytes(out, name);
        put_bytes(out, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::protocol::test_support::*;
    use crate::daemon::protocol::Frame;

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
}
