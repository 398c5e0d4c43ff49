//! Daemon mode: process groups that Apache's parent starts and supervises (`supervisor`), the
//! daemon processes themselves (`server`), the Apache-child side that relays a request
//! (`client`), and the wire protocol between them (`protocol`, pure and fuzzed).

pub mod protocol;

#[cfg(not(test))]
pub mod client;
#[cfg(not(test))]
pub mod server;
#[cfg(not(test))]
pub mod supervisor;
