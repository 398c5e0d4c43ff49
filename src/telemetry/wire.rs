//! mod_wsgi 6's telemetry datagram (src/server/wsgi_telemetry.h; decoded by the
//! `mod_wsgi-telemetry` package's `wire.py`): a 24-byte little-endian header — magic `WSGI`,
//! version 1, kind, flags 0, pid, sequence number, stamp (f64 seconds since the epoch) — then
//! TLV fields (u16 id, u8 type, u16 length for the variable types, value) to the end.

/// Datagram kinds oxwsgi sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// The per-interval sample of one process.
    Request = 2,
    SlowRequest = 4,
    ProcessStarted = 5,
    ProcessStopping = 6,
    ProcessStopped = 7,
    GcSnapshot = 8,
    GcEvent = 9,
}

const T_U64: u8 = 0x01;
const T_F64: u8 = 0x02;
const T_BYTES: u8 = 0x04;
const T_I32_ARRAY: u8 = 0x05;

/// Field ids (wsgi_telemetry.h), by the name `wire.py` gives them.
pub mod field {
    pub const MOD_WSGI_VERSION: u16 = 1;
    pub const PYTHON_VERSION: u16 = 2;
    pub const APACHE_VERSION: u16 = 3;
    pub const MPM_NAME: u16 = 4;
    pub const HOSTNAME: u16 = 5;
    pub const PROCESS_GROUP: u16 = 6;
    pub const PROCESS_PARENT_PID: u16 = 7;
    pub const SAMPLE_PERIOD: u16 = 10;
    pub const TELEMETRY_INTERVAL: u16 = 11;
    pub const SLOW_REQUESTS_THRESHOLD: u16 = 12;
    pub const REQUEST_COUNT: u16 = 20;
    pub const REQUEST_THROUGHPUT: u16 = 21;
    pub const CAPACITY_UTILIZATION: u16 = 22;
    pub const CPU_USER_UTILIZATION: u16 = 30;
    pub const CPU_SYSTEM_UTILIZATION: u16 = 31;
    pub const CPU_UTILIZATION: u16 = 32;
    pub const MEMORY_RSS: u16 = 40;
    pub const MEMORY_MAX_RSS: u16 = 41;
    pub const REQUEST_THREADS_MAXIMUM: u16 = 50;
    pub const REQUEST_THREADS_STARTED: u16 = 51;
    pub const REQUEST_THREADS_ACTIVE: u16 = 52;
    /// Per-phase means; +10 is the minimum, +20 the maximum, +30 the histogram.
    pub const SERVER_TIME: u16 = 60;
    pub const QUEUE_TIME: u16 = 61;
    pub const DAEMON_TIME: u16 = 62;
    pub const APPLICATION_TIME: u16 = 63;
    pub const REQUEST_TIME: u16 = 64;
    pub const INPUT_BYTES_TOTAL: u16 = 100;
    pub const OUTPUT_BYTES_TOTAL: u16 = 102;
    /// status_1xx_total .. status_5xx_total.
    pub const STATUS_1XX_TOTAL: u16 = 120;
    pub const SHUTDOWN_REASON: u16 = 130;
    pub const PROCESS_UPTIME: u16 = 131;
    pub const LIFETIME_REQUEST_COUNT: u16 = 132;
    pub const ACTIVE_REQUESTS_AT_DECISION: u16 = 133;
    pub const ACTIVE_REQUESTS_AT_EXIT: u16 = 134;
    pub const GRACEFUL_DRAIN: u16 = 135;
    pub const SLOW_RECORD_STATE: u16 = 200;
    pub const SLOW_START_STAMP: u16 = 201;
    pub const SLOW_DURATION: u16 = 202;
    pub const SLOW_THREAD_ID: u16 = 203;
    pub const SLOW_SERVER_PID: u16 = 205;
    pub const SLOW_METHOD: u16 = 210;
    pub const SLOW_SCHEME: u16 = 211;
    pub const SLOW_HOSTNAME: u16 = 212;
    pub const SLOW_SCRIPT_NAME: u16 = 213;
    pub const SLOW_PATH_INFO: u16 = 214;
    pub const SLOW_PROTOCOL: u16 = 215;
    pub const SLOW_PEER_IP: u16 = 216;
    pub const SLOW_USER_AGENT: u16 = 217;
    pub const SLOW_INPUT_BYTES: u16 = 230;
    pub const SLOW_OUTPUT_BYTES: u16 = 232;
    pub const SLOW_STATUS: u16 = 240;
    pub const INTERPRETER_NAME: u16 = 8;
    /// gc_count0..2, gc_threshold0..2, gc_collections0..2, gc_collected0..2,
    /// gc_uncollectable0..2, gc_is_enabled, gc_freeze_count: 300..316.
    pub const GC_COUNT0: u16 = 300;
    pub const GC_DROPPED_EVENTS: u16 = 317;
    pub const GC_EVENT_START_STAMP: u16 = 320;
    pub const GC_EVENT_DURATION: u16 = 321;
    pub const GC_EVENT_GENERATION: u16 = 322;
    pub const GC_EVENT_COLLECTED: u16 = 323;
    pub const GC_EVENT_UNCOLLECTABLE: u16 = 324;
}

