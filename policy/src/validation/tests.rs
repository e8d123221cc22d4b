use super::*;
use crate::test_policies::{entity_scope, schema, CONDITIONS, SCHEMA};
use crate::test_rng::Rng;
use cedar_policy::PolicyId;

/// Conditions Cedar's validator rejects (strict mode), beside the well-typed ones.
const ILL_TYPED: &[&str] = &[
    "when { principal.nosuch }",
    r#"when { context.clientIp == "10.0.0.1" }"#,
    "when { resource.name > 3 }",
    r#"when { action == Lakeward::Action::"NoSuchAction" }"#,
    r#"when { context.clientIp.isInRange(ip("not an address")) }"#,
];

/// A few action scopes, so that many policies share one (a group validated apart), plus one
/// naming an action the schema lacks.
const ACTION_SCOPES: &[&str] = &[
    r#"action == Lakeward::Action::"ExecuteStatement""#,
    r#"action in Lakeward::Action::"DataAccess""#,
    r#"action in [Lakeward::Action::"CreateToken", Lakeward::Action::"Public"]"#,
    r#"action == Lakeward::Action::"SelectTable""#,
    r#"action == Lakeward::Action::"NoSuchAction""#,
    "action",
];

fn any_policy(rng: &mut Rng) -> String {
    let effect = if rng.chance(30) { "forbid" } else { "permit" };
    let principal = entity_scope(rng, "principal");
    let resource = entity_scope(rng, "resource");
    let action = *rng.pick(ACTION_SCOPES);
    let mut text = format!("{effect} ({principal}, {action}, {resource})");
    for _ in 0..rng.below(3) {
        let condition = if rng.chance(20) {
            *rng.pick(ILL_TYPED)
        } else {
            *rng.pick(CONDITIONS)
        };
        text.push(' ');
        text.push_str(condition);
    }
    text.push(';');
    text
}

/// Every error and warning, by policy, in a comparable form.
fn diagnostics(results: &[ValidationResult]) -> (Vec<String>, Vec<String>) {
    let mut errors: Vec<String> = results
        .iter()
        .flat_map(ValidationResult::validation_errors)
        .map(|e| format!("{}: {e}", e.policy_id()))
        .collect();
    let mut warnings: Vec<String> = results
        .iter()
        .flat_map(ValidationResult::validation_warnings)
        .map(|w| format!("{}: {w}", w.policy_id()))
        .collect();
    errors.sort();
    warnings.sort();
    (errors, warnings)
}

/// The differential test of the grouped validation: random sets, valid or not, every group
/// validated apart, must get exactly the errors and warnings Cedar gives the whole set
/// against the whole schema.
#[test]
fn grouped_validation_reports_what_cedar_reports() {
    const SEED: u64 = 5;
    let schema = schema();
    let whole = Validator::new(schema.clone());
    let mut rng = Rng::new(SEED);
    let (mut valid, mut invalid) = (0, 0);
    for case in 0..20 {
        let mut set = PolicySet::new();
        let mut texts = Vec::new();
        for k in 0..1 + rng.below(12) {
            let text = any_policy(&mut rng);
            let policy = Policy::parse(Some(PolicyId::new(format!("p{k}"))), &text)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            texts.push(format!("p{k}: {text}"));
            set.add(policy).expect("distinct ids");
        }
        let expected = diagnostics(&[whole.validate(&set, ValidationMode::Strict)]);
        let got = diagnostics(&validate_grouped(&schema, SCHEMA, &set, 0));
        assert_eq!(got, expected, "seed {SEED}, case {case}: {texts:#?}");
        if expected.0.is_empty() {
            valid += 1;
        } else {
            invalid += 1;
        }
    }
    assert!(valid > 0 && invalid > 0, "{valid} valid, {invalid} invalid");
}

#[test]
fn a_large_group_is_validated_apart_and_its_mistakes_still_found() {
    let schema = schema();
    let mut texts: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "permit (principal in Lakeward::Group::\"g{i}\", \
                 action == Lakeward::Action::\"ExecuteStatement\", resource) \
                 when {{ context.clientIp.isInRange(ip(\"10.0.{i}.0/24\")) }};"
            )
        })
        .collect();
    // One mistake in the group, one outside it.
    texts.push(r#"permit (principal, action == Lakeward::Action::"ExecuteStatement", resource) when { principal.nosuch };"#.into());
    texts.push("permit (principal, action, resource) when { resource.name > 3 };".into());
    let mut set = PolicySet::new();
    for (k, text) in texts.iter().enumerate() {
        let policy = Policy::parse(Some(PolicyId::new(format!("p{k}"))), text).expect("parses");
        set.add(policy).expect("distinct ids");
    }
    let results = validate_grouped(&schema, SCHEMA, &set, SAVING_WORTH_A_SCHEMA);
    // The whole-schema validation of what is left, and the group apart.
    assert_eq!(results.len(), 2);
    let expected =
        diagnostics(&[Validator::new(schema.clone()).validate(&set, ValidationMode::Strict)]);
    let got = diagnostics(&results);
    assert_eq!(got, expected);
    assert!(got.0.iter().any(|e| e.starts_with("p40: ")), "{got:#?}");
    assert!(got.0.iter().any(|e| e.starts_with("p41: ")), "{got:#?}");
}
