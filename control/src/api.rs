//! The HTTP API: the route table, and the one middleware every request goes through.
//!
//! A request's life: the frame's [`AssertionCheck`] verifies the identity assertion with the
//! control key or the data-plane key (401 and nothing else when it does not) and stores the
//! claims in the request's extensions; [`admit`] keeps the data-plane key to the runtime and
//! its routes; the route's extractors ([`extract`]) turn the claims into a caller (a
//! workspace member, an account admin, the gateway, or the runtime on the data-plane
//! routes), refusing what the caller may not reach; the handler runs, with any write in one
//! store transaction; on the way out [`stamp_version`] puts the store's state version on the
//! response, whatever it is (401s, errors and 404s included).

mod account_settings;
mod data;
mod extract;
mod internal;
mod ip_lists;
mod lockout;
mod me;
mod permissions;
mod scim;
mod tokens;
mod workspace_conf;
mod workspaces;

#[cfg(test)]
mod tests;

use crate::config::Config;
use crate::error::ControlError;
use crate::store::{self, Store};
use crate::ControlKeys;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use lakeward_common::assertion::{Audience, PrincipalKind};
use lakeward_common::data as data_wire;
use lakeward_common::internal::{self as wire, STATE_VERSION_HEADER};
use lakeward_frame::server::routes::{get, patch, post};
use lakeward_frame::server::Routes;
use lakeward_frame::server::{AssertionCheck, Verified};
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;
use tracing::Instrument;

/// What every handler shares.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<Store>,
    keys: ControlKeys,
    config: Config,
    /// The account id never changes once bootstrapped, so it is read once.
    account: OnceLock<store::accounts::Account>,
    /// Set when the server begins a graceful shutdown, so long-polls answer at once.
    shutdown: watch::Sender<bool>,
}

impl AppState {
    pub(crate) fn new(store: Arc<Store>, keys: ControlKeys, config: Config) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                store,
                keys,
                config,
                account: OnceLock::new(),
                shutdown: watch::channel(false).0,
            }),
        }
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Ends pending long-polls; called when graceful shutdown starts.
    pub(crate) fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// The account, if bootstrap has run (on this replica or another).
    pub(crate) async fn account(&self) -> Result<Option<store::accounts::Account>, ControlError> {
        if let Some(account) = self.inner.account.get() {
            return Ok(Some(account.clone()));
        }
        let mut conn = self.store().conn().await?;
        let account = store::accounts::get(&mut conn).await?;
        if let Some(account) = &account {
            let _ = self.inner.account.set(account.clone());
        }
        Ok(account)
    }
}

