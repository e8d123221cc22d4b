use super::*;

fn deploy_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies")
}

fn bundle() -> PolicyBundle {
    PolicyBundle::load_dir(&deploy_dir()).unwrap()
}

const CONTEXT: &str = r#"{
    "clientIp": "10.0.0.1",
    "workspace": {"type": "Lakeward::Workspace", "id": "1001"},
    "account": {"type": "Lakeward::Account", "id": "acc"},
    "authMethod": "pat",
    "requestTime": 1700000000
}"#;

const ENTITIES: &str = r#"[
    {"uid": {"type": "Lakeward::User", "id": "1"},
     "attrs": {"userName": "alice", "active": true},
     "parents": [{"type": "Lakeward::Workspace", "id": "1001"}]},
    {"uid": {"type": "Lakeward::User", "id": "2"},
     "attrs": {"userName": "bob", "active": true},
     "parents": [{"type": "Lakeward::Workspace", "id": "1001"}]},
    {"uid": {"type": "Lakeward::Workspace", "id": "1001"},
     "attrs": {"name": "ws-a"},
     "parents": [{"type": "Lakeward::Account", "id": "acc"}]}
]"#;

fn run(
    resource: &str,
    context: Option<&str>,
    entities: Option<&str>,
) -> Result<Decision, PolicyError> {
    check(
        &bundle(),
        r#"Lakeward::User::"1""#,
        r#"Lakeward::Action::"CreateToken""#,
        resource,
        context,
        entities,
    )
}

#[test]
fn decides_a_cedar_syntax_request() {
    let own = run(r#"Lakeward::User::"1""#, Some(CONTEXT), Some(ENTITIES)).unwrap();
    assert!(own.allowed && own.errors.is_empty(), "{own:?}");
    assert_eq!(own.determining_policies, ["self-service"]);
    let other = run(r#"Lakeward::User::"2""#, Some(CONTEXT), Some(ENTITIES)).unwrap();
    assert!(!other.allowed && other.errors.is_empty(), "{other:?}");
}

#[test]
fn bad_uids_are_reported_with_the_input() {
    let err = run("User 1", Some(CONTEXT), Some(ENTITIES))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("invalid resource `User 1`"), "{err}");
    let err = check(
        &bundle(),
        r#"Lakeward::User::"1""#,
        r#"Lakeward::Action::"Fly""#,
        r#"Lakeward::User::"1""#,
        None,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("invalid action") && err.contains("no such action"),
        "{err}"
    );
}

#[test]
fn context_is_checked_against_the_schema() {
    let err = run(r#"Lakeward::User::"1""#, Some(r#"{"clientIp": 7}"#), None).unwrap_err();
    assert!(
        matches!(
            err,
            PolicyError::InvalidInput {
                what: "context",
                ..
            }
        ),
        "{err}"
    );
    let err = run(r#"Lakeward::User::"1""#, None, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("context") && err.contains("`account`"),
        "{err}"
    );
}

#[test]
fn entities_are_checked_against_the_schema() {
    let bad = r#"[{"uid": {"type": "Lakeward::User", "id": "1"}, "attrs": {"userName": "a", "active": "yes"}, "parents": []}]"#;
    let err = run(r#"Lakeward::User::"1""#, Some(CONTEXT), Some(bad)).unwrap_err();
    assert!(
        matches!(
            err,
            PolicyError::InvalidInput {
                what: "entities",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("active"), "{err}");
}

#[test]
fn resource_type_must_fit_the_action() {
    let err = run(
        r#"Lakeward::Workspace::"1001""#,
        Some(CONTEXT),
        Some(ENTITIES),
    )
    .unwrap_err();
    assert!(matches!(err, PolicyError::InvalidRequest(_)), "{err}");
}

#[test]
fn validate_dir_summarizes() {
    let report = validate_dir(&deploy_dir()).unwrap();
    assert_eq!(report.policy_count, 12);
    assert_eq!(report.version, bundle().version());
    assert!(report.warnings.is_empty());
    let missing = validate_dir(&deploy_dir().join("missing")).unwrap_err();
    assert_eq!(missing.len(), 1);
}
