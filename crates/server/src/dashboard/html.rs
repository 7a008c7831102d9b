//! HTML pieces: escaping (everything from reports and the network goes through [`esc`]), the
//! page frame, and small formatters shared by the pages.

use std::fmt::Write as _;

use super::auth::Viewer;

/// The stylesheet, served at `/assets/dashboard.css` (the pages allow no inline style).
pub(crate) const CSS: &str = include_str!("assets/dashboard.css");

/// Text made safe for HTML (element content and quoted attributes): markup characters as
/// entities, control characters shown as `\u{..}` escapes rather than passed through.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// A value for a URL query or path segment: everything but unreserved characters
/// percent-encoded.
pub(crate) fn url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// `1234567` as `1,234,567`.
pub(crate) fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, c) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A failure rate as a percentage with two decimals, or `-`.
pub(crate) fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "-".to_owned(), |r| format!("{:.2}%", r * 100.0))
}

/// Which part of the site a page belongs to, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Reports,
    Quarantine,
    None,
}

/// The whole page: head, navigation with the user and a logout button, then `body`.
pub(crate) fn page(title: &str, section: Section, viewer: Option<&Viewer>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{} · mta-sts</title><link rel="stylesheet" href="/assets/dashboard.css"></head><body><header class="top"><span class="brand">mta-sts</span>"#,
        esc(title)
    );
    if let Some(viewer) = viewer {
        let link = |out: &mut String, href: &str, name: &str, here: bool| {
            let class = if here { r#" class="here""# } else { "" };
            let _ = write!(out, r#"<a href="{href}"{class}>{name}</a>"#);
        };
        out.push_str("<nav>");
        link(&mut out, "/", "Overview", section == Section::Overview);
        link(&mut out, "/reports", "Reports", section == Section::Reports);
        if viewer.sees_everything() {
            link(
                &mut out,
                "/quarantine",
                "Quarantine",
                section == Section::Quarantine,
            );
        }
        out.push_str("</nav>");
        let _ = write!(
            out,
            r#"<form method="post" action="/logout"><span>{}</span><input type="hidden" name="csrf" value="{}"><button type="submit">Log out</button></form>"#,
            esc(&viewer.name),
            esc(viewer.csrf.as_deref().unwrap_or(""))
        );
    }
    out.push_str("</header><main>");
    out.push_str(body);
    out.push_str("</main></body></html>");
    out
}

/// What a failure result type means and what to do about it (RFC 8460 §4.3).
pub(crate) fn result_hint(result_type: &str) -> &'static str {
    match result_type {
        "starttls-not-supported" => "the MX did not offer STARTTLS: enable TLS on it",
        "certificate-host-mismatch" => {
            "the MX certificate does not name the MX host: use one that names it"
        }
        "certificate-expired" => "the MX certificate has expired: renew it",
        "certificate-not-trusted" => {
            "the MX certificate is not trusted (self-signed, or the chain is incomplete): serve a public CA's full chain"
        }
        "validation-failure" => {
            "the sender could not validate the MX's TLS: check its certificate and TLS set-up"
        }
        "sts-policy-fetch-error" => {
            "senders could not fetch the policy: check that https://mta-sts.<domain>/.well-known/mta-sts.txt answers"
        }
        "sts-policy-invalid" => "the policy did not parse: check it with `mta-sts lint policy`",
        "sts-webpki-invalid" => {
            "the policy host's certificate failed validation: renew or fix its chain"
        }
        "tlsa-invalid" => "a TLSA record did not match the MX certificate: update the TLSA records",
        "dnssec-invalid" => "DNSSEC validation failed for the zone: check its signatures",
        "dane-required" => "the sender requires DANE, but found no usable TLSA records",
        _ => "see RFC 8460 §4.3 for this result type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_control_characters_are_escaped() {
        assert_eq!(
            esc("<script>alert('x')</script>&\u{1b}[31m"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;\\u{1b}[31m"
        );
    }

    #[test]
    fn numbers_are_grouped_and_urls_encoded() {
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(num(12), "12");
        assert_eq!(url("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }
}
