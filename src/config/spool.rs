//! The sizes of the temporary files that keep what a slow client has not taken (or not yet
//! sent): `WSGIResponseSpoolSize` (embedded mode) and the daemon option
//! `response-spool-size=` take the same values.

use super::args::{is_space, ConfigError};

/// The default of both, and of `request-spool-size=`: at most 32 MiB of one response (or request
/// body) in the file. The file is in the temporary directory, which is often a tmpfs (RAM:
/// Debian 13's /tmp), and parked slow clients are bounded by no worker count under the event
/// MPM: tens of them at 1 GiB each could fill it. 32 MiB covers the bodies that are usually
/// spooled (pages, API answers, photos) while a hundred parked clients stay within 3.2 GiB; an
/// admin with larger downloads or uploads, and a disk behind `TMPDIR`, raises it.
pub const DEFAULT_SPOOL_SIZE: u64 = 32 << 20;

/// What a spool size must be, for the error line.
pub const SPOOL_SIZE_EXPECTED: &str = "needs a number of bytes (0: no spooling)";

/// `WSGIResponseSpoolSize BYTES`: a whole number of bytes, 0 to turn the file off.
pub fn parse_spool_size(directive: &str, raw: &str) -> Result<u64, ConfigError> {
    let v = raw.trim_matches(is_space);
    super::daemon::values::whole_number(v).ok_or_else(|| ConfigError::BadArgument {
        directive: directive.to_string(),
        expected: SPOOL_SIZE_EXPECTED.to_string(),
        value: raw.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_sizes() {
        let p = |v| parse_spool_size("WSGIResponseSpoolSize", v);
        assert_eq!(p("0").unwrap(), 0);
        assert_eq!(p(" 33554432 ").unwrap(), DEFAULT_SPOOL_SIZE);
        assert_eq!(p("18446744073709551615").unwrap(), u64::MAX);
        for bad in ["", "-1", "1k", "1 2", "+5", "18446744073709551616"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(
            p("x").unwrap_err().to_string(),
            "WSGIResponseSpoolSize: needs a number of bytes (0: no spooling), not 'x'"
        );
    }
}
