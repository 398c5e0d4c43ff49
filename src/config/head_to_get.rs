//! `WSGIMapHEADToGET Off|On|Auto`: whether a HEAD request reaches the application as GET.
//!
//! An application may answer HEAD differently from GET (no body, or other headers). Apache
//! output filters that compute headers from the body (mod_deflate's Content-Length, caches)
//! then see a response unlike the GET one. mod_wsgi's answer, kept here: `On` always runs HEAD
//! as GET (Apache drops the body); `Auto`, the default, only when output filters beyond
//! Apache's own protocol filters are in the chain; `Off` never.

use super::args::{is_space, ConfigError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MapHeadToGet {
    Off,
    On,
    #[default]
    Auto,
}

pub fn parse_map_head_to_get(directive: &str, raw: &str) -> Result<MapHeadToGet, ConfigError> {
    match raw.trim_matches(is_space).to_ascii_lowercase().as_str() {
        "off" => Ok(MapHeadToGet::Off),
        "on" => Ok(MapHeadToGet::On),
        "auto" => Ok(MapHeadToGet::Auto),
        _ => Err(ConfigError::BadArgument {
            directive: directive.to_string(),
            expected: "needs On, Off or Auto".to_string(),
            value: raw.to_string(),
        }),
    }
}

impl MapHeadToGet {
    /// Whether a HEAD request runs as GET, given whether content output filters (anything
    /// before Apache's protocol filters) will see the response.
    pub fn maps(self, content_filters: bool) -> bool {
        match self {
            MapHeadToGet::Off => false,
            MapHeadToGet::On => true,
            MapHeadToGet::Auto => content_filters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        let p = |v| parse_map_head_to_get("WSGIMapHEADToGET", v);
        assert_eq!(p("Auto").unwrap(), MapHeadToGet::Auto);
        assert_eq!(p(" on ").unwrap(), MapHeadToGet::On);
        assert_eq!(p("OFF").unwrap(), MapHeadToGet::Off);
        assert!(p("yes").unwrap_err().to_string().contains("On, Off or Auto"));
        assert!(MapHeadToGet::On.maps(false) && !MapHeadToGet::Off.maps(true));
        assert!(MapHeadToGet::Auto.maps(true) && !MapHeadToGet::Auto.maps(false));
        assert_eq!(MapHeadToGet::default(), MapHeadToGet::Auto);
    }
}
