//! Extractors: who is calling (from the verified assertion), and request bodies, paths and
//! query strings parsed into [`ControlError`]s rather than axum's plain-text rejections.

use super::AppState;
use crate::error::ControlError;
use crate::store::principals::{self, Group, Principal};
use crate::store::workspaces::{self, Workspace};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::request::Parts;
use lakeward_common::assertion::{IdentityClaims, PrincipalKind};
use lakeward_common::internal::{ADMINS_GROUP, USERS_GROUP};
use serde::de::DeserializeOwned;
use sqlx::AnyConnection;
use std::collections::HashMap;
use std::sync::Arc;

/// The verified assertion's claims, put in the request's extensions by the middleware.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Arc<IdentityClaims>);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        if parts.extensions.get::<RuntimeAssertion>().is_some() {
            // The runtime's key opens the data-plane routes only; elsewhere it is told, as
            // anyone is about routes hidden from them, that there is nothing here.
            return Err(not_found(parts));
        }
        Err(ControlError::Unauthenticated(
            "identity assertion missing".into(),
        ))
    }
}

/// The claims of an assertion verified with the data-plane key (always of kind
/// [`PrincipalKind::Runtime`]), put in the request's extensions by the middleware instead of a
/// [`Caller`].
#[derive(Debug, Clone)]
pub(crate) struct RuntimeAssertion(pub(crate) Arc<IdentityClaims>);

/// The runtime, calling the data-plane internal API with an assertion verified with the
/// data-plane key. Anyone else, the gateway included, is told these routes do not exist.
#[derive(Debug)]
pub(crate) struct RuntimeCaller;

impl<S: Send + Sync> FromRequestParts<S> for RuntimeCaller {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<RuntimeAssertion>() {
            // The middleware admits no other kind with this key; checked again so that the
            // rule holds here whatever the middleware becomes.
            Some(RuntimeAssertion(claims)) if claims.kind == PrincipalKind::Runtime => {
                Ok(RuntimeCaller)
            }
            _ => Err(not_found(parts)),
        }
    }
}

/// The gateway or the runtime: the internal routes both use (principal resolution and the
/// change feed).
#[derive(Debug)]
pub(crate) struct InternalCaller;

impl<S: Send + Sync> FromRequestParts<S> for InternalCaller {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.extensions.get::<RuntimeAssertion>().is_some() {
            RuntimeCaller::from_request_parts(parts, state).await?;
        } else {
            GatewayCaller::from_request_parts(parts, state).await?;
        }
        Ok(InternalCaller)
    }
}

/// 404 `ENDPOINT_NOT_FOUND` for a route hidden from this caller, worded like an unknown one.
fn not_found(parts: &Parts) -> ControlError {
    let path: String = parts.uri.path().chars().take(200).collect();
    ControlError::EndpointNotFound(format!("no API found for `{} {path}`", parts.method))
}

/// A user or service principal calling a workspace API: the assertion named a workspace, the
/// workspace exists, and the principal exists, is active and is a member of it.
#[derive(Debug)]
pub(crate) struct WorkspaceCaller {
    pub(crate) claims: Arc<IdentityClaims>,
    pub(crate) principal: Principal,
    pub(crate) groups: Vec<Group>,
    pub(crate) workspace: Workspace,
}

impl WorkspaceCaller {
    pub(crate) fn workspace_id(&self) -> i64 {
        self.workspace.workspace_id
    }

    fn in_group(&self, name: &str) -> bool {
        self.groups
            .iter()
            .any(|g| g.workspace_id == Some(self.workspace_id()) && g.display_name == name)
    }

    /// Defence in depth for admin-only APIs (the gateway's policy already decided): the caller
    /// must be in this workspace's `admins` group.
    pub(crate) fn require_admin(&self) -> Result<(), ControlError> {
        if self.in_group(ADMINS_GROUP) {
            Ok(())
        } else {
            Err(ControlError::PermissionDenied(
                "only workspace admins may use this API".into(),
            ))
        }
    }

    /// Who, and from where, for IP access list changes.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            principal_id: self.principal.id,
            client_ip: self.claims.client_ip.clone(),
        }
    }
}

