//! mod_wsgi's per-request figures, for the `request_finished` event (mod_wsgi 4.9.4 and 6.x
//! publish them): wsgi.input reads, bytes and time; response writes, bytes and time; the
//! thread's CPU time (user and system) while the application ran; the time the request waited
//! for the GIL where oxwsgi takes it; and the final status. Measured only for requests that
//! have event subscribers.

use super::obj::{self, Obj, Py, PyResult};
use crate::telemetry::Phase;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Input and output counts of one request (kept in its RequestState).
#[derive(Default)]
pub struct IoStats {
    /// Whether to time reads and writes (there are subscribers).
    pub timing: Cell<bool>,
    pub input_reads: Cell<u64>,
    pub input_length: Cell<u64>,
    pub input_time: Cell<Duration>,
    pub output_writes: Cell<u64>,
    pub output_time: Cell<Duration>,
}

impl IoStats {
    /// Times `f` as a read of wsgi.input that returns `n(result)` bytes.
    pub fn read<R>(&self, f: impl FnOnce() -> R, n: impl Fn(&R) -> u64) -> R {
        let start = self.timing.get().then(Instant::now);
        let r = f();
        self.input_reads.set(self.input_reads.get() + 1);
        self.input_length.set(self.input_length.get() + n(&r));
        if let Some(t) = start {
            self.input_time.set(self.input_time.get() + t.elapsed());
        }
        r
    }

    /// Times `f` as one write of the response body.
    pub fn write<R>(&self, f: impl FnOnce() -> R) -> R {
        let start = self.timing.get().then(Instant::now);
        let r = f();
        self.output_writes.set(self.output_writes.get() + 1);
        if let Some(t) = start {
            self.output_time.set(self.output_time.get() + t.elapsed());
        }
        r
    }
}

