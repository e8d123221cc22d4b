//! IPv4 addresses and CIDR ranges as IP access lists hold them, and the Databricks evaluation
//! rule (block lists first; then, if any allow list exists, only its addresses pass). The
//! control plane uses it to validate list entries and for the self-lockout guard; it is small
//! on purpose so that `control` does not depend on the gateway's policy crate.

use lakeward_common::internal::ListType;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// One entry of an IP access list: an address (a `/32`) or a CIDR range. IPv4 only, as in
/// Databricks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv4Net {
    network: u32,
    prefix: u8,
}

impl Ipv4Net {
    /// Parses `a.b.c.d` or `a.b.c.d/n` (0 ≤ n ≤ 32). Leading zeros are refused in both parts,
    /// since some tools read `010` as octal. Host bits set under the mask are allowed (as
    /// Databricks allows them) and ignored when matching.
    pub(crate) fn parse(text: &str) -> Option<Ipv4Net> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, parse_prefix(prefix)?),
            None => (text, 32),
        };
        // std's parser takes exactly four decimal octets and refuses leading zeros.
        let addr: Ipv4Addr = addr.parse().ok()?;
        Some(Ipv4Net {
            network: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    /// Whether `ip` is in the range.
    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == self.network
    }
}

fn parse_prefix(text: &str) -> Option<u8> {
    let valid = !text.is_empty()
        && text.len() <= 2
        && text.bytes().all(|b| b.is_ascii_digit())
        && !(text.len() > 1 && text.starts_with('0'));
    if !valid {
        return None;
    }
    let prefix: u8 = text.parse().ok()?;
    (prefix <= 32).then_some(prefix)
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        p => u32::MAX << (32 - u32::from(p.min(32))),
    }
}

/// The caller's address as an IPv4 address, if it is one (IPv4-mapped IPv6 included; a
/// `host:port` form is accepted too). Anything else matches no list entry.
pub(crate) fn parse_client_ip(text: &str) -> Option<Ipv4Addr> {
    let ip = text
        .parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// One list as the evaluation sees it.
pub(crate) struct ListView<'a> {
    pub(crate) list_type: ListType,
    pub(crate) enabled: bool,
    pub(crate) entries: &'a [String],
}

/// Whether `client` may connect under `lists`: disabled lists are skipped; an address in any
/// block list is refused; otherwise, if at least one allow list exists, only addresses in an
/// allow list pass; with no allow list everyone passes. A caller whose address is not IPv4
/// matches no entry (so any allow list refuses it).
pub(crate) fn is_allowed(client: Option<Ipv4Addr>, lists: &[ListView<'_>]) -> bool {
    let matches = |list: &ListView<'_>| {
        client.is_some_and(|ip| {
            list.entries
                .iter()
                .filter_map(|e| Ipv4Net::parse(e))
                .any(|net| net.contains(ip))
        })
    };
    let enabled = || lists.iter().filter(|l| l.enabled);
    if enabled()
        .filter(|l| l.list_type == ListType::Block)
        .any(matches)
    {
        return false;
    }
    let mut allow_lists = enabled()
        .filter(|l| l.list_type == ListType::Allow)
        .peekable();
    if allow_lists.peek().is_none() {
        return true;
    }
    allow_lists.any(matches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_ranges() {
        assert!(Ipv4Net::parse("1.2.3.4").is_some());
        assert!(Ipv4Net::parse("10.0.0.0/8").is_some());
        assert!(Ipv4Net::parse("0.0.0.0/0").is_some());
        assert!(Ipv4Net::parse("10.1.2.3/16").is_some());
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3.4/33",
            "1.2.3.4/",
            "1.2.3.4/08",
            "1.2.3.4/-1",
            "::1",
            "a.b.c.d",
            " 1.2.3.4",
            "1.2.3.4/1/2",
            "1.2.3.4/+8",
        ] {
            assert!(Ipv4Net::parse(bad).is_none(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn containment() {
        let net = Ipv4Net::parse("10.1.2.3/16").unwrap();
        assert!(net.contains("10.1.200.1".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        let all = Ipv4Net::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("255.255.255.255".parse().unwrap()));
        let one = Ipv4Net::parse("1.2.3.4").unwrap();
        assert!(one.contains("1.2.3.4".parse().unwrap()));
        assert!(!one.contains("1.2.3.5".parse().unwrap()));
    }

    #[test]
    fn client_addresses() {
        assert_eq!(parse_client_ip("1.2.3.4"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(
            parse_client_ip("::ffff:1.2.3.4"),
            Some(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert_eq!(
            parse_client_ip("1.2.3.4:443"),
            Some(Ipv4Addr::new(1, 2, 3, 4))
        );
        assert_eq!(parse_client_ip("::1"), None);
        assert_eq!(parse_client_ip("junk"), None);
    }

    #[test]
    fn block_first_then_allow_if_any() {
        let me = parse_client_ip("10.0.0.5");
        let block = vec!["10.0.0.0/24".to_owned()];
        let allow_other = vec!["192.168.0.0/16".to_owned()];
        let allow_me = vec!["10.0.0.5".to_owned()];
        let view = |t, enabled, entries: &'static [String]| ListView {
            list_type: t,
            enabled,
            entries,
        };
        let block: &'static [String] = Box::leak(block.into_boxed_slice());
        let allow_other: &'static [String] = Box::leak(allow_other.into_boxed_slice());
        let allow_me: &'static [String] = Box::leak(allow_me.into_boxed_slice());

        assert!(is_allowed(me, &[]));
        assert!(!is_allowed(me, &[view(ListType::Block, true, block)]));
        assert!(is_allowed(me, &[view(ListType::Block, false, block)]));
        assert!(!is_allowed(me, &[view(ListType::Allow, true, allow_other)]));
        assert!(is_allowed(
            me,
            &[
                view(ListType::Allow, true, allow_other),
                view(ListType::Allow, true, allow_me)
            ]
        ));
        // Block wins over allow.
        assert!(!is_allowed(
            me,
            &[
                view(ListType::Allow, true, allow_me),
                view(ListType::Block, true, block)
            ]
        ));
        // A non-IPv4 caller passes only when there is no allow list.
        assert!(is_allowed(None, &[view(ListType::Block, true, block)]));
        assert!(!is_allowed(None, &[view(ListType::Allow, true, allow_me)]));
    }
}
