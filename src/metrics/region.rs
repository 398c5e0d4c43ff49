//! The shared region's layout and the functions that record into it.
//!
//! Three fixed tables, each slot claimed once by compare-and-swap and never moved:
//! - series: one per (process group, application group), with request counters by status
//!   class, byte counters and the duration and queue-wait histograms;
//! - groups: one per process group name, with its daemon restarts by reason;
//! - processes: one row per live process that serves requests (an Apache child that ran an
//!   embedded request, or a daemon process), with its threads, busy threads and totals. A row
//!   is freed when its process ends and reused by the next.
//!
//! All counters are atomics updated with relaxed ordering: a reader may see one request's
//! count before its bytes, never a torn number (a busy-thread gauge, summed over shards, is
//! clamped to 0..threads for the moment a request moves between shards while it is read). The region is zero-initialised memory, which is
//! a valid empty region.
//!
//! The counters a request changes are split into [`SHARDS`] cache-line-aligned copies, one
//! chosen by the CPU the thread runs on: threads on different cores then never take each
//! other's cache lines to count (that cost 3-5% of hello-world throughput on two cores).
//! Readers add the copies up.

use super::histogram::{Histogram, HistogramValues};
use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub const SERIES: usize = 256;
/// Copies of each per-request counter (see the module docs).
pub const SHARDS: usize = 8;

/// The shard for the calling thread: the CPU it runs on now (a vDSO call, no system call).
fn shard() -> usize {
    unsafe { libc::sched_getcpu() }.max(0) as usize % SHARDS
}
pub const GROUPS: usize = 128;
pub const PROCESSES: usize = 1024;
/// Longest "group\0application group" key and longest group name kept (longer ones are cut).
pub const KEY: usize = 256;
pub const NAME: usize = 128;

/// Status classes: 1xx .. 5xx, then anything else.
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Why a daemon process was replaced (the `reason` label).
pub const REASONS: [&str; 12] = [
    "crash",
    "maximum-requests",
    "request-timeout",
    "inactivity",
    "reload",
    "graceful",
    "restart-interval",
    "startup-timeout",
    "shutdown",
    "deadlock",
    "eviction",
    "other",
];

/// The `reason` label for mod_wsgi's `shutdown_reason` of a stopping daemon process.
pub fn restart_label(shutdown_reason: &str) -> &'static str {
    match shutdown_reason {
        "crash" => "crash",
        "maximum_requests" => "maximum-requests",
        "request_timeout" => "request-timeout",
        "inactivity_timeout" => "inactivity",
        "script_reload" => "reload",
        "graceful_signal" => "graceful",
        "restart_interval" => "restart-interval",
        "startup_timeout" => "startup-timeout",
        "shutdown_signal" => "shutdown",
        "deadlock_timeout" => "deadlock",
        "eviction_signal" => "eviction",
        _ => "other",
    }
}

const FREE: u32 = 0;
const WRITING: u32 = 1;
const READY: u32 = 2;

/// A name written once into a slot: free, being written, or ready to read.
#[repr(C)]
struct Label<const N: usize> {
    state: AtomicU32,
    len: AtomicU32,
    bytes: UnsafeCell<[u8; N]>,
}

impl<const N: usize> Label<N> {
    fn get(&self) -> Option<&[u8]> {
        if self.state.load(Ordering::Acquire) != READY {
            return None;
        }
        let len = (self.len.load(Ordering::Relaxed) as usize).min(N);
        // Safe: the bytes are written only before READY is published, never after.
        Some(unsafe { &(&*self.bytes.get())[..len] })
    }

    /// Whether this slot holds `key`, claiming it for `key` if it is free. Waits (briefly) for
    /// a slot another process is writing.
    fn matches_or_claim(&self, key: &[u8]) -> Option<bool> {
        // Read first: a compare-and-swap would take the cache line from every other core.
        if let Some(name) = self.get() {
            return Some(name == &key[..key.len().min(N)]);
        }
        if self.state.load(Ordering::Relaxed) == FREE
            && self.state.compare_exchange(FREE, WRITING, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            let n = key.len().min(N);
            unsafe { (&mut *self.bytes.get())[..n].copy_from_slice(&key[..n]) };
            self.len.store(n as u32, Ordering::Relaxed);
            self.state.store(READY, Ordering::Release);
            return Some(true);
        }
        for _ in 0..10_000 {
            if let Some(name) = self.get() {
                return Some(name == &key[..key.len().min(N)]);
            }
            std::hint::spin_loop();
        }
        None
    }
}

