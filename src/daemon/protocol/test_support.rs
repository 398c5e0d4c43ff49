//! Helpers shared by the protocol's unit tests: a deterministic PRNG, random valid frames,
//! and one-frame encode/decode shorthands.

use super::*;

/// xorshift64* PRNG: deterministic, dependency-free.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in 0..n (n > 0).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    pub(super) fn chance(&mut self, one_in: usize) -> bool {
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
    pub(super) fn blob(&mut self, min: usize, max: usize) -> Vec<u8> {
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
pub(super) fn random_frame(rng: &mut Rng, max_bulk: usize) -> Frame {
    match rng.below(17) {
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
        15 => Frame::Restart,
        16 => Frame::Taken,
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

pub(super) fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(frame, &mut out).expect("valid frame encodes");
    out
}

pub(super) fn decode_one(bytes: &[u8]) -> Frame {
    match decode_frame(bytes).expect("decodes") {
        Decoded::Frame(frame, used) => {
            assert_eq!(used, bytes.len());
            frame
        }
        other => panic!("incomplete: {other:?}"),
    }
}

pub(super) fn assert_malformed(bytes: &[u8]) {
    match decode_frame(bytes) {
        Err(ProtocolError::Malformed { .. }) => {}
        other => panic!("{bytes:?} gave {other:?}"),
    }
}
