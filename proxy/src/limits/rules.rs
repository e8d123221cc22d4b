//! The request-limit rules in force: compiled from the configuration and the rules file, and
//! matched against a request to give the counters it is decided against.

use super::gcra::Gcra;
use crate::config::{validate_rules, LimitPer, RateLimitRule, RulesFile};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

/// What a request is limited by: the facts the rules match and key on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts<'a> {
    pub method: &'a str,
    /// The normalized path, workspace prefix removed.
    pub path: &'a str,
    /// The principal's id and user name; `None` for anonymous calls.
    pub principal: Option<(&'a str, &'a str)>,
    pub token_id: Option<&'a str>,
    /// The workspace addressed; `None` for account-level calls.
    pub workspace: Option<i64>,
}

struct Rule {
    name: Arc<str>,
    per: LimitPer,
    paths: Vec<String>,
    methods: Vec<String>,
    principals: HashSet<String>,
    workspaces: Vec<i64>,
    gcra: Gcra,
}

/// A counter a request is decided against: its key and quota, and the rule it belongs to.
pub(crate) struct Counter {
    pub key: String,
    pub gcra: Gcra,
    pub rule: Arc<str>,
}

/// Every rule in force.
#[derive(Default)]
pub(crate) struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Compiles `rules` (already validated).
    pub(crate) fn compile<'a>(rules: impl IntoIterator<Item = &'a RateLimitRule>) -> RuleSet {
        let rules = rules
            .into_iter()
            .filter_map(|r| {
                Some(Rule {
                    name: Arc::from(r.name.as_str()),
                    per: r.per,
                    paths: r
                        .paths
                        .iter()
                        .map(|p| p.trim_end_matches('/').to_owned())
                        .collect(),
                    methods: r.methods.clone(),
                    principals: r.principals.iter().cloned().collect(),
                    workspaces: r.workspaces.clone(),
                    gcra: Gcra::new(r.requests, r.period_secs, r.burst)?,
                })
            })
            .collect();
        RuleSet { rules }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The counters `request` is decided against; keys start with `prefix`.
    pub(crate) fn counters(&self, prefix: &str, request: &RequestFacts<'_>) -> Vec<Counter> {
        let mut counters = Vec::new();
        for rule in &self.rules {
            if !rule.matches(request) {
                continue;
            }
            let per = match rule.per {
                LimitPer::Principal => request.principal.map(|(id, _)| format!("p:{id}")),
                LimitPer::Token => request.token_id.map(|t| format!("t:{t}")),
                LimitPer::Workspace => request.workspace.map(|w| format!("w:{w}")),
                LimitPer::RouteGroup => Some("g".to_owned()),
            };
            if let Some(per) = per {
                counters.push(Counter {
                    key: format!("{prefix}:r:{}:{per}", rule.name),
                    gcra: rule.gcra,
                    rule: rule.name.clone(),
                });
            }
        }
        counters
    }
}

impl Rule {
    fn matches(&self, request: &RequestFacts<'_>) -> bool {
        let path_ok = self.paths.is_empty()
            || self
                .paths
                .iter()
                .any(|prefix| under_prefix(request.path, prefix));
        let method_ok = self.methods.is_empty() || self.methods.iter().any(|m| m == request.method);
        let principal_ok = self.principals.is_empty()
            || request.principal.is_some_and(|(id, user_name)| {
                self.principals.contains(id) || self.principals.contains(user_name)
            });
        let workspace_ok = self.workspaces.is_empty()
            || request
                .workspace
                .is_some_and(|w| self.workspaces.contains(&w));
        path_ok && method_ok && principal_ok && workspace_ok
    }
}

/// Whether `path` is `prefix` or below it (`/api/2.0/sql` covers `/api/2.0/sql/warehouses`,
/// not `/api/2.0/sqlx`).
fn under_prefix(path: &str, prefix: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.is_empty(),
        None => false,
    }
}

