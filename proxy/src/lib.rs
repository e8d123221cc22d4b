//! Lakeward's gateway: a policy-enforcing TLS front door for the control plane and the
//! data-plane runtime. It terminates TLS (rustls; HTTP/1.1 and HTTP/2 by ALPN), runs every
//! request through a fixed pipeline of stages, and forwards allowed calls over plain HTTP on
//! loopback with a signed identity assertion the upstreams verify.
//!
//! The pipeline (`pipeline` draws it), one module per stage, in this order:
//!
//! 0. `shedding`: the in-flight bound, before any work;
//! 1. `admission`: limits, framing, path normalization, bounded body read;
//! 2. `client_addr`: the TCP peer, or the trusted proxies' `X-Forwarded-For` hop;
//! 3. `workspace`: the workspace or account addressed (Host/SNI, `/w/<id>`, default);
//! 4. `ip_acl`: Databricks IP access lists, compiled once per snapshot;
//! 5. `authn`: personal access tokens and OIDC JWTs, with `ratelimit` around it (the
//!    failed-authentication throttle before, the request limits after; counters in `limits`);
//! 6. `authz`: the route table (`route`) and Cedar (`lakeward_policy`);
//! 7. `forward`: header hygiene, assertion, upstream call, cache freshness;
//! 8. `audit` and 9. `metrics`, written by the outermost layer (`observe`), which is
//!    also the one place errors become responses (`error`).
//!
//! Imports run one way: every stage imports only what lies below it (the leaf `exchange`,
//! with the exchange, its bodies and the `Stage` trait; `ctx`; `shared` services; its own
//! error). `pipeline` composes the stages, `error` unites their errors, and the gateway,
//! which builds the stack, puts `observe` around the pipeline.
//!
//! **Architecture invariants:** no route skips a stage; nothing is forwarded without an allow
//! decision; the upstreams trust only the assertion, so every incoming `x-lakeward-*` header
//! and `Authorization` are removed before forwarding (and so are client-written
//! `X-Forwarded-*`-style and method-override headers; underscored header names are refused);
//! when the control plane cannot be reached the gateway refuses (503), it never guesses.
//!
//! **API boundary:** [`Config`], [`Gateway`] and [`GatewayDeps`]; everything else is private.

mod admin;
mod admission;
mod audit;
mod authn;
mod authz;
mod client_addr;
mod config;
mod control;
mod ctx;
mod error;
mod exchange;
mod forward;
mod gateway;
mod ip_acl;
mod limits;
mod metrics;
mod observe;
mod pipeline;
mod policy_store;
mod ratelimit;
mod redis_target;
mod route;
mod server;
mod shared;
mod shedding;
mod state;
#[cfg(feature = "test-util")]
pub mod test_util;
mod tls;
mod untrusted_headers;
mod upstream;
mod well_known;
mod workspace;

pub use config::{
    Config, FailMode, LimitPer, Limits, OidcIssuer, Overload, Quota, RateLimitRule, RateLimits,
    RulesFile, MAX_CLOCK_SKEW_SECS,
};
pub use gateway::{Gateway, GatewayDeps};
