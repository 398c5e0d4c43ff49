//! `WSGITrustedProxyHeaders` / `WSGITrustedProxies`: which headers set by a reverse proxy may
//! change what the application sees (the client's address, the host, the port, the scheme, the
//! mount point), and from which peers. mod_wsgi's rules, kept exactly:
//!
//! - Only headers named in `WSGITrustedProxyHeaders` are honoured, and only when the peer is in
//!   `WSGITrustedProxies` (or that directive is not used: then every peer is trusted).
//! - For each kind of header named (client address, host, server, port, script name, scheme),
//!   every other header of that kind is removed from the environ, and when the peer is not
//!   trusted the named ones are removed too: a client can never pass its own `X-Real-IP` off as
//!   what a proxy said.
//! - `X-Forwarded-For` with `WSGITrustedProxies` gives the rightmost address that is not a
//!   trusted proxy (the one the first trusted proxy saw); without it, the leftmost.
//!
//! Pure: it works on environ values given by a lookup and returns the changes to make.

use std::net::IpAddr;

/// The kinds of proxy header (a header of one kind never changes another kind's keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Client,
    Host,
    Server,
    Port,
    ScriptName,
    Scheme,
}

/// Every header mod_wsgi knows, as its environ key, with its kind.
pub const KNOWN: &[(&str, Kind)] = &[
    ("HTTP_X_FORWARDED_FOR", Kind::Client),
    ("HTTP_X_CLIENT_IP", Kind::Client),
    ("HTTP_X_REAL_IP", Kind::Client),
    ("HTTP_X_FORWARDED_HOST", Kind::Host),
    ("HTTP_X_HOST", Kind::Host),
    ("HTTP_X_FORWARDED_SERVER", Kind::Server),
    ("HTTP_X_FORWARDED_PORT", Kind::Port),
    ("HTTP_X_SCRIPT_NAME", Kind::ScriptName),
    ("HTTP_X_FORWARDED_SCRIPT_NAME", Kind::ScriptName),
    ("HTTP_X_FORWARDED_PROTO", Kind::Scheme),
    ("HTTP_X_FORWARDED_SCHEME", Kind::Scheme),
    ("HTTP_X_SCHEME", Kind::Scheme),
    ("HTTP_X_FORWARDED_HTTPS", Kind::Scheme),
    ("HTTP_X_FORWARDED_SSL", Kind::Scheme),
    ("HTTP_X_HTTPS", Kind::Scheme),
];

/// A header name as its environ key (`X-Forwarded-For` -> `HTTP_X_FORWARDED_FOR`), if it is one
/// mod_wsgi knows.
pub fn header_key(name: &str) -> Option<&'static str> {
    let mut key = String::from("HTTP_");
    for c in name.chars() {
        match c {
            c if c.is_ascii_alphanumeric() => key.push(c.to_ascii_uppercase()),
            '-' => key.push('_'),
            _ => return None,
        }
    }
    KNOWN.iter().find(|(k, _)| *k == key).map(|(k, _)| *k)
}

fn kind_of(key: &str) -> Kind {
    KNOWN.iter().find(|(k, _)| *k == key).map(|(_, kind)| *kind).expect("a known header")
}

