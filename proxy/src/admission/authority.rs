//! The authority a request names: its `Host` header and, in HTTP/2 or an absolute-form
//! HTTP/1 target, the URI's authority (`:authority`). At most one `Host` (RFC 9112 §3.2), each
//! authority well-formed with a port in 1-65535 when one is given (RFC 3986 §3.2.2-3.2.3), and,
//! when both are present, both naming the same origin (RFC 9113 §8.3.1, compared after the
//! scheme-based normalization it asks for: case-insensitive host, 443 as the default port).
//!
//! Hosts are held to what a TLS gateway can be reached by: a DNS-style name (letters, digits,
//! `-` and `_`, dot-separated labels), an IPv4 address, or a bracketed IPv6 address. No
//! userinfo, no percent-encoding, no IPvFuture, no empty port.

use http::header::HOST;
use std::net::Ipv6Addr;

/// Why the authority was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthorityError {
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("malformed authority")]
    Malformed,
    #[error("port outside 1-65535")]
    BadPort,
    #[error("the Host header and the request target's authority name different origins")]
    Mismatch,
}

/// The port an `https` authority without one means.
const DEFAULT_PORT: u16 = 443;
/// The longest DNS name, and label (RFC 1035 §2.3.4).
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Checks the request's `Host` header(s) and URI authority.
pub(crate) fn check(parts: &http::request::Parts) -> Result<(), AuthorityError> {
    let mut hosts = parts.headers.get_all(HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return Err(AuthorityError::DuplicateHost);
    }
    let target = parts
        .uri
        .authority()
        .map(|a| parse(a.as_str().as_bytes()))
        .transpose()?;
    let host = host.map(|h| parse(h.as_bytes())).transpose()?;
    match (target, host) {
        (Some(target), Some(host)) if target != host => Err(AuthorityError::Mismatch),
        _ => Ok(()),
    }
}

/// An authority reduced for comparison: the lowercased host and the port it means.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    host: String,
    port: u16,
}

fn parse(authority: &[u8]) -> Result<Origin, AuthorityError> {
    let text = std::str::from_utf8(authority).map_err(|_| AuthorityError::Malformed)?;
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (literal, after) = rest.split_once(']').ok_or(AuthorityError::Malformed)?;
        literal
            .parse::<Ipv6Addr>()
            .map_err(|_| AuthorityError::Malformed)?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(AuthorityError::Malformed)?),
        };
        (&text[..literal.len() + 2], port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        if !is_name(host) {
            return Err(AuthorityError::Malformed);
        }
        (host, port)
    };
    let port = port.map(parse_port).transpose()?.unwrap_or(DEFAULT_PORT);
    Ok(Origin {
        host: host.to_ascii_lowercase(),
        port,
    })
}

/// A DNS-style name or an IPv4 address (digits and dots are a name's characters too), with
/// one trailing dot allowed.
fn is_name(host: &str) -> bool {
    let bare = host.strip_suffix('.').unwrap_or(host);
    !bare.is_empty()
        && bare.len() <= MAX_NAME
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

fn parse_port(port: &str) -> Result<u16, AuthorityError> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AuthorityError::Malformed);
    }
    // Digits only, so a parse failure is an overflow.
    match port.parse::<u16>() {
        Ok(n) if n != 0 && port.len() <= 5 => Ok(n),
        _ => Err(AuthorityError::BadPort),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, hosts: &[&str]) -> http::request::Parts {
        let mut builder = http::Request::builder().uri(uri);
        for host in hosts {
            builder = builder.header(
                HOST,
                http::HeaderValue::from_bytes(host.as_bytes()).unwrap(),
            );
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn good_authorities() {
        for host in [
            "localhost",
            "LocalHost:8443",
            "ws1.lakeward.test",
            "ws1.lakeward.test.",
            "internal_name:1",
            "127.0.0.1:65535",
            "[::1]",
            "[::1]:443",
            "x:00080",
        ] {
            assert!(check(&request("/", &[host])).is_ok(), "{host}");
        }
        assert!(check(&request("https://localhost/", &[])).is_ok());
        assert!(check(&request("/", &[])).is_ok());
        // Scheme-based normalization: case and the default port do not make a mismatch.
        assert!(check(&request("https://LOCALHOST:443/", &["localhost"])).is_ok());
    }

    #[test]
    fn bad_authorities() {
        let refused = |uri: &str, hosts: &[&str]| check(&request(uri, hosts)).unwrap_err();
        for host in [
            "localhost:99999",
            "localhost:0",
            "localhost:65536",
            "x:123456",
        ] {
            assert!(
                matches!(refused("/", &[host]), AuthorityError::BadPort),
                "{host}"
            );
        }
        for host in [
            "",
            "localhost:",
            "localhost:+80",
            "user@localhost",
            "a..b",
            ".",
            "a:b:c",
            "[::1",
            "[v1.x]",
            "[::1]x",
            "%6Cocalhost",
            "local\u{e9}",
        ] {
            assert!(
                matches!(refused("/", &[host]), AuthorityError::Malformed),
                "{host}"
            );
        }
        assert!(matches!(
            refused("/", &["localhost", "localhost"]),
            AuthorityError::DuplicateHost
        ));
        assert!(matches!(
            refused("https://localhost:99999/", &[]),
            AuthorityError::BadPort
        ));
        assert!(matches!(
            refused("https://localhost/", &["ws1.lakeward.test"]),
            AuthorityError::Mismatch
        ));
        assert!(matches!(
            refused("https://localhost:8443/", &["localhost"]),
            AuthorityError::Mismatch
        ));
    }
}