/// The route table. Paths follow Databricks' (reference sections 2.1-2.5, 2.13-2.15),
/// `lakeward_common::internal` and `lakeward_common::data`.
pub(crate) fn routes() -> Routes<AppState> {
    let accounts = "/api/2.0/accounts/{account_id}";
    Routes::new()
        .route("/api/2.0/preview/scim/v2/Me", get(me::me))
        // SCIM, the workspace's directory and the account's: the same handlers, which take
        // the directory from the route (see `scim::ScimCaller`).
        .route(
            "/api/2.0/preview/scim/v2/Users",
            get(scim::users::list).post(scim::users::create),
        )
        .route(
            "/api/2.0/preview/scim/v2/Users/{id}",
            get(scim::users::get)
                .put(scim::users::replace)
                .patch(scim::users::patch)
                .delete(scim::users::delete),
        )
        .route(
            "/api/2.0/preview/scim/v2/ServicePrincipals",
            get(scim::service_principals::list).post(scim::service_principals::create),
        )
        .route(
            "/api/2.0/preview/scim/v2/ServicePrincipals/{id}",
            get(scim::service_principals::get)
                .put(scim::service_principals::replace)
                .patch(scim::service_principals::patch)
                .delete(scim::service_principals::delete),
        )
        .route(
            "/api/2.0/preview/scim/v2/Groups",
            get(scim::groups::list).post(scim::groups::create),
        )
        .route(
            "/api/2.0/preview/scim/v2/Groups/{id}",
            get(scim::groups::get)
                .put(scim::groups::replace)
                .patch(scim::groups::patch)
                .delete(scim::groups::delete),
        )
        .route(
            &format!("{accounts}/scim/v2/Users"),
            get(scim::users::list).post(scim::users::create),
        )
        .route(
            &format!("{accounts}/scim/v2/Users/{{id}}"),
            get(scim::users::get)
                .put(scim::users::replace)
                .patch(scim::users::patch)
                .delete(scim::users::delete),
        )
        .route(
            &format!("{accounts}/scim/v2/ServicePrincipals"),
            get(scim::service_principals::list).post(scim::service_principals::create),
        )
        .route(
            &format!("{accounts}/scim/v2/ServicePrincipals/{{id}}"),
            get(scim::service_principals::get)
                .put(scim::service_principals::replace)
                .patch(scim::service_principals::patch)
                .delete(scim::service_principals::delete),
        )
        .route(
            &format!("{accounts}/scim/v2/Groups"),
            get(scim::groups::list).post(scim::groups::create),
        )
        .route(
            &format!("{accounts}/scim/v2/Groups/{{id}}"),
            get(scim::groups::get)
                .put(scim::groups::replace)
                .patch(scim::groups::patch)
                .delete(scim::groups::delete),
        )
        // Personal access tokens, for the caller's own tokens.
        .route("/api/2.0/token/create", post(tokens::create))
        .route("/api/2.0/token/list", get(tokens::list))
        .route("/api/2.0/token/delete", post(tokens::delete))
        .route("/api/2.0/token/{token_id}", patch(tokens::update))
        // Token management, workspace admins only.
        .route("/api/2.0/token-management/tokens", get(tokens::admin_list))
        .route(
            "/api/2.0/token-management/tokens/{token_id}",
            get(tokens::admin_get)
                .delete(tokens::admin_delete)
                .patch(tokens::admin_update),
        )
        .route(
            "/api/2.0/token-management/on-behalf-of/tokens",
            post(tokens::create_on_behalf_of),
        )
        // Permissions: token usage, then every other object type.
        .route(
            "/api/2.0/permissions/authorization/tokens",
            get(permissions::get_tokens)
                .put(permissions::set_tokens)
                .patch(permissions::update_tokens),
        )
        .route(
            "/api/2.0/permissions/authorization/tokens/permissionLevels",
            get(permissions::token_levels),
        )
        .route(
            "/api/2.0/permissions/warehouses/{warehouse_id}",
            get(permissions::get_warehouse)
                .put(permissions::set_warehouse)
                .patch(permissions::update_warehouse),
        )
        .route(
            "/api/2.0/permissions/warehouses/{warehouse_id}/permissionLevels",
            get(permissions::warehouse_levels),
        )
        .route(
            "/api/2.0/permissions/{object_type}/{object_id}",
            get(permissions::get_object)
                .put(permissions::set_object)
                .patch(permissions::set_object),
        )
        .route(
            "/api/2.0/permissions/{object_type}/{object_id}/permissionLevels",
            get(permissions::get_object),
        )
        // Workspace IP access lists and settings.
        .route(
            "/api/2.0/ip-access-lists",
            get(ip_lists::workspace_list).post(ip_lists::workspace_create),
        )
        .route(
            "/api/2.0/ip-access-lists/{list_id}",
            get(ip_lists::workspace_get)
                .patch(ip_lists::workspace_update)
                .put(ip_lists::workspace_replace)
                .delete(ip_lists::workspace_delete),
        )
        .route(
            "/api/2.0/workspace-conf",
            get(workspace_conf::get_conf).patch(workspace_conf::set_conf),
        )
        // Account administration.
        .route(
            &format!("{accounts}/workspaces"),
            get(workspaces::list).post(workspaces::create),
        )
        .route(
            &format!("{accounts}/workspaces/{{workspace_id}}"),
            get(workspaces::get)
                .patch(workspaces::update)
                .delete(workspaces::delete),
        )
        .route(
            &format!("{accounts}/ip-access-lists"),
            get(ip_lists::account_list).post(ip_lists::account_create),
        )
        .route(
            &format!("{accounts}/ip-access-lists/{{list_id}}"),
            get(ip_lists::account_get)
                .patch(ip_lists::account_update)
                .put(ip_lists::account_replace)
                .delete(ip_lists::account_delete),
        )
        .route(
            &format!("{accounts}/settings/types/acct_ip_acl_enable/names/default"),
            get(account_settings::get)
                .patch(account_settings::update)
                .delete(account_settings::delete),
        )
        // The gateway's internal API.
        .route(wire::SNAPSHOT_PATH, get(internal::snapshot))
        .route(wire::RESOLVE_TOKEN_PATH, post(internal::resolve_token))
        .route(
            wire::RESOLVE_PRINCIPAL_PATH,
            post(internal::resolve_principal),
        )
        .route(wire::CHANGES_PATH, get(internal::changes))
        .route(wire::READY_PATH, get(internal::ready))
        // The runtime's internal API (`lakeward_common::data`).
        .route(data_wire::CATALOG_PATH, get(data::catalog))
        .route(data_wire::CATALOG_CHANGE_PATH, post(data::change_catalog))
        .route(
            data_wire::WAREHOUSES_PATH,
            get(data::list_warehouses).post(data::create_warehouse),
        )
        .route(
            &format!("{}{{warehouse_id}}", data_wire::WAREHOUSE_PATH_PREFIX),
            get(data::get_warehouse).put(data::update_warehouse),
        )
        .route(data_wire::POLICIES_PATH, get(data::policies))
}

