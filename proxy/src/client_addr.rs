//! Stage 2, client address: the address the IP access lists, Cedar's `clientIp` and the audit
//! record's `sourceIPAddress` all use. It is the TCP peer, unless the peer is a trusted proxy:
//! then `X-Forwarded-For` is read from the right, skipping trusted hops, and the first
//! untrusted hop is the client. Hops further left were written by the client and prove
//! nothing.

use crate::exchange::{Exchange, Stage};
use crate::shared::Shared;
use http::HeaderMap;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Why the client address could not be determined.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientAddrError {
    #[error("malformed X-Forwarded-For hop from a trusted proxy")]
    MalformedForwardedFor,
}

/// The client-address stage.
#[derive(Clone)]
pub(crate) struct ClientAddr {
    shared: Arc<Shared>,
}

impl ClientAddr {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        ClientAddr { shared }
    }
}

impl Stage for ClientAddr {
    type Error = ClientAddrError;

    async fn run(&self, ex: &mut Exchange) -> Result<(), ClientAddrError> {
        let ip = client_ip(
            ex.ctx.conn.peer.ip(),
            &ex.parts.headers,
            &self.shared.trusted_proxies,
        )?;
        ex.ctx.client_ip = Some(ip);
        Ok(())
    }
}

/// The client address for a request from `peer` with `headers`.
pub(crate) fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Result<IpAddr, ClientAddrError> {
    // IPv4-mapped IPv6 (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4 peers) as IPv4.
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    if !is_trusted(peer) {
        return Ok(peer);
    }
    // Several header lines form one list, in order.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("\u{0}").split(','))
        .map(str::trim)
        .collect();
    let mut leftmost_trusted = peer;
    for hop in hops.iter().rev() {
        let ip = parse_hop(hop).ok_or(ClientAddrError::MalformedForwardedFor)?;
        if !is_trusted(ip) {
            return Ok(ip);
        }
        leftmost_trusted = ip;
    }
    // Every hop is a trusted proxy: the request started inside the trusted network.
    Ok(leftmost_trusted)
}

/// A hop: an address, optionally with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<SocketAddr>()
        .ok()
        .map(|s| s.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_header_says() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let got = client_ip(ip("203.0.113.9"), &headers(&["1.1.1.1"]), &trusted).unwrap();
        assert_eq!(got, ip("203.0.113.9"));
    }

    #[test]
    fn rightmost_untrusted_hop_from_a_trusted_peer() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        // The client forged 6.6.6.6; 198.51.100.7 was added by our first proxy.
        let h = headers(&["6.6.6.6, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &trusted).unwrap(),
            ip("198.51.100.7")
        );
        let h = headers(&["198.51.100.7:4711"]);
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.1"), &h, &trusted).unwrap(),
            ip("198.51.100.7")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &trusted).unwrap(),
            ip("10.0.0.1")
        );
        // All trusted: the leftmost.
        let h = headers(&["10.9.9.9, 10.0.0.5"]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &trusted).unwrap(),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn garbage_from_a_trusted_peer_is_refused() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert!(client_ip(ip("10.0.0.1"), &headers(&["nonsense"]), &trusted).is_err());
    }
}
