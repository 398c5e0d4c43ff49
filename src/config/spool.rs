//! The sizes of the temporary files that keep what a slow client has not taken (or not yet
//! sent): `WSGIResponseSpoolSize` (embedded mode) and the daemon option
//! `response-spool-size=` take the same values.

use super::args::{is_space, ConfigError};

/// The default of both: at most 1 GiB of one response in the file.
pub const DEFAULT_SPOOL_SIZE: u64 = 1 << 30;

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
        assert_eq!(p(" 1073741824 ").unwrap(), DEFAULT_SPOOL_SIZE);
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