/// One (process group, application group)'s request counters.
#[repr(C)]
pub struct SeriesSlot {
    label: Label<KEY>,
    shards: [SeriesShard; SHARDS],
}

#[repr(C, align(64))]
struct SeriesShard {
    status: [AtomicU64; STATUS_CLASSES.len()],
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    duration: Histogram,
    queue: Histogram,
}

impl SeriesSlot {
    /// A request answered: its status, its time from Apache's accepting it to the end of its
    /// response, and its body bytes in and out.
    pub fn done(&self, status: u16, duration_us: u64, bytes_in: u64, bytes_out: u64) {
        let class = match status {
            100..=599 => (status / 100 - 1) as usize,
            _ => 5,
        };
        let s = &self.shards[shard()];
        s.status[class].fetch_add(1, Ordering::Relaxed);
        s.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        s.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        s.duration.observe(duration_us);
    }

    /// The application started on a request `queue_us` after Apache accepted it.
    pub fn started(&self, queue_us: u64) {
        self.shards[shard()].queue.observe(queue_us);
    }
}

/// One process group's restart counters, and its rolling-restart baton.
#[repr(C)]
pub struct GroupSlot {
    label: Label<NAME>,
    restarts: [AtomicU64; REASONS.len()],
    /// 1 + the index of the daemon process being replaced for a changed script, or 0.
    reloading: AtomicU32,
    reloading_since_us: AtomicU64,
    /// The modification time of the newest changed script a process found: every process
    /// started before it restarts.
    reload_requested_us: AtomicU64,
}

/// A reload baton older than this is taken to be lost (its holder's replacement never started).
const RELOAD_BATON_US: u64 = 120_000_000;

impl GroupSlot {
    /// Whether a process of the group other than `index` is being replaced for a reload.
    pub fn reloading_other(&self, index: usize, now_us: u64) -> bool {
        let holder = self.reloading.load(Ordering::Acquire);
        holder != 0
            && holder as usize != index + 1
            && now_us.saturating_sub(self.reloading_since_us.load(Ordering::Relaxed)) < RELOAD_BATON_US
    }

    /// Process `index` takes the baton if no other process holds it: it is the one restarting
    /// now. False if another one is.
    pub fn try_begin_reload(&self, index: usize, now_us: u64) -> bool {
        if self.reloading_other(index, now_us) {
            return false;
        }
        let holder = self.reloading.load(Ordering::Acquire);
        // The time first, published by the exchange's release: a process that sees this holder
        // also sees when it took the baton. (Written after, another process could judge the
        // fresh baton by the previous reload's time, find it stale and take it too: both
        // processes of a group restarted at once.)
        self.reloading_since_us.store(now_us, Ordering::Relaxed);
        self.reloading.compare_exchange(holder, index as u32 + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok()
    }

    /// A process found a script of the group changed at `modified_us`.
    pub fn request_reload(&self, modified_us: u64) {
        self.reload_requested_us.fetch_max(modified_us, Ordering::AcqRel);
    }

    /// Whether a process started at `started_us` runs code older than a change found since.
    pub fn reload_pending(&self, started_us: u64) -> bool {
        self.reload_requested_us.load(Ordering::Acquire) > started_us
    }

    /// The replacement of process `index` is ready: the next process may restart.
    pub fn end_reload(&self, index: usize) {
        let _ = self.reloading.compare_exchange(index as u32 + 1, 0, Ordering::AcqRel, Ordering::Relaxed);
    }
}

/// One live process that serves requests.
#[repr(C)]
pub struct ProcessRow {
    /// 0: free.
    pid: AtomicU32,
    /// 1 once the row's fields are written for `pid`.
    ready: AtomicU32,
    stopping: AtomicU32,
    threads: AtomicU32,
    name_len: AtomicU32,
    name: UnsafeCell<[u8; NAME]>,
    started_us: AtomicU64,
    shards: [RowShard; SHARDS],
}

// Every thread of a process counts in its row: atomics, and a name written before `ready`.
unsafe impl Sync for ProcessRow {}

/// A process's per-request counters, one copy per shard. A request may enter on one shard and
/// leave on another, so a shard's `busy` wraps below zero; the sum is right.
#[repr(C, align(64))]
struct RowShard {
    busy: AtomicU32,
    requests: AtomicU64,
    busy_us: AtomicU64,
}

impl ProcessRow {
    /// A request starts running in this process.
    pub fn enter(&self) {
        self.shards[shard()].busy.fetch_add(1, Ordering::Relaxed);
    }

