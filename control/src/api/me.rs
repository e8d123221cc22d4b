//! `GET /api/2.0/preview/scim/v2/Me`: the caller as a SCIM user.

use super::extract::WorkspaceCaller;
use super::scim::{groups_json, Directory};
use crate::store::directory::{Group, Principal};
use axum::response::{IntoResponse, Response};
use axum::Json;
use lakeward_common::assertion::PrincipalKind;
use serde_json::{json, Value};

/// The SCIM schema of a workspace user.
pub(crate) const USER_SCHEMAS: [&str; 2] = [
    "urn:ietf:params:scim:schemas:core:2.0:User",
    "urn:ietf:params:scim:schemas:extension:workspace:2.0:User",
];

/// A principal as a SCIM user of `directory`, with its groups there (see
/// [`Directory::shown_groups`]).
pub(crate) fn user_json(p: &Principal, groups: &[Group], directory: Directory) -> Value {
    let mut user = json!({
        "id": p.id.to_string(),
        "userName": p.user_name,
        "displayName": p.display_name,
        "active": p.active,
        "groups": groups_json(groups, directory),
        "entitlements": [],
        "schemas": USER_SCHEMAS,
    });
    if p.kind == PrincipalKind::ServicePrincipal {
        user["applicationId"] = json!(p.application_id.clone().unwrap_or_default());
        user["emails"] = json!([]);
    } else {
        user["emails"] = json!([{ "value": p.user_name, "type": "work", "primary": true }]);
    }
    user
}

/// The caller, with the groups of this workspace and of the account. The
/// `X-Databricks-Org-Id` header carries the workspace id: the SDK's `get_workspace_id()` reads
/// it from this call.
pub(crate) async fn me(caller: WorkspaceCaller) -> Response {
    let workspace_id = caller.workspace_id();
    let user = user_json(
        &caller.principal,
        &caller.groups,
        Directory::Workspace(workspace_id),
    );
    (
        [("x-databricks-org-id", workspace_id.to_string())],
        Json(user),
    )
        .into_response()
}
