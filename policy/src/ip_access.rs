//! IP access lists with Databricks semantics: IPv4 addresses and CIDR blocks, block lists
//! checked before allow lists, compiled into sorted ranges so a lookup costs O(log n).
//! Networks are parsed and represented by `ipnet`; the merged ranges are ours, since they are
//! what keeps a thousand entries as cheap as one.

use crate::error::PolicyError;
pub use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether a list admits or rejects the addresses it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `ALLOW`: when any allow entry exists, only matching addresses get in.
    Allow,
    /// `BLOCK`: matching addresses are rejected, whatever the allow lists say.
    Block,
}

/// The one network grammar of the deployment, for IP access lists and the gateway's trusted
/// proxies alike: an address (one host: `/32` or `/128`) or `address/prefix`, IPv4 or IPv6.
/// The address must be spelled as [`IpAddr`] spells it (no leading zeros in IPv4 octets, no
/// whitespace); the prefix is one to three decimal digits within the family's range. `None`
/// for anything else. Host bits are kept: [`IpNet::trunc`] clears them.
pub fn parse_network(s: &str) -> Option<IpNet> {
    match s.split_once('/') {
        None => s.parse::<IpAddr>().ok().map(IpNet::from),
        Some((addr, _)) => {
            // ipnet alone takes octets with leading zeros (`01.2.3.4`), which could be read as
            // octal; std refuses them, and so do we.
            addr.parse::<IpAddr>().ok()?;
            s.parse::<IpNet>().ok()
        }
    }
}

/// Parses and validates one access list entry: an IPv4 address (`1.2.3.4`, meaning `/32`) or
/// CIDR block (`10.0.0.0/16`), as [`parse_network`] reads them. The control plane uses it to
/// answer `INVALID_PARAMETER_VALUE`.
///
/// IPv6 (Databricks' lists are IPv4 only), surrounding whitespace, leading zeros in octets
/// and prefixes outside 0..=32 are rejected. A CIDR with host bits set (`10.0.0.1/16`) is
/// accepted and normalized to its network (`10.0.0.0/16`), since that is unambiguously what it
/// covers; callers wanting to echo the entry back should keep the original string.
pub fn parse_entry(s: &str) -> Result<Ipv4Net, PolicyError> {
    let invalid = |reason: &str| PolicyError::InvalidIpEntry {
        entry: s.to_owned(),
        reason: reason.to_owned(),
    };
    let addr = s.split_once('/').map_or(s, |(addr, _)| addr);
    match parse_network(s) {
        Some(IpNet::V4(net)) => Ok(net.trunc()),
        Some(IpNet::V6(_)) => Err(invalid("only IPv4 addresses are supported")),
        None if addr.parse::<Ipv6Addr>().is_ok() => {
            Err(invalid("only IPv4 addresses are supported"))
        }
        None if addr.parse::<Ipv4Addr>().is_ok() => {
            Err(invalid("the prefix length must be between 0 and 32"))
        }
        None => Err(invalid(
            "expected an IPv4 address such as `10.0.0.1` or a CIDR such as `10.0.0.0/16`",
        )),
    }
}

/// First and last address of a network, as integers.
fn range(net: &Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

/// Whether the IP access lists let an address through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpVerdict {
    /// Not blocked, and on an allow list if there is one.
    Allowed,
    /// On a block list, or missing from the allow lists.
    Blocked,
}

/// The enabled lists of one scope (a workspace or the account), compiled for fast lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpAccessPolicy {
    /// Sorted, disjoint, non-adjacent inclusive ranges.
    allow: Vec<(u32, u32)>,
    block: Vec<(u32, u32)>,
}

impl IpAccessPolicy {
    /// Compiles the given lists; pass only the enabled ones. Fails on the first invalid entry.
    pub fn compile<'a>(
        lists: impl IntoIterator<Item = (ListKind, &'a [String])>,
    ) -> Result<Self, PolicyError> {
        let (mut allow, mut block) = (Vec::new(), Vec::new());
        for (kind, entries) in lists {
            let target = match kind {
                ListKind::Allow => &mut allow,
                ListKind::Block => &mut block,
            };
            for entry in entries {
                target.push(range(&parse_entry(entry)?));
            }
        }
        Ok(Self {
            allow: merge(allow),
            block: merge(block),
        })
    }

    /// True when no list has an entry: every address is allowed.
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty() && self.block.is_empty()
    }

    /// Block lists first; then, if any allow entry exists, the address must match one;
    /// otherwise it is allowed.
    ///
    /// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) count as their IPv4 address. Other IPv6
    /// addresses match no entry, so they are blocked exactly when an allow list exists.
    pub fn verdict(&self, ip: IpAddr) -> IpVerdict {
        let v4 = match ip {
            IpAddr::V4(v4) => Some(v4),
            IpAddr::V6(v6) => v6.to_ipv4_mapped(),
        };
        let Some(v4) = v4 else {
            return if self.allow.is_empty() {
                IpVerdict::Allowed
            } else {
                IpVerdict::Blocked
            };
        };
        let ip = u32::from(v4);
        if contains(&self.block, ip) || (!self.allow.is_empty() && !contains(&self.allow, ip)) {
            IpVerdict::Blocked
        } else {
            IpVerdict::Allowed
        }
    }
}

/// Sorts and merges overlapping or adjacent ranges, so each address lies in at most one.
fn merge(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
            _ => merged.push((first, last)),
        }
    }
    merged.shrink_to_fit();
    merged
}

fn contains(ranges: &[(u32, u32)], ip: u32) -> bool {
    // The only candidate is the last range starting at or before `ip`.
    let after = ranges.partition_point(|&(first, _)| first <= ip);
    after
        .checked_sub(1)
        .and_then(|i| ranges.get(i))
        .is_some_and(|&(_, last)| ip <= last)
}

#[cfg(test)]
mod tests;
