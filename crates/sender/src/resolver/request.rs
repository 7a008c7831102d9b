//! A socketmap request, `<map-name> <key>`, and the key's reduction to the domain whose policy
//! applies.

use std::borrow::Cow;
use std::net::IpAddr;

/// The longest domain name (RFC 1035 §2.3.4, without the trailing dot).
const MAX_DOMAIN_LEN: usize = 253;
/// The longest label.
const MAX_LABEL_LEN: usize = 63;

/// One request: the map name (the zone) and the domain the key names, if it names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The map name Postfix was configured with (`socketmap:inet:HOST:PORT:NAME`).
    pub map: &'a str,
    /// The destination domain, normalized, or why there is none to look up.
    pub key: Key,
}

/// What a request key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// A domain: lowercase A-labels, no trailing dot, no brackets or port.
    Domain(String),
    /// Nothing a policy can exist for: answered `NOTFOUND `.
    NotADomain(NotADomain),
}

/// Why a key names no domain with a possible policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotADomain {
    /// A leading dot: Postfix asks for parent domains (`.example.com`), and MTA-STS policies
    /// apply to exact domains only.
    ParentDomain,
    /// An IP address literal (`[192.0.2.1]`, `[ipv6:2001:db8::1]`).
    IpLiteral,
    /// Not a valid host name (empty, bad characters, labels too long, not UTF-8, ...).
    Malformed,
}

impl NotADomain {
    /// Words for the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParentDomain => "a parent-domain lookup",
            Self::IpLiteral => "an IP address",
            Self::Malformed => "not a domain name",
        }
    }
}

impl<'a> Request<'a> {
    /// Splits a request payload at its first space and normalizes the key.
    pub fn parse(payload: &'a [u8]) -> Self {
        let (map, domain) = split_request(payload);
        Self {
            map,
            key: domain.map_or_else(Key::NotADomain, |name| Key::Domain(name.into_owned())),
        }
    }
}

/// A request payload's map name and the domain its key names, borrowed from the payload when
/// the key is one already (no allocation on the path of every request).
pub(super) fn split_request(payload: &[u8]) -> (&str, Result<Cow<'_, str>, NotADomain>) {
    let Ok(text) = std::str::from_utf8(payload) else {
        let map = payload
            .iter()
            .position(|&b| b == b' ')
            .and_then(|space| std::str::from_utf8(payload.get(..space)?).ok())
            .unwrap_or("");
        return (map, Err(NotADomain::Malformed));
    };
    let (map, key) = text.split_once(' ').unwrap_or((text, ""));
    (map, normalize(key))
}

/// Reduces a Postfix next-hop key to its domain: `[d]`, `[d]:port` and `d:port` become `d`;
/// surrounding white space, one trailing dot and upper case go; U-labels become A-labels.
pub fn normalize_key(key: &str) -> Key {
    match normalize(key) {
        Ok(name) => Key::Domain(name.into_owned()),
        Err(why) => Key::NotADomain(why),
    }
}

/// [`normalize_key`], borrowing from `key` what needs no change.
fn normalize(key: &str) -> Result<Cow<'_, str>, NotADomain> {
    let key = key.trim();
    let (host, bracketed) = match key.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((inside, after)) if after.is_empty() || is_port_suffix(after) => (inside, true),
            _ => return Err(NotADomain::Malformed),
        },
        None if is_ip_literal(key) => return Err(NotADomain::IpLiteral),
        None => match key.rsplit_once(':') {
            Some((host, port)) if is_port(port) => (host, false),
            Some(_) => return Err(not_a_domain_with_colon(key)),
            None => (key, false),
        },
    };
    if bracketed && is_ip_literal(host) {
        return Err(NotADomain::IpLiteral);
    }
    let host = host.trim();
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.starts_with('.') {
        return Err(NotADomain::ParentDomain);
    }
    if is_ip_literal(host) {
        return Err(NotADomain::IpLiteral);
    }
    let name = if !host.is_ascii() {
        match mta_sts_policy::normalize_host(host) {
            Ok(name) => Cow::Owned(name),
            Err(_) => return Err(NotADomain::Malformed),
        }
    } else if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    if !is_host_name(&name) {
        return Err(NotADomain::Malformed);
    }
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        // `127.1` and friends: numeric forms an address parser accepts; no TLD is all digits.
        return Err(NotADomain::IpLiteral);
    }
    Ok(name)
}

/// A colon that is not a port separator: an unbracketed IPv6 address, or garbage.
fn not_a_domain_with_colon(key: &str) -> NotADomain {
    if is_ip_literal(key) {
        NotADomain::IpLiteral
    } else {
        NotADomain::Malformed
    }
}

fn is_port_suffix(after: &str) -> bool {
    after.strip_prefix(':').is_some_and(is_port)
}

fn is_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

fn is_ip_literal(host: &str) -> bool {
    let host = match host.get(..5) {
        Some(prefix) if prefix.eq_ignore_ascii_case("ipv6:") => host.get(5..).unwrap_or(""),
        _ => host,
    };
    host.parse::<IpAddr>().is_ok()
}

/// Letters, digits, `-` and `_` in labels of 1–63 bytes, at most 253 bytes in all.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_DOMAIN_LEN
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(key: &str) -> Key {
        Key::Domain(key.to_owned())
    }

    #[test]
    fn next_hop_forms_reduce_to_the_domain() {
        for key in [
            "example.com",
            "[example.com]",
            "[example.com]:25",
            "example.com:587",
            "example.com.",
            "EXAMPLE.Com",
            "[Example.COM.]:25",
            " example.com ",
        ] {
            assert_eq!(normalize_key(key), domain("example.com"), "{key:?}");
        }
    }

    #[test]
    fn internationalized_domain_becomes_a_labels() {
        assert_eq!(
            normalize_key("bücher.example"),
            domain("xn--bcher-kva.example")
        );
    }

    #[test]
    fn parent_domain_keys_are_not_looked_up() {
        assert_eq!(
            normalize_key(".example.com"),
            Key::NotADomain(NotADomain::ParentDomain)
        );
    }

    #[test]
    fn ip_literals_are_not_looked_up() {
        for key in [
            "[192.0.2.1]",
            "[192.0.2.1]:25",
            "192.0.2.1",
            "192.0.2.1:25",
            "[ipv6:2001:db8::1]",
            "[IPv6:2001:db8::1]:25",
            "2001:db8::1",
            "127.1",
        ] {
            assert_eq!(
                normalize_key(key),
                Key::NotADomain(NotADomain::IpLiteral),
                "{key:?}"
            );
        }
    }

    #[test]
    fn non_domains_are_not_looked_up() {
        for key in [
            "",
            ".",
            "exa mple.com",
            "example..com",
            "[example.com",
            "[example.com]x",
            "example.com:smtp",
            "user@example.com",
            &"a".repeat(64),
            &format!("{}.com", "a.".repeat(127)),
        ] {
            assert_eq!(
                normalize_key(key),
                Key::NotADomain(NotADomain::Malformed),
                "{key:?}"
            );
        }
    }

    #[test]
    fn request_splits_at_the_first_space() {
        let request = Request::parse(b"postfix example.com");
        assert_eq!(request.map, "postfix");
        assert_eq!(request.key, domain("example.com"));
        let request = Request::parse(b"postfix");
        assert_eq!(request.key, Key::NotADomain(NotADomain::Malformed));
        let request = Request::parse(b"postfix \xff.com");
        assert_eq!(request.map, "postfix");
        assert_eq!(request.key, Key::NotADomain(NotADomain::Malformed));
    }
}
