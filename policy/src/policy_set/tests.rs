use super::*;
use crate::request::{PrincipalInput, PrincipalKind, ResourceInput};

const SCHEMA: &str = include_str!("../../../deploy/policies/lakeward.cedarschema");
const BASELINE: &str = include_str!("../../../deploy/policies/baseline.cedar");

fn deploy_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies")
}

fn bundle(policies: &[(&str, &str)]) -> Result<PolicyBundle, Vec<PolicyError>> {
    PolicyBundle::from_sources(("lakeward.cedarschema", SCHEMA), policies)
}

fn errors_of(policies: &[(&str, &str)]) -> Vec<PolicyError> {
    match bundle(policies) {
        Ok(b) => panic!("expected errors, loaded {b:?}"),
        Err(errors) => errors,
    }
}

fn only_error(policies: &[(&str, &str)]) -> (String, usize, usize, String) {
    let errors = errors_of(policies);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    match errors.into_iter().next() {
        Some(PolicyError::Source {
            file,
            line,
            column,
            message,
        }) => (file, line, column, message),
        other => panic!("not a located error: {other:?}"),
    }
}

pub(crate) fn request(action: &str) -> AuthzRequest {
    AuthzRequest {
        principal: PrincipalInput {
            kind: PrincipalKind::User,
            id: "1".into(),
            user_name: "alice@example.com".into(),
            active: true,
            groups: vec![("g1".into(), "admins".into()), ("g2".into(), "data".into())],
            workspace_admin: true,
            account_admin: false,
            member_of_workspace: Some(1001),
        },
        action: action.into(),
        resource: ResourceInput::Workspace,
        client_ip: "10.1.2.3".parse().unwrap(),
        workspace: Some((1001, "ws-a".into())),
        account_id: "acc".into(),
        auth_method: "pat".into(),
        token_id: Some("tok-1".into()),
        request_time_unix: 1_700_000_000,
    }
}

#[test]
fn deploy_policies_load_without_warnings() {
    let b = PolicyBundle::load_dir(&deploy_dir()).unwrap();
    assert_eq!(
        b.policy_ids().collect::<Vec<_>>(),
        [
            "public-host-metadata",
            "self-service",
            "workspace-admins",
            "data-plane-members",
            "uc-select",
            "uc-modify",
            "uc-create-table",
            "uc-create-schema",
            "uc-owners",
            "account-admins",
            "workspace-assignment",
            "inactive-principals"
        ]
    );
    assert_eq!(b.policy_count(), 12);
    assert!(b.warnings().is_empty(), "{:?}", b.warnings());
    assert_eq!(b.version().len(), 12);
}

#[test]
fn ids_default_to_stem_and_index() {
    let b = bundle(&[(
        "extra.cedar",
        "permit(principal, action == Lakeward::Action::\"ListWarehouses\", resource);\n\
         @id(\"named\") forbid(principal, action == Lakeward::Action::\"DeleteWarehouse\", resource);\n\
         permit(principal, action == Lakeward::Action::\"GetWarehouse\", resource);",
    )])
    .unwrap();
    assert_eq!(
        b.policy_ids().collect::<Vec<_>>(),
        ["extra:0", "named", "extra:2"]
    );
    assert_eq!(
        b.authorize(&request("ListWarehouses")).determining_policies,
        ["extra:0"]
    );
}

#[test]
fn syntax_error_reports_file_line_and_column() {
    let (file, line, column, message) = only_error(&[(
        "bad.cedar",
        "// comment\npermit(principal, action, resource)\n  when { principal. };\n",
    )]);
    assert_eq!(file, "bad.cedar");
    assert_eq!((line, column), (3, 21), "{message}");
}

#[test]
fn every_syntax_error_of_every_file_is_reported() {
    let errors = errors_of(&[
        (
            "a.cedar",
            "permit(principal, action, resource) when { 1 + };",
        ),
        (
            "b.cedar",
            "permit(principal, action, resource);\nforbid(principal action, resource);",
        ),
    ]);
    let files: Vec<_> = errors
        .iter()
        .filter_map(|e| e.location())
        .map(|(f, l, _)| (f, l))
        .collect();
    assert!(files.contains(&("a.cedar", 1)), "{errors:#?}");
    assert!(files.contains(&("b.cedar", 2)), "{errors:#?}");
}

