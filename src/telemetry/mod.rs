//! mod_wsgi 6's telemetry reporter (WSGITelemetryService): every Apache child and every daemon
//! process sends, over a UNIX datagram socket to a co-located ingester (the
//! `mod_wsgi-telemetry` package), a sample of what it did each interval, its start and stop,
//! and a record of each slow request (WSGISlowRequests).
//!
//! The configuration is set in Apache's parent after the configuration is read
//! (`configure`) and reaches every process by fork; each process then starts its own reporter
//! thread (`start`). Sending never blocks a request: the socket is non-blocking, and a datagram
//! the ingester cannot take (or a missing ingester) is dropped, as mod_wsgi drops them.

mod gc;
mod interval;
mod slow;
mod wire;

pub use gc::GcPass;
pub use interval::{Finished, Identity, Phase};
pub use slow::SlowRequest;

use interval::{Interval, ProcessFacts};
use std::cell::Cell;
use std::collections::HashSet;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What WSGITelemetryService, WSGITelemetryOptions and WSGISlowRequests say, and the parts of
/// the identity only Apache's parent knows.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub target: PathBuf,
    pub interval: Duration,
    pub slow_threshold: Option<Duration>,
    pub capture_user_agent: bool,
    pub apache_version: String,
    pub mpm: String,
}

static CONFIG: Mutex<Option<Config>> = Mutex::new(None);
static CONFIGURED: AtomicBool = AtomicBool::new(false);
static REPORTER: OnceLock<Reporter> = OnceLock::new();

/// Sets (or, with None, clears) the configuration; in Apache's parent, before it forks.
pub fn configure(config: Option<Config>) {
    CONFIGURED.store(config.is_some(), Ordering::Relaxed);
    *CONFIG.lock().unwrap_or_else(|e| e.into_inner()) = config;
}

/// Whether WSGITelemetryService is set: then mod_wsgi.process_metrics() and request_metrics()
/// return None, as in mod_wsgi 6 (the external reporter is the process' metrics consumer).
pub fn configured() -> bool {
    CONFIGURED.load(Ordering::Relaxed)
}

/// Whether this process sends slow-request records (WSGISlowRequests with a reporter).
pub fn reports_slow_requests() -> bool {
    REPORTER.get().is_some_and(|r| r.config.slow_threshold.is_some())
}

/// WSGITelemetryOptions +CaptureUserAgent, in a process that reports.
pub fn capture_user_agent() -> bool {
    REPORTER.get().is_some_and(|r| r.config.capture_user_agent)
}

struct State {
    interval: Interval,
    threads_active: HashSet<std::thread::ThreadId>,
    lifetime_requests: u64,
    last_tick: Instant,
    cpu: (f64, f64),
}

struct Reporter {
    config: Config,
    identity: Identity,
    threads: u64,
    socket: UnixDatagram,
    seq: AtomicU32,
    started: Instant,
    state: Mutex<State>,
    /// Each interpreter's garbage-collector passes since the last tick (the `_oxwsgi` package's
    /// gc_telemetry.py reports them).
    gc: Mutex<std::collections::BTreeMap<String, gc::GcLog>>,
    /// Requests running now, for the active slow-request records: (started, record).
    in_flight: Mutex<(u64, std::collections::HashMap<u64, (Instant, SlowRequest)>)>,
    stop: Mutex<bool>,
    wake: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stopped: AtomicBool,
}

fn now_stamp() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// CPU seconds (user, system) and peak RSS in bytes of this process.
fn usage() -> (f64, f64, u64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime), ru.ru_maxrss as u64 * 1024)
}

fn resident() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .unwrap_or(0);
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64
}

