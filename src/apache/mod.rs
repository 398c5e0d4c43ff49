//! Everything that touches Apache: raw bindings, thin safe helpers, the directive table, the
//! hooks and embedded mode's request handling.
//!
//! The raw pointers these functions take (request_rec, server_rec, cmd_parms, pools) come from
//! Apache and are valid for the duration of the hook or callback that passes them on; the
//! functions are the thin wrappers that keep that assumption in one place.
#![allow(clippy::not_unsafe_ptr_arg_deref, clippy::missing_safety_doc)]
pub mod conf;
pub mod ffi;
pub mod hooks;
pub mod request;
pub mod util;
pub mod vhost;
