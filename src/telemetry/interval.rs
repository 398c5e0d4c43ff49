//! What one process did during one telemetry interval, and the datagram that reports it
//! (mod_wsgi's KIND_REQUEST sample). Everything here is per interval: the reporter takes the
//! interval and starts a new one at each tick.

use super::wire::{bucket, field, Datagram, Kind, BUCKETS};

/// One finished request, timed where its application ran.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Apache accepted it .. the application started (embedded mode), or .. Apache's child
    /// queued it for the daemon (daemon mode).
    pub server_us: u64,
    /// Daemon mode only: queued .. a daemon thread took it, and .. the application started.
    pub queue_us: Option<u64>,
    pub daemon_us: Option<u64>,
    pub application_us: u64,
    pub status: u16,
    pub input_bytes: u64,
    pub output_bytes: u64,
}

/// One phase's mean, exact minimum and maximum, and histogram over the interval (mod_wsgi's
/// `WSGIPhaseAggregate`, which its `request_metrics()` reads too).
#[derive(Debug, Clone)]
pub struct Phase {
    total_us: u64,
    min_us: u64,
    max_us: u64,
    buckets: [i32; BUCKETS],
}

impl Default for Phase {
    fn default() -> Phase {
        Phase { total_us: 0, min_us: u64::MAX, max_us: 0, buckets: [0; BUCKETS] }
    }
}

impl Phase {
    pub fn add(&mut self, us: u64) {
        self.total_us += us;
        self.min_us = self.min_us.min(us);
        self.max_us = self.max_us.max(us);
        self.buckets[bucket(us)] += 1;
    }

    pub fn total_us(&self) -> u64 {
        self.total_us
    }

    /// The exact (minimum, maximum), None when nothing was added.
    pub fn min_max_us(&self) -> Option<(u64, u64)> {
        (self.min_us != u64::MAX).then_some((self.min_us, self.max_us))
    }

    /// Counts per bucket of mod_wsgi's layout (`wire::bucket`).
    pub fn buckets(&self) -> &[i32] {
        &self.buckets
    }
}

const SERVER: usize = 0;
const QUEUE: usize = 1;
const DAEMON: usize = 2;
const APPLICATION: usize = 3;
const REQUEST: usize = 4;
/// Field id of each phase's mean, in the order above.
const PHASE_FIELDS: [u16; 5] =
    [field::SERVER_TIME, field::QUEUE_TIME, field::DAEMON_TIME, field::APPLICATION_TIME, field::REQUEST_TIME];

/// The requests one process finished in one interval.
#[derive(Debug, Clone, Default)]
pub struct Interval {
    requests: u64,
    /// Requests that went through a daemon (and so have queue and daemon times).
    daemon_requests: u64,
    phases: [Phase; 5],
    status: [u64; 5],
    input_bytes: u64,
    output_bytes: u64,
    busy_us: u64,
}

impl Interval {
    pub fn record(&mut self, f: &Finished) {
        self.requests += 1;
        let mut total = f.server_us + f.application_us;
        self.phases[SERVER].add(f.server_us);
        self.phases[APPLICATION].add(f.application_us);
        if let (Some(q), Some(d)) = (f.queue_us, f.daemon_us) {
            self.daemon_requests += 1;
            self.phases[QUEUE].add(q);
            self.phases[DAEMON].add(d);
            total += q + d;
        }
        self.phases[REQUEST].add(total);
        // As mod_wsgi: 0 (no status) counts as a 5xx; anything else out of range is dropped.
        match f.status {
            0 => self.status[4] += 1,
            100..=599 => self.status[(f.status / 100 - 1) as usize] += 1,
            _ => {}
        }
        self.input_bytes += f.input_bytes;
        self.output_bytes += f.output_bytes;
        self.busy_us += f.application_us;
    }
}

/// Who is reporting: the same in every datagram of a process.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub pid: u32,
    pub parent_pid: u32,
    pub version: String,
    pub python_version: String,
    pub apache_version: String,
    pub mpm: String,
    pub hostname: String,
    /// "" in an Apache child (embedded mode).
    pub process_group: String,
}

impl Identity {
    pub fn write(&self, d: &mut Datagram) {
        d.bytes(field::MOD_WSGI_VERSION, self.version.as_bytes(), 63)
            .bytes(field::PYTHON_VERSION, self.python_version.as_bytes(), 63)
            .bytes(field::APACHE_VERSION, self.apache_version.as_bytes(), 63)
            .bytes(field::MPM_NAME, self.mpm.as_bytes(), 63)
            .bytes(field::HOSTNAME, self.hostname.as_bytes(), 127)
            .bytes(field::PROCESS_GROUP, self.process_group.as_bytes(), 63)
            .u64(field::PROCESS_PARENT_PID, self.parent_pid as u64);
    }
}

/// What the process itself measured over the interval, beside its requests.
#[derive(Debug, Clone, Default)]
pub struct ProcessFacts {
    /// Seconds since the previous sample.
    pub period: f64,
    pub interval: f64,
    pub slow_threshold: f64,
    /// CPU seconds used in the period, user and system.
    pub cpu_user: f64,
    pub cpu_system: f64,
    pub rss: u64,
    pub max_rss: u64,
    pub threads: u64,
    /// Threads that ran a request in the period.
    pub threads_active: u64,
}

