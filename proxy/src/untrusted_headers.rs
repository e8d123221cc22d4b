//! Request headers a client may send the gateway but must never get to an upstream. A leaf:
//! admission refuses header names with underscores, forwarding strips the rest.
//!
//! - **Underscores in names** are refused with 400, Envoy's `headers_with_underscores_action:
//!   REJECT_REQUEST`: CGI- and WSGI-style servers map `-` and `_` to the same variable, so
//!   `x_lakeward_identity` would reach them as the trusted `x-lakeward-identity` after the
//!   gateway stripped only the dashed spelling. Refusing (rather than dropping) tells a
//!   client that sends one what happened.
//! - **Client-address and proxy headers** (`X-Forwarded-For`, `Forwarded`, `X-Real-IP`, ...)
//!   and **method and path overrides** (`X-HTTP-Method-Override`, `X-Original-URL`, ...) are
//!   removed: an upstream or framework that honoured them would act on an address, scheme,
//!   method or path the gateway never checked. The gateway then sets its own
//!   `X-Forwarded-For` (the client address its decision used) and `X-Forwarded-Proto`.

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue};
use std::net::IpAddr;

/// Headers that claim the client's address, or how and where the request entered, as other
/// proxies and CDNs write them.
const PROXY_HEADERS: [&str; 19] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "x-forwarded-server",
    "x-forwarded-prefix",
    "x-original-forwarded-for",
    "x-real-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "client-ip",
    "x-url-scheme",
    "front-end-https",
];

/// Headers frameworks read as the "real" method or path of a request.
const OVERRIDE_HEADERS: [&str; 5] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
];

/// The first header name that holds an underscore, if any.
pub(crate) fn underscored_name(headers: &HeaderMap) -> Option<&HeaderName> {
    headers.keys().find(|name| name.as_str().contains('_'))
}

/// Removes every client-supplied proxy, client-address and override header, then sets the
/// gateway's own `X-Forwarded-For: <client_ip>` and `X-Forwarded-Proto: https` (the gateway
/// only listens on TLS).
pub(crate) fn replace_forwarding_headers(headers: &mut HeaderMap, client_ip: Option<IpAddr>) {
    for name in PROXY_HEADERS.iter().chain(OVERRIDE_HEADERS.iter()) {
        headers.remove(*name);
    }
    if let Some(ip) = client_ip {
        // An address always makes a valid header value.
        if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
            headers.insert(HeaderName::from_static("x-forwarded-for"), value);
        }
    }
    headers.insert(
        HeaderName::from_static("x-forwarded-proto"),
        HeaderValue::from_static("https"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_underscored_name_is_found() {
        let mut h = HeaderMap::new();
        h.insert("x-lakeward-identity", HeaderValue::from_static("a"));
        assert!(underscored_name(&h).is_none());
        h.insert(
            HeaderName::from_bytes(b"X_Lakeward_Identity").unwrap(),
            HeaderValue::from_static("b"),
        );
        assert_eq!(
            underscored_name(&h).map(HeaderName::as_str),
            Some("x_lakeward_identity")
        );
    }

    #[test]
    fn spoofable_headers_give_way_to_the_gateways_own() {
        let mut h = HeaderMap::new();
        for name in PROXY_HEADERS.iter().chain(OVERRIDE_HEADERS.iter()) {
            h.append(*name, HeaderValue::from_static("6.6.6.6"));
            h.append(*name, HeaderValue::from_static("7.7.7.7"));
        }
        h.insert("content-type", HeaderValue::from_static("application/json"));
        replace_forwarding_headers(&mut h, Some("127.0.0.2".parse().unwrap()));
        let mut left: Vec<(&str, &str)> = h
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        left.sort_unstable();
        assert_eq!(
            left,
            [
                ("content-type", "application/json"),
                ("x-forwarded-for", "127.0.0.2"),
                ("x-forwarded-proto", "https"),
            ]
        );
    }
}