#[test]
fn unknown_attribute_fails_validation_at_its_location() {
    let text = "@id(\"ok\")\npermit(principal, action, resource);\n\n\
                permit(principal is Lakeward::User, action, resource)\nwhen { principal.nickname == \"x\" };\n";
    let (file, line, column, message) = only_error(&[("attrs.cedar", text)]);
    assert_eq!(file, "attrs.cedar");
    assert_eq!(line, 5, "{message}");
    assert_eq!(column, 8, "{message}");
    assert!(message.contains("nickname"), "{message}");
    assert!(
        message.contains("attrs:1"),
        "the message names the policy: {message}"
    );
}

#[test]
fn unknown_action_fails_validation_at_its_location() {
    let (file, line, column, message) = only_error(&[
        ("ok.cedar", "permit(principal, action, resource);"),
        (
            "z.cedar",
            "\n  permit(principal, action == Lakeward::Action::\"Fly\", resource);",
        ),
    ]);
    assert_eq!(file, "z.cedar");
    assert_eq!(line, 2, "{message}");
    assert!(column > 1, "{message}");
    assert!(message.contains("Fly"), "{message}");
}

#[test]
fn validation_errors_in_several_files_come_together() {
    let errors = errors_of(&[
        (
            "a.cedar",
            "permit(principal, action == Lakeward::Action::\"Fly\", resource);",
        ),
        (
            "b.cedar",
            "permit(principal, action, resource) when { context.nope };",
        ),
    ]);
    let files: Vec<_> = errors
        .iter()
        .filter_map(|e| e.location())
        .map(|(f, ..)| f)
        .collect();
    assert!(
        files.contains(&"a.cedar") && files.contains(&"b.cedar"),
        "{errors:#?}"
    );
}

#[test]
fn one_mistake_checked_for_many_actions_is_reported_once() {
    // Cedar type-checks the policy once per action, and names the action in each message.
    let (_, line, column, message) = only_error(&[(
        "ctx.cedar",
        "permit(principal, action, resource)\nwhen { context.nope };",
    )]);
    assert_eq!((line, column), (2, 8));
    assert!(
        message.contains("`nope`") && message.contains("more at this position"),
        "{message}"
    );
}

#[test]
fn duplicate_id_across_files_names_both() {
    let (file, line, _, message) = only_error(&[
        (
            "one.cedar",
            "@id(\"same\")\npermit(principal, action, resource);",
        ),
        (
            "two.cedar",
            "\n@id(\"same\")\nforbid(principal, action, resource);",
        ),
    ]);
    assert_eq!((file.as_str(), line), ("two.cedar", 2));
    assert!(
        message.contains("`same`") && message.contains("one.cedar"),
        "{message}"
    );
}

#[test]
fn duplicate_or_empty_id_within_a_file() {
    let errors = errors_of(&[(
        "d.cedar",
        "@id(\"x\") permit(principal, action, resource);\n@id(\"x\") forbid(principal, action, resource);\n@id(\"\") permit(principal, action, resource);",
    )]);
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "d.cedar:2:1: duplicate policy id `x` (used twice in this file)",
            "d.cedar:3:1: empty `@id` annotation"
        ]
    );
}

#[test]
fn duplicate_id_with_baseline_is_caught() {
    let (file, _, _, message) = only_error(&[
        ("baseline.cedar", BASELINE),
        (
            "mine.cedar",
            "@id(\"self-service\") permit(principal, action, resource);",
        ),
    ]);
    assert_eq!(file, "mine.cedar");
    assert!(message.contains("baseline.cedar"), "{message}");
}

#[test]
fn templates_are_rejected() {
    let (file, line, _, message) = only_error(&[(
        "t.cedar",
        "permit(principal, action, resource);\npermit(principal == ?principal, action, resource);",
    )]);
    assert_eq!((file.as_str(), line), ("t.cedar", 2));
    assert!(message.contains("templates"), "{message}");
}

