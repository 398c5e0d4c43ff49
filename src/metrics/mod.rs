//! Request metrics across every process of one Apache server: what the `oxwsgi-metrics` handler
//! exposes (Prometheus text format 0.0.4, or JSON) and `mod_wsgi.process_metrics()` reads.
//!
//! Mechanism: one anonymous shared memory region ([`Region`], fixed size, made by
//! [`shm::create`]) that Apache's parent maps once (it is kept across graceful restarts) and
//! that every Apache child and every daemon process inherits by fork. Each process adds to
//! atomic counters in it as it serves; nothing is sent anywhere and nothing is lost when a
//! process exits, so a recycled daemon's requests stay counted. Readers sum the slots up.
//!
//! - `region`: the layout and the recording functions (lock-free: atomics, and slots claimed
//!   once by compare-and-swap);
//! - `histogram`: the fixed bucket bounds and bucket arithmetic;
//! - `snapshot`: a consistent-enough copy of the region, aggregated per process group;
//! - `prometheus`, `json`: the two renderings of a snapshot;
//! - `running`: a request running in this process (queue wait, busy threads);
//! - `shm`: the mapping itself and the process-wide pointer to it.
//!
//! Pure: nothing here names Apache or Python; unit tests run on a heap-allocated region.

pub mod histogram;
pub mod json;
pub mod prometheus;
pub mod region;
pub mod running;
pub mod shm;
pub mod snapshot;

pub use region::{restart_label, Region, SeriesSlot};