/// (user, system) CPU seconds of the calling thread.
pub fn thread_cpu() -> (f64, f64) {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

thread_local! {
    /// (microseconds waited, times taken) for the GIL on this thread since `gil_wait_start`,
    /// or None when not measuring.
    static GIL_WAIT: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// Starts counting this thread's GIL waits, `first` being the wait that began the request.
/// Returns what an outer request on this thread had counted (a WSGI request run from inside
/// another's response, by mod_include say), for `finished` to put back.
pub fn gil_wait_start(first: Duration) -> Option<(u64, u64)> {
    GIL_WAIT.with(|g| g.replace(Some((first.as_micros() as u64, 1))))
}

/// A wait for the GIL of `waited` on this thread (counted only while measuring).
pub fn gil_waited(waited: Duration) {
    GIL_WAIT.with(|g| {
        if let Some((us, n)) = g.get() {
            g.set(Some((us + waited.as_micros() as u64, n + 1)));
        }
    });
}

pub fn measuring_gil() -> bool {
    GIL_WAIT.with(|g| g.get().is_some())
}

/// This thread's GIL waits since `gil_wait_start` as (microseconds, times), and the outer
/// request's count put back.
pub fn gil_wait_end(outer: Option<(u64, u64)>) -> (u64, u64) {
    GIL_WAIT.with(|g| g.replace(outer)).unwrap_or((0, 0))
}

/// What `mod_wsgi.request_metrics()` reports of the requests this process finished since it
/// last asked (mod_wsgi 6's per-process aggregates): GIL waits, wsgi.input reads and response
/// writes, each a [`Phase`] of per-request totals, and their counts. Kept once
/// `mod_wsgi.start_recording_metrics()` has been called in any interpreter.
#[derive(Default)]
struct Recorded {
    gil_wait: Phase,
    input_read: Phase,
    output_write: Phase,
    gil_wait_count: u64,
    input_bytes: u64,
    input_reads: u64,
    output_bytes: u64,
    output_writes: u64,
}

static RECORDING: AtomicBool = AtomicBool::new(false);
static RECORDED: Mutex<Option<Recorded>> = Mutex::new(None);

/// `mod_wsgi.start_recording_metrics()`: from now on every request is measured.
pub fn start_recording() {
    let mut r = RECORDED.lock().unwrap_or_else(|e| e.into_inner());
    r.get_or_insert_with(Recorded::default);
    RECORDING.store(true, Ordering::Relaxed);
}

pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// Adds one finished request (its GIL waits from [`gil_wait_end`]).
pub fn record(io: &IoStats, gil_wait: (u64, u64), output_bytes: u64) {
    let mut r = RECORDED.lock().unwrap_or_else(|e| e.into_inner());
    let Some(r) = r.as_mut() else { return };
    r.gil_wait.add(gil_wait.0);
    r.gil_wait_count += gil_wait.1;
    r.input_read.add(io.input_time.get().as_micros() as u64);
    r.output_write.add(io.output_time.get().as_micros() as u64);
    r.input_bytes += io.input_length.get();
    r.input_reads += io.input_reads.get();
    r.output_bytes += output_bytes;
    r.output_writes += io.output_writes.get();
}

/// The figures recorded since the last call, which starts a new interval: `(gil_wait_count,
/// input_bytes, input_reads, output_bytes, output_writes, phases)`, each phase of
/// `gil_wait`, `input_read`, `output_write` being `(total_us, min_us, max_us, buckets)` (min and
/// max None when no request finished). None before `start_recording`.
pub fn take_recorded(py: Py<'_>) -> PyResult<Obj> {
    let taken = {
        let mut r = RECORDED.lock().unwrap_or_else(|e| e.into_inner());
        r.as_mut().map(std::mem::take)
    };
    let Some(r) = taken else { return Ok(obj::none(py)) };
    let int = |v: u64| obj::int(py, v as i64);
    let phase = |p: &Phase| -> PyResult<Obj> {
        let (min, max) = match p.min_max_us() {
            Some((min, max)) => (int(min)?, int(max)?),
            None => (obj::none(py), obj::none(py)),
        };
        let buckets: Vec<Obj> = p.buckets().iter().map(|&n| obj::int(py, n as i64)).collect::<PyResult<_>>()?;
        let buckets = obj::tuple(py, &buckets.iter().collect::<Vec<_>>())?;
        obj::tuple(py, &[&int(p.total_us())?, &min, &max, &buckets])
    };
    let phases = obj::tuple(py, &[&phase(&r.gil_wait)?, &phase(&r.input_read)?, &phase(&r.output_write)?])?;
    let counts = [r.gil_wait_count, r.input_bytes, r.input_reads, r.output_bytes, r.output_writes]
        .into_iter()
        .map(int)
        .collect::<PyResult<Vec<Obj>>>()?;
    let mut items: Vec<&Obj> = counts.iter().collect();
    items.push(&phases);
    obj::tuple(py, &items)
}

/// The figures mod_wsgi adds to `request_finished`, as keyword arguments for the `_oxwsgi`
/// package's `events.request_finished`.
pub fn finished(
    py: Py<'_>,
    io: &IoStats,
    cpu_at_start: (f64, f64),
    gil_wait: (u64, u64),
    application_time: f64,
    status: u16,
    output_length: u64,
) -> PyResult<Obj> {
    let d = obj::dict(py)?;
    let (user1, system1) = thread_cpu();
    let (mut user, mut system) = ((user1 - cpu_at_start.0).max(0.0), (system1 - cpu_at_start.1).max(0.0));
    // As mod_wsgi: never more CPU than wall-clock time (rusage has coarse ticks).
    let total = user + system;
    if total > application_time && total > 0.0 {
        user = user / total * application_time;
        system = application_time - user;
    }
    let (gil_us, gil_count) = gil_wait;
    let float = |d: &Obj, k: &std::ffi::CStr, v: f64| obj::dict_set_str(py, d, k, &obj::float(py, v)?);
    let int = |d: &Obj, k: &std::ffi::CStr, v: u64| obj::dict_set_str(py, d, k, &obj::int(py, v as i64)?);
    int(&d, c"input_reads", io.input_reads.get())?;
    int(&d, c"input_length", io.input_length.get())?;
    float(&d, c"input_time", io.input_time.get().as_secs_f64())?;
    int(&d, c"output_length", output_length)?;
    int(&d, c"output_writes", io.output_writes.get())?;
    float(&d, c"output_time", io.output_time.get().as_secs_f64())?;
    float(&d, c"cpu_user_time", user)?;
    float(&d, c"cpu_system_time", system)?;
    float(&d, c"cpu_time", user + system)?;
    int(&d, c"status", status as u64)?;
    float(&d, c"gil_wait_time", gil_us as f64 / 1e6)?;
    int(&d, c"gil_wait_count", gil_count)?;
    Ok(d)
}
