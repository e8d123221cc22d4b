//! IP access lists with Databricks semantics: IPv4 addresses and CIDR blocks, block lists
//! checked before allow lists, compiled into sorted ranges so a lookup costs O(log n).

use crate::error::PolicyError;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// Whether a list admits or rejects the addresses it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    /// `ALLOW`: when any allow entry exists, only matching addresses get in.
    Allow,
    /// `BLOCK`: matching addresses are rejected, whatever the allow lists say.
    Block,
}

/// An IPv4 network: an address with its host bits cleared, and a prefix length (0 to 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    network: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Net {
    /// The first address of the network.
    pub fn network(&self) -> Ipv4Addr {
        self.network
    }

    /// The prefix length; 32 for a single address.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` lies in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let (first, last) = self.range();
        (first..=last).contains(&u32::from(ip))
    }

    /// First and last address as integers.
    fn range(&self) -> (u32, u32) {
        let first = u32::from(self.network);
        let host_bits = u32::MAX
            .checked_shr(u32::from(self.prefix_len))
            .unwrap_or(0);
        (first, first | host_bits)
    }
}

/// Always CIDR notation (`1.2.3.4/32` for a single address), so equal networks print equally.
impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

impl FromStr for Ipv4Net {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_entry(s)
    }
}

/// Parses and validates one access list entry: an IPv4 address (`1.2.3.4`, meaning `/32`) or
/// CIDR block (`10.0.0.0/16`). The control plane uses it to answer `INVALID_PARAMETER_VALUE`.
///
/// IPv6, surrounding whitespace, leading zeros in octets and prefixes outside 0..=32 are
/// rejected. A CIDR with host bits set (`10.0.0.1/16`) is accepted and normalized to its
/// network (`10.0.0.0/16`), since that is unambiguously what it covers; callers wanting to
/// echo the entry back should keep the original string.
pub fn parse_entry(s: &str) -> Result<Ipv4Net, PolicyError> {
    let invalid = |reason: &str| PolicyError::InvalidIpEntry {
        entry: s.to_owned(),
        reason: reason.to_owned(),
    };
    let (addr, prefix) = match s.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (s, None),
    };
    let addr = Ipv4Addr::from_str(addr).map_err(|_| {
        if Ipv6Addr::from_str(addr).is_ok() {
            invalid("only IPv4 addresses are supported")
        } else {
            invalid("expected an IPv4 address such as `10.0.0.1` or a CIDR such as `10.0.0.0/16`")
        }
    })?;
    let prefix_len = match prefix {
        None => 32,
        // Digits only: `u8::from_str` would also take `+8`.
        Some(p) if !p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u8>() {
                Ok(n) if n <= 32 => n,
                _ => return Err(invalid("the prefix length must be between 0 and 32")),
            }
        }
        Some(_) => return Err(invalid("the prefix length must be between 0 and 32")),
    };
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0);
    Ok(Ipv4Net {
        network: Ipv4Addr::from(u32::from(addr) & mask),
        prefix_len,
    })
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
                target.push(parse_entry(entry)?.range());
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
