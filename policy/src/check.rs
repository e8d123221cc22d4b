//! What `lakeward policy check` and `lakeward policy validate` need: decisions on hand-written
//! requests in Cedar's own syntax, and a summary of a policy directory.

use crate::error::{chain, PolicyError, PolicyWarning};
use crate::policy_set::{Decision, PolicyBundle};
use cedar_policy::{Context, Entities, EntityUid, Request};
use serde::Serialize;
use std::path::Path;
use std::str::FromStr;

/// Decides a request written in Cedar syntax, e.g. principal `Lakeward::User::"1"`, action
/// `Lakeward::Action::"CreateToken"`.
///
/// `context_json` is a JSON object and `entities_json` a JSON array in Cedar's entity format;
/// both are checked against the schema (the `__entity`/`__extn` escapes may be left implicit,
/// e.g. `"clientIp": "10.0.0.1"`). An absent context is an empty object, which the shipped
/// schema rejects naming the first required field; absent entities are none. Action entities
/// come from the schema and need not be given.
///
/// Unlike [`PolicyBundle::authorize`], bad input is an error rather than a deny, so the CLI can
/// tell a typo from a decision.
pub fn check(
    bundle: &PolicyBundle,
    principal: &str,
    action: &str,
    resource: &str,
    context_json: Option<&str>,
    entities_json: Option<&str>,
) -> Result<Decision, PolicyError> {
    let schema = bundle.schema();
    let parse_uid = |what, input: &str| {
        EntityUid::from_str(input).map_err(|e| PolicyError::invalid_input(what, input, chain(&e)))
    };
    let principal = parse_uid("principal", principal)?;
    let action_uid = parse_uid("action", action)?;
    let resource = parse_uid("resource", resource)?;
    if !schema.actions().any(|a| *a == action_uid) {
        return Err(PolicyError::invalid_input(
            "action",
            action,
            "the schema declares no such action",
        ));
    }
    // Parsing even an absent context against the schema names the first missing field, where
    // `Request::new` would only say the context is invalid.
    let json = context_json.unwrap_or("{}");
    let context = Context::from_json_str(json, Some((schema, &action_uid)))
        .map_err(|e| PolicyError::invalid_input("context", json, chain(&e)))?;
    let entities = match entities_json {
        Some(json) => Entities::from_json_str(json, Some(schema))
            .map_err(|e| PolicyError::invalid_input("entities", json, chain(&e)))?,
        None => Entities::from_entities([], Some(schema))
            .map_err(|e| PolicyError::invalid_input("entities", "[]", chain(&e)))?,
    };
    let request = Request::new(principal, action_uid, resource, context, Some(schema))
        .map_err(|e| PolicyError::InvalidRequest(chain(&e)))?;
    Ok(bundle.decide(&request, &entities))
}

/// The summary `lakeward policy validate` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationReport {
    /// How many policies the directory holds.
    pub policy_count: usize,
    /// The bundle version ([`PolicyBundle::version`]).
    pub version: String,
    /// Validation warnings, which do not fail validation.
    pub warnings: Vec<PolicyWarning>,
}

/// Loads and validates a policy directory without keeping the bundle.
pub fn validate_dir(dir: &Path) -> Result<ValidationReport, Vec<PolicyError>> {
    let bundle = PolicyBundle::load_dir(dir)?;
    Ok(ValidationReport {
        policy_count: bundle.policy_count(),
        version: bundle.version().to_owned(),
        warnings: bundle.warnings().to_vec(),
    })
}

#[cfg(test)]
mod tests;
