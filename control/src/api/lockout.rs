//! The lockout guard: no change to IP access lists or to whether they are in effect may
//! block the address of the admin making it. Shared by the IP access list, workspace-conf
//! and account-settings APIs, each of which can turn lists on.

use crate::error::ControlError;
use crate::store::ip_lists::IpList;
use lakeward_common::internal::ListType;
use lakeward_policy::{IpAccessPolicy, IpVerdict, ListKind};

/// 400 `INVALID_STATE` when `lists`, in effect (`feature_on`), would refuse `client_ip`.
pub(crate) fn check_lockout(
    lists: &[IpList],
    feature_on: bool,
    client_ip: &str,
) -> Result<(), ControlError> {
    if !feature_on {
        return Ok(());
    }
    // Evaluated with the gateway's own matcher, so the guard predicts exactly what the
    // gateway will enforce once the change is committed.
    let enabled = lists.iter().filter(|l| l.enabled).map(|l| {
        let kind = match l.list_type {
            ListType::Allow => ListKind::Allow,
            ListType::Block => ListKind::Block,
        };
        (kind, l.ip_addresses.as_slice())
    });
    let policy = IpAccessPolicy::compile(enabled)
        .map_err(|e| ControlError::InvalidParameter(format!("`ip_addresses`: {e}")))?;
    // An address the gateway could not have sent matches no entry, like a non-IPv4 one.
    let client = client_ip
        .parse()
        .unwrap_or(std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED));
    match policy.verdict(client) {
        IpVerdict::Allowed => Ok(()),
        IpVerdict::Blocked => Err(ControlError::InvalidState(format!(
            "this change would block your current IP address `{client_ip}`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ip_lists::Scope;

    fn list(list_type: ListType, enabled: bool, entries: &[&str]) -> IpList {
        IpList {
            list_id: "l".into(),
            scope: Scope::Account,
            label: "l".into(),
            list_type,
            enabled,
            ip_addresses: entries.iter().map(|e| e.to_string()).collect(),
            created_at: 0,
            created_by: 0,
            updated_at: 0,
            updated_by: 0,
        }
    }

    #[test]
    fn the_guard_judges_as_the_gateway_enforces() {
        let blocked = |lists: &[IpList], ip: &str| check_lockout(lists, true, ip).is_err();
        let block_me = [list(ListType::Block, true, &["10.0.0.0/8"])];
        assert!(blocked(&block_me, "10.1.2.3"));
        assert!(!blocked(&block_me, "192.168.0.1"));
        assert!(blocked(&block_me, "::ffff:10.1.2.3"), "IPv4-mapped is IPv4");
        assert!(
            check_lockout(&block_me, false, "10.1.2.3").is_ok(),
            "feature off: no effect"
        );
        let allow_other = [list(ListType::Allow, true, &["192.168.0.0/16"])];
        assert!(blocked(&allow_other, "10.1.2.3"));
        assert!(
            blocked(&allow_other, "::1"),
            "a non-IPv4 caller matches no allow entry"
        );
        // Disabled lists count for nothing; block beats allow.
        assert!(!blocked(
            &[list(ListType::Block, false, &["10.0.0.0/8"])],
            "10.1.2.3"
        ));
        let both = [
            list(ListType::Allow, true, &["10.0.0.0/8"]),
            list(ListType::Block, true, &["10.1.0.0/16"]),
        ];
        assert!(blocked(&both, "10.1.2.3"));
        assert!(!blocked(&both, "10.2.0.1"));
        // An enabled allow list with no entries restricts nothing at the gateway, so it locks
        // no one out here either.
        assert!(!blocked(&[list(ListType::Allow, true, &[])], "10.1.2.3"));
    }
}