/// Reads and checks a rules file; `fixed` are the rules from the configuration, whose names
/// the file's must not repeat. Every problem is returned at once.
pub(crate) fn load_file(path: &Path, fixed: &[RateLimitRule]) -> Result<RulesFile, Vec<String>> {
    let at = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| vec![format!("`{at}`: {e}")])?;
    let file: RulesFile =
        toml::from_str(&text).map_err(|e| vec![format!("`{at}`: {}", e.to_string().trim_end())])?;
    let mut problems = Vec::new();
    validate_rules("rules", &file.rules, &mut problems);
    for rule in &file.rules {
        if fixed.iter().any(|f| f.name == rule.name) {
            problems.push(format!(
                "rule `{}` is also in the configuration's `rate_limits.rules`",
                rule.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(problems
            .into_iter()
            .map(|p| format!("`{at}`: {p}"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(method: &'a str, path: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            method,
            path,
            principal: Some(("100", "alice@example.com")),
            token_id: Some("tok-1"),
            workspace: Some(7),
        }
    }

    fn rule(name: &str, per: LimitPer) -> RateLimitRule {
        RateLimitRule {
            name: name.into(),
            per,
            requests: 5,
            ..RateLimitRule::default()
        }
    }

    #[test]
    fn keys_per_principal_token_workspace_and_group() {
        let set = RuleSet::compile(&[
            rule("p", LimitPer::Principal),
            rule("t", LimitPer::Token),
            rule("w", LimitPer::Workspace),
            RateLimitRule {
                paths: vec!["/api/2.0/sql/".into()],
                methods: vec!["POST".into()],
                ..rule("g", LimitPer::RouteGroup)
            },
        ]);
        let keys = |f: &RequestFacts<'_>| -> Vec<String> {
            set.counters("x", f).into_iter().map(|c| c.key).collect()
        };
        assert_eq!(
            keys(&facts("POST", "/api/2.0/sql/statements")),
            ["x:r:p:p:100", "x:r:t:t:tok-1", "x:r:w:w:7", "x:r:g:g"]
        );
        assert_eq!(keys(&facts("GET", "/api/2.0/sql/statements")).len(), 3);
        assert_eq!(keys(&facts("POST", "/api/2.0/sqlx")).len(), 3);
        let anonymous = RequestFacts {
            principal: None,
            token_id: None,
            workspace: None,
            ..facts("GET", "/")
        };
        assert!(keys(&anonymous).is_empty());
    }

    #[test]
    fn filters_by_principal_and_workspace() {
        let set = RuleSet::compile(&[
            RateLimitRule {
                principals: vec!["alice@example.com".into()],
                ..rule("alice", LimitPer::Principal)
            },
            RateLimitRule {
                workspaces: vec![8],
                ..rule("ws8", LimitPer::Workspace)
            },
        ]);
        let counters = set.counters("x", &facts("GET", "/api"));
        assert_eq!(counters.len(), 1);
        assert_eq!(&*counters[0].rule, "alice");
        let bob = RequestFacts {
            principal: Some(("101", "bob@example.com")),
            workspace: Some(8),
            ..facts("GET", "/api")
        };
        let counters = set.counters("x", &bob);
        assert_eq!(counters.len(), 1);
        assert_eq!(&*counters[0].rule, "ws8");
    }

    #[test]
    fn the_example_rules_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/rate-limits.example.toml");
        let file = load_file(&path, &[]).unwrap();
        assert_eq!(RuleSet::compile(&file.rules).rules.len(), 4);
    }

    #[test]
    fn a_rules_file_is_checked_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rules.toml");
        std::fs::write(
            &path,
            "[[rules]]\nname = \"p\"\nper = \"principal\"\nrequests = 0\n",
        )
        .unwrap();
        let problems = load_file(&path, &[rule("p", LimitPer::Principal)]).unwrap_err();
        let text = problems.join("\n");
        assert!(text.contains("requests` must be at least 1"), "{text}");
        assert!(text.contains("also in the configuration"), "{text}");
        std::fs::write(&path, "[[rules]]\nname = \"q\"\nrequests = 3\n").unwrap();
        assert_eq!(load_file(&path, &[]).unwrap().rules.len(), 1);
    }
}
