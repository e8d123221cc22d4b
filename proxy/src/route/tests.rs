use super::*;

const SCHEMA: &str = include_str!("../../../deploy/policies/lakeward.cedarschema");

fn find(method: &str, path: &str) -> Option<Route> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    lookup(&method, &segments)
}

/// (method, path, action, resource, upstream)
const TABLE: &[(&str, &str, &str, ResourceKind, Upstream)] = &[
    (
        "GET",
        "/.well-known/databricks-config",
        "GetHostMetadata",
        W,
        Upstream::Local,
    ),
    (
        "GET",
        "/api/2.0/preview/scim/v2/Me",
        "GetCurrentUser",
        C,
        Control,
    ),
    ("POST", "/api/2.0/token/create", "CreateToken", C, Control),
    ("GET", "/api/2.0/token/list", "ListTokens", C, Control),
    ("POST", "/api/2.0/token/delete", "DeleteToken", C, Control),
    ("PATCH", "/api/2.0/token/abc", "UpdateToken", C, Control),
    (
        "GET",
        "/api/2.0/token-management/tokens",
        "ListAllTokens",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/token-management/tokens/t1",
        "GetAnyToken",
        W,
        Control,
    ),
    (
        "DELETE",
        "/api/2.0/token-management/tokens/t1",
        "DeleteAnyToken",
        W,
        Control,
    ),
    (
        "PATCH",
        "/api/2.0/token-management/tokens/t1",
        "UpdateAnyToken",
        W,
        Control,
    ),
    (
        "POST",
        "/api/2.0/token-management/on-behalf-of/tokens",
        "CreateOboToken",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/permissions/authorization/tokens",
        "GetTokenPermissions",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/permissions/authorization/tokens/permissionLevels",
        "GetTokenPermissions",
        W,
        Control,
    ),
    (
        "PUT",
        "/api/2.0/permissions/authorization/tokens",
        "SetTokenPermissions",
        W,
        Control,
    ),
    (
        "PATCH",
        "/api/2.0/permissions/authorization/tokens",
        "SetTokenPermissions",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/permissions/warehouses/w1",
        "GetWarehousePermissions",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/permissions/warehouses/w1/permissionLevels",
        "GetWarehousePermissions",
        W,
        Control,
    ),
    (
        "PATCH",
        "/api/2.0/permissions/warehouses/w1",
        "SetWarehousePermissions",
        W,
        Control,
    ),
    (
        "PUT",
        "/api/2.0/permissions/clusters/c1",
        "SetPermissions",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/ip-access-lists",
        "ListIpAccessLists",
        W,
        Control,
    ),
    (
        "POST",
        "/api/2.0/ip-access-lists",
        "CreateIpAccessList",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/ip-access-lists/l1",
        "GetIpAccessList",
        W,
        Control,
    ),
    (
        "PATCH",
        "/api/2.0/ip-access-lists/l1",
        "UpdateIpAccessList",
        W,
        Control,
    ),
    (
        "PUT",
        "/api/2.0/ip-access-lists/l1",
        "ReplaceIpAccessList",
        W,
        Control,
    ),
    (
        "DELETE",
        "/api/2.0/ip-access-lists/l1",
        "DeleteIpAccessList",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/workspace-conf",
        "GetWorkspaceConf",
        W,
        Control,
    ),
    (
        "PATCH",
        "/api/2.0/workspace-conf",
        "SetWorkspaceConf",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/preview/scim/v2/Users",
        "ReadDirectory",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/preview/scim/v2/Groups/7",
        "ReadDirectory",
        W,
        Control,
    ),
    (
        "POST",
        "/api/2.0/preview/scim/v2/ServicePrincipals",
        "ManageDirectory",
        W,
        Control,
    ),
    (
        "PATCH",
        "/api/2.0/preview/scim/v2/Users/1",
        "ManageDirectory",
        W,
        Control,
    ),
    (
        "PUT",
        "/api/2.0/preview/scim/v2/Groups/1",
        "ManageDirectory",
        W,
        Control,
    ),
    (
        "DELETE",
        "/api/2.0/preview/scim/v2/Users/1",
        "ManageDirectory",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/sql/warehouses",
        "ListWarehouses",
        W,
        Runtime,
    ),
    (
        "POST",
        "/api/2.0/sql/warehouses",
        "CreateWarehouse",
        W,
        Runtime,
    ),
    (
        "GET",
        "/api/2.0/sql/warehouses/w1",
        "GetWarehouse",
        W,
        Runtime,
    ),
    (
        "DELETE",
        "/api/2.0/sql/warehouses/w1",
        "DeleteWarehouse",
        W,
        Runtime,
    ),
    (
        "POST",
        "/api/2.0/sql/warehouses/w1/edit",
        "EditWarehouse",
        W,
        Runtime,
    ),
    (
        "POST",
        "/api/2.0/sql/warehouses/w1/start",
        "StartWarehouse",
        W,
        Runtime,
    ),
    (
        "POST",
        "/api/2.0/sql/warehouses/w1/stop",
        "StopWarehouse",
        W,
        Runtime,
    ),
    (
        "POST",
        "/api/2.0/sql/statements",
        "ExecuteStatement",
        W,
        Runtime,
    ),
    (
        "GET",
        "/api/2.0/sql/statements/s1",
        "GetStatement",
        W,
        Runtime,
    ),
    (
        "GET",
        "/api/2.0/sql/statements/s1/result/chunks/0",
        "GetStatementResult",
        W,
        Runtime,
    ),
    (
        "POST",
        "/api/2.0/sql/statements/s1/cancel",
        "CancelStatement",
        W,
        Runtime,
    ),
    (
        "GET",
        "/api/2.0/permissions/warehouses/w1",
        "GetWarehousePermissions",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.0/permissions/warehouses/w1/permissionLevels",
        "GetWarehousePermissions",
        W,
        Control,
    ),
    (
        "PATCH",
        "/api/2.0/permissions/warehouses/w1",
        "SetWarehousePermissions",
        W,
        Control,
    ),
    (
        "PUT",
        "/api/2.0/permissions/warehouses/w1",
        "SetWarehousePermissions",
        W,
        Control,
    ),
    (
        "GET",
        "/api/2.1/unity-catalog/permissions/table/main.default.t",
        "GetGrants",
        W,
        Runtime,
    ),
    (
        "PATCH",
        "/api/2.1/unity-catalog/permissions/table/main.default.t",
        "UpdateGrants",
        W,
        Runtime,
    ),
    (
        "GET",
        "/api/2.0/accounts/a/workspaces",
        "ListWorkspaces",
        A,
        Control,
    ),
    (
        "POST",
        "/api/2.0/accounts/a/workspaces",
        "CreateWorkspace",
        A,
        Control,
    ),
    (
        "GET",
        "/api/2.0/accounts/a/workspaces/1",
        "GetWorkspace",
        A,
        Control,
    ),
    (
        "PATCH",
        "/api/2.0/accounts/a/workspaces/1",
        "UpdateWorkspace",
        A,
        Control,
    ),
    (
        "DELETE",
        "/api/2.0/accounts/a/workspaces/1",
        "DeleteWorkspace",
        A,
        Control,
    ),
    (
        "GET",
        "/api/2.0/accounts/a/ip-access-lists",
        "ListAccountIpAccessLists",
        A,
        Control,
    ),
    (
        "POST",
        "/api/2.0/accounts/a/ip-access-lists",
        "CreateAccountIpAccessList",
        A,
        Control,
    ),
    (
        "GET",
        "/api/2.0/accounts/a/ip-access-lists/l",
        "GetAccountIpAccessList",
        A,
        Control,
    ),
    (
        "PATCH",
        "/api/2.0/accounts/a/ip-access-lists/l",
        "UpdateAccountIpAccessList",
        A,
        Control,
    ),
    (
        "PUT",
        "/api/2.0/accounts/a/ip-access-lists/l",
        "ReplaceAccountIpAccessList",
        A,
        Control,
    ),
    (
        "DELETE",
        "/api/2.0/accounts/a/ip-access-lists/l",
        "DeleteAccountIpAccessList",
        A,
        Control,
    ),
    (
        "GET",
        "/api/2.0/accounts/a/settings/types/acct_ip_acl_enable/names/default",
        "GetAccountSetting",
        A,
        Control,
    ),
    (
        "PATCH",
        "/api/2.0/accounts/a/settings/types/acct_ip_acl_enable/names/default",
        "SetAccountSetting",
        A,
        Control,
    ),
    (
        "DELETE",
        "/api/2.0/accounts/a/settings/types/acct_ip_acl_enable/names/default",
        "SetAccountSetting",
        A,
        Control,
    ),
    (
        "GET",
        "/api/2.0/accounts/a/scim/v2/Users",
        "ReadAccountDirectory",
        A,
        Control,
    ),
    (
        "GET",
        "/api/2.0/accounts/a/scim/v2/Groups/9",
        "ReadAccountDirectory",
        A,
        Control,
    ),
    (
        "POST",
        "/api/2.0/accounts/a/scim/v2/ServicePrincipals",
        "ManageAccountDirectory",
        A,
        Control,
    ),
    (
        "DELETE",
        "/api/2.0/accounts/a/scim/v2/Users/3",
        "ManageAccountDirectory",
        A,
        Control,
    ),
];

