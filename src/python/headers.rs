//! PEP 3333's rules for a response's status line and headers, as the adapter checks what an
//! application passes to start_response and the relay checks what a daemon sends.

/// "NNN Reason": three digits, a space, a reason without control characters.
pub fn parse_status(s: &str) -> Result<u16, String> {
    let b = s.as_bytes();
    let ok = b.len() >= 5
        && b[..3].iter().all(u8::is_ascii_digit)
        && b[0] != b'0'
        && b[3] == b' '
        && s.chars().all(|c| (c as u32) <= 0xff && !c.is_control());
    if !ok {
        return Err(format!("invalid status {s:?}: want three digits, a space and a reason, e.g. '200 OK'"));
    }
    Ok(s[..3].parse().expect("digits"))
}

/// A header name must be an RFC 9110 token; a value latin-1 text with no control characters
/// (tab allowed). CR or LF anywhere is refused, so no header can be injected.
pub fn validate_header(name: &str, value: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    if name.is_empty() || !name.bytes().all(is_tchar) {
        return Err(format!("invalid response header name {name:?}"));
    }
    let mut v = Vec::with_capacity(value.len());
    for c in value.chars() {
        let c = c as u32;
        if c > 0xff {
            return Err(format!("response header {name:?} has a value that is not latin-1: {value:?}"));
        }
        if (c < 0x20 && c != 0x09) || c == 0x7f {
            return Err(format!(
                "response header {name:?} has a control character (CR, LF or other) in its value {value:?}"
            ));
        }
        v.push(c as u8);
    }
    Ok((name.as_bytes().to_vec(), v))
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// The rules of [`validate_header`] for a header that arrives already encoded (from a daemon
/// process, whose applications could write to their socket directly).
pub fn header_bytes_ok(name: &[u8], value: &[u8]) -> bool {
    !name.is_empty()
        && name.iter().all(|&c| is_tchar(c))
        && value.iter().all(|&c| (c >= 0x20 && c != 0x7f) || c == b'\t')
}

/// The rules of [`parse_status`] for a reason phrase that arrives already encoded.
pub fn reason_bytes_ok(reason: &[u8]) -> bool {
    !reason.is_empty() && reason.iter().all(|&c| c >= 0x20 && c != 0x7f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("200 OK"), Ok(200));
        assert_eq!(parse_status("404 Not Found"), Ok(404));
        assert!(parse_status("200").is_err());
        assert!(parse_status("200 ").is_err());
        assert!(parse_status("20 OK").is_err());
        assert!(parse_status("200OK").is_err());
        assert!(parse_status("200 OK\r\nX: y").is_err());
        assert!(parse_status("abc OK").is_err());
    }

    #[test]
    fn header_validation() {
        assert!(validate_header("Set-Cookie", "a=1; Path=/").is_ok());
        assert_eq!(validate_header("X", "caf\u{e9}").unwrap().1, b"caf\xe9");
        assert!(validate_header("X", "a\r\nInjected: 1").is_err());
        assert!(validate_header("X", "a\nb").is_err());
        assert!(validate_header("X-A\r\nB", "v").is_err());
        assert!(validate_header("Bad Name", "v").is_err());
        assert!(validate_header("", "v").is_err());
        assert!(validate_header("X", "\u{20ac}").is_err());
        assert!(validate_header("X", "tab\tok").is_ok());
        assert!(header_bytes_ok(b"Set-Cookie", b"a=1"));
        assert!(!header_bytes_ok(b"X", b"a\r\nInjected: 1"));
        assert!(!header_bytes_ok(b"X Y", b"v"));
        assert!(reason_bytes_ok(b"OK"));
        assert!(!reason_bytes_ok(b"OK\r\nX: y"));
        assert!(!reason_bytes_ok(b""));
    }
}
