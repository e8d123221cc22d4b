//! The differential test of the whole decision path: bundles of the shipped baseline and
//! random policies, random gateway and data requests, every field of every decision compared
//! between what `authorize` does (the slice, the shape memo, the pre-closed store, the
//! direct context) and the oracle (every policy, every check Cedar's own).

use super::*;
use crate::data::{DataAuthzRequest, Securable};
use crate::error::PolicyError;
use crate::request::{PrincipalInput, PrincipalKind, ResourceInput};
use crate::test_policies::{actions, schema, BASELINE, SCHEMA};
use crate::test_rng::Rng;
use std::collections::BTreeSet;
use std::str::FromStr;

const PRINCIPALS: &[&str] = &[
    "principal",
    "principal",
    r#"principal == Lakeward::User::"u1""#,
    r#"principal in Lakeward::Group::"g1""#,
    r#"principal in Lakeward::Group::"g3""#,
    r#"principal in Lakeward::Role::"workspace_admin""#,
    r#"principal in Lakeward::Workspace::"2""#,
    "principal is Lakeward::User",
    r#"principal is Lakeward::ServicePrincipal in Lakeward::Group::"g2""#,
    r#"principal == Lakeward::Anonymous::"anonymous""#,
];

const RESOURCES: &[&str] = &[
    "resource",
    "resource",
    r#"resource == Lakeward::Workspace::"1""#,
    r#"resource in Lakeward::Workspace::"2""#,
    "resource is Lakeward::Account",
    r#"resource == Lakeward::Account::"acct""#,
    r#"resource in Lakeward::Catalog::"main""#,
    r#"resource is Lakeward::Table in Lakeward::Schema::"main.hr""#,
    r#"resource == Lakeward::User::"u2""#,
];

const CONDITIONS: &[&str] = &[
    r#"when { context.clientIp.isInRange(ip("10.0.0.0/8")) }"#,
    r#"when { context.authMethod == "pat" }"#,
    r#"when { context has tokenId && context.tokenId == "t1" }"#,
    "when { context.requestTime > 1000 }",
    "when { context.requestTime * 9223372036854775807 > 0 }",
    r#"when { principal in Lakeward::Group::"g2" }"#,
    "when { context has workspace && principal in context.workspace }",
    r#"unless { action in Lakeward::Action::"Public" }"#,
    "when { principal is Lakeward::User && principal.active }",
    r#"when { context has privileges && context.privileges.contains("SELECT") }"#,
    r#"when { resource has name && resource.name == "main" }"#,
    "when { context.workspace.name == \"ws1\" }",
];

fn any_policy(rng: &mut Rng, actions: &[String]) -> String {
    let effect = if rng.chance(30) { "forbid" } else { "permit" };
    let action = match rng.below(5) {
        0 => "action".to_owned(),
        1 | 2 => format!("action == {}", rng.pick(actions)),
        3 => format!("action in {}", rng.pick(actions)),
        _ => format!("action in [{}, {}]", rng.pick(actions), rng.pick(actions)),
    };
    let mut text = format!(
        "{effect} ({}, {action}, {})",
        rng.pick(PRINCIPALS),
        rng.pick(RESOURCES)
    );
    for _ in 0..rng.below(3) {
        text.push(' ');
        text.push_str(rng.pick_str(CONDITIONS));
    }
    text.push(';');
    text
}

/// The baseline and `count` random policies, one file each; the ones strict validation
/// refuses are left out.
fn any_bundle(rng: &mut Rng, actions: &[String], count: usize) -> PolicyBundle {
    let mut files: Vec<(String, String)> = (0..count)
        .map(|k| (format!("r{k:02}.cedar"), any_policy(rng, actions)))
        .collect();
    files.push(("baseline.cedar".into(), BASELINE.into()));
    let load = |files: &[(String, String)]| {
        let sources: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        PolicyBundle::from_sources(("lakeward.cedarschema", SCHEMA), &sources)
    };
    match load(&files) {
        Ok(bundle) => bundle,
        Err(errors) => {
            let refused: BTreeSet<String> = errors
                .iter()
                .filter_map(|e| match e {
                    PolicyError::Source { file, .. } => Some(file.clone()),
                    _ => None,
                })
                .collect();
            assert!(!refused.contains("baseline.cedar"), "{errors:#?}");
            files.retain(|(name, _)| !refused.contains(name));
            load(&files).unwrap_or_else(|e| panic!("{e:#?}"))
        }
    }
}

fn any_principal(rng: &mut Rng) -> PrincipalInput {
    let kind = *rng.pick(&[
        PrincipalKind::User,
        PrincipalKind::User,
        PrincipalKind::ServicePrincipal,
        PrincipalKind::Anonymous,
    ]);
    let groups = (0..rng.below(4))
        .map(|_| {
            let g = rng.below(5);
            (
                format!("g{g}"),
                if g == 0 { "admins" } else { "users" }.into(),
            )
        })
        .collect();
    PrincipalInput {
        kind,
        id: format!("u{}", rng.below(4)),
        user_name: "someone@example.com".into(),
        active: rng.chance(85),
        groups,
        workspace_admin: rng.chance(30),
        account_admin: rng.chance(15),
        member_of_workspace: rng.chance(80).then(|| 1 + rng.below(3) as i64),
    }
}

fn any_ip(rng: &mut Rng) -> std::net::IpAddr {
    let text = *rng.pick(&["10.1.2.3", "::ffff:10.9.8.7", "2001:db8::1", "192.168.1.1"]);
    text.parse().expect("an address")
}

