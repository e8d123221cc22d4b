//! HTTP-level tests: each drives the router (in process, with `tower::ServiceExt::oneshot`,
//! or over a real socket in `lifecycle`) with signed assertions, on SQLite and on PostgreSQL.

mod account;
mod auth;
mod data;
mod fanout;
mod internal;
mod ip_lists;
mod lifecycle;
mod permissions;
mod scim;
mod scim_account;
mod tokens;
mod warehouse_permissions;
mod workspace_conf;
