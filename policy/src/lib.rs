//! Lakeward's authorization core: loads and validates the Cedar schema and policies the gateway
//! decides with, turns what the gateway knows about a request into a Cedar request and entity
//! set, decides it, and evaluates Databricks-style IP access lists. Cedar types stay inside this
//! crate; callers see [`PolicyBundle`], [`AuthzRequest`], [`Decision`] and [`IpAccessPolicy`].
//!
//! **Architecture invariant:** this crate is pure. The only I/O is reading the policy directory
//! in [`PolicyBundle::load_dir`] (and [`validate_dir`]); there is no async runtime, network or
//! global state, and a decision is a function of (request, entities, policy set) alone. It
//! depends on no other workspace crate.

mod check;
mod context;
mod data;
mod decision_cache;
mod entity_store;
mod error;
mod ip_access;
mod load;
mod policy_set;
mod quick_hash;
mod request;
mod schema_actions;
mod scope_index;
#[cfg(test)]
mod test_policies;
#[cfg(test)]
mod test_rng;
mod validation;

pub use check::{check, validate_dir, ValidationReport};
pub use data::{DataAuthzRequest, Securable};
pub use error::{PolicyError, PolicyWarning};
pub use ip_access::{
    parse_entry, parse_network, IpAccessPolicy, IpNet, IpVerdict, Ipv4Net, ListKind,
};
pub use policy_set::{Decision, Evaluation, PolicyBundle};
pub use request::{AuthzRequest, PrincipalInput, PrincipalKind, ResourceInput};
pub use schema_actions::{schema_actions, ActionKind, SchemaAction};