    /// A request that ran for `busy_us` ends.
    pub fn leave(&self, busy_us: u64) {
        let s = &self.shards[shard()];
        s.busy.fetch_sub(1, Ordering::Relaxed);
        s.requests.fetch_add(1, Ordering::Relaxed);
        s.busy_us.fetch_add(busy_us, Ordering::Relaxed);
    }

    /// The process has begun to stop (so its end is no crash).
    pub fn set_stopping(&self) {
        self.stopping.store(1, Ordering::Relaxed);
    }

    pub fn read(&self) -> Option<ProcessValues> {
        let pid = self.pid.load(Ordering::Acquire);
        if pid == 0 || self.ready.load(Ordering::Acquire) == 0 {
            return None;
        }
        let len = (self.name_len.load(Ordering::Relaxed) as usize).min(NAME);
        let group = String::from_utf8_lossy(unsafe { &(&*self.name.get())[..len] }).into_owned();
        let sum = |f: fn(&RowShard) -> u64| self.shards.iter().map(f).fold(0u64, u64::wrapping_add);
        Some(ProcessValues {
            pid,
            group,
            threads: self.threads.load(Ordering::Relaxed),
            // Shards are read one by one: a request that entered on one already read and left on
            // one not yet read makes the sum dip below zero for this read. Clamped.
            busy: (sum(|s| s.busy.load(Ordering::Relaxed) as u64) as u32 as i32)
                .clamp(0, self.threads.load(Ordering::Relaxed) as i32) as u32,
            started_us: self.started_us.load(Ordering::Relaxed),
            requests: sum(|s| s.requests.load(Ordering::Relaxed)),
            busy_us: sum(|s| s.busy_us.load(Ordering::Relaxed)),
        })
    }
}

/// A copy of a process row.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessValues {
    pub pid: u32,
    pub group: String,
    pub threads: u32,
    pub busy: u32,
    pub started_us: u64,
    pub requests: u64,
    pub busy_us: u64,
}

/// One series' counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesValues {
    pub group: String,
    pub application_group: String,
    pub status: [u64; STATUS_CLASSES.len()],
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: HistogramValues,
    pub queue: HistogramValues,
}

impl SeriesValues {
    pub fn requests(&self) -> u64 {
        self.status.iter().sum()
    }
}

/// The whole shared region.
#[repr(C)]
pub struct Region {
    series: [SeriesSlot; SERIES],
    groups: [GroupSlot; GROUPS],
    processes: [ProcessRow; PROCESSES],
}

// The region is shared memory updated through atomics; the only plain bytes (labels) are
// written once, before an atomic publishes them.
unsafe impl Sync for Region {}

fn series_key(group: &str, application_group: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(group.len() + 1 + application_group.len());
    key.extend_from_slice(group.as_bytes());
    key.push(0);
    key.extend_from_slice(application_group.as_bytes());
    key
}

impl Region {
    /// A zeroed region on the heap (for tests and for a process without the shared one).
    #[cfg(test)]
    pub fn new_boxed() -> Box<Region> {
        let layout = std::alloc::Layout::new::<Region>();
        // Safe: zeroed memory is a valid empty Region (atomics and byte arrays only).
        unsafe {
            let p = std::alloc::alloc_zeroed(layout) as *mut Region;
            if p.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(p)
        }
    }

    /// The series of (group, application group), created on first use. None when the table is
    /// full (then the request goes uncounted).
    pub fn series(&self, group: &str, application_group: &str) -> Option<&SeriesSlot> {
        thread_local! {
            /// The last series this thread looked up: (region, key, slot index).
            static LAST: std::cell::RefCell<(usize, Vec<u8>, usize)> = const { std::cell::RefCell::new((0, Vec::new(), 0)) };
        }
        let me = self as *const Region as usize;
        let (g, a) = (group.as_bytes(), application_group.as_bytes());
        let cached = LAST.with(|l| {
            let l = l.borrow();
            let k = &l.1;
            let hit = l.0 == me && k.len() == g.len() + 1 + a.len() && k.starts_with(g) && k.ends_with(a);
            hit.then_some(l.2)
        });
        if let Some(i) = cached {
            return Some(&self.series[i]);
        }
        let key = series_key(group, application_group);
        let i = self.series.iter().position(|s| s.label.matches_or_claim(&key) == Some(true))?;
        LAST.with(|l| *l.borrow_mut() = (me, key, i));
        Some(&self.series[i])
    }