#[test]
fn schema_errors_are_located_in_the_schema() {
    let errors = PolicyBundle::from_sources(
        (
            "s.cedarschema",
            "namespace Lakeward {\n  entity User in [Nope];\n}\n",
        ),
        &[("p.cedar", "permit(principal, action, resource);")],
    )
    .unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.location().is_some_and(|(f, ..)| f == "s.cedarschema")),
        "{errors:#?}"
    );
    let syntax = PolicyBundle::from_sources(
        ("s.cedarschema", "namespace Lakeward {\n  entity ;\n}"),
        &[],
    )
    .unwrap_err();
    assert_eq!(
        syntax[0].location().map(|(f, l, _)| (f, l)),
        Some(("s.cedarschema", 2)),
        "{syntax:#?}"
    );
}

#[test]
fn schema_missing_a_facade_type_is_an_error() {
    let schema = SCHEMA.replace("entity Anonymous;", "");
    let schema = schema.replace(
        "[Anonymous, User, ServicePrincipal]",
        "[User, ServicePrincipal]",
    );
    let errors = PolicyBundle::from_sources(("s.cedarschema", &schema), &[]).unwrap_err();
    assert!(
        errors[0].to_string().contains("Lakeward::Anonymous"),
        "{errors:#?}"
    );
}

#[test]
fn schema_describing_other_entities_is_an_error() {
    for (from, to) in [
        ("active: Bool", "active: Long"),
        ("entity Account;", "entity Account { tier: String };"),
        (
            "entity User in [Group, Role, Workspace]",
            "entity User in [Group, Role]",
        ),
    ] {
        assert!(SCHEMA.contains(from), "{from}");
        let schema = SCHEMA.replace(from, to);
        let Err(errors) = PolicyBundle::from_sources(("s.cedarschema", &schema), &[]) else {
            panic!("accepted a schema with {to}");
        };
        let message = errors[0].to_string();
        assert!(
            message.starts_with("s.cedarschema: the schema does not describe"),
            "{to}: {message}"
        );
    }
}

#[test]
fn warnings_do_not_fail_loading() {
    let b = bundle(&[(
        "w.cedar",
        "permit(principal, action, resource) when { false };",
    )])
    .unwrap();
    assert_eq!(b.warnings().len(), 1, "{:?}", b.warnings());
    let w = &b.warnings()[0];
    assert_eq!((w.file.as_str(), w.line), ("w.cedar", 1));
    assert!(w.to_string().starts_with("w.cedar:1:"), "{w}");
}

#[test]
fn a_permit_that_errors_never_allows() {
    // Validates (Long * Long is well typed) but overflows at run time.
    let b = bundle(&[(
        "overflow.cedar",
        "@id(\"overflows\")\npermit(principal, action, resource)\nwhen { context.requestTime * 9223372036854775807 > 0 };",
    )])
    .unwrap();
    let d = b.authorize(&request("ListWarehouses"));
    assert!(!d.allowed);
    assert!(d.determining_policies.is_empty());
    assert_eq!(d.errors.len(), 1, "{d:?}");
    assert!(d.errors[0].contains("overflows"), "{d:?}");
}

#[test]
fn a_forbid_that_errors_turns_an_allow_into_a_deny() {
    // Cedar alone would skip the erroring forbid and allow.
    let b = bundle(&[(
        "p.cedar",
        "@id(\"everyone\")\npermit(principal, action, resource);\n\
         @id(\"overflowing-forbid\")\nforbid(principal, action, resource)\n\
         when { context.requestTime * 9223372036854775807 > 0 };",
    )])
    .unwrap();
    let d = b.authorize(&request("ListWarehouses"));
    assert!(!d.allowed, "{d:?}");
    assert!(
        d.errors.iter().any(|e| e.contains("overflowing-forbid")),
        "{d:?}"
    );
}

#[test]
fn a_request_the_schema_rejects_is_a_deny_with_an_error() {
    let b = bundle(&[("all.cedar", "permit(principal, action, resource);")]).unwrap();
    let mut r = request("CreateToken"); // applies to users, not workspaces
    let d = b.authorize(&r);
    assert!(!d.allowed && !d.errors.is_empty(), "{d:?}");
    r.action = "NoSuchAction".into();
    let d = b.authorize(&r);
    assert!(!d.allowed && d.errors[0].contains("NoSuchAction"), "{d:?}");
    r.action = "ListWarehouses".into();
    r.workspace = None;
    let d = b.authorize(&r);
    assert!(!d.allowed && !d.errors.is_empty(), "{d:?}");
}

