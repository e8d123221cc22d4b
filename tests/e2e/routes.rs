//! One route, three places: the upstream's router, the gateway's route table and the Cedar
//! schema's actions. These tests fail when an upstream serves a route the gateway does not
//! route (or routes to the other upstream), when the gateway names an action the schema lacks,
//! and when the schema keeps a request action that no route uses.

use http::Method;
use lakeward_frame::server::RouteEntry;
use lakeward_policy::{schema_actions, ActionKind};
use std::collections::BTreeSet;

const SCHEMA: &str = include_str!("../../deploy/policies/lakeward.cedarschema");

/// Routes the gateway answers itself (no upstream serves them).
const LOCAL_ROUTES: &[(Method, &str)] = &[(Method::GET, "/.well-known/databricks-config")];

/// A concrete path for a template: each `{parameter}` becomes a plausible value.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "p1"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The routes an upstream serves to callers; `/internal/` is for the services themselves and
/// the gateway never routes it.
fn public(table: Vec<RouteEntry>) -> Vec<RouteEntry> {
    table
        .into_iter()
        .filter(|entry| !entry.path.starts_with("/internal/"))
        .collect()
}

fn request_actions() -> BTreeSet<String> {
    schema_actions(SCHEMA)
        .expect("the shipped schema parses")
        .into_iter()
        .filter(|action| action.kind == ActionKind::Request)
        .map(|action| action.name)
        .collect()
}

/// Every public route of both upstreams and the gateway's own, each with the upstream the
/// gateway must send it to.
fn every_route() -> Vec<(Method, String, &'static str)> {
    let mut routes = Vec::new();
    for entry in public(lakeward_control::route_table()) {
        routes.push((entry.method, entry.path.to_owned(), "control"));
    }
    for entry in public(lakeward_runtime::route_table()) {
        routes.push((entry.method, entry.path.to_owned(), "runtime"));
    }
    for (method, path) in LOCAL_ROUTES {
        routes.push((method.clone(), (*path).to_owned(), "local"));
    }
    routes
}

#[test]
fn every_upstream_route_has_a_gateway_route_to_that_upstream() {
    let mut missing = Vec::new();
    for (method, path, upstream) in every_route() {
        match lakeward_proxy::test_util::route_of(&method, &concrete(&path)) {
            Some(route) if route.upstream == upstream => {}
            Some(route) => missing.push(format!(
                "{method} {path}: routed to {}, served by {upstream}",
                route.upstream
            )),
            None => missing.push(format!("{method} {path}: no gateway route")),
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_gateway_action_is_a_request_action_of_the_schema() {
    let declared = request_actions();
    let mut unknown = Vec::new();
    for (method, path, _) in every_route() {
        if let Some(route) = lakeward_proxy::test_util::route_of(&method, &concrete(&path)) {
            if !declared.contains(route.action) {
                unknown.push(format!("{method} {path}: {}", route.action));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "actions missing from lakeward.cedarschema:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn every_request_action_of_the_schema_is_used_by_a_route() {
    let used: BTreeSet<String> = every_route()
        .into_iter()
        .filter_map(|(method, path, _)| {
            lakeward_proxy::test_util::route_of(&method, &concrete(&path))
        })
        .map(|route| route.action.to_owned())
        .collect();
    let unused: Vec<String> = request_actions().difference(&used).cloned().collect();
    assert!(
        unused.is_empty(),
        "schema actions no route uses: {}",
        unused.join(", ")
    );
}

#[test]
fn the_check_sees_both_upstreams() {
    // A table that lost its routes would make the checks above pass vacuously.
    let control = public(lakeward_control::route_table());
    let runtime = public(lakeward_runtime::route_table());
    assert!(control.iter().any(|e| e.path == "/api/2.0/token/create"));
    assert!(runtime.iter().any(|e| e.path == "/api/2.0/sql/statements"));
    assert!(lakeward_control::route_table()
        .iter()
        .any(|e| e.path.starts_with("/internal/")));
}