/// One `WSGITrustedProxies` entry: an address, or a network (`10.0.0.0/8`, `fd00::/8`,
/// `10.0.0.0/255.0.0.0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subnet {
    net: IpAddr,
    prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let bad = || format!("'{s}' is not an IP address or network (a.b.c.d, a.b.c.d/len, a.b.c.d/mask, or IPv6)");
        let (addr, mask) = match s.split_once('/') {
            Some((a, m)) => (a, Some(m)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match mask {
            None => max,
            Some(m) => match m.parse::<u8>() {
                Ok(p) if p <= max => p,
                Ok(_) => return Err(bad()),
                Err(_) => match (net, m.parse::<IpAddr>()) {
                    (IpAddr::V4(_), Ok(IpAddr::V4(mask))) => {
                        let bits = u32::from(mask);
                        if bits.leading_ones() + bits.trailing_zeros() != 32 {
                            return Err(bad());
                        }
                        bits.leading_ones() as u8
                    }
                    _ => return Err(bad()),
                },
            },
        };
        Ok(Subnet { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        fn bits(ip: IpAddr) -> (u128, u32) {
            match ip {
                IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
                // An IPv4-mapped IPv6 peer (::ffff:a.b.c.d) matches IPv4 networks.
                IpAddr::V6(a) => match a.to_ipv4_mapped() {
                    Some(v4) => (u128::from(u32::from(v4)), 32),
                    None => (u128::from(a), 128),
                },
            }
        }
        let (net, width) = bits(self.net);
        let (addr, addr_width) = bits(ip);
        if width != addr_width {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= width || (net >> shift) == (addr >> shift)
    }
}

/// The changes to the environ: each key set to a value, or removed (None).
pub type Changes = Vec<(String, Option<String>)>;

/// What the trusted headers change for a request from `peer`. `get` looks up the environ as
/// Apache built it. `headers` are the configured keys in order (see [`header_key`]);
/// `proxies` is None when `WSGITrustedProxies` is not used. HTTPS is set to "1" or removed for
/// a scheme header (the caller turns it into `wsgi.url_scheme`).
pub fn rewrite(
    headers: &[&'static str],
    proxies: Option<&[Subnet]>,
    peer: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Changes {
    let mut changes: Changes = Vec::new();
    if headers.is_empty() {
        return changes;
    }
    let is_trusted = |ip: &str| -> bool {
        match proxies {
            None => true,
            Some(nets) => ip.parse::<IpAddr>().is_ok_and(|ip| nets.iter().any(|n| n.contains(ip))),
        }
    };
    let trusted_peer = is_trusted(peer);
    let set = |changes: &mut Changes, key: &str, value: Option<String>| {
        changes.retain(|(k, _)| k != key);
        changes.push((key.to_string(), value));
    };
    // kind -> the header that was applied for it
    let mut winners: Vec<(Kind, Option<&str>)> = Vec::new();
    for &key in headers {
        let kind = kind_of(key);
        if !winners.iter().any(|(k, _)| *k == kind) {
            winners.push((kind, None));
        }
        let Some(value) = get(key).filter(|v| !v.is_empty()) else { continue };
        if !trusted_peer {
            continue;
        }
        let applied = match kind {
            Kind::Client if key == "HTTP_X_FORWARDED_FOR" => {
                let (client, rewritten) = forwarded_for(&value, proxies.map(|_| &is_trusted as &dyn Fn(&str) -> bool));
                if let Some(client) = client {
                    set(&mut changes, "REMOTE_ADDR", Some(client));
                }
                if let Some(xff) = rewritten {
                    set(&mut changes, key, Some(xff));
                }
                true
            }
            Kind::Client => {
                set(&mut changes, "REMOTE_ADDR", Some(value));
                true
            }
            Kind::Host => {
                set(&mut changes, "HTTP_HOST", Some(value));
                true
            }
            Kind::Server => {
                set(&mut changes, "SERVER_NAME", Some(value));
                true
            }
            Kind::Port => {
                set(&mut changes, "SERVER_PORT", Some(value));
                true
            }
            Kind::ScriptName => {
                set(&mut changes, "SCRIPT_NAME", Some(value.clone()));
                set(&mut changes, "mod_wsgi.mount_point", Some(value));
                true
            }
            Kind::Scheme => {
                let v = value.to_ascii_lowercase();
                let on = match key {
                    "HTTP_X_FORWARDED_PROTO" | "HTTP_X_FORWARDED_SCHEME" | "HTTP_X_SCHEME" => match v.as_str() {
                        "https" => Some(true),
                        "http" => Some(false),
                        _ => None,
                    },
                    _ => match v.as_str() {
                        "on" | "true" | "1" => Some(true),
                        "off" | "false" | "0" => Some(false),
                        _ => None,
                    },
                };
                match on {
                    Some(true) => set(&mut changes, "HTTPS", Some("1".into())),
                    Some(false) => set(&mut changes, "HTTPS", None),
                    None => {}
                }
                on.is_some()
            }
        };
        if applied {
            if let Some(w) = winners.iter_mut().find(|(k, _)| *k == kind) {
                w.1 = Some(key);
            }
        }
    }
    // Every header of a configured kind goes, but the one applied.
    for (kind, winner) in winners {
        for &(key, k) in KNOWN {
            if k == kind && Some(key) != winner && get(key).is_some() {
                set(&mut changes, key, None);
            }
        }
    }
    changes
}

/// The client address from an `X-Forwarded-For` list and the list as the application should
/// see it. Without trusted proxies (`trusted` None): the leftmost entry, list unchanged. With
/// them: scanning from the right past trusted proxies, the first address that is not one (or
/// the leftmost if all are), and the list from there on.
fn forwarded_for(value: &str, trusted: Option<&dyn Fn(&str) -> bool>) -> (Option<String>, Option<String>) {
    let items: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let Some(trusted) = trusted else {
        return (items.first().map(|s| s.to_string()), None);
    };
    if items.is_empty() {
        return (None, None);
    }
    let mut first = None;
    for i in (0..items.len()).rev() {
        if items[i].parse::<IpAddr>().is_ok() && trusted(items[i]) {
            first = Some(i);
        } else {
            break;
        }
    }
    let at = match first {
        Some(i) => i.saturating_sub(1),
        None => items.len() - 1,
    };
    (Some(items[at].to_string()), Some(items[at..].join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn run(
        headers: &[&str],
        proxies: Option<&[&str]>,
        peer: &str,
        e: &HashMap<String, String>,
    ) -> HashMap<String, Option<String>> {
        let keys: Vec<&'static str> = headers.iter().map(|h| header_key(h).unwrap()).collect();
        let nets: Option<Vec<Subnet>> = proxies.map(|p| p.iter().map(|s| Subnet::parse(s).unwrap()).collect());
        rewrite(&keys, nets.as_deref(), peer, |k| e.get(k).cloned()).into_iter().collect()
    }

    #[test]
    fn header_names_become_environ_keys() {
        assert_eq!(header_key("X-Forwarded-For"), Some("HTTP_X_FORWARDED_FOR"));
        assert_eq!(header_key("x-real-ip"), Some("HTTP_X_REAL_IP"));
        assert_eq!(header_key("X-Unknown"), None);
        assert_eq!(header_key("X_Forwarded_For"), None);
    }

    #[test]
    fn subnets() {
        let n = Subnet::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.1.2.3".parse().unwrap()) && !n.contains("11.0.0.1".parse().unwrap()));
        assert!(Subnet::parse("192.168.1.0/255.255.255.0").unwrap().contains("192.168.1.9".parse().unwrap()));
        assert!(Subnet::parse("127.0.0.1").unwrap().contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(Subnet::parse("fd00::/8").unwrap().contains("fd12::1".parse().unwrap()));
        assert!(Subnet::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        for bad in ["proxy.example.com", "10.0.0.0/33", "10.0.0.0/255.0.255.0", "10.0.0.0/x"] {
            assert!(Subnet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_trusted_proxy_sets_the_client_address_and_scheme() {
        let e = env(&[("HTTP_X_FORWARDED_FOR", "203.0.113.7, 10.0.0.2"), ("HTTP_X_FORWARDED_PROTO", "https")]);
        let c = run(&["X-Forwarded-For", "X-Forwarded-Proto"], Some(&["10.0.0.0/8"]), "10.0.0.1", &e);
        assert_eq!(c["REMOTE_ADDR"].as_deref(), Some("203.0.113.7"));
        assert_eq!(c["HTTP_X_FORWARDED_FOR"].as_deref(), Some("203.0.113.7, 10.0.0.2"));
        assert_eq!(c["HTTPS"].as_deref(), Some("1"));
    }

    #[test]
    fn the_rightmost_untrusted_address_is_the_client() {
        // A client may prepend anything; only what trusted proxies appended counts.
        let e = env(&[("HTTP_X_FORWARDED_FOR", "1.2.3.4, 198.51.100.9, 10.0.0.3, 10.0.0.2")]);
        let c = run(&["X-Forwarded-For"], Some(&["10.0.0.0/8"]), "10.0.0.1", &e);
        assert_eq!(c["REMOTE_ADDR"].as_deref(), Some("198.51.100.9"));
        assert_eq!(c["HTTP_X_FORWARDED_FOR"].as_deref(), Some("198.51.100.9, 10.0.0.3, 10.0.0.2"));
        // Without WSGITrustedProxies: the leftmost, list untouched.
        let c = run(&["X-Forwarded-For"], None, "10.0.0.1", &e);
        assert_eq!(c["REMOTE_ADDR"].as_deref(), Some("1.2.3.4"));
        assert!(!c.contains_key("HTTP_X_FORWARDED_FOR"));
    }

    #[test]
    fn an_untrusted_peer_changes_nothing_and_loses_the_headers() {
        let e = env(&[
            ("HTTP_X_REAL_IP", "6.6.6.6"),
            ("HTTP_X_FORWARDED_FOR", "6.6.6.6"),
            ("HTTP_X_FORWARDED_HOST", "evil.example"),
        ]);
        let c = run(&["X-Real-IP", "X-Forwarded-Host"], Some(&["10.0.0.0/8"]), "192.0.2.50", &e);
        assert!(!c.contains_key("REMOTE_ADDR") && !c.contains_key("HTTP_HOST"), "{c:?}");
        // Every client-address and host header is removed, configured or not.
        assert_eq!(c["HTTP_X_REAL_IP"], None);
        assert_eq!(c["HTTP_X_FORWARDED_FOR"], None);
        assert_eq!(c["HTTP_X_FORWARDED_HOST"], None);
    }

    #[test]
    fn other_headers_of_a_configured_kind_are_removed() {
        let e = env(&[("HTTP_X_REAL_IP", "203.0.113.1"), ("HTTP_X_CLIENT_IP", "6.6.6.6"), ("HTTP_X_SCHEME", "http")]);
        let c = run(&["X-Real-IP"], None, "127.0.0.1", &e);
        assert_eq!(c["REMOTE_ADDR"].as_deref(), Some("203.0.113.1"));
        assert_eq!(c["HTTP_X_CLIENT_IP"], None);
        assert!(!c.contains_key("HTTP_X_REAL_IP"), "the applied header stays");
        assert!(!c.contains_key("HTTP_X_SCHEME"), "a kind not configured is left alone");
    }

    #[test]
    fn host_port_script_name_and_https_flags() {
        let e = env(&[
            ("HTTP_X_FORWARDED_HOST", "www.example.com"),
            ("HTTP_X_FORWARDED_PORT", "443"),
            ("HTTP_X_SCRIPT_NAME", "/app"),
            ("HTTP_X_FORWARDED_SSL", "off"),
        ]);
        let c = run(&["X-Forwarded-Host", "X-Forwarded-Port", "X-Script-Name", "X-Forwarded-SSL"], None, "::1", &e);
        assert_eq!(c["HTTP_HOST"].as_deref(), Some("www.example.com"));
        assert_eq!(c["SERVER_PORT"].as_deref(), Some("443"));
        assert_eq!(c["SCRIPT_NAME"].as_deref(), Some("/app"));
        assert_eq!(c["mod_wsgi.mount_point"].as_deref(), Some("/app"));
        assert_eq!(c["HTTPS"], None);
        assert!(run(&[], None, "::1", &e).is_empty());
    }
}