/// The routes, behind the assertion check and the state-version stamp.
pub(crate) fn router(state: AppState) -> Router {
    routes()
        .into_router()
        .fallback(no_route)
        // A known path with another method is as unknown to the client as any other path
        // (and says nothing about which internal routes exist).
        .method_not_allowed_fallback(no_route)
        // Layers run from the last added: the state version goes on every response, the
        // assertion is checked before anything else looks at the request.
        .layer(axum::middleware::from_fn(admit))
        .layer(
            AssertionCheck::new(state.inner.keys.control.clone())
                .or_key(state.inner.keys.data_plane.clone()),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            stamp_version,
        ))
        .with_state(state)
}

/// 404 `ENDPOINT_NOT_FOUND` for anything the table does not route.
async fn no_route(method: Method, uri: Uri) -> ControlError {
    ControlError::no_route(&method, &uri)
}

/// Whether the runtime may reach `path`: the data-plane routes, and the principal resolution
/// and change feed it shares with the gateway.
fn runtime_route(path: &str) -> bool {
    path.starts_with("/internal/v1/data/")
        || path == wire::RESOLVE_PRINCIPAL_PATH
        || path == wire::CHANGES_PATH
}

/// Admits a verified request: an assertion of the data-plane key must name the runtime (that
/// key is for nothing else) and goes no further than the runtime's routes, whatever a handler
/// extracts. Runs the request in a span naming it.
async fn admit(request: Request, next: Next) -> Response {
    let Some(verified) = request.extensions().get::<Verified>().cloned() else {
        // The assertion check runs first and lets nothing unverified through; should that
        // change, fail closed.
        return ControlError::Unauthenticated("identity assertion missing".into()).into_response();
    };
    let claims = verified.claims();
    if verified.audience() == Audience::DataPlane {
        if claims.kind != PrincipalKind::Runtime {
            let reason =
                "identity assertion invalid: the data-plane key signs for the runtime only";
            tracing::info!(reason, path = %request.uri().path(), "unauthenticated request refused");
            return ControlError::Unauthenticated(reason.into()).into_response();
        }
        if !runtime_route(request.uri().path()) {
            return ControlError::no_route(request.method(), request.uri()).into_response();
        }
    }
    let span = tracing::info_span!(
        "control_request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %claims.request_id,
        principal = %claims.sub,
    );
    next.run(request).instrument(span).await
}

/// Runs the request and puts the store's state version on the response.
async fn stamp_version(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    // Read from the store, not from memory: another replica may have moved it on.
    let version = match state.store().version().await {
        Ok(version) => version,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the state version");
            state.store().known_version()
        }
    };
    response
        .headers_mut()
        .insert(STATE_VERSION_HEADER, HeaderValue::from(version));
    response
}
