//! What oxwsgi keeps for one request in the request's `request_config` slot (an array index,
//! not a pool lookup): the route translate_name found, what the request is counted under in the
//! metrics, and the body collected before its application runs.

use crate::metrics::SeriesSlot;
use crate::sys::ffi;
use crate::sys::util::{module_config, pool_box, set_module_config};
use std::cell::{OnceCell, RefCell};
use std::sync::atomic::AtomicU64;

use super::conf::Mount;
use crate::collected_body::Collected;

/// What translate_name decided for a request.
pub struct Route {
    pub mount: *const Mount,
    pub script: String,
    /// SCRIPT_NAME and PATH_INFO as bytes: a URI need not be UTF-8.
    pub script_name: Vec<u8>,
    pub path_info: Vec<u8>,
}

/// What a request a WSGI application answers is counted under.
pub struct Mark {
    pub series: &'static SeriesSlot,
    /// Request body bytes read (by the application, or sent on to a daemon).
    pub read: AtomicU64,
}

/// Each part is set through a shared reference (the handler holds the route while the mark is
/// set).
#[derive(Default)]
pub struct RequestNote {
    pub route: OnceCell<Route>,
    pub mark: OnceCell<Mark>,
    /// Where the body is (`body_wait` collects it, the request's backend takes it).
    pub body: RefCell<Body>,
}

/// Where a request's body is, before its application runs.
#[derive(Default)]
pub enum Body {
    /// Not read yet (or not to be collected).
    #[default]
    Unread,
    /// The request waits in the MPM for the rest; this much has come.
    Parked(Collected),
    /// Collected as far as it is to be (None: nothing kept, the body failed on the way, or the
    /// backend took it): the application may run.
    Ready(Option<Collected>),
}

impl RequestNote {
    /// The collected body, for the request's backend (once).
    pub fn take_collected(&self) -> Option<Collected> {
        match &mut *self.body.borrow_mut() {
            Body::Ready(collected) => collected.take(),
            _ => None,
        }
    }
}

/// `r`'s note, if it has one.
pub unsafe fn note<'a>(r: *const ffi::request_rec) -> Option<&'a RequestNote> {
    module_config::<RequestNote>((*r).request_config).as_ref()
}

/// `r`'s note, made (in its pool) if it has none yet.
pub unsafe fn note_or_new<'a>(r: *mut ffi::request_rec) -> &'a RequestNote {
    if let Some(n) = note(r) {
        return n;
    }
    let n = pool_box((*r).pool, RequestNote::default());
    set_module_config((*r).request_config, n);
    &*n
}

/// The mark of `r`'s request: on `r`, or on the request an internal redirect made of it (which
/// is the one whose handler ran).
pub unsafe fn mark_of<'a>(r: *const ffi::request_rec) -> Option<&'a Mark> {
    let mut at = r;
    while !at.is_null() {
        if let Some(m) = note(at).and_then(|n| n.mark.get()) {
            return Some(m);
        }
        at = (*at).next;
    }
    None
}
