//! The service frame: the HTTP plumbing every Lakeward service shares, so that a new service is
//! a router, its handlers and a store module, and nothing else.
//!
//! - [`server`] (feature `server`, axum): the identity-assertion check as a tower layer
//!   ([`server::AssertionCheck`]) and the verified caller it leaves in the request
//!   ([`server::Verified`]); request bodies, path and query parameters read into Databricks
//!   errors ([`server::JsonBody`], [`server::JsonObject`], [`server::PathParams`],
//!   [`server::QueryParams`]); and the one way an [`ApiError`] becomes a response
//!   ([`server::ErrorResponse`], [`server::error_response`]).
//! - [`client`] (feature `client`, hyper-util): the one client for service-to-service calls
//!   ([`client::InternalClient`]): a deadline per call, a cap on what a response may make us
//!   read, the assertion header signed per call, and retries with jittered backoff where a
//!   retry cannot repeat a change.
//! - [`backoff`]: the backoff policy, shared by the client's retries and every reconnect loop.
//!
//! Services keep their own typed errors (thiserror) and turn them into an [`ApiError`], which the
//! frame turns into a response: the error *body* is decided in one place for every service.
//!
//! Why a crate of its own rather than a module of `lakeward-common`: the server side needs axum
//! and the client side hyper-util, and `common` stays free of both (the policy engine and
//! the gateway's hot path depend on it). The two features keep a client-only crate from
//! building axum.
//!
//! [`ApiError`]: lakeward_common::error::ApiError

pub mod backoff;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod server;
