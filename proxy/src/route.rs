//! The route table: (method, path segments) → Cedar action, resource kind, upstream, and the
//! Databricks audit names. One `match` on segment slices, so a lookup is a handful of string
//! comparisons whatever the table's size, and an unlisted route simply has no entry.
//!
//! **Invariant:** nothing under `/internal/` is routed; the upstreams' internal APIs are
//! reachable only from the gateway itself.

use http::Method;

/// Where a route is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    /// The control plane.
    Control,
    /// The data-plane runtime.
    Runtime,
    /// The gateway itself.
    Local,
}

impl Upstream {
    /// Fixed metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Upstream::Control => "control",
            Upstream::Runtime => "runtime",
            Upstream::Local => "local",
        }
    }
}

/// What a route's Cedar resource is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResourceKind {
    /// The principal itself (self-service routes).
    Caller,
    /// The workspace addressed.
    Workspace,
    /// The account.
    Account,
}

/// One entry of the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    /// The Cedar action id (in `lakeward.cedarschema`), also the metric label.
    pub action: &'static str,
    pub resource: ResourceKind,
    pub upstream: Upstream,
    /// Audit `serviceName`.
    pub service: &'static str,
    /// Audit `actionName`.
    pub audit_action: &'static str,
    /// Answered without credentials (anonymous principal).
    pub public: bool,
}

const fn r(
    action: &'static str,
    resource: ResourceKind,
    upstream: Upstream,
    service: &'static str,
    audit_action: &'static str,
) -> Route {
    Route {
        action,
        resource,
        upstream,
        service,
        audit_action,
        public: false,
    }
}

use ResourceKind::{Account as A, Caller as C, Workspace as W};
use Upstream::{Control, Runtime};

/// Whether a method changes state (its audit record is made durable before the response).
pub(crate) fn is_mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The account id of an account-level path (`api/2.0/accounts/<id>/...`), if it is one.
pub(crate) fn account_id<'a>(segments: &[&'a str]) -> Option<&'a str> {
    match segments {
        ["api", "2.0", "accounts", id, ..] => Some(id),
        _ => None,
    }
}

/// Looks a request up. `segments` is the normalized path (workspace prefix already removed)
/// split on `/`, without empty segments.
pub(crate) fn lookup(method: &Method, segments: &[&str]) -> Option<Route> {
    let m = method.as_str();
    match segments {
        [".well-known", "databricks-config"] if m == "GET" => Some(Route {
            public: true,
            ..r(
                "GetHostMetadata",
                W,
                Upstream::Local,
                "accounts",
                "getHostMetadata",
            )
        }),
        ["api", "2.0", "accounts", _account, rest @ ..] => account(m, rest),
        ["api", "2.0", rest @ ..] => workspace(m, rest),
        // Unity Catalog grants: the runtime decides them with the same policies as SQL GRANT.
        ["api", "2.1", "unity-catalog", "permissions", _type, _name] => match m {
            "GET" => Some(r(
                "GetGrants",
                W,
                Upstream::Runtime,
                "unityCatalog",
                "getPermissions",
            )),
            "PATCH" => Some(r(
                "UpdateGrants",
                W,
                Upstream::Runtime,
                "unityCatalog",
                "updatePermissions",
            )),
            _ => None,
        },
        _ => None,
    }
}