/// Starts this process' reporter, if telemetry is configured: `process_group` is "" in an
/// Apache child; `threads` its request threads. Returns an error to log when the socket cannot
/// be made (then nothing is sent, as in mod_wsgi).
pub fn start(process_group: &str, threads: u64, python_version: &str) -> Result<bool, String> {
    let Some(config) = CONFIG.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return Ok(false) };
    let socket = UnixDatagram::unbound().and_then(|s| s.set_nonblocking(true).map(|()| s)).map_err(|e| {
        format!(
            "Telemetry reporter could not open target 'unix:{}' ({e}); metrics will not be sent",
            config.target.display()
        )
    })?;
    let mut host = [0u8; 256];
    unsafe { libc::gethostname(host.as_mut_ptr().cast(), host.len()) };
    let hostname = String::from_utf8_lossy(&host[..host.iter().position(|&b| b == 0).unwrap_or(0)]).into_owned();
    let identity = Identity {
        pid: std::process::id(),
        parent_pid: unsafe { libc::getppid() } as u32,
        version: concat!("oxwsgi/", env!("CARGO_PKG_VERSION")).to_string(),
        python_version: python_version.to_string(),
        apache_version: config.apache_version.clone(),
        mpm: config.mpm.clone(),
        hostname,
        process_group: process_group.to_string(),
    };
    let (user, system, _) = usage();
    let reporter = Reporter {
        config,
        identity,
        threads: threads.max(1),
        socket,
        seq: AtomicU32::new(0),
        started: Instant::now(),
        state: Mutex::new(State {
            interval: Interval::default(),
            threads_active: HashSet::new(),
            lifetime_requests: 0,
            last_tick: Instant::now(),
            cpu: (user, system),
        }),
        gc: Mutex::new(std::collections::BTreeMap::new()),
        in_flight: Mutex::new((0, std::collections::HashMap::new())),
        stop: Mutex::new(false),
        wake: Condvar::new(),
        thread: Mutex::new(None),
        stopped: AtomicBool::new(false),
    };
    if REPORTER.set(reporter).is_err() {
        return Ok(true);
    }
    let r = REPORTER.get().expect("just set");
    let mut d = wire::Datagram::new(wire::Kind::ProcessStarted, r.identity.pid, r.next_seq(), now_stamp());
    r.identity.write(&mut d);
    r.send(&d.into_bytes());
    let thread = std::thread::Builder::new()
        .name("oxwsgi-telemetry".into())
        .spawn(move || r.run())
        .map_err(|e| format!("Unable to create telemetry reporter thread ({e}); metrics will not be sent"))?;
    *r.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
    Ok(true)
}

thread_local! {
    /// The status and body bytes (in, out) of the response this thread's application gave last.
    static RESPONSE: Cell<(u16, u64, u64)> = const { Cell::new((0, 0, 0)) };
}

/// Whether this process reports (cheap: checked on every request).
pub fn active() -> bool {
    REPORTER.get().is_some()
}

/// The application just answered with `status` after reading `read` and writing `written`
/// body bytes (called where the application ran, before `finished`).
pub fn set_response(status: u16, read: u64, written: u64) {
    if active() {
        RESPONSE.with(|r| r.set((status, read, written)));
    }
}

/// The request this thread's application ran is answered with `status` instead (an error the
/// host sends); its byte counts stay.
pub fn set_status(status: u16) {
    if active() {
        RESPONSE.with(|r| r.set((status, r.get().1, r.get().2)));
    }
}

/// A request finished in this process; `f`'s status and bytes come from `set_response`.
pub fn finished(mut f: Finished) {
    let Some(r) = REPORTER.get() else { return };
    let (status, read, written) = RESPONSE.with(|c| c.replace((0, 0, 0)));
    (f.status, f.input_bytes, f.output_bytes) = (status, read, written);
    let mut s = r.state.lock().unwrap_or_else(|e| e.into_inner());
    s.interval.record(&f);
    s.lifetime_requests += 1;
    s.threads_active.insert(std::thread::current().id());
}

/// A request running in this process, reported as an active slow request on each tick once it
/// has run for WSGISlowRequests; forgotten when dropped.
pub struct InFlight(u64);

/// `record` (its strings and start; status 0) starts running; Apache accepted it `ago`. None
/// when this process does not report slow requests.
pub fn request_begins(record: SlowRequest, ago: Duration) -> Option<InFlight> {
    let r = REPORTER.get()?;
    r.config.slow_threshold?;
    let mut f = r.in_flight.lock().unwrap_or_else(|e| e.into_inner());
    f.0 += 1;
    let token = f.0;
    let started = Instant::now().checked_sub(ago).unwrap_or_else(Instant::now);
    f.1.insert(token, (started, SlowRequest { active: true, ..record }));
    Some(InFlight(token))
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(r) = REPORTER.get() {
            r.in_flight.lock().unwrap_or_else(|e| e.into_inner()).1.remove(&self.0);
        }
    }
}

/// mod_wsgi's limit of active records per tick.
const ACTIVE_PER_TICK: usize = 16;

/// A garbage-collector pass finished in interpreter `name` (with that interpreter's GIL held:
/// this only queues it).
pub fn gc_pass(name: &str, pass: GcPass) {
    if let Some(r) = REPORTER.get() {
        r.gc.lock().unwrap_or_else(|e| e.into_inner()).entry(name.to_string()).or_default().record(pass);
    }
}

/// A slow request was answered: sent at once.
pub fn slow_request(s: &SlowRequest) {
    if let Some(r) = REPORTER.get() {
        r.send(&slow::slow_record(s, r.identity.pid, r.next_seq(), now_stamp()));
    }
}

/// The process has decided to stop (mod_wsgi's `shutdown_reason`), with `active` requests.
pub fn stopping(reason: &str, active: u64) {
    if let Some(r) = REPORTER.get() {
        let mut d = r.stop_record(wire::Kind::ProcessStopping, reason);
        d.u64(wire::field::ACTIVE_REQUESTS_AT_DECISION, active);
        r.send(&d.into_bytes());
    }
}

