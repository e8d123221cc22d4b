//! Types and small pure functions shared by the gateway (`proxy`), the control plane (`control`)
//! and the data plane (`runtime`). These three crates never import each other; they meet over
//! HTTP, and this crate is the whole of what they agree on:
//!
//! - [`assertion`]: the short-lived identity assertion the gateway adds to every forwarded call
//!   and the upstreams verify before doing anything;
//! - [`error`]: Databricks' error JSON (`error_code`, `message`) and its status codes;
//! - [`token`]: personal access token generation and hashing (tokens are stored only as hashes);
//! - [`jwt_crypto`]: jsonwebtoken's signing and verification on ring, installed before any
//!   JWT is handled;
//! - [`internal`]: the wire types of the control plane's internal API that the gateway uses to
//!   resolve tokens, principals, workspaces and IP access lists.
//!
//! **Architecture Invariant:** no I/O here and no async runtime; everything is a pure function
//! of its inputs, so every service can call it on any thread.

pub mod assertion;
pub mod data;
pub mod error;
pub mod internal;
pub mod jwt_crypto;
pub mod token;