fn workspace(m: &str, rest: &[&str]) -> Option<Route> {
    let route = match (m, rest) {
        ("GET", ["preview", "scim", "v2", "Me"]) => {
            r("GetCurrentUser", C, Control, "accounts", "getCurrentUser")
        }
        (_, ["preview", "scim", "v2", object, tail @ ..]) => {
            directory(m, object, tail, "ReadDirectory", "ManageDirectory", W)?
        }

        ("POST", ["token", "create"]) => {
            r("CreateToken", C, Control, "accounts", "generateDbToken")
        }
        ("GET", ["token", "list"]) => r("ListTokens", C, Control, "accounts", "listDbTokens"),
        ("POST", ["token", "delete"]) => r("DeleteToken", C, Control, "accounts", "revokeDbToken"),
        ("PATCH", ["token", _id]) => r("UpdateToken", C, Control, "accounts", "updateDbToken"),

        ("GET", ["token-management", "tokens"]) => {
            r("ListAllTokens", W, Control, "accounts", "listAllDbTokens")
        }
        ("GET", ["token-management", "tokens", _id]) => {
            r("GetAnyToken", W, Control, "accounts", "getDbToken")
        }
        ("DELETE", ["token-management", "tokens", _id]) => {
            r("DeleteAnyToken", W, Control, "accounts", "revokeDbToken")
        }
        ("PATCH", ["token-management", "tokens", _id]) => {
            r("UpdateAnyToken", W, Control, "accounts", "updateDbToken")
        }
        ("POST", ["token-management", "on-behalf-of", "tokens"]) => r(
            "CreateOboToken",
            W,
            Control,
            "accounts",
            "generateOboDbToken",
        ),

        (_, ["permissions", "authorization", "tokens", tail @ ..]) => match (m, tail) {
            ("GET", [] | ["permissionLevels"]) => r(
                "GetTokenPermissions",
                W,
                Control,
                "accounts",
                "getTokenPermissions",
            ),
            ("PUT" | "PATCH", []) => r(
                "SetTokenPermissions",
                W,
                Control,
                "accounts",
                "changeTokenPermissions",
            ),
            _ => return None,
        },
        (_, ["permissions", "warehouses", _id, tail @ ..]) => match (m, tail) {
            ("GET", [] | ["permissionLevels"]) => r(
                "GetWarehousePermissions",
                W,
                Control,
                "databrickssql",
                "getWarehousePermissions",
            ),
            ("PUT" | "PATCH", []) => r(
                "SetWarehousePermissions",
                W,
                Control,
                "databrickssql",
                "changeWarehousePermissions",
            ),
            _ => return None,
        },
        (_, ["permissions", _type, _id, tail @ ..]) if tail.len() <= 1 => match m {
            "GET" => r(
                "GetPermissions",
                W,
                Control,
                "permissions",
                "getPermissions",
            ),
            "PUT" | "PATCH" if tail.is_empty() => r(
                "SetPermissions",
                W,
                Control,
                "permissions",
                "changePermissions",
            ),
            _ => return None,
        },

        ("GET", ["ip-access-lists"]) => r(
            "ListIpAccessLists",
            W,
            Control,
            "accounts",
            "listIpAccessLists",
        ),
        ("POST", ["ip-access-lists"]) => r(
            "CreateIpAccessList",
            W,
            Control,
            "accounts",
            "createIpAccessList",
        ),
        (_, ["ip-access-lists", _id]) => match m {
            "GET" => r("GetIpAccessList", W, Control, "accounts", "getIpAccessList"),
            "PATCH" => r(
                "UpdateIpAccessList",
                W,
                Control,
                "accounts",
                "updateIpAccessList",
            ),
            "PUT" => r(
                "ReplaceIpAccessList",
                W,
                Control,
                "accounts",
                "replaceIpAccessList",
            ),
            "DELETE" => r(
                "DeleteIpAccessList",
                W,
                Control,
                "accounts",
                "deleteIpAccessList",
            ),
            _ => return None,
        },

        ("GET", ["workspace-conf"]) => r(
            "GetWorkspaceConf",
            W,
            Control,
            "workspace",
            "getWorkspaceConf",
        ),
        ("PATCH", ["workspace-conf"]) => r(
            "SetWorkspaceConf",
            W,
            Control,
            "workspace",
            "workspaceConfEdit",
        ),

        ("GET", ["sql", "warehouses"]) => r(
            "ListWarehouses",
            W,
            Runtime,
            "databrickssql",
            "listWarehouses",
        ),
        ("POST", ["sql", "warehouses"]) => r(
            "CreateWarehouse",
            W,
            Runtime,
            "databrickssql",
            "createWarehouse",
        ),
        ("GET", ["sql", "warehouses", _id]) => {
            r("GetWarehouse", W, Runtime, "databrickssql", "getWarehouse")
        }
        ("DELETE", ["sql", "warehouses", _id]) => r(
            "DeleteWarehouse",
            W,
            Runtime,
            "databrickssql",
            "deleteWarehouse",
        ),
        ("POST", ["sql", "warehouses", _id, "edit"]) => r(
            "EditWarehouse",
            W,
            Runtime,
            "databrickssql",
            "editWarehouse",
        ),
        ("POST", ["sql", "warehouses", _id, "start"]) => r(
            "StartWarehouse",
            W,
            Runtime,
            "databrickssql",
            "startWarehouse",
        ),
        ("POST", ["sql", "warehouses", _id, "stop"]) => r(
            "StopWarehouse",
            W,
            Runtime,
            "databrickssql",
            "stopWarehouse",
        ),
        ("POST", ["sql", "statements"]) => r(
            "ExecuteStatement",
            W,
            Runtime,
            "databrickssql",
            "executeStatement",
        ),
        ("GET", ["sql", "statements", _id]) => {
            r("GetStatement", W, Runtime, "databrickssql", "getStatement")
        }
        ("GET", ["sql", "statements", _id, "result", "chunks", _n]) => r(
            "GetStatementResult",
            W,
            Runtime,
            "databrickssql",
            "getStatementResultChunk",
        ),
        ("POST", ["sql", "statements", _id, "cancel"]) => r(
            "CancelStatement",
            W,
            Runtime,
            "databrickssql",
            "cancelStatement",
        ),
        _ => return None,
    };
    Some(route)
}