    pub fn record_restart(&self, group: &str, reason: &'static str) {
        let i = REASONS.iter().position(|r| *r == reason).unwrap_or(REASONS.len() - 1);
        if let Some(g) = self.group(group) {
            g.restarts[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The slot of process group `name`, created on first use.
    pub fn group(&self, name: &str) -> Option<&GroupSlot> {
        self.groups.iter().find(|g| g.label.matches_or_claim(name.as_bytes()) == Some(true))
    }

    /// Takes a free row for process `pid` of `group` (empty: Apache's own children).
    pub fn register(&self, pid: u32, group: &str, threads: u32, started_us: u64) -> Option<&ProcessRow> {
        let row = self
            .processes
            .iter()
            .find(|p| p.pid.compare_exchange(0, pid, Ordering::Acquire, Ordering::Relaxed).is_ok())?;
        let n = group.len().min(NAME);
        unsafe { (&mut *row.name.get())[..n].copy_from_slice(&group.as_bytes()[..n]) };
        row.name_len.store(n as u32, Ordering::Relaxed);
        row.threads.store(threads, Ordering::Relaxed);
        row.stopping.store(0, Ordering::Relaxed);
        row.started_us.store(started_us, Ordering::Relaxed);
        for s in &row.shards {
            s.busy.store(0, Ordering::Relaxed);
            s.requests.store(0, Ordering::Relaxed);
            s.busy_us.store(0, Ordering::Relaxed);
        }
        row.ready.store(1, Ordering::Release);
        Some(row)
    }

    /// Frees the row of a process that ended. Returns (its group, whether it had begun to
    /// stop), or None if it had no row.
    pub fn end(&self, pid: u32) -> Option<(String, bool)> {
        let mut ended = None;
        for row in self.processes.iter().filter(|p| p.pid.load(Ordering::Acquire) == pid) {
            let values = row.read();
            let stopping = row.stopping.load(Ordering::Relaxed) != 0;
            self.end_row(row);
            ended = ended.or(values.map(|v| (v.group, stopping)));
        }
        ended
    }

    /// Frees one row.
    pub fn end_row(&self, row: &ProcessRow) {
        row.ready.store(0, Ordering::Release);
        row.pid.store(0, Ordering::Release);
    }

    /// Every series: (group, application group, values).
    pub fn series_values(&self) -> Vec<SeriesValues> {
        self.series
            .iter()
            .map_while(|s| s.label.get().map(|key| (s, key)))
            .map(|(s, key)| {
                let (group, app) = match key.iter().position(|&b| b == 0) {
                    Some(i) => (&key[..i], &key[i + 1..]),
                    None => (key, &b""[..]),
                };
                let mut v = SeriesValues {
                    group: String::from_utf8_lossy(group).into_owned(),
                    application_group: String::from_utf8_lossy(app).into_owned(),
                    ..SeriesValues::default()
                };
                for sh in &s.shards {
                    for (total, c) in v.status.iter_mut().zip(&sh.status) {
                        *total += c.load(Ordering::Relaxed);
                    }
                    v.bytes_in += sh.bytes_in.load(Ordering::Relaxed);
                    v.bytes_out += sh.bytes_out.load(Ordering::Relaxed);
                    v.duration.add(&sh.duration.read());
                    v.queue.add(&sh.queue.read());
                }
                v
            })
            .collect()
    }

    /// Every group's restarts by reason (in the order of [`REASONS`]).
    pub fn restart_values(&self) -> Vec<(String, [u64; REASONS.len()])> {
        self.groups
            .iter()
            .map_while(|g| g.label.get().map(|name| (g, name)))
            .map(|(g, name)| {
                (
                    String::from_utf8_lossy(name).into_owned(),
                    std::array::from_fn(|i| g.restarts[i].load(Ordering::Relaxed)),
                )
            })
            .collect()
    }

    /// Every live process row.
    pub fn process_values(&self) -> Vec<ProcessValues> {
        self.processes.iter().filter_map(ProcessRow::read).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_created_once_and_found_again() {
        let r = Region::new_boxed();
        let a = r.series("g", "host|/").unwrap() as *const _;
        let b = r.series("", "host|/").unwrap() as *const _;
        assert_ne!(a, b);
        assert_eq!(r.series("g", "host|/").unwrap() as *const _, a);
        r.series("g", "host|/").unwrap().done(200, 1500, 10, 20);
        r.series("g", "host|/").unwrap().done(404, 10, 0, 5);
        r.series("g", "host|/").unwrap().done(0, 10, 0, 0);
        let v = r.series_values();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].group.as_str(), v[0].application_group.as_str()), ("g", "host|/"));
        assert_eq!(v[0].status, [0, 1, 0, 1, 0, 1]);
        assert_eq!((v[0].bytes_in, v[0].bytes_out), (10, 25));
        assert_eq!(v[0].duration.count(), 3);
        assert_eq!(v[0].duration.sum_us, 1520);
    }

    #[test]
    fn the_region_stays_small() {
        // Mapped once per Apache parent; pages are touched only for the series and rows in use.
        let size = std::mem::size_of::<Region>();
        assert!(size < 2 << 20, "{size} bytes");
    }

    #[test]
    fn shards_add_up_across_threads() {
        let r = Region::new_boxed();
        let row = r.register(11, "", 8, 0).unwrap();
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        row.enter();
                        // Moving to another CPU between the two is allowed (the sum stays right).
                        std::thread::yield_now();
                        row.leave(2);
                        r.series("", "a").unwrap().done(200, 1, 1, 1);
                    }
                });
            }
        });
        let p = &r.process_values()[0];
        assert_eq!((p.busy, p.requests, p.busy_us), (0, 8000, 16000));
        let v = &r.series_values()[0];
        assert_eq!((v.status[1], v.bytes_in, v.duration.count()), (8000, 8000, 8000));
        // The row's shards start from zero for the next process that takes it.
        row.enter();
        r.end(11);
        let again = r.register(12, "", 1, 0).unwrap();
        assert_eq!(again.read().unwrap().busy, 0);
    }

    #[test]
    fn a_full_series_table_drops_the_new_series() {
        let r = Region::new_boxed();
        for i in 0..SERIES {
            assert!(r.series("g", &i.to_string()).is_some());
        }
        assert!(r.series("g", "one more").is_none());
        assert!(r.series("g", "7").is_some());
    }

    #[test]
    fn rows_are_freed_and_reused() {
        let r = Region::new_boxed();
        let row = r.register(10, "g", 3, 5).unwrap();
        row.enter();
        row.enter();
        row.leave(100);
        let v = r.process_values();
        assert_eq!(v.len(), 1);
        assert_eq!((v[0].pid, v[0].group.as_str(), v[0].threads, v[0].busy), (10, "g", 3, 1));
        assert_eq!((v[0].requests, v[0].busy_us), (1, 100));
        assert_eq!(r.end(10), Some(("g".to_string(), false)));
        assert!(r.process_values().is_empty());
        let again = r.register(11, "h", 1, 6).unwrap();
        again.set_stopping();
        assert_eq!(r.process_values()[0].requests, 0);
        assert_eq!(r.end(11), Some(("h".to_string(), true)));
        assert_eq!(r.end(12), None);
    }

    #[test]
    fn restarts_count_by_reason() {
        let r = Region::new_boxed();
        r.record_restart("g", restart_label("maximum_requests"));
        r.record_restart("g", restart_label("maximum_requests"));
        r.record_restart("g", restart_label("crash"));
        r.record_restart("h", restart_label("something new"));
        let v = r.restart_values();
        assert_eq!(v[0].0, "g");
        assert_eq!(v[0].1[0], 1);
        assert_eq!(v[0].1[1], 2);
        assert_eq!(v[1].1[REASONS.len() - 1], 1);
    }

    #[test]
    fn one_process_of_a_group_reloads_at_a_time() {
        let r = Region::new_boxed();
        let g = r.group("g").unwrap();
        assert!(!g.reloading_other(0, 10) && !g.reloading_other(1, 10));
        g.request_reload(10);
        assert!(g.reload_pending(5) && !g.reload_pending(10));
        assert!(g.try_begin_reload(0, 10));
        assert!(!g.try_begin_reload(1, 15), "the baton is held");
        assert!(g.reloading_other(1, 20), "process 1 waits for process 0's replacement");
        assert!(!g.reloading_other(0, 20), "process 0's replacement is not held up by itself");
        g.end_reload(1);
        assert!(g.reloading_other(1, 30), "only the holder's replacement ends it");
        assert!(!g.reloading_other(1, 10 + RELOAD_BATON_US), "a lost baton expires");
        g.end_reload(0);
        assert!(!g.reloading_other(1, 40));
        assert!(!r.group("h").unwrap().reloading_other(0, 40));
    }

    #[test]
    fn long_names_are_cut_not_refused() {
        let r = Region::new_boxed();
        let long = "x".repeat(1000);
        assert!(r.series(&long, &long).is_some());
        assert!(r.series(&long, &long).is_some());
        assert_eq!(r.series_values().len(), 1);
    }
}
