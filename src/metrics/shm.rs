//! The shared mapping and the process-wide pointers to it.
//!
//! Apache's parent creates the mapping once ([`create`]) and keeps it for its whole life (the
//! caller stores the pointer where module reloads do not reset it) and sets it with [`attach`]
//! before forking; children and daemon processes inherit both the mapping and the pointer.

use super::region::{ProcessRow, Region};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};

static REGION: AtomicPtr<Region> = AtomicPtr::new(ptr::null_mut());
/// Whether requests are counted (WSGIMetrics); the region also carries state that is not a
/// metric (daemon groups' reload baton), kept either way.
static RECORDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static THIS_PROCESS: AtomicPtr<ProcessRow> = AtomicPtr::new(ptr::null_mut());

/// Maps a new zeroed region shared with every process forked from this one from now on.
pub fn create() -> std::io::Result<*mut Region> {
    let size = std::mem::size_of::<Region>();
    // Safe: an anonymous mapping, checked for failure; zero pages are a valid empty Region.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(p as *mut Region)
}

/// Makes `region` (from [`create`], never unmapped) the one this process records into.
///
/// # Safety
/// `region` must point to a mapping made by [`create`] that stays mapped for the life of the
/// process.
/// `recording`: whether requests are counted into it.
pub unsafe fn attach(region: *mut Region, recording: bool) {
    RECORDING.store(recording, Ordering::Release);
    REGION.store(region, Ordering::Release);
}

/// The server's region to count into, if this process has one and metrics are on (not in
/// `configtest`, not in unit tests, not with `WSGIMetrics Off`).
pub fn region() -> Option<&'static Region> {
    if !RECORDING.load(Ordering::Acquire) {
        return None;
    }
    shared()
}

/// The server's region, whether or not requests are counted.
pub fn shared() -> Option<&'static Region> {
    let p = REGION.load(Ordering::Acquire);
    // Safe: set only by `attach`, to a mapping that lives as long as the process.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// This process' row, taken on first use: `group` is "" for an Apache child (embedded mode).
pub fn this_process(group: &str, threads: u32, started_us: u64) -> Option<&'static ProcessRow> {
    let p = THIS_PROCESS.load(Ordering::Acquire);
    if !p.is_null() {
        // Safe: rows live in the region, which lives as long as the process.
        return Some(unsafe { &*p });
    }
    let row = region()?.register(std::process::id(), group, threads, started_us)?;
    match THIS_PROCESS.compare_exchange(ptr::null_mut(), row as *const _ as *mut _, Ordering::AcqRel, Ordering::Acquire)
    {
        Ok(_) => Some(row),
        Err(other) => {
            // Another thread registered first: give this row back.
            region()?.end_row(row);
            Some(unsafe { &*other })
        }
    }
}

/// This process' row if it has taken one.
pub fn current_process() -> Option<&'static ProcessRow> {
    let p = THIS_PROCESS.load(Ordering::Acquire);
    (!p.is_null()).then(|| unsafe { &*p })
}
