//! Strict validation of a parsed policy set against its schema.
//!
//! Cedar's validator type-checks every policy once per request environment of the schema
//! (each action with each principal and resource type it applies to: 142 for the shipped
//! schema), whatever the policy's scope. For a policy whose scope names its actions that is
//! mostly wasted: in the environment of another action the scope's action test is false, and
//! the type checker stops there. With 10,000 such policies it made loading take 4.4 s.
//!
//! So policies are grouped by the actions their scope can match, and a large enough group is
//! validated against the same schema with every other action's `appliesTo` removed: the same
//! entity types, actions and action hierarchy, only without the environments in which the
//! group's policies cannot apply. What Cedar reports for a policy in an environment its scope
//! rules out is nothing: the principal test comes first and cannot fail to type-check (the
//! types and entities it names are checked once per policy, not per environment), and the
//! action test is typed false, so the rest is not checked, and such an environment neither
//! errs nor counts for "this policy applies to nothing". A group whose reduced validation
//! reports any error is validated again against the whole schema, so that the errors
//! reported are always exactly Cedar's own. The tests compare with Cedar's validation of the
//! whole set against the whole schema.

use crate::error::{Located, PolicyError, PolicyWarning};
use crate::load::Parsed;
use cedar_policy::ffi::DetailedError;
use cedar_policy::{
    ActionConstraint, EntityUid, Policy, PolicySet, Schema, SchemaFragment, ValidationMode,
    ValidationResult, Validator,
};
use std::collections::{BTreeSet, HashMap, HashSet};

/// Building a reduced schema costs about as much as type-checking a few thousand
/// (policy, environment) pairs; a group is validated apart only when it saves more.
const SAVING_WORTH_A_SCHEMA: usize = 2_000;

/// Strict validation, each diagnostic mapped back to the file its policy came from.
pub(crate) fn validate(
    schema: &Schema,
    schema_text: &str,
    parsed: &Parsed<'_>,
    errors: &mut Vec<PolicyError>,
    warnings: &mut Vec<PolicyWarning>,
) {
    let results = validate_grouped(schema, schema_text, &parsed.set, SAVING_WORTH_A_SCHEMA);
    report(&results, parsed, errors, warnings);
}

fn report(
    results: &[ValidationResult],
    parsed: &Parsed<'_>,
    errors: &mut Vec<PolicyError>,
    warnings: &mut Vec<PolicyWarning>,
) {
    let type_errors = results
        .iter()
        .flat_map(ValidationResult::validation_errors)
        .flat_map(|e| parsed.locate(e.policy_id(), DetailedError::from(e)));
    errors.extend(
        fold_same_position(type_errors.collect())
            .into_iter()
            .map(PolicyError::from),
    );
    let type_warnings = results
        .iter()
        .flat_map(ValidationResult::validation_warnings)
        .flat_map(|w| parsed.locate(w.policy_id(), DetailedError::from(w)));
    warnings.extend(
        fold_same_position(type_warnings.collect())
            .into_iter()
            .map(PolicyWarning::from),
    );
}

/// The validation results of `set`, in groups; `worth` is the saving (in type checks) that
/// warrants a reduced schema (0 in tests: every group apart).
pub(crate) fn validate_grouped(
    schema: &Schema,
    schema_text: &str,
    set: &PolicySet,
    worth: usize,
) -> Vec<ValidationResult> {
    let actions = ActionTable::new(schema);
    let mut groups: HashMap<BTreeSet<EntityUid>, Vec<&Policy>> = HashMap::new();
    let mut rest: Vec<&Policy> = Vec::new();
    for policy in set.policies() {
        match actions.matched_by(policy) {
            Some(matched) => groups.entry(matched).or_default().push(policy),
            None => rest.push(policy),
        }
    }
    let mut apart: Vec<(BTreeSet<EntityUid>, Vec<&Policy>)> = Vec::new();
    for (matched, policies) in groups {
        let kept: usize = matched.iter().map(|a| actions.envs_of(a)).sum();
        let saving = policies.len() * actions.total_envs.saturating_sub(kept);
        if saving >= worth && saving > 0 {
            apart.push((matched, policies));
        } else {
            rest.extend(policies);
        }
    }
    let whole = Validator::new(schema.clone());
    let mut results = Vec::with_capacity(apart.len() + 1);
    if !rest.is_empty() {
        results.push(whole.validate(&set_of(&rest), ValidationMode::Strict));
    }
    let fragment = (!apart.is_empty())
        .then(|| SchemaFragment::from_cedarschema_str(schema_text).ok())
        .flatten()
        .and_then(|(fragment, _)| fragment.to_json_value().ok());
    for (matched, policies) in apart {
        let group = set_of(&policies);
        let reduced = fragment
            .as_ref()
            .and_then(|json| reduced_schema(json, &matched))
            .map(|s| Validator::new(s).validate(&group, ValidationMode::Strict));
        match reduced {
            Some(result) if result.validation_errors().next().is_none() => results.push(result),
            // Errors, or no reduced schema: Cedar's own verdict, against the whole schema.
            _ => results.push(whole.validate(&group, ValidationMode::Strict)),
        }
    }
    results
}