impl FromRequestParts<AppState> for WorkspaceCaller {
    type Rejection = ControlError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        let workspace_id = claims.workspace_id.ok_or_else(|| {
            ControlError::InvalidParameter("this API is served on workspace hosts only".into())
        })?;
        let mut conn = state.store().conn().await?;
        let (principal, groups) = load_principal(&mut conn, &claims).await?;
        let workspace = workspaces::get(&mut conn, workspace_id)
            .await?
            .ok_or_else(|| {
                ControlError::NotFound(format!("workspace `{workspace_id}` does not exist"))
            })?;
        let caller = WorkspaceCaller {
            claims,
            principal,
            groups,
            workspace,
        };
        // The gateway admits only members; checked again so that a policy mistake there
        // does not open a workspace to the whole account.
        if !caller.in_group(USERS_GROUP) && !caller.in_group(ADMINS_GROUP) {
            return Err(ControlError::PermissionDenied(format!(
                "`{}` is not a member of workspace `{workspace_id}`",
                caller.principal.user_name
            )));
        }
        Ok(caller)
    }
}

/// An account admin calling an account API under `/api/2.0/accounts/{account_id}/`.
#[derive(Debug)]
pub(crate) struct AccountCaller {
    pub(crate) claims: Arc<IdentityClaims>,
    pub(crate) principal: Principal,
    pub(crate) account_id: String,
}

impl AccountCaller {
    /// Who, and from where, for IP access list changes.
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            principal_id: self.principal.id,
            client_ip: self.claims.client_ip.clone(),
        }
    }
}

impl FromRequestParts<AppState> for AccountCaller {
    type Rejection = ControlError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        let params = PathParams::from_request_parts(parts, state).await?;
        let requested = params.get("account_id")?;
        let account = state.account().await?;
        let account = match account {
            Some(account) if account.account_id == requested => account,
            _ => {
                return Err(ControlError::NotFound(format!(
                    "account `{requested}` does not exist"
                )))
            }
        };
        let mut conn = state.store().conn().await?;
        let (principal, groups) = load_principal(&mut conn, &claims).await?;
        // Defence in depth: the gateway's policy already required an account admin.
        if !groups
            .iter()
            .any(|g| g.workspace_id.is_none() && g.display_name == ADMINS_GROUP)
        {
            return Err(ControlError::PermissionDenied(
                "only account admins may use the account API".into(),
            ));
        }
        Ok(AccountCaller {
            claims,
            principal,
            account_id: account.account_id,
        })
    }
}

/// The gateway itself (with the control key). Anyone else is told the internal routes do not
/// exist.
#[derive(Debug)]
pub(crate) struct GatewayCaller;

impl<S: Send + Sync> FromRequestParts<S> for GatewayCaller {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Caller(claims) = Caller::from_request_parts(parts, state).await?;
        if claims.kind == PrincipalKind::Gateway {
            Ok(GatewayCaller)
        } else {
            Err(not_found(parts))
        }
    }
}

/// The principal an assertion names, with its groups.
async fn load_principal(
    conn: &mut AnyConnection,
    claims: &IdentityClaims,
) -> Result<(Principal, Vec<Group>), ControlError> {
    if !matches!(
        claims.kind,
        PrincipalKind::User | PrincipalKind::ServicePrincipal
    ) {
        return Err(ControlError::Unauthenticated(
            "this API needs a user or service principal".into(),
        ));
    }
    let unknown = || ControlError::Unauthenticated("the asserted principal does not exist".into());
    let id: i64 = claims.sub.parse().map_err(|_| unknown())?;
    let principal = principals::get(conn, id).await?.ok_or_else(unknown)?;
    if !principal.active {
        return Err(ControlError::PermissionDenied(format!(
            "`{}` is deactivated",
            principal.user_name
        )));
    }
    let groups = principals::groups_of(conn, principal.id).await?;
    Ok((principal, groups))
}

/// Who changes an IP access list, and the address the lockout guard checks.
#[derive(Debug, Clone)]
pub(crate) struct Actor {
    pub(crate) principal_id: i64,
    pub(crate) client_ip: String,
}

/// A JSON body parsed with serde, whose errors name the field at fault: `MALFORMED_REQUEST`
/// when it is not JSON, `INVALID_PARAMETER_VALUE` for a missing field or a wrong type. An
/// empty body reads as `{}`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ControlError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|e| ControlError::Malformed(format!("request body unreadable: {e}")))?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// See [`JsonBody`].
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ControlError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // PostgreSQL's TEXT cannot hold NUL, so a NUL would surface as a store error (a 500).
    // Valid JSON can only carry one escaped, so looking for the escape is enough.
    if contains_nul_escape(bytes) {
        return Err(ControlError::InvalidParameter(
            "text must not contain NUL characters".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let classified = inner.classify();
        let message = strip_position(&inner.to_string());
        match classified {
            serde_json::error::Category::Data if path == "." => {
                ControlError::InvalidParameter(message)
            }
            serde_json::error::Category::Data => {
                ControlError::InvalidParameter(format!("invalid value for `{path}`: {message}"))
            }
            _ => ControlError::Malformed(format!("malformed JSON body: {message}")),
        }
    })?;
    de.end()
        .map_err(|e| ControlError::Malformed(format!("malformed JSON body: {e}")))?;
    Ok(value)
}

