//! Per-address connection caps: how many connections one client address holds open, and how
//! many of those are still in their TLS handshake. Without them one address can take every
//! slot of the global connection limit (idle sockets renewed inside the handshake window) and
//! lock every other client out.
//!
//! The address is the TCP peer, never a forwarded header. An IPv4 client is counted by its
//! address; an IPv6 client by its /64, the block one subscriber or host is usually given (one
//! machine can pick any address in it). The table holds only addresses with a connection
//! open, so it is bounded by the global connection limit.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

/// The prefix an IPv6 client is counted by.
const IPV6_PREFIX_BITS: u32 = 64;

/// What one address holds.
#[derive(Debug, Default)]
struct Held {
    open: usize,
    handshaking: usize,
}

/// The caps and the live counts.
#[derive(Debug)]
pub(super) struct PeerLimits {
    max_open: usize,
    max_handshaking: usize,
    held: Mutex<HashMap<IpAddr, Held>>,
}

/// Which cap an address is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AtCap {
    Open,
    Handshaking,
}

impl PeerLimits {
    pub(super) fn new(max_open: usize, max_handshaking: usize) -> Arc<Self> {
        Arc::new(PeerLimits {
            max_open,
            max_handshaking,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a new connection from `ip` as open and handshaking, unless its address is at
    /// either cap. The slot gives both back when dropped.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PeerSlot, AtCap> {
        let key = key_of(ip);
        let mut held = self.held.lock();
        let entry = held.entry(key).or_default();
        let refusal = if entry.open >= self.max_open {
            Some(AtCap::Open)
        } else if entry.handshaking >= self.max_handshaking {
            Some(AtCap::Handshaking)
        } else {
            None
        };
        if let Some(cap) = refusal {
            if entry.open == 0 {
                held.remove(&key);
            }
            return Err(cap);
        }
        entry.open += 1;
        entry.handshaking += 1;
        Ok(PeerSlot {
            limits: self.clone(),
            key,
            handshaking: true,
        })
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> Option<(usize, usize)> {
        self.held
            .lock()
            .get(&key_of(ip))
            .map(|h| (h.open, h.handshaking))
    }
}

/// One connection's place in its address's counts.
#[derive(Debug)]
pub(super) struct PeerSlot {
    limits: Arc<PeerLimits>,
    key: IpAddr,
    handshaking: bool,
}

impl PeerSlot {
    /// The TLS handshake is over: the connection no longer counts as handshaking.
    pub(super) fn handshake_done(&mut self) {
        if std::mem::replace(&mut self.handshaking, false) {
            let mut held = self.limits.held.lock();
            if let Some(entry) = held.get_mut(&self.key) {
                entry.handshaking = entry.handshaking.saturating_sub(1);
            }
        }
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut held = self.limits.held.lock();
        if let Some(entry) = held.get_mut(&self.key) {
            entry.open = entry.open.saturating_sub(1);
            if self.handshaking {
                entry.handshaking = entry.handshaking.saturating_sub(1);
            }
            if entry.open == 0 {
                held.remove(&self.key);
            }
        }
    }
}

/// The address `ip` is counted under: IPv4 (IPv4-mapped IPv6 included) as itself, IPv6 by
/// its /64.
fn key_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - IPV6_PREFIX_BITS);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn caps_hold_per_address_and_slots_give_back() {
        let limits = PeerLimits::new(3, 2);
        let a = ip("10.0.0.1");
        let mut first = limits.admit(a).unwrap();
        let second = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), AtCap::Handshaking);
        // Another address is counted on its own.
        let other = limits.admit(ip("10.0.0.2")).unwrap();
        first.handshake_done();
        first.handshake_done();
        assert_eq!(limits.held(a), Some((2, 1)));
        let third = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).unwrap_err(), AtCap::Open);
        drop(third);
        assert_eq!(limits.held(a), Some((2, 1)));
        drop(first);
        drop(second);
        drop(other);
        assert_eq!(
            limits.held(a),
            None,
            "entries go with their last connection"
        );
        assert_eq!(limits.held(ip("10.0.0.2")), None);
    }

    #[test]
    fn addresses_are_keyed_as_documented() {
        assert_eq!(key_of(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(key_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        let limits = PeerLimits::new(1, 1);
        let _one = limits.admit(ip("2001:db8::1")).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8::ffff")).unwrap_err(),
            AtCap::Open,
            "one /64 is one client"
        );
        assert!(limits.admit(ip("2001:db8:0:1::1")).is_ok());
    }
}