fn set_of(policies: &[&Policy]) -> PolicySet {
    let mut set = PolicySet::new();
    for policy in policies {
        // Cannot fail: the ids are distinct, they all come from one set.
        let _ = set.add((*policy).clone());
    }
    set
}

/// The schema's actions: which each action group holds, and how many request environments
/// each action has.
struct ActionTable {
    /// Every action, with itself, for each action (group) of the schema.
    within: HashMap<EntityUid, HashSet<EntityUid>>,
    envs: HashMap<EntityUid, usize>,
    total_envs: usize,
}

impl ActionTable {
    fn new(schema: &Schema) -> Self {
        let mut within: HashMap<EntityUid, HashSet<EntityUid>> = HashMap::new();
        let declared: Vec<EntityUid> = schema.actions().cloned().collect();
        if let Ok(entities) = schema.action_entities() {
            for action in &declared {
                within
                    .entry(action.clone())
                    .or_default()
                    .insert(action.clone());
                for group in entities.ancestors(action).into_iter().flatten() {
                    within
                        .entry(group.clone())
                        .or_default()
                        .insert(action.clone());
                }
            }
        }
        let mut envs: HashMap<EntityUid, usize> = HashMap::new();
        let mut total_envs = 0;
        for env in schema.request_envs() {
            *envs.entry(env.action().clone()).or_default() += 1;
            total_envs += 1;
        }
        Self {
            within,
            envs,
            total_envs,
        }
    }

    /// The actions `policy`'s scope can match; `None` for any action, or one the schema does
    /// not declare (such a policy is validated against the whole schema, which reports it).
    fn matched_by(&self, policy: &Policy) -> Option<BTreeSet<EntityUid>> {
        let named = match policy.action_constraint() {
            ActionConstraint::Any => return None,
            ActionConstraint::Eq(a) => vec![a],
            ActionConstraint::In(list) => list,
        };
        let mut matched = BTreeSet::new();
        for action in &named {
            matched.extend(self.within.get(action)?.iter().cloned());
        }
        Some(matched)
    }

    fn envs_of(&self, action: &EntityUid) -> usize {
        self.envs.get(action).copied().unwrap_or(0)
    }
}

/// The schema (as JSON) with `appliesTo` removed from every action not in `kept`.
fn reduced_schema(json: &serde_json::Value, kept: &BTreeSet<EntityUid>) -> Option<Schema> {
    let mut json = json.clone();
    for (namespace, body) in json.as_object_mut()? {
        let action_type = if namespace.is_empty() {
            "Action".to_owned()
        } else {
            format!("{namespace}::Action")
        };
        let Some(actions) = body.get_mut("actions").and_then(|a| a.as_object_mut()) else {
            continue;
        };
        for (name, action) in actions.iter_mut() {
            let uid = EntityUid::from_type_name_and_id(
                action_type.parse().ok()?,
                cedar_policy::EntityId::new(name),
            );
            if !kept.contains(&uid) {
                action.as_object_mut()?.remove("appliesTo");
            }
        }
    }
    Schema::from_json_value(json).ok()
}

/// Sorts by position and folds diagnostics at the same position into one: cedar type-checks a
/// policy once per action it may apply to, so one mistake in a policy covering every action
/// would otherwise be reported sixty times.
fn fold_same_position(mut items: Vec<Located>) -> Vec<Located> {
    items.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.message).cmp(&(&b.file, b.line, b.column, &b.message))
    });
    let mut folded: Vec<(Located, usize)> = Vec::new();
    for item in items {
        match folded.last_mut() {
            Some((prev, more))
                if (&prev.file, prev.line, prev.column) == (&item.file, item.line, item.column) =>
            {
                *more += 1;
            }
            _ => folded.push((item, 0)),
        }
    }
    folded
        .into_iter()
        .map(|(mut item, more)| {
            if more > 0 {
                item.message = format!("{} (and {more} more at this position)", item.message);
            }
            item
        })
        .collect()
}

#[cfg(test)]
mod tests;
