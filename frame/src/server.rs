//! What a service's HTTP side is built from (feature `server`).
//!
//! A request's life in a service built on the frame: [`AssertionCheck`] (a tower layer)
//! verifies the identity assertion, answering 401 when it does not, and leaves [`Verified`] in
//! the request's extensions; the service's own extractors turn that into its caller (and
//! refuse what the caller may not reach); bodies and parameters are read with [`JsonBody`],
//! [`JsonObject`], [`PathParams`] and [`QueryParams`], whose rejections are Databricks errors;
//! handlers return the service's typed error, which it converts into an
//! [`ApiError`](lakeward_common::error::ApiError) and hands to [`error_response`].

mod assertion;
mod body;
mod params;
mod response;
pub mod routes;

pub use assertion::{AssertionCheck, AssertionService, Verified};
pub use body::{parse_json, parse_object, BodyError, JsonBody, JsonObject};
pub use params::{ParamError, PathParams, QueryParams};
pub use response::{error_response, json_response, ErrorResponse};
pub use routes::{RouteEntry, Routes};
