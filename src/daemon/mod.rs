//! Daemon mode: process groups that Apache's parent starts and supervises (`supervisor`), the
//! daemon processes themselves (`server`), the Apache-child side that relays a request
//! (`client`), and the wire protocol between them (`protocol`, pure and fuzzed).

pub mod protocol;

// The Apache-facing functions below take Apache's own pointers (see `crate::apache`).

#[cfg(not(test))]
#[allow(clippy::not_unsafe_ptr_arg_deref, clippy::missing_safety_doc)]
pub mod client;
#[cfg(not(test))]
#[allow(clippy::not_unsafe_ptr_arg_deref, clippy::missing_safety_doc)]
pub mod server;
#[cfg(not(test))]
#[allow(clippy::not_unsafe_ptr_arg_deref, clippy::missing_safety_doc)]
pub mod supervisor;
