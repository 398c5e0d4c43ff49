//! Everything that touches Apache: raw bindings, thin safe helpers, the directive table, the
//! hooks and embedded mode's request handling.
pub mod conf;
pub mod ffi;
pub mod hooks;
pub mod request;
pub mod util;
pub mod vhost;