/// The process is exiting: the reporter stops, the last partial interval is sent, then
/// PROCESS_STOPPED. Only the first call does anything.
pub fn stop(reason: &str, active: u64) {
    let Some(r) = REPORTER.get() else { return };
    if r.stopped.swap(true, Ordering::SeqCst) {
        return;
    }
    *r.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
    r.wake.notify_all();
    if let Some(t) = r.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
        let _ = t.join();
    }
    r.tick();
    let lifetime = r.state.lock().unwrap_or_else(|e| e.into_inner()).lifetime_requests;
    let mut d = r.stop_record(wire::Kind::ProcessStopped, reason);
    d.f64(wire::field::PROCESS_UPTIME, r.started.elapsed().as_secs_f64())
        .u64(wire::field::LIFETIME_REQUEST_COUNT, lifetime)
        .u64(wire::field::ACTIVE_REQUESTS_AT_EXIT, active)
        .u64(wire::field::GRACEFUL_DRAIN, (active == 0) as u64);
    r.send(&d.into_bytes());
}

impl Reporter {
    /// PROCESS_STOPPING or PROCESS_STOPPED, begun with who stops and why.
    fn stop_record(&self, kind: wire::Kind, reason: &str) -> wire::Datagram {
        let mut d = wire::Datagram::new(kind, self.identity.pid, self.next_seq(), now_stamp());
        d.bytes(wire::field::HOSTNAME, self.identity.hostname.as_bytes(), 127)
            .bytes(wire::field::PROCESS_GROUP, self.identity.process_group.as_bytes(), 63)
            .bytes(wire::field::SHUTDOWN_REASON, reason.as_bytes(), 63);
        d
    }

    fn next_seq(&self) -> u32 {
        self.seq.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }

    fn send(&self, datagram: &[u8]) {
        // No ingester, a full queue, no permission: the datagram is dropped, as in mod_wsgi.
        let _ = self.socket.send_to(datagram, &self.config.target);
    }

    fn run(&self) {
        let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let (s, _) =
                self.wake.wait_timeout_while(stop, self.config.interval, |s| !*s).unwrap_or_else(|e| e.into_inner());
            stop = s;
            if *stop {
                return;
            }
            drop(stop);
            self.tick();
            stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Sends the interval since the previous tick and starts the next one.
    fn tick(&self) {
        let (user, system, max_rss) = usage();
        let (interval, facts) = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let facts = ProcessFacts {
                period: now.duration_since(s.last_tick).as_secs_f64(),
                interval: self.config.interval.as_secs_f64(),
                slow_threshold: self.config.slow_threshold.map_or(0.0, |t| t.as_secs_f64()),
                cpu_user: (user - s.cpu.0).max(0.0),
                cpu_system: (system - s.cpu.1).max(0.0),
                rss: 0,
                max_rss,
                threads: self.threads,
                threads_active: s.threads_active.len() as u64,
            };
            s.last_tick = now;
            s.cpu = (user, system);
            s.threads_active.clear();
            (std::mem::take(&mut s.interval), facts)
        };
        let facts = ProcessFacts { rss: resident(), ..facts };
        let stamp = now_stamp();
        self.send(&interval::sample(&self.identity, self.next_seq(), stamp, &facts, &interval));
        self.send_active_slow(stamp);
        self.send_gc(stamp);
    }

    /// Requests still running past the threshold: a heartbeat each (the completed record
    /// follows when one ends).
    fn send_active_slow(&self, stamp: f64) {
        let Some(threshold) = self.config.slow_threshold else { return };
        let active: Vec<SlowRequest> = {
            let f = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            f.1.values()
                .filter(|(started, _)| started.elapsed() >= threshold)
                .take(ACTIVE_PER_TICK)
                .map(|(started, s)| SlowRequest { duration: started.elapsed().as_secs_f64(), ..s.clone() })
                .collect()
        };
        for s in &active {
            self.send(&slow::slow_record(s, self.identity.pid, self.next_seq(), stamp));
        }
    }

    /// Each interpreter's garbage-collector snapshot and passes (after the sample and the slow
    /// records, as mod_wsgi orders them).
    fn send_gc(&self, stamp: f64) {
        let datagrams: Vec<Vec<u8>> = {
            let mut logs = self.gc.lock().unwrap_or_else(|e| e.into_inner());
            let several = logs.len() > 1;
            logs.iter_mut()
                .flat_map(|(name, log)| {
                    log.drain(self.identity.pid, stamp, several.then_some(name.as_str()), || self.next_seq())
                })
                .collect()
        };
        for d in &datagrams {
            self.send(d);
        }
    }
}