#[test]
fn every_listed_route_resolves() {
    for &(method, path, action, resource, upstream) in TABLE {
        let route = find(method, path).unwrap_or_else(|| panic!("{method} {path} has no route"));
        assert_eq!(route.action, action, "{method} {path}");
        assert_eq!(route.resource, resource, "{method} {path}");
        assert_eq!(route.upstream, upstream, "{method} {path}");
        assert_eq!(route.public, action == "GetHostMetadata", "{method} {path}");
    }
}

#[test]
fn every_action_is_in_the_schema() {
    for &(method, path, ..) in TABLE {
        let route = find(method, path).unwrap();
        assert!(
            SCHEMA.contains(&format!("\"{}\"", route.action)),
            "{} is not declared in lakeward.cedarschema",
            route.action
        );
    }
}

#[test]
fn unlisted_routes_have_no_entry() {
    for (method, path) in [
        ("GET", "/internal/v1/snapshot"),
        ("POST", "/internal/v1/resolve-token"),
        ("GET", "/api/2.0/internal/v1/snapshot"),
        ("GET", "/api/2.0/token/create"),
        ("DELETE", "/api/2.0/token/list"),
        ("GET", "/api/2.0/preview/scim/v2/Secrets"),
        ("GET", "/api/2.0/preview/scim/v2/Users/1/extra"),
        ("PUT", "/api/2.0/preview/scim/v2/Users"),
        ("GET", "/api/2.0/clusters/list"),
        ("POST", "/.well-known/databricks-config"),
        ("GET", "/"),
        ("GET", "/api/2.0/accounts/a/unknown"),
        ("GET", "/api/2.1/token/list"),
    ] {
        assert_eq!(find(method, path), None, "{method} {path}");
    }
}

#[test]
fn account_paths_are_recognised() {
    let segments = ["api", "2.0", "accounts", "acct-1", "workspaces"];
    assert_eq!(account_id(&segments), Some("acct-1"));
    assert_eq!(account_id(&["api", "2.0", "token", "list"]), None);
    assert!(is_mutating(&Method::POST));
    assert!(!is_mutating(&Method::GET));
}