fn contains_nul_escape(bytes: &[u8]) -> bool {
    bytes
        .windows(6)
        .any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].iter().all(|b| *b == b'0'))
}

/// serde_json's messages end in " at line L column C", which is noise for a one-line body.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// The route's path parameters, by name.
#[derive(Debug)]
pub(crate) struct PathParams(HashMap<String, String>);

impl PathParams {
    /// Whether the route has the parameter `name`.
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The parameter `name`; the route table guarantees it is there.
    pub(crate) fn get(&self, name: &str) -> Result<String, ControlError> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| ControlError::Internal(format!("route has no `{name}` parameter")))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ControlError::InvalidParameter("invalid path parameter".into()))?;
        if raw.iter().any(|(_, v)| v.contains('\0')) {
            return Err(ControlError::InvalidParameter(
                "path parameters must not contain NUL characters".into(),
            ));
        }
        Ok(PathParams(
            raw.iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ))
    }
}

/// The query string as a map (the last value of a repeated key wins).
#[derive(Debug, Default)]
pub(crate) struct QueryParams(pub(crate) HashMap<String, String>);

impl QueryParams {
    /// A parameter, with an empty value read as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// An integer parameter; a non-integer is an error naming it.
    pub(crate) fn get_i64(&self, name: &str) -> Result<Option<i64>, ControlError> {
        self.get(name)
            .map(|v| {
                v.trim().parse().map_err(|_| {
                    ControlError::InvalidParameter(format!("`{name}` must be an integer"))
                })
            })
            .transpose()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ControlError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(map) = Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .map_err(|_| ControlError::InvalidParameter("invalid query string".into()))?;
        if map.values().any(|v| v.contains('\0')) {
            return Err(ControlError::InvalidParameter(
                "query parameters must not contain NUL characters".into(),
            ));
        }
        Ok(QueryParams(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Body {
        label: String,
        count: Option<i64>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[expect(dead_code, reason = "fields exist to be deserialized")]
    struct Inner {
        value: bool,
    }

    fn message(err: ControlError) -> (String, String) {
        let api = err.to_api_error();
        (api.code.as_str().to_owned(), api.message)
    }

    #[test]
    fn errors_name_the_field() {
        let err = parse_json::<Body>(br#"{"count": 1}"#).unwrap_err();
        assert_eq!(
            message(err),
            (
                "INVALID_PARAMETER_VALUE".into(),
                "missing field `label`".into()
            )
        );
        let err = parse_json::<Body>(br#"{"label": "x", "count": "many"}"#).unwrap_err();
        let (code, msg) = message(err);
        assert_eq!(code, "INVALID_PARAMETER_VALUE");
        assert!(msg.contains("`count`"), "{msg}");
        let err = parse_json::<Body>(br#"{"label": "x", "inner": {"value": 3}}"#).unwrap_err();
        assert!(message(err).1.contains("`inner.value`"));
        let err = parse_json::<Body>(br#"{"label": "x", "inner": {}}"#).unwrap_err();
        let (_, msg) = message(err);
        assert!(msg.contains("inner") && msg.contains("value"), "{msg}");
    }

    #[test]
    fn nul_characters_are_refused() {
        let err = parse_json::<Body>(br#"{"label": "a\u0000b"}"#).unwrap_err();
        assert_eq!(message(err).0, "INVALID_PARAMETER_VALUE");
        assert!(parse_json::<Body>(br#"{"label": "a\u0001b"}"#).is_ok());
    }

    #[test]
    fn malformed_and_empty_bodies() {
        let err = parse_json::<Body>(br#"{"label": "#).unwrap_err();
        assert_eq!(message(err).0, "MALFORMED_REQUEST");
        let err = parse_json::<Body>(br#"{"label": "x"} trailing"#).unwrap_err();
        assert_eq!(message(err).0, "MALFORMED_REQUEST");
        let empty: HashMap<String, String> = parse_json(b"  ").unwrap();
        assert!(empty.is_empty());
        let err = parse_json::<Body>(b"[]").unwrap_err();
        assert_eq!(message(err).0, "INVALID_PARAMETER_VALUE");
    }
}