/// The KIND_REQUEST datagram for an interval.
pub fn sample(identity: &Identity, seq: u32, stamp: f64, p: &ProcessFacts, i: &Interval) -> Vec<u8> {
    let mut d = Datagram::new(Kind::Request, identity.pid, seq, stamp);
    identity.write(&mut d);
    let period = p.period.max(1e-9);
    let threads = p.threads.max(1);
    d.f64(field::SAMPLE_PERIOD, period)
        .f64(field::TELEMETRY_INTERVAL, p.interval)
        .f64(field::SLOW_REQUESTS_THRESHOLD, p.slow_threshold)
        .u64(field::REQUEST_COUNT, i.requests)
        .f64(field::REQUEST_THROUGHPUT, i.requests as f64 / period)
        .f64(field::CAPACITY_UTILIZATION, (i.busy_us as f64 / 1e6 / period / threads as f64).min(1.0))
        .f64(field::CPU_USER_UTILIZATION, p.cpu_user / period)
        .f64(field::CPU_SYSTEM_UTILIZATION, p.cpu_system / period)
        .f64(field::CPU_UTILIZATION, (p.cpu_user + p.cpu_system) / period)
        .u64(field::MEMORY_RSS, p.rss)
        .u64(field::MEMORY_MAX_RSS, p.max_rss)
        .u64(field::REQUEST_THREADS_MAXIMUM, threads)
        .u64(field::REQUEST_THREADS_STARTED, threads)
        .u64(field::REQUEST_THREADS_ACTIVE, p.threads_active.min(threads));
    // Queue and daemon times only from a daemon that finished requests, as mod_wsgi.
    let daemon = i.daemon_requests > 0;
    let phases: Vec<usize> =
        if daemon { vec![SERVER, QUEUE, DAEMON, APPLICATION, REQUEST] } else { vec![SERVER, APPLICATION, REQUEST] };
    for &k in &phases {
        let n = if k == QUEUE || k == DAEMON { i.daemon_requests } else { i.requests };
        let mean = if n == 0 { 0.0 } else { i.phases[k].total_us as f64 / 1e6 / n as f64 };
        d.f64(PHASE_FIELDS[k], mean);
    }
    for &k in &phases {
        let ph = &i.phases[k];
        if ph.min_us != u64::MAX {
            d.f64(PHASE_FIELDS[k] + 10, ph.min_us as f64 / 1e6).f64(PHASE_FIELDS[k] + 20, ph.max_us as f64 / 1e6);
        }
    }
    for &k in &phases {
        d.i32s(PHASE_FIELDS[k] + 30, &i.phases[k].buckets);
    }
    d.u64(field::INPUT_BYTES_TOTAL, i.input_bytes).u64(field::OUTPUT_BYTES_TOTAL, i.output_bytes);
    for (n, count) in i.status.iter().enumerate() {
        d.u64(field::STATUS_1XX_TOTAL + n as u16, *count);
    }
    d.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_statuses_and_bytes_add_up() {
        let mut i = Interval::default();
        i.record(&Finished {
            server_us: 100,
            application_us: 2_000,
            status: 200,
            output_bytes: 5,
            ..Default::default()
        });
        i.record(&Finished {
            server_us: 300,
            queue_us: Some(50),
            daemon_us: Some(10),
            application_us: 4_000,
            status: 0,
            input_bytes: 7,
            output_bytes: 1,
        });
        i.record(&Finished { status: 99, ..Default::default() });
        assert_eq!(i.requests, 3);
        assert_eq!(i.status, [0, 1, 0, 0, 1], "0 counts as 5xx, 99 is dropped");
        assert_eq!((i.input_bytes, i.output_bytes, i.daemon_requests), (7, 6, 1));
        assert_eq!(i.phases[REQUEST].max_us, 4_360);
        assert_eq!((i.phases[SERVER].min_us, i.phases[SERVER].max_us), (0, 300));
        assert_eq!(i.phases[APPLICATION].buckets[bucket(2_000)], 1);
    }

    #[test]
    fn a_sample_holds_the_interval() {
        let mut i = Interval::default();
        i.record(&Finished { server_us: 1_000, application_us: 3_000, status: 404, ..Default::default() });
        let id = Identity { pid: 42, process_group: String::new(), hostname: "h".into(), ..Default::default() };
        let p = ProcessFacts { period: 2.0, interval: 2.0, threads: 4, threads_active: 1, ..Default::default() };
        let b = sample(&id, 3, 10.0, &p, &i);
        assert_eq!(b[5], Kind::Request as u8);
        assert!(b.len() < 8192, "mod_wsgi's datagram limit");
        // No queue/daemon fields without daemon requests: find field 61 anywhere as a TLV id.
        let ids = tlv_ids(&b[24..]);
        assert!(ids.contains(&field::REQUEST_TIME) && !ids.contains(&field::QUEUE_TIME), "{ids:?}");
        assert!(ids.contains(&(field::STATUS_1XX_TOTAL + 3)));
        assert!(!ids.contains(&field::PROCESS_GROUP), "empty group left out");
    }

    fn tlv_ids(mut b: &[u8]) -> Vec<u16> {
        let mut ids = Vec::new();
        while b.len() >= 3 {
            ids.push(u16::from_le_bytes([b[0], b[1]]));
            let n = match b[2] {
                1 | 2 | 3 => 3 + 8,
                4 => 5 + u16::from_le_bytes([b[3], b[4]]) as usize,
                5 => 5 + 4 * u16::from_le_bytes([b[3], b[4]]) as usize,
                _ => 5 + 8 * u16::from_le_bytes([b[3], b[4]]) as usize,
            };
            b = &b[n..];
        }
        ids
    }
}
