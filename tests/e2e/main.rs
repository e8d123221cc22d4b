//! End-to-end tests: one binary, one module per area. Every test starts its own Lakeward (in
//! `runtime`, its own control plane and runtime) in a temporary directory on free ports, so
//! tests run in parallel.

mod gateway;
mod identity;
mod lake_s3;
mod replicas;
mod routes;
mod runtime;
mod sdk;
