//! The kinds of value a `WSGIDaemonProcess` option takes (whole numbers in a range, seconds,
//! absolute paths, user and group names, lists), each read from the text as written and reported,
//! when wrong, with the option's name and the bad text.

use std::time::Duration;

use crate::config::args::{on_off, ConfigError};

pub(super) const DIRECTIVE: &str = "WSGIDaemonProcess";

/// mod_wsgi keeps seconds in a C `int`.
pub(super) const MAX_SECONDS: u64 = i32::MAX as u64;

/// One option's value as written (quotes removed), with the option's name for error messages.
#[derive(Debug, Clone, Copy)]
pub(super) struct Value<'a> {
    pub option: &'a str,
    pub raw: &'a str,
}

impl Value<'_> {
    /// "WSGIDaemonProcess: option 'NAME' EXPECTED, not 'TEXT'".
    pub fn bad(self, expected: &str) -> ConfigError {
        ConfigError::BadValue {
            directive: DIRECTIVE.to_string(),
            option: self.option.to_string(),
            expected: expected.to_string(),
            value: self.raw.to_string(),
        }
    }

    /// Any text, as written.
    pub fn any(self) -> Result<Option<String>, ConfigError> {
        Ok(Some(self.raw.to_string()))
    }

    /// A whole number from `min` to `max`.
    pub fn number(self, min: u64, max: u64, expected: &str) -> Result<u64, ConfigError> {
        whole_number(self.raw).filter(|n| (min..=max).contains(n)).ok_or_else(|| self.bad(expected))
    }

    /// 0 (the default, whatever the option makes of it), or a whole number from `least` to `max`
    /// (mod_wsgi's lower bounds for the sizes it takes).
    pub fn zero_or_at_least(self, least: u64, max: u64, expected: &str) -> Result<u64, ConfigError> {
        let n = self.number(0, max, expected)?;
        if n != 0 && n < least {
            return Err(self.bad(expected));
        }
        Ok(n)
    }

    /// Whole seconds, at least `min` (0 or 1).
    pub fn seconds(self, min: u64) -> Result<Duration, ConfigError> {
        let expected =
            if min == 0 { "needs a whole number of seconds" } else { "needs a whole number of seconds, at least 1" };
        self.number(min, MAX_SECONDS, expected).map(Duration::from_secs)
    }

    /// Whole seconds where 0 means off (mod_wsgi's rule).
    pub fn optional_seconds(self) -> Result<Option<Duration>, ConfigError> {
        self.seconds(0).map(|t| Some(t).filter(|t| !t.is_zero()))
    }

    /// An absolute path.
    pub fn absolute_path(self) -> Result<Option<String>, ConfigError> {
        if !self.raw.starts_with('/') {
            return Err(self.bad("needs an absolute directory path"));
        }
        self.any()
    }

    /// A user or group name or `#id` (or bare id) that is not root's (`what`: "root" or "the root
    /// group").
    pub fn not_root(self, what: &str) -> Result<Option<String>, ConfigError> {
        let digits = self.raw.strip_prefix('#').unwrap_or(self.raw);
        if self.raw == "root" || whole_number(digits) == Some(0) {
            return Err(self.bad(&format!("must not be {what}: daemon processes never run as root")));
        }
        self.any()
    }

    /// An octal file-creation mask.
    pub fn umask(self) -> Result<Option<u32>, ConfigError> {
        let octal = self.raw.bytes().all(|b| (b'0'..=b'7').contains(&b));
        let mask = u32::from_str_radix(self.raw, 8).ok().filter(|m| octal && *m <= 0o777);
        mask.map(Some).ok_or_else(|| self.bad("needs an octal number from 0 to 0777"))
    }

    /// A whole number from -20 to 19.
    pub fn niceness(self) -> Result<Option<i32>, ConfigError> {
        let n: Option<i32> = self.raw.parse().ok().filter(|n| (-20..=19).contains(n));
        n.map(Some).ok_or_else(|| self.bad("needs a whole number from -20 to 19"))
    }

    /// `On` or `Off`, in any case.
    pub fn on_off(self) -> Result<bool, ConfigError> {
        on_off(self.raw).ok_or_else(|| self.bad("needs On or Off"))
    }

    /// Paths separated by `:`, empty entries dropped.
    pub fn path_list(self) -> Result<Vec<String>, ConfigError> {
        Ok(self.raw.split(':').filter(|p| !p.is_empty()).map(str::to_string).collect())
    }

    /// Names separated by `,`, each trimmed, empty entries dropped.
    pub fn name_list(self) -> Result<Vec<String>, ConfigError> {
        Ok(self.raw.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_string).collect())
    }
}

/// Digits only (no sign, no spaces), fitting a u64. Stricter than mod_wsgi's `atoi`, which reads
/// "12abc" as 12.
pub(crate) fn whole_number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}
