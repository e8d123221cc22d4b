//! Golden decisions: every `tests/golden/*.json` file is a list of requests run against the
//! shipped `deploy/policies` through the public API, each with the expected decision and the
//! ids of the policies that decided it.
//!
//! A file holds a `base` request (an `AuthzRequest` in JSON) and `cases`. A case gives either
//! `request`, merged over `base` (objects merge key by key, anything else replaces), or
//! `cedar`, a request in Cedar syntax for `lakeward_policy::check` (for resources the gateway
//! never builds, such as another user), whose `context` and `entities` default to the file's
//! `cedar_base`. `expect.errors` (default false) says whether evaluation errors are expected.
//! A file with `"kind": "data"` holds `DataAuthzRequest`s (the runtime's per-table questions)
//! instead of gateway requests.

use lakeward_policy::{check, AuthzRequest, DataAuthzRequest, Decision, PolicyBundle};
use serde::Deserialize;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GoldenFile {
    #[expect(dead_code, reason = "documentation for readers of the JSON")]
    description: String,
    #[serde(default)]
    kind: Option<String>,
    base: Value,
    #[serde(default)]
    cedar_base: Option<CedarBase>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    request: Option<Value>,
    #[serde(default)]
    cedar: Option<CedarCase>,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CedarBase {
    context: Value,
    entities: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CedarCase {
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    entities: Option<Value>,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Expect {
    allowed: bool,
    #[serde(default)]
    determining_policies: Vec<String>,
    #[serde(default)]
    errors: bool,
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

fn decide(bundle: &PolicyBundle, file: &GoldenFile, case: &Case) -> Result<Decision, String> {
    match (&case.request, &case.cedar) {
        (Some(patch), None) => {
            let mut request = file.base.clone();
            merge(&mut request, patch);
            if file.kind.as_deref() == Some("data") {
                let request: DataAuthzRequest =
                    serde_json::from_value(request).map_err(|e| format!("bad request: {e}"))?;
                return Ok(bundle.authorize_data(&request));
            }
            let request: AuthzRequest =
                serde_json::from_value(request).map_err(|e| format!("bad request: {e}"))?;
            Ok(bundle.authorize(&request))
        }
        (None, Some(cedar)) => {
            let base = file.cedar_base.as_ref();
            let context = cedar.context.as_ref().or(base.map(|b| &b.context));
            let entities = cedar.entities.as_ref().or(base.map(|b| &b.entities));
            let context = context.map(Value::to_string);
            let entities = entities.map(Value::to_string);
            check(
                bundle,
                &cedar.principal,
                &cedar.action,
                &cedar.resource,
                context.as_deref(),
                entities.as_deref(),
            )
            .map_err(|e| e.to_string())
        }
        _ => Err("a case needs exactly one of `request` and `cedar`".into()),
    }
}

#[test]
fn golden_decisions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bundle = PolicyBundle::load_dir(&root.join("../deploy/policies")).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("tests/golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty());

    let (mut failures, mut count) = (Vec::new(), 0);
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let file: GoldenFile =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!file.cases.is_empty(), "{}: no cases", path.display());
        for case in &file.cases {
            count += 1;
            let label = format!(
                "{} / {}",
                path.file_name().unwrap().to_string_lossy(),
                case.name
            );
            match decide(&bundle, &file, case) {
                Ok(d) => {
                    let actual = Expect {
                        allowed: d.allowed,
                        determining_policies: d.determining_policies.clone(),
                        errors: !d.errors.is_empty(),
                    };
                    if actual != case.expect {
                        failures.push(format!(
                            "{label}\n  expected {:?}\n  got      {d:?}",
                            case.expect
                        ));
                    }
                }
                Err(e) => failures.push(format!("{label}\n  {e}")),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} golden cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(count >= 30, "only {count} golden cases");
}