/// What the façade's resource is for `action`, as the gateway's route table would say (and,
/// now and then, what it is not, which the schema refuses).
fn resource_for(rng: &mut Rng, schema: &Schema, action: &str) -> ResourceInput {
    let uid = cedar_policy::EntityUid::from_str(&format!("Lakeward::Action::\"{action}\""));
    let types: Vec<String> = uid
        .ok()
        .and_then(|uid| {
            schema
                .resources_for_action(&uid)
                .map(|types| types.map(ToString::to_string).collect())
        })
        .unwrap_or_default();
    let fitting: Vec<ResourceInput> = types
        .iter()
        .filter_map(|t| match t.as_str() {
            "Lakeward::Workspace" => Some(ResourceInput::Workspace),
            "Lakeward::Account" => Some(ResourceInput::Account),
            "Lakeward::User" | "Lakeward::ServicePrincipal" => Some(ResourceInput::Caller),
            _ => None,
        })
        .collect();
    if fitting.is_empty() || rng.chance(10) {
        *rng.pick(&[
            ResourceInput::Workspace,
            ResourceInput::Account,
            ResourceInput::Caller,
        ])
    } else {
        *rng.pick(&fitting)
    }
}

fn any_request(rng: &mut Rng, schema: &Schema, actions: &[String]) -> AuthzRequest {
    // Gateway actions, and sometimes one that is no action, a group, or acts on tables.
    let action = match rng.below(30) {
        0 => "NoSuchAction".to_owned(),
        _ => {
            let literal = rng.pick(actions);
            literal
                .trim_start_matches("Lakeward::Action::\"")
                .trim_end_matches('"')
                .to_owned()
        }
    };
    let mut principal = any_principal(rng);
    let workspace = rng.chance(80).then(|| 1 + rng.below(3) as i64);
    if rng.chance(70) {
        principal.member_of_workspace = workspace;
    }
    AuthzRequest {
        principal,
        resource: resource_for(rng, schema, &action),
        action,
        client_ip: any_ip(rng),
        workspace: workspace.map(|id| (id, format!("ws{id}"))),
        account_id: "acct".into(),
        auth_method: (*rng.pick(&["pat", "oauth", "none"])).into(),
        token_id: rng.chance(60).then(|| format!("t{}", rng.below(2))),
        request_time_unix: *rng.pick(&[0, 0, 5, 1_700_000_000]),
    }
}

fn any_data_request(rng: &mut Rng) -> DataAuthzRequest {
    let catalog = (*rng.pick(&["main", "other"])).to_owned();
    let schema = (*rng.pick(&["default", "hr"])).to_owned();
    let securable = match rng.below(3) {
        0 => Securable::Catalog { name: catalog },
        1 => Securable::Schema {
            catalog,
            name: schema,
        },
        _ => Securable::Table {
            catalog,
            schema,
            name: (*rng.pick(&["t0", "t1"])).into(),
        },
    };
    let action = *rng.pick(&[
        "SelectTable",
        "ModifyTable",
        "DropTable",
        "CreateTable",
        "DropSchema",
        "CreateSchema",
        "ManageGrants",
        "ListWarehouses",
    ]);
    let privileges = ["SELECT", "MODIFY", "OWNER", "MANAGE", "ALL_PRIVILEGES"]
        .iter()
        .filter(|_| rng.chance(30))
        .map(|p| (*p).to_owned())
        .collect();
    let id = 1 + rng.below(3) as i64;
    let mut principal = any_principal(rng);
    if rng.chance(70) {
        principal.member_of_workspace = Some(id);
    }
    DataAuthzRequest {
        principal,
        action: action.into(),
        securable,
        privileges,
        client_ip: any_ip(rng),
        workspace: (id, format!("ws{id}")),
        account_id: "acct".into(),
        auth_method: "pat".into(),
        token_id: rng.chance(50).then(|| "t1".to_owned()),
        request_time_unix: *rng.pick(&[0, 5, 1_700_000_000]),
    }
}

#[test]
fn authorize_decides_exactly_as_the_oracle() {
    const SEED: u64 = 1013;
    const BUNDLES: usize = 5;
    const REQUESTS: usize = 300;
    let schema = schema();
    let actions = actions(&schema);
    let mut rng = Rng::new(SEED);
    let (mut allowed, mut denied, mut erred) = (0, 0, 0);
    for b in 0..BUNDLES {
        let bundle = any_bundle(&mut rng, &actions, 25);
        for r in 0..REQUESTS {
            if rng.chance(75) {
                let request = any_request(&mut rng, &schema, &actions);
                let oracle = bundle.authorize_uncached(&request, Evaluation::WholeSet);
                let sliced = bundle.authorize_uncached(&request, Evaluation::Sliced);
                let memo = bundle.authorize(&request);
                let context = format!("seed {SEED}, bundle {b}, request {r}: {request:#?}");
                assert_eq!(sliced, oracle, "{context}");
                assert_eq!(memo, oracle, "{context}");
                allowed += usize::from(oracle.allowed);
                denied += usize::from(!oracle.allowed);
                erred += usize::from(!oracle.errors.is_empty());
            } else {
                let request = any_data_request(&mut rng);
                let oracle = bundle.authorize_data_with(&request, Evaluation::WholeSet);
                let sliced = bundle.authorize_data(&request);
                assert_eq!(
                    sliced, oracle,
                    "seed {SEED}, bundle {b}, data request {r}: {request:#?}"
                );
            }
        }
    }
    // The cases cover allows, denies and evaluation errors.
    assert!(
        allowed > 50 && denied > 50 && erred > 20,
        "{allowed} allowed, {denied} denied, {erred} with errors"
    );
}
