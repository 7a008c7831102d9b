//! The replies, byte for byte as postfix-mta-sts-resolver writes them.

use mta_sts_policy::Policy;

use super::config::ZoneConfig;

/// `NOTFOUND ` with its trailing space: no policy, Postfix uses its default TLS level.
pub const NOT_FOUND: &[u8] = b"NOTFOUND ";

/// `OK dane`: Postfix's `dane` security level, for a domain whose MX hosts have
/// DNSSEC-validated TLSA records.
pub const DANE: &[u8] = b"OK dane";

/// Writes the `OK secure ...` reply for `policy` of `domain` in `zone`.
///
/// `match=` lists the policy's patterns in policy order, duplicates dropped, each `*.x` as
/// `.x` (Postfix's form for "any subdomain"); `servername=hostname` when the zone requires SNI;
/// the Postfix ≥ 3.10 TLSRPT attributes when the zone asks for them.
pub fn secure(domain: &str, policy: &Policy, zone: &ZoneConfig) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + policy.mx.len() * 32);
    out.extend_from_slice(b"OK secure match=");
    let mut seen: Vec<&mta_sts_policy::MxPattern> = Vec::with_capacity(policy.mx.len());
    for pattern in &policy.mx {
        if seen.contains(&pattern) {
            continue;
        }
        if !seen.is_empty() {
            out.push(b':');
        }
        seen.push(pattern);
        if pattern.is_wildcard() {
            out.push(b'.');
        }
        out.extend_from_slice(pattern.domain().as_bytes());
    }
    if zone.require_sni {
        out.extend_from_slice(b" servername=hostname");
    }
    if zone.tlsrpt {
        tlsrpt_attributes(domain, policy, &mut out);
    }
    out
}

/// `policy_type=sts policy_domain=D policy_ttl=N mx_host_pattern=P... { policy_string = L }...`
/// (Postfix ≥ 3.10 passes them to its TLSRPT library).
fn tlsrpt_attributes(domain: &str, policy: &Policy, out: &mut Vec<u8>) {
    use std::io::Write as _;
    // Writing to a Vec cannot fail.
    let _ = write!(
        out,
        " policy_type=sts policy_domain={domain} policy_ttl={}",
        policy.max_age
    );
    for pattern in &policy.mx {
        let _ = write!(out, " mx_host_pattern={pattern}");
    }
    for line in policy.to_text().lines() {
        let _ = write!(out, " {{ policy_string = {line} }}");
    }
}

/// Writes `TEMP <reason>`, the reason reduced to printable ASCII (it ends up in Postfix's log).
pub fn temp(reason: &str) -> Vec<u8> {
    let mut out = b"TEMP ".to_vec();
    out.extend(reason.bytes().map(|b| {
        if b.is_ascii_graphic() || b == b' ' {
            b
        } else {
            b'?'
        }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn secure_reply_lists_patterns_in_policy_order_with_wildcards_as_dots() {
        let p = policy(
            "version: STSv1\nmode: enforce\nmx: mx2.example.com\nmx: *.example.net\nmx: mx2.example.com\nmax_age: 86400\n",
        );
        let reply = secure("example.com", &p, &ZoneConfig::default());
        assert_eq!(
            String::from_utf8(reply).unwrap(),
            "OK secure match=mx2.example.com:.example.net servername=hostname"
        );
    }

    #[test]
    fn servername_is_left_out_when_sni_is_not_required() {
        let p = policy("version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n");
        let zone = ZoneConfig {
            require_sni: false,
            ..ZoneConfig::default()
        };
        assert_eq!(
            secure("example.com", &p, &zone),
            b"OK secure match=mx.example.com"
        );
    }

    #[test]
    fn tlsrpt_attributes_follow_when_asked_for() {
        let p = policy("version: STSv1\nmode: enforce\nmx: *.example.com\nmax_age: 86400\n");
        let zone = ZoneConfig {
            tlsrpt: true,
            ..ZoneConfig::default()
        };
        assert_eq!(
            String::from_utf8(secure("example.com", &p, &zone)).unwrap(),
            "OK secure match=.example.com servername=hostname policy_type=sts \
             policy_domain=example.com policy_ttl=86400 mx_host_pattern=*.example.com \
             { policy_string = version: STSv1 } { policy_string = mode: enforce } \
             { policy_string = mx: *.example.com } { policy_string = max_age: 86400 }"
        );
    }

    #[test]
    fn temp_reason_is_printable() {
        assert_eq!(temp("lookup\nfailed"), b"TEMP lookup?failed");
    }
}
