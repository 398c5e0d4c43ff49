//! Apache's C API as every layer that runs inside httpd uses it: the raw bindings (`ffi`) and
//! thin safe helpers over them (`util`: logging, pools, tables, strings); and the system's user
//! and group databases (`identity`, libc only, unit-tested). Nothing here knows oxwsgi's
//! configuration, requests or Python.

#[cfg(not(test))]
pub mod ffi;
pub mod identity;
#[cfg(not(test))]
pub mod scoreboard;
#[cfg(not(test))]
pub mod util;