fn account(m: &str, rest: &[&str]) -> Option<Route> {
    let route = match (m, rest) {
        ("GET", ["workspaces"]) => r("ListWorkspaces", A, Control, "accounts", "listWorkspaces"),
        ("POST", ["workspaces"]) => r("CreateWorkspace", A, Control, "accounts", "createWorkspace"),
        (_, ["workspaces", _id]) => match m {
            "GET" => r("GetWorkspace", A, Control, "accounts", "getWorkspace"),
            "PATCH" => r("UpdateWorkspace", A, Control, "accounts", "updateWorkspace"),
            "DELETE" => r("DeleteWorkspace", A, Control, "accounts", "deleteWorkspace"),
            _ => return None,
        },
        ("GET", ["ip-access-lists"]) => r(
            "ListAccountIpAccessLists",
            A,
            Control,
            "accounts",
            "listAccountIpAccessLists",
        ),
        ("POST", ["ip-access-lists"]) => r(
            "CreateAccountIpAccessList",
            A,
            Control,
            "accounts",
            "createAccountIpAccessList",
        ),
        (_, ["ip-access-lists", _id]) => match m {
            "GET" => r(
                "GetAccountIpAccessList",
                A,
                Control,
                "accounts",
                "getAccountIpAccessList",
            ),
            "PATCH" => r(
                "UpdateAccountIpAccessList",
                A,
                Control,
                "accounts",
                "updateAccountIpAccessList",
            ),
            "PUT" => r(
                "ReplaceAccountIpAccessList",
                A,
                Control,
                "accounts",
                "replaceAccountIpAccessList",
            ),
            "DELETE" => r(
                "DeleteAccountIpAccessList",
                A,
                Control,
                "accounts",
                "deleteAccountIpAccessList",
            ),
            _ => return None,
        },
        (_, ["settings", "types", "acct_ip_acl_enable", "names", "default"]) => match m {
            "GET" => r(
                "GetAccountSetting",
                A,
                Control,
                "accounts",
                "getAccountSetting",
            ),
            "PATCH" | "DELETE" => r(
                "SetAccountSetting",
                A,
                Control,
                "accounts",
                "updateAccountSetting",
            ),
            _ => return None,
        },
        (_, ["scim", "v2", object, tail @ ..]) => directory(
            m,
            object,
            tail,
            "ReadAccountDirectory",
            "ManageAccountDirectory",
            A,
        )?,
        _ => return None,
    };
    Some(route)
}

/// SCIM users, groups and service principals: reads on one action, changes on the other.
fn directory(
    m: &str,
    object: &str,
    tail: &[&str],
    read: &'static str,
    manage: &'static str,
    resource: ResourceKind,
) -> Option<Route> {
    let item = match tail {
        [] => false,
        [_id] => true,
        _ => return None,
    };
    let (list, get, create, update, delete) = match object {
        "Users" => (
            "listUsers",
            "getUser",
            "createUser",
            "updateUser",
            "deleteUser",
        ),
        "Groups" => (
            "listGroups",
            "getGroup",
            "createGroup",
            "updateGroup",
            "deleteGroup",
        ),
        "ServicePrincipals" => (
            "listServicePrincipals",
            "getServicePrincipal",
            "createServicePrincipal",
            "updateServicePrincipal",
            "deleteServicePrincipal",
        ),
        _ => return None,
    };
    let (action, audit) = match (m, item) {
        ("GET", false) => (read, list),
        ("GET", true) => (read, get),
        ("POST", false) => (manage, create),
        ("PUT" | "PATCH", true) => (manage, update),
        ("DELETE", true) => (manage, delete),
        _ => return None,
    };
    Some(r(action, resource, Control, "accounts", audit))
}

#[cfg(test)]
mod tests;