#[test]
fn repeated_groups_are_harmless() {
    let b = PolicyBundle::load_dir(&deploy_dir()).unwrap();
    let mut r = request("CreateIpAccessList");
    r.principal.groups.push(("g1".into(), "admins".into()));
    let d = b.authorize(&r);
    assert!(d.allowed && d.errors.is_empty(), "{d:?}");
}

#[test]
fn ipv4_mapped_client_ip_reaches_cedar_as_ipv4() {
    let b = bundle(&[(
        "net.cedar",
        "permit(principal, action, resource) when { context.clientIp.isInRange(ip(\"10.0.0.0/8\")) };",
    )])
    .unwrap();
    let mut r = request("ListWarehouses");
    r.client_ip = "::ffff:10.9.8.7".parse().unwrap();
    assert!(b.authorize(&r).allowed);
    r.client_ip = "2001:db8::1".parse().unwrap();
    let d = b.authorize(&r);
    assert!(!d.allowed && d.errors.is_empty(), "{d:?}");
}

#[test]
fn load_dir_reads_sorted_files_and_hashes_content_not_path() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for dir in [a.path(), b.path()] {
        std::fs::write(dir.join("lakeward.cedarschema"), SCHEMA).unwrap();
        std::fs::write(dir.join("baseline.cedar"), BASELINE).unwrap();
        std::fs::write(dir.join("README.md"), "ignored").unwrap();
    }
    std::fs::write(
        a.path().join("x.cedar"),
        "permit(principal, action, resource);",
    )
    .unwrap();
    std::fs::write(
        b.path().join("x.cedar"),
        "permit(principal, action, resource);",
    )
    .unwrap();
    let (ba, bb) = (
        PolicyBundle::load_dir(a.path()).unwrap(),
        PolicyBundle::load_dir(b.path()).unwrap(),
    );
    assert_eq!(ba.version(), bb.version());
    assert_eq!(ba.policy_ids().last(), Some("x:0"));
    std::fs::write(
        b.path().join("x.cedar"),
        "forbid(principal, action, resource);",
    )
    .unwrap();
    assert_ne!(
        ba.version(),
        PolicyBundle::load_dir(b.path()).unwrap().version()
    );
}

#[test]
fn load_dir_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.cedar"),
        "permit(principal, action, resource) when {",
    )
    .unwrap();
    let errors = PolicyBundle::load_dir(dir.path()).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0].to_string().contains("no `*.cedarschema`"),
        "{errors:#?}"
    );
    let path = dir.path().join("p.cedar").display().to_string();
    assert_eq!(errors[1].location().map(|(f, ..)| f), Some(path.as_str()));

    std::fs::write(dir.path().join("a.cedarschema"), SCHEMA).unwrap();
    std::fs::write(dir.path().join("b.cedarschema"), SCHEMA).unwrap();
    let errors = PolicyBundle::load_dir(dir.path()).unwrap_err();
    assert!(errors[0].to_string().contains("found 2"), "{errors:#?}");

    let missing = PolicyBundle::load_dir(&dir.path().join("nope")).unwrap_err();
    assert!(
        missing[0].to_string().contains("cannot read"),
        "{missing:#?}"
    );
}

#[test]
fn bundle_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PolicyBundle>();
}

#[test]
fn repeated_requests_get_the_same_decision_from_the_cache() {
    let b = PolicyBundle::load_dir(&deploy_dir()).unwrap();
    let r = request("CreateIpAccessList");
    let first = b.authorize(&r);
    let second = b.authorize(&r);
    assert!(first.allowed, "{first:?}");
    assert_eq!(first, second);
    // Anything the entities are built from is part of the key.
    let mut not_admin = r.clone();
    not_admin.principal.workspace_admin = false;
    assert!(!b.authorize(&not_admin).allowed);
    assert!(b.authorize(&r).allowed);
}

#[test]
fn policies_that_read_the_time_are_decided_at_each_time() {
    let b = bundle(&[(
        "t.cedar",
        "@id(\"before-noon\")\npermit(principal, action, resource)\nwhen { context.requestTime < 1000 };",
    )])
    .unwrap();
    let mut r = request("ListWarehouses");
    r.request_time_unix = 999;
    assert!(b.authorize(&r).allowed);
    r.request_time_unix = 1001;
    assert!(
        !b.authorize(&r).allowed,
        "a cached decision must not outlive its time"
    );
}
