//! Random policies, entities and requests over the shipped schema, for the differential
//! tests (the slice against the whole set, the grouped validation against Cedar's, the
//! pre-closed store against Cedar's closure).

use crate::test_rng::Rng;
use cedar_policy::{Entity, EntityUid, RestrictedExpression, Schema};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;

pub(crate) const SCHEMA: &str = include_str!("../../deploy/policies/lakeward.cedarschema");
pub(crate) const BASELINE: &str = include_str!("../../deploy/policies/baseline.cedar");

pub(crate) fn schema() -> Schema {
    Schema::from_cedarschema_str(SCHEMA)
        .expect("the shipped schema")
        .0
}

/// Every action of the schema, groups included, as Cedar literals.
pub(crate) fn actions(schema: &Schema) -> Vec<String> {
    let mut actions: Vec<String> = schema.actions().map(ToString::to_string).collect();
    actions.sort();
    actions
}

/// Entities of every type of the shipped schema (the same ids recur across types).
pub(crate) const ENTITIES: &[&str] = &[
    r#"Lakeward::User::"u0""#,
    r#"Lakeward::User::"u1""#,
    r#"Lakeward::User::"u2""#,
    r#"Lakeward::ServicePrincipal::"s0""#,
    r#"Lakeward::ServicePrincipal::"u0""#,
    r#"Lakeward::Anonymous::"anonymous""#,
    r#"Lakeward::Group::"g0""#,
    r#"Lakeward::Group::"g1""#,
    r#"Lakeward::Group::"g2""#,
    r#"Lakeward::Group::"g3""#,
    r#"Lakeward::Role::"workspace_admin""#,
    r#"Lakeward::Role::"account_admin""#,
    r#"Lakeward::Workspace::"1""#,
    r#"Lakeward::Workspace::"2""#,
    r#"Lakeward::Account::"acct""#,
    r#"Lakeward::Catalog::"main""#,
    r#"Lakeward::Schema::"main.default""#,
    r#"Lakeward::Table::"main.default.t0""#,
    r#"Lakeward::Table::"main.default.t1""#,
];

pub(crate) const TYPES: &[&str] = &[
    "Lakeward::User",
    "Lakeward::ServicePrincipal",
    "Lakeward::Anonymous",
    "Lakeward::Group",
    "Lakeward::Role",
    "Lakeward::Workspace",
    "Lakeward::Account",
    "Lakeward::Catalog",
    "Lakeward::Schema",
    "Lakeward::Table",
];

/// Conditions, some of which fail to evaluate on some requests (a missing attribute or
/// context field, an overflow, an entity not in the store).
pub(crate) const CONDITIONS: &[&str] = &[
    "when { true }",
    "when { false }",
    r#"when { context.clientIp.isInRange(ip("10.0.0.0/8")) }"#,
    "when { principal.active }",
    "unless { resource in principal }",
    "when { context.requestTime * 9223372036854775807 > 0 }",
    r#"when { principal in Lakeward::Group::"g1" }"#,
    r#"when { action in Lakeward::Action::"Public" }"#,
    r#"when { resource has name && resource.name == "1" }"#,
    "when { context has workspace && principal in context.workspace }",
    r#"when { Lakeward::Group::"g2".displayName == "admins" }"#,
    r#"unless { context.authMethod == "pat" }"#,
];

pub(crate) fn entity_scope(rng: &mut Rng, var: &str) -> String {
    match rng.below(6) {
        0 | 1 => var.to_owned(),
        2 => format!("{var} == {}", *rng.pick(ENTITIES)),
        3 => format!("{var} in {}", rng.pick(ENTITIES)),
        4 => format!("{var} is {}", rng.pick(TYPES)),
        _ => format!("{var} is {} in {}", rng.pick(TYPES), rng.pick(ENTITIES)),
    }
}

fn action_scope(rng: &mut Rng, actions: &[String]) -> String {
    match rng.below(5) {
        0 => "action".to_owned(),
        1 | 2 => format!("action == {}", rng.pick(actions)),
        3 => format!("action in {}", rng.pick(actions)),
        _ => {
            let n = 1 + rng.below(3);
            let list: Vec<&str> = (0..n).map(|_| rng.pick(actions).as_str()).collect();
            format!("action in [{}]", list.join(", "))
        }
    }
}

/// A policy with any scope and conditions: well-typed or not (for the decision tests, which
/// need no validation).
pub(crate) fn any_policy(rng: &mut Rng, actions: &[String]) -> String {
    let effect = if rng.chance(30) { "forbid" } else { "permit" };
    let principal = entity_scope(rng, "principal");
    let action = action_scope(rng, actions);
    let resource = entity_scope(rng, "resource");
    let mut text = format!("{effect} ({principal}, {action}, {resource})");
    for _ in 0..rng.below(3) {
        text.push(' ');
        text.push_str(rng.pick_str(CONDITIONS));
    }
    text.push(';');
    text
}

/// The entity store of a request: a random subset of [`ENTITIES`], each with random parents
/// (cycles included, which Cedar rejects) and random attributes (some missing).
pub(crate) fn any_entities(rng: &mut Rng) -> Vec<Entity> {
    let uids: Vec<EntityUid> = ENTITIES
        .iter()
        .map(|e| EntityUid::from_str(e).expect("an entity literal"))
        .collect();
    let mut entities = Vec::new();
    for uid in &uids {
        if !rng.chance(80) {
            continue;
        }
        let mut parents = HashSet::new();
        for _ in 0..rng.below(3) {
            let parent = rng.pick(&uids);
            // Mostly upward (later in the list), sometimes anywhere: cycles are possible.
            let upward = uids.iter().position(|u| u == parent) > uids.iter().position(|u| u == uid);
            if upward || rng.chance(5) {
                parents.insert(parent.clone());
            }
        }
        let mut attrs = HashMap::new();
        for (name, value) in [
            ("active", RestrictedExpression::new_bool(rng.chance(70))),
            (
                "name",
                RestrictedExpression::new_string(rng.below(3).to_string()),
            ),
            (
                "displayName",
                RestrictedExpression::new_string(
                    if rng.chance(50) { "admins" } else { "users" }.into(),
                ),
            ),
        ] {
            if rng.chance(50) {
                attrs.insert(name.to_owned(), value);
            }
        }
        entities.push(Entity::new(uid.clone(), attrs, parents).expect("an entity"));
    }
    entities
}
