//! The rules for a response's status line and headers, on their latin-1 bytes, as the adapter
//! checks what an application passes to start_response and the relay checks what a daemon
//! sends. The messages are mod_wsgi 6's (`wsgi_validate.c`), with the value in Python's
//! `repr` of bytes, so an application that catches the ValueError reads the same text.
//!
//! oxwsgi is stricter than mod_wsgi 6 in three places (docs/migrating-from-mod_wsgi.md): a
//! status line needs a reason phrase and a code from 100, a header name must be an RFC 9110
//! token, and a header value may hold no control character but tab (mod_wsgi refuses only
//! CR and LF).

/// The status code of a status line "NNN Reason", or mod_wsgi's message for a bad one.
pub fn check_status(line: &[u8]) -> Result<u16, String> {
    let bad = |what: &str| Err(format!("{what}: {}", bytes_repr(line)));
    let digits = line.len() >= 3 && line[..3].iter().all(u8::is_ascii_digit);
    if !digits || line.get(3).is_some_and(u8::is_ascii_digit) {
        return bad("status code must be a 3 digit integer");
    }
    if line.get(3) != Some(&b' ') {
        return bad("no space following status code");
    }
    if line[4..].iter().any(|&c| is_control(c)) {
        return bad("control character in status reason phrase");
    }
    if line[0] == b'0' {
        return bad("status code must be from 100 to 999");
    }
    if line.len() == 4 {
        return bad("status reason phrase is empty");
    }
    Ok(line[..3].iter().fold(0, |n, d| n * 10 + u16::from(d - b'0')))
}

/// A header name: not empty, no control character, no space (mod_wsgi's rules), and an RFC
/// 9110 token (oxwsgi's).
pub fn check_header_name(name: &[u8]) -> Result<(), String> {
    let bad = |what: &str| Err(format!("{what} in header name: {}", bytes_repr(name)));
    if name.is_empty() {
        return Err("header name is empty".into());
    }
    if name.iter().any(|&c| is_control(c)) {
        return bad("control character");
    }
    if name.contains(&b' ') {
        return bad("space character");
    }
    if !name.iter().all(|&c| is_tchar(c)) {
        return bad("separator character");
    }
    Ok(())
}

/// A header value: no CR or LF (mod_wsgi's rule), and no other control character but tab
/// (oxwsgi's), so no header can be injected.
pub fn check_header_value(value: &[u8]) -> Result<(), String> {
    let bad = |what: &str| Err(format!("{what} in header value: {}", bytes_repr(value)));
    if value.iter().any(|&c| c == b'\r' || c == b'\n') {
        return bad("carriage return/line feed character");
    }
    if value.iter().any(|&c| c != b'\t' && is_control(c)) {
        return bad("control character");
    }
    Ok(())
}

fn is_control(c: u8) -> bool {
    c < 0x20 || c == 0x7f
}

fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Python's `repr()` of a bytes object, e.g. `b'200 OK\r\n'`.
pub fn bytes_repr(b: &[u8]) -> String {
    let quote = if b.contains(&b'\'') && !b.contains(&b'"') { b'"' } else { b'\'' };
    let mut out = String::with_capacity(b.len() + 3);
    out.push('b');
    out.push(quote as char);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c as char);
            }
            c if !(0x20..0x7f).contains(&c) => out.push_str(&format!("\\x{c:02x}")),
            c => out.push(c as char),
        }
    }
    out.push(quote as char);
    out
}

/// The rules above for a header that arrives already encoded (from a daemon process, whose
/// applications could write to their socket directly).
pub fn header_bytes_ok(name: &[u8], value: &[u8]) -> bool {
    check_header_name(name).is_ok() && check_header_value(value).is_ok()
}

/// The rules of [`check_status`] for a reason phrase that arrives already encoded.
pub fn reason_bytes_ok(reason: &[u8]) -> bool {
    !reason.is_empty() && !reason.iter().any(|&c| is_control(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(check_status(b"200 OK"), Ok(200));
        assert_eq!(check_status(b"404 Not Found"), Ok(404));
        assert_eq!(check_status(b"999 X"), Ok(999));
        // mod_wsgi 6's messages (its tests/wsgi/start_response.sh).
        let err = |s: &[u8]| check_status(s).unwrap_err();
        assert_eq!(err(b"OK"), "status code must be a 3 digit integer: b'OK'");
        assert_eq!(err(b"20X OK"), "status code must be a 3 digit integer: b'20X OK'");
        assert_eq!(err(b"2000 OK"), "status code must be a 3 digit integer: b'2000 OK'");
        assert_eq!(err(b"200OK"), "no space following status code: b'200OK'");
        assert_eq!(
            err(b"200 OK\r\nX-Injected: yes"),
            "control character in status reason phrase: b'200 OK\\r\\nX-Injected: yes'"
        );
        // oxwsgi's stricter rules.
        assert_eq!(err(b"200"), "no space following status code: b'200'");
        assert_eq!(err(b"200 "), "status reason phrase is empty: b'200 '");
        assert!(check_status(b"099 X").is_err());
        assert!(check_status(b"abc OK").is_err());
        assert!(check_status(b"20 OK").is_err());
    }

    #[test]
    fn header_validation() {
        assert!(check_header_name(b"Set-Cookie").is_ok());
        assert!(check_header_value(b"a=1; Path=/").is_ok());
        assert!(check_header_value(b"caf\xe9").is_ok());
        assert!(check_header_value(b"tab\tok").is_ok());
        assert_eq!(check_header_name(b"").unwrap_err(), "header name is empty");
        assert_eq!(check_header_name(b"X Foo").unwrap_err(), "space character in header name: b'X Foo'");
        assert_eq!(check_header_name(b"X\tFoo").unwrap_err(), "control character in header name: b'X\\tFoo'");
        assert_eq!(
            check_header_value(b"line1\r\nline2").unwrap_err(),
            "carriage return/line feed character in header value: b'line1\\r\\nline2'"
        );
        assert_eq!(
            check_header_value(b"line1\nline2").unwrap_err(),
            "carriage return/line feed character in header value: b'line1\\nline2'"
        );
        assert!(check_header_value(b"a\x01b").is_err());
        assert!(check_header_name(b"X-Bad:X-Injected").is_err());
        assert!(header_bytes_ok(b"Set-Cookie", b"a=1"));
        assert!(!header_bytes_ok(b"X", b"a\r\nInjected: 1"));
        assert!(!header_bytes_ok(b"X Y", b"v"));
        assert!(reason_bytes_ok(b"OK"));
        assert!(!reason_bytes_ok(b"OK\r\nX: y"));
        assert!(!reason_bytes_ok(b""));
    }

    #[test]
    fn bytes_reprs_are_pythons() {
        assert_eq!(bytes_repr(b"a'b"), "b\"a'b\"");
        assert_eq!(bytes_repr(b"a'\"b"), "b'a\\'\"b'");
        assert_eq!(bytes_repr(b"\\\x00\xff"), "b'\\\\\\x00\\xff'");
    }
}
