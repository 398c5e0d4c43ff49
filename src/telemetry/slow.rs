//! The slow-request record (mod_wsgi's KIND_SLOW_REQUEST): a request past WSGISlowRequests,
//! sent on every tick while it runs (state "active") and once when it has been answered
//! ("completed").

use super::wire::{field, Datagram, Kind};

#[derive(Debug, Clone, Default)]
pub struct SlowRequest {
    /// Still running (then `duration` is so far, and `status` 0).
    pub active: bool,
    /// When Apache accepted it (seconds since the epoch) and how long it took (seconds).
    pub start_stamp: f64,
    pub duration: f64,
    pub thread_id: u64,
    pub server_pid: u32,
    pub status: u16,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub method: String,
    pub scheme: String,
    pub hostname: String,
    pub script_name: String,
    /// Without the query string.
    pub path_info: String,
    pub protocol: String,
    pub peer_ip: String,
    /// Only with `WSGITelemetryOptions +CaptureUserAgent`.
    pub user_agent: Option<String>,
}

pub fn slow_record(s: &SlowRequest, pid: u32, seq: u32, stamp: f64) -> Vec<u8> {
    let mut d = Datagram::new(Kind::SlowRequest, pid, seq, stamp);
    d.u64(field::SLOW_RECORD_STATE, if s.active { 0 } else { 1 })
        .f64(field::SLOW_START_STAMP, s.start_stamp)
        .f64(field::SLOW_DURATION, s.duration)
        .u64(field::SLOW_THREAD_ID, s.thread_id)
        .u64(field::SLOW_SERVER_PID, s.server_pid as u64)
        .u64(field::SLOW_INPUT_BYTES, s.input_bytes)
        .u64(field::SLOW_OUTPUT_BYTES, s.output_bytes)
        .u64(field::SLOW_STATUS, s.status as u64)
        .bytes(field::SLOW_METHOD, s.method.as_bytes(), 15)
        .bytes(field::SLOW_SCHEME, s.scheme.as_bytes(), 15)
        .bytes(field::SLOW_HOSTNAME, s.hostname.as_bytes(), 255)
        .bytes(field::SLOW_SCRIPT_NAME, s.script_name.as_bytes(), 255)
        .bytes(field::SLOW_PATH_INFO, s.path_info.as_bytes(), 511)
        .bytes(field::SLOW_PROTOCOL, s.protocol.as_bytes(), 15)
        .bytes(field::SLOW_PEER_IP, s.peer_ip.as_bytes(), 45);
    if let Some(ua) = &s.user_agent {
        d.bytes(field::SLOW_USER_AGENT, ua.as_bytes(), 511);
    }
    d.into_bytes()
}
