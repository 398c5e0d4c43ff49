//! `WSGITelemetryService unix:/path [interval=SECONDS]` and
//! `WSGITelemetryOptions [+|-]Flag... | None | All` (mod_wsgi 6), with mod_wsgi's messages.

use std::path::PathBuf;
use std::time::Duration;

/// `sockaddr_un`'s path size: a longer path could never be sent to.
const SUN_PATH: usize = 108;

/// The socket path and the interval (default 1 s, at least 0.5 s).
pub fn parse_telemetry_service(raw: &str) -> Result<(PathBuf, Duration), String> {
    const D: &str = "WSGITelemetryService";
    let words = super::args::split_args(raw).map_err(|e| e.to_string())?;
    let (target, rest) = match words.as_slice() {
        [t, rest @ ..] if rest.len() <= 1 => (t, rest),
        _ => return Err(format!("{D} takes 1-2 arguments: unix:/path [interval=N]")),
    };
    let path = target
        .strip_prefix("unix:")
        .ok_or(format!("{D} target must be 'unix:/path' (remote 'udp:host:port' targets are no longer supported)"))?;
    if !path.starts_with('/') {
        return Err(format!("{D} target must be an absolute path after 'unix:', not '{path}'"));
    }
    if path.len() >= SUN_PATH {
        return Err(format!("{D} socket path is {} bytes; a UNIX socket path must be under {SUN_PATH}", path.len()));
    }
    let mut interval = Duration::from_secs(1);
    if let Some(arg) = rest.first() {
        let v = arg.strip_prefix("interval=").ok_or(format!("{D} second argument must be 'interval=N'"))?;
        match v.parse::<f64>() {
            Ok(s) if s.is_finite() && s >= 0.5 && s <= 86_400.0 => interval = Duration::from_secs_f64(s),
            _ => return Err(format!("{D} interval must be at least 0.5 seconds, not '{v}'")),
        }
    }
    Ok((PathBuf::from(path), interval))
}

/// The options after a `WSGITelemetryOptions` line, from `current` (lines add up). The only
/// flag is CaptureUserAgent.
pub fn parse_telemetry_options(raw: &str, current: bool) -> Result<bool, String> {
    const D: &str = "WSGITelemetryOptions";
    let words = super::args::split_args(raw).map_err(|e| e.to_string())?;
    if words.is_empty() {
        return Err(format!("{D}: at least one flag required"));
    }
    let (mut value, mut incremental, mut absolute) = (current, false, false);
    for w in &words {
        let (sign, name) = match w.as_bytes()[0] {
            b'+' => (Some(true), &w[1..]),
            b'-' => (Some(false), &w[1..]),
            _ => (None, w.as_str()),
        };
        if sign.is_some() && name.is_empty() {
            return Err(format!("{D}: bare '+' / '-' is not a flag"));
        }
        if sign.is_some() {
            incremental = true
        } else {
            absolute = true
        }
        if incremental && absolute {
            return Err(format!("{D}: cannot mix +/- form with absolute names in a single directive"));
        }
        let named = |n: &str| name.eq_ignore_ascii_case(n);
        if named("None") || named("All") {
            if sign.is_some() {
                return Err(format!("{D}: '{}' may not have a +/- prefix", if named("None") { "None" } else { "All" }));
            }
            value = named("All");
        } else if named("CaptureUserAgent") {
            // An absolute line starts from nothing; a flag named alone turns it on.
            value = sign.unwrap_or(true);
        } else {
            return Err(format!("{D}: unknown flag '{name}'"));
        }
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_targets_and_intervals() {
        assert_eq!(
            parse_telemetry_service("unix:/run/t.sock").unwrap(),
            ("/run/t.sock".into(), Duration::from_secs(1))
        );
        assert_eq!(parse_telemetry_service("unix:/t interval=0.5").unwrap().1, Duration::from_millis(500));
        for (bad, says) in [
            ("", "takes 1-2 arguments"),
            ("unix:/a interval=1 x", "takes 1-2 arguments"),
            ("udp:localhost:9", "must be 'unix:/path'"),
            ("unix:rel.sock", "absolute path"),
            ("unix:/t interval=0.4", "at least 0.5 seconds"),
            ("unix:/t interval=abc", "at least 0.5 seconds"),
            ("unix:/t every=1", "must be 'interval=N'"),
        ] {
            let e = parse_telemetry_service(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let long = format!("unix:/{}", "x".repeat(120));
        assert!(parse_telemetry_service(&long).unwrap_err().contains("under 108"));
    }

    #[test]
    fn options_add_up_or_replace() {
        assert!(parse_telemetry_options("+CaptureUserAgent", false).unwrap());
        assert!(!parse_telemetry_options("-captureuseragent", true).unwrap());
        assert!(parse_telemetry_options("All", false).unwrap());
        assert!(!parse_telemetry_options("None", true).unwrap());
        assert!(parse_telemetry_options("None CaptureUserAgent", false).unwrap());
        for (bad, says) in [
            ("", "at least one flag"),
            ("+", "bare '+'"),
            ("+CaptureUserAgent None", "cannot mix"),
            ("+All", "'All' may not have"),
            ("Bogus", "unknown flag 'Bogus'"),
        ] {
            let e = parse_telemetry_options(bad, false).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
