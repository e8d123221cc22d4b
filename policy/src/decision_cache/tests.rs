use super::*;
use crate::request::{PrincipalInput, PrincipalKind, ResourceInput};

fn request() -> AuthzRequest {
    AuthzRequest {
        principal: PrincipalInput {
            kind: PrincipalKind::User,
            id: "1".into(),
            user_name: "alice".into(),
            active: true,
            groups: vec![("g".into(), "admins".into())],
            workspace_admin: false,
            account_admin: false,
            member_of_workspace: Some(1),
        },
        action: "ListWarehouses".into(),
        resource: ResourceInput::Workspace,
        client_ip: "10.0.0.1".parse().expect("an address"),
        workspace: Some((1, "ws".into())),
        account_id: "acct".into(),
        auth_method: "pat".into(),
        token_id: None,
        request_time_unix: 5,
    }
}

#[test]
fn a_hit_is_the_same_request_at_any_time() {
    let cache = DecisionCache::new();
    let first = request();
    let (slot, hit) = cache.get(&first);
    assert_eq!(hit, None);
    cache.put(slot, &first, &"decided");
    let later = AuthzRequest {
        request_time_unix: 99,
        ..request()
    };
    assert_eq!(cache.get(&later).1, Some("decided"));
}

#[test]
fn a_request_differing_in_any_field_misses() {
    let cache = DecisionCache::new();
    let first = request();
    let (slot, _) = cache.get(&first);
    cache.put(slot, &first, &"decided");
    let mut others = Vec::new();
    let mut r = request();
    r.principal.groups.push(("h".into(), "users".into()));
    others.push(r);
    let mut r = request();
    r.client_ip = "10.0.0.2".parse().expect("an address");
    others.push(r);
    let mut r = request();
    r.token_id = Some("t".into());
    others.push(r);
    let mut r = request();
    r.action = "GetWarehouse".into();
    others.push(r);
    for other in others {
        assert_eq!(cache.get(&other).1, None, "{other:?}");
    }
}

#[test]
fn two_requests_with_one_hash_are_never_confused() {
    // Force the collision: file the second request under the first one's slot.
    let cache = DecisionCache::new();
    let first = request();
    let (slot, _) = cache.get(&first);
    cache.put(slot, &first, &"first");
    let mut second = request();
    second.action = "DeleteWarehouse".into();
    cache.put(slot, &second, &"second");
    // The slot now holds the second request: the first misses rather than get its answer.
    assert_eq!(cache.get(&first).1, None);
    let entries = cache.entries.lock();
    let (kept, value) = entries.get(&slot.0).expect("filed");
    assert!(same_but_time(kept, &second) && *value == "second");
}
