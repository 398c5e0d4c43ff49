//! mod_wsgi 6's garbage-collector records: each interpreter's latest `gc` state
//! (KIND_GC_SNAPSHOT, one per interpreter per tick) and each collection pass
//! (KIND_GC_EVENT). The `_oxwsgi` package's `gc.callbacks` hook (gc_telemetry.py) reports every
//! pass with the state after it.

use super::wire::{field, Datagram, Kind};
use std::collections::VecDeque;

/// Passes kept per interpreter between ticks (mod_wsgi's ring), and sent per tick.
const RING: usize = 256;
const PER_TICK: usize = 64;

/// One collection pass, and the collector's state after it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GcPass {
    pub start_stamp: f64,
    pub duration: f64,
    pub generation: u64,
    pub collected: u64,
    pub uncollectable: u64,
    /// gc.get_count(), gc.get_threshold(), then per generation from gc.get_stats():
    /// collections, collected, uncollectable; then gc.isenabled() and gc.get_freeze_count().
    pub state: [u64; 17],
}

/// One interpreter's passes since the last tick and its latest state.
#[derive(Debug, Default)]
pub struct GcLog {
    passes: VecDeque<GcPass>,
    dropped: u64,
    latest: Option<[u64; 17]>,
}

impl GcLog {
    pub fn record(&mut self, pass: GcPass) {
        self.latest = Some(pass.state);
        if self.passes.len() == RING {
            self.passes.pop_front();
            self.dropped += 1;
        }
        self.passes.push_back(pass);
    }

    /// The datagrams of this tick (its snapshot, then its passes), numbered by `seq`;
    /// `name` is the interpreter's, sent when the process has more than one.
    pub fn drain(&mut self, pid: u32, stamp: f64, name: Option<&str>, mut seq: impl FnMut() -> u32) -> Vec<Vec<u8>> {
        let Some(state) = self.latest else { return Vec::new() };
        let mut out = Vec::new();
        let mut d = Datagram::new(Kind::GcSnapshot, pid, seq(), stamp);
        for (i, v) in state.iter().enumerate() {
            d.u64(field::GC_COUNT0 + i as u16, *v);
        }
        d.u64(field::GC_DROPPED_EVENTS, std::mem::take(&mut self.dropped));
        if let Some(n) = name {
            d.bytes(field::INTERPRETER_NAME, n.as_bytes(), 255);
        }
        out.push(d.into_bytes());
        let n = self.passes.len().min(PER_TICK);
        for p in self.passes.drain(..n) {
            let mut d = Datagram::new(Kind::GcEvent, pid, seq(), stamp);
            d.f64(field::GC_EVENT_START_STAMP, p.start_stamp)
                .f64(field::GC_EVENT_DURATION, p.duration)
                .u64(field::GC_EVENT_GENERATION, p.generation)
                .u64(field::GC_EVENT_COLLECTED, p.collected)
                .u64(field::GC_EVENT_UNCOLLECTABLE, p.uncollectable);
            if let Some(n) = name {
                d.bytes(field::INTERPRETER_NAME, n.as_bytes(), 255);
            }
            out.push(d.into_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tick_sends_the_snapshot_then_the_passes_and_the_ring_drops_the_oldest() {
        let mut log = GcLog::default();
        assert!(log.drain(1, 0.0, None, || 1).is_empty(), "nothing before the first pass");
        for g in 0..(RING as u64 + 10) {
            log.record(GcPass { generation: g % 3, state: [g; 17], ..GcPass::default() });
        }
        let mut n = 0;
        let out = log.drain(7, 1.0, Some("app"), || {
            n += 1;
            n
        });
        assert_eq!(out.len(), 1 + PER_TICK);
        assert_eq!(out[0][5], Kind::GcSnapshot as u8);
        assert_eq!(out[1][5], Kind::GcEvent as u8);
        // 10 dropped; the rest stay for the next ticks.
        assert_eq!(log.dropped, 0, "reported once");
        assert_eq!(log.passes.len(), RING - PER_TICK);
        assert_eq!(log.passes.front().unwrap().generation, ((10 + PER_TICK) % 3) as u64);
    }
}
