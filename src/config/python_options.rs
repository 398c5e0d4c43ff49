//! Values of the directives that set how Python itself starts (once per process, before any
//! interpreter exists): WSGIPythonHashSeed here; the others are On|Off or free text.

use super::args::{is_space, ConfigError};

/// `WSGIPythonHashSeed random|N` (0..=4294967295): None is Python's default, a random seed.
/// (mod_wsgi 6 turns `random` into a fixed seed 0 by mistake; here it means random.)
pub fn parse_hash_seed(directive: &str, raw: &str) -> Result<Option<u32>, ConfigError> {
    let v = raw.trim_matches(is_space);
    if v.eq_ignore_ascii_case("random") {
        return Ok(None);
    }
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = v.parse::<u32>() {
            return Ok(Some(n));
        }
    }
    Err(ConfigError::BadArgument {
        directive: directive.to_string(),
        expected: "needs 'random' or a whole number from 0 to 4294967295".to_string(),
        value: raw.to_string(),
    })
}

/// WSGISwitchInterval / `switch-interval=`: seconds (a decimal number above 0, at most an hour)
/// for `sys.setswitchinterval()`.
pub fn parse_switch_interval(directive: &str, raw: &str) -> Result<std::time::Duration, ConfigError> {
    let v = raw.trim_matches(is_space);
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 3600.0 && !v.starts_with('+') => {
            Ok(std::time::Duration::from_secs_f64(s))
        }
        _ => Err(ConfigError::BadArgument {
            directive: directive.to_string(),
            expected: "needs a number of seconds above 0 (Python's default is 0.005)".to_string(),
            value: raw.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_intervals() {
        let p = |v| parse_switch_interval("WSGISwitchInterval", v);
        assert_eq!(p("0.005").unwrap(), std::time::Duration::from_micros(5000));
        assert_eq!(p(" 1 ").unwrap(), std::time::Duration::from_secs(1));
        for bad in ["0", "-1", "", "abc", "nan", "inf", "1e9", "+1"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hash_seeds() {
        let p = |v| parse_hash_seed("WSGIPythonHashSeed", v);
        assert_eq!(p("random").unwrap(), None);
        assert_eq!(p(" 0 ").unwrap(), Some(0));
        assert_eq!(p("4294967295").unwrap(), Some(u32::MAX));
        for bad in ["4294967296", "-1", "", "12abc"] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }
}
