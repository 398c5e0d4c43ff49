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

#[cfg(test)]
mod tests {
    use super::*;

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
