//! Integration tests of the gateway: a real TLS listener, mock upstreams that record what
//! reaches them, and HTTPS clients from several loopback addresses. See `harness.rs`.
#![expect(
    clippy::unwrap_used,
    reason = "test harness and mocks: a failed setup step should fail the test at once"
)]

mod harness;
mod mock;

mod audit;
mod authn;
mod authz;
mod change_feed;
mod forwarding;
mod hardening_auth;
mod hardening_conn;
mod limits;
mod operations;
mod overload;
mod ratelimit;
mod routing;