/// One datagram being written.
pub struct Datagram {
    buf: Vec<u8>,
}

impl Datagram {
    pub fn new(kind: Kind, pid: u32, seq: u32, stamp: f64) -> Datagram {
        let mut buf = Vec::with_capacity(1024);
        buf.extend_from_slice(b"WSGI");
        buf.push(1);
        buf.push(kind as u8);
        buf.extend_from_slice(&0u16.to_le_bytes());
        buf.extend_from_slice(&pid.to_le_bytes());
        buf.extend_from_slice(&seq.to_le_bytes());
        buf.extend_from_slice(&stamp.to_le_bytes());
        Datagram { buf }
    }

    fn tag(&mut self, id: u16, ty: u8) {
        self.buf.extend_from_slice(&id.to_le_bytes());
        self.buf.push(ty);
    }

    pub fn u64(&mut self, id: u16, v: u64) -> &mut Self {
        self.tag(id, T_U64);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn f64(&mut self, id: u16, v: f64) -> &mut Self {
        self.tag(id, T_F64);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Bytes, left out when empty (as mod_wsgi does) and cut to `cap` bytes, the cut ones
    /// ending in "...".
    pub fn bytes(&mut self, id: u16, v: &[u8], cap: usize) -> &mut Self {
        if v.is_empty() {
            return self;
        }
        self.tag(id, T_BYTES);
        let cut = v.len() > cap;
        let body = if cut { &v[..cap.saturating_sub(3)] } else { v };
        let len = body.len() + if cut { 3 } else { 0 };
        self.buf.extend_from_slice(&(len as u16).to_le_bytes());
        self.buf.extend_from_slice(body);
        if cut {
            self.buf.extend_from_slice(b"...");
        }
        self
    }

    /// An i32 array; the length field counts elements.
    pub fn i32s(&mut self, id: u16, v: &[i32]) -> &mut Self {
        self.tag(id, T_I32_ARRAY);
        self.buf.extend_from_slice(&(v.len() as u16).to_le_bytes());
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Histogram buckets per phase: 16 octaves from 1 ms to 65.5 s, 4 linear steps each, and one
/// for everything longer (mod_wsgi's wsgi_record_time_in_buckets).
pub const BUCKETS: usize = 65;

/// The bucket of a duration of `us` microseconds.
pub fn bucket(us: u64) -> usize {
    let ms = us as f64 / 1e6 * 1000.0;
    if ms < 1.0 {
        return 0;
    }
    if ms >= 65536.0 {
        return BUCKETS - 1;
    }
    let bits = ms.to_bits();
    let octave = ((bits >> 52) & 0x7ff) as usize - 1023;
    let sub = ((bits >> 50) & 3) as usize;
    octave * 4 + sub
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_fields_are_little_endian_tlvs() {
        let mut d = Datagram::new(Kind::Request, 0x01020304, 7, 1.5);
        d.u64(20, 3).f64(10, 0.25).bytes(6, b"grp", 63).bytes(5, b"", 63).i32s(90, &[1, -1]);
        let b = d.into_bytes();
        assert_eq!(&b[..8], b"WSGI\x01\x02\x00\x00");
        assert_eq!(&b[8..12], &[4, 3, 2, 1]);
        assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 7);
        assert_eq!(f64::from_le_bytes(b[16..24].try_into().unwrap()), 1.5);
        let rest = &b[24..];
        assert_eq!(&rest[..11], &[20, 0, 1, 3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&rest[11..14], &[10, 0, 2]);
        assert_eq!(&rest[22..30], &[6, 0, 4, 3, 0, b'g', b'r', b'p']);
        // The empty string is left out; the array's length counts elements.
        assert_eq!(&rest[30..35], &[90, 0, 5, 2, 0]);
        assert_eq!(rest.len(), 35 + 8);
    }

    #[test]
    fn long_strings_are_cut_with_an_ellipsis() {
        let mut d = Datagram::new(Kind::SlowRequest, 1, 1, 0.0);
        d.bytes(210, b"ABCDEFGHIJ", 8);
        let b = d.into_bytes();
        assert_eq!(&b[24..], &[210, 0, 4, 8, 0, b'A', b'B', b'C', b'D', b'E', b'.', b'.', b'.']);
    }

    #[test]
    fn buckets_follow_mod_wsgis_octaves() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(999), 0);
        assert_eq!(bucket(1_000), 0);
        assert_eq!(bucket(1_250), 1);
        assert_eq!(bucket(1_999), 3);
        assert_eq!(bucket(2_000), 4);
        assert_eq!(bucket(3_000), 6);
        assert_eq!(bucket(100_000), 6 * 4 + 2); // 100 ms = 64 * 1.5625
        assert_eq!(bucket(65_535_000), 63);
        assert_eq!(bucket(65_536_000), 64);
        assert_eq!(bucket(u64::MAX), 64);
    }
}
