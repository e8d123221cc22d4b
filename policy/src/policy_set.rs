//! Loading, validating and deciding with one schema and its policies.

use crate::decision_cache::DecisionCache;
use crate::error::{PolicyError, PolicyWarning};
use crate::load::{parse_policies, parse_schema, read_dir_sources, version_of};
use crate::request::{self, AuthzRequest, Vocabulary};
use crate::scope_index::ScopeIndex;
use crate::validation::validate;
use cedar_policy::{Authorizer, Entities, PolicySet, Request, Schema};
use serde::Serialize;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

/// The outcome of one authorization question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// True only when some `permit` matched, no `forbid` did, and no policy failed to
    /// evaluate. Cedar skips an erroring policy, which for a `forbid` would turn a deny into an
    /// allow; we fail closed instead.
    pub allowed: bool,
    /// Ids of the policies that decided: the matching `permit`s on allow, the matching
    /// `forbid`s on an explicit deny, none on a default deny. Sorted.
    pub determining_policies: Vec<String>,
    /// Policies that failed to evaluate (they count as not matching, so an erroring `permit`
    /// never allows), or why the request could not be built. Each names the policy id. Sorted.
    pub errors: Vec<String>,
}

impl Decision {
    pub(crate) fn deny_with_error(error: String) -> Self {
        Self {
            allowed: false,
            determining_policies: Vec::new(),
            errors: vec![error],
        }
    }
}

/// How a decision is made. Both give the same decision, determining policies and errors; the
/// differential tests and the benchmark compare them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluation {
    /// What [`PolicyBundle::authorize`] does: Cedar asked only about the policies whose scope
    /// can match the request (the scope index's slice), over a request and entity store built
    /// without the work whose outcome is known (see `request::build`).
    Sliced,
    /// The oracle: every policy of the set evaluated, the request validated against the
    /// schema and the hierarchy's closure computed by Cedar, as the façade was first written.
    WholeSet,
}

/// A validated schema and policy set: immutable, and cheap to clone (an `Arc` inside), so a
/// reload swaps the whole bundle.
#[derive(Clone)]
pub struct PolicyBundle {
    inner: Arc<Inner>,
}

struct Inner {
    schema: Schema,
    policies: PolicySet,
    /// The same policies filed by scope; see `scope_index` for why a slice decides exactly as
    /// the whole set.
    index: ScopeIndex,
    vocab: Vocabulary,
    authorizer: Authorizer,
    version: String,
    policy_ids: Vec<String>,
    warnings: Vec<PolicyWarning>,
    /// Whether any policy mentions `requestTime`; when none does, decisions do not depend on
    /// it and it is left out of the cache key.
    reads_request_time: bool,
    decisions: DecisionCache<Decision>,
}

impl fmt::Debug for PolicyBundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyBundle")
            .field("version", &self.inner.version)
            .field("policies", &self.inner.policy_ids)
            .finish_non_exhaustive()
    }
}

impl PolicyBundle {
    /// Reads `dir`: exactly one `*.cedarschema` file and every `*.cedar` file (sorted by name),
    /// not recursing. Parses and validates everything (strict mode) and returns all problems at
    /// once, each with file, line and column.
    pub fn load_dir(dir: &Path) -> Result<Self, Vec<PolicyError>> {
        let (schemas, policies) = read_dir_sources(dir)?;
        let mut errors = Vec::new();
        let schema = match schemas.as_slice() {
            [one] => Some(one),
            [] => {
                errors.push(PolicyError::Load {
                    path: dir.display().to_string(),
                    message: "no `*.cedarschema` file in the policy directory".into(),
                });
                None
            }
            many => {
                let names: Vec<String> = many.iter().map(|(n, _)| format!("`{n}`")).collect();
                errors.push(PolicyError::Load {
                    path: dir.display().to_string(),
                    message: format!(
                        "expected one `*.cedarschema` file, found {}: {}",
                        many.len(),
                        names.join(", ")
                    ),
                });
                None
            }
        };
        let policies: Vec<(&str, &str)> = policies
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        match schema {
            Some((name, text)) if errors.is_empty() => Self::from_sources((name, text), &policies),
            _ => {
                // Still report syntax errors in the policies: all problems at once.
                let _ = parse_policies(&policies, &mut errors);
                Err(errors)
            }
        }
    }

    /// Like [`Self::load_dir`] from in-memory `(file name, text)` pairs, for tests and reloads.
    /// Policy files are taken in name order whatever order they are given in.
    pub fn from_sources(
        schema: (&str, &str),
        policies: &[(&str, &str)],
    ) -> Result<Self, Vec<PolicyError>> {
        let (schema_name, schema_text) = schema;
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let schema = parse_schema(schema_name, schema_text, &mut errors, &mut warnings);
        let mut sorted = policies.to_vec();
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let parsed = parse_policies(&sorted, &mut errors);
        let Some(schema) = schema else {
            return Err(errors);
        };
        // Validate whatever parsed, so type errors come out alongside syntax errors elsewhere.
        validate(&schema, schema_text, &parsed, &mut errors, &mut warnings);
        let vocab = match Vocabulary::new(&schema) {
            Ok(v) => Some(v),
            Err(message) => {
                errors.push(PolicyError::Load {
                    path: schema_name.to_owned(),
                    message,
                });
                None
            }
        };
        match vocab {
            Some(vocab) if errors.is_empty() => Ok(Self {
                inner: Arc::new(Inner {
                    version: version_of(schema_name, schema_text, &sorted),
                    schema,
                    index: ScopeIndex::new(&parsed.set),
                    policies: parsed.set,
                    vocab,
                    authorizer: Authorizer::new(),
                    policy_ids: parsed.ids,
                    warnings,
                    reads_request_time: sorted.iter().any(|(_, text)| text.contains("requestTime")),
                    decisions: DecisionCache::new(),
                }),
            }),
            _ => Err(errors),
        }
    }

    /// A short content hash of the schema and policy files (names and text), used as the
    /// policy-set version in metrics and audit records. Independent of the directory's path.
    pub fn version(&self) -> &str {
        &self.inner.version
    }

    /// How many policies the set holds.
    pub fn policy_count(&self) -> usize {
        self.inner.policy_ids.len()
    }

    /// Policy ids in load order (file name, then position in the file).
    pub fn policy_ids(&self) -> impl Iterator<Item = &str> {
        self.inner.policy_ids.iter().map(String::as_str)
    }

    /// Validation warnings: the set was accepted, but these deserve a look.
    pub fn warnings(&self) -> &[PolicyWarning] {
        &self.inner.warnings
    }

    /// Decides one request without the memo, the way `evaluation` says: what the differential
    /// test and the benchmark compare. [`Self::authorize`] is this (sliced), memoized.
    pub fn authorize_uncached(&self, request: &AuthzRequest, evaluation: Evaluation) -> Decision {
        let (vocab, schema) = (&self.inner.vocab, &self.inner.schema);
        let built = match evaluation {
            Evaluation::Sliced => request::build(vocab, schema, request),
            Evaluation::WholeSet => request::build_checked(vocab, schema, request),
        };
        match built {
            Ok((req, entities)) => self.decide_with(&req, &entities, evaluation),
            Err(error) => Decision::deny_with_error(error),
        }
    }

    /// Decides one request. Never fails: a request that cannot be built is a deny carrying the
    /// reason in [`Decision::errors`].
    pub fn authorize(&self, request: &AuthzRequest) -> Decision {
        // The cache leaves the request time out of its key: only right while no policy reads
        // it.
        if self.inner.reads_request_time {
            return self.authorize_uncached(request, Evaluation::Sliced);
        }
        let (slot, hit) = self.inner.decisions.get(request);
        if let Some(hit) = hit {
            return hit;
        }
        let decision = self.authorize_uncached(request, Evaluation::Sliced);
        // Decisions with evaluation errors are not kept: each occurrence should be evaluated
        // (and logged) anew.
        if decision.errors.is_empty() {
            self.inner.decisions.put(slot, request, &decision);
        }
        decision
    }

    pub(crate) fn vocabulary(&self) -> &Vocabulary {
        &self.inner.vocab
    }

    pub(crate) fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    /// Decides a built request over the slice its scope can match.
    pub(crate) fn decide(&self, request: &Request, entities: &Entities) -> Decision {
        self.decide_with(request, entities, Evaluation::Sliced)
    }

    pub(crate) fn decide_with(
        &self,
        request: &Request,
        entities: &Entities,
        evaluation: Evaluation,
    ) -> Decision {
        match evaluation {
            Evaluation::Sliced => self.decide_sliced(request, entities),
            Evaluation::WholeSet => self.decide_whole(request, entities),
        }
    }

    /// Cedar over every policy: the oracle.
    fn decide_whole(&self, request: &Request, entities: &Entities) -> Decision {
        let response = self
            .inner
            .authorizer
            .is_authorized(request, &self.inner.policies, entities);
        let diagnostics = response.diagnostics();
        let determining_policies: Vec<String> =
            diagnostics.reason().map(ToString::to_string).collect();
        let errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
        let allows = response.decision() == cedar_policy::Decision::Allow;
        Decision::of(allows, determining_policies, errors)
    }

    /// Cedar over the slice: the policies whose scope can match (see `scope_index`).
    fn decide_sliced(&self, request: &Request, entities: &Entities) -> Decision {
        match self.inner.index.evaluate(request, entities) {
            Some(outcome) => Decision::of(outcome.allows, outcome.determining, outcome.errors),
            // Only a request with unknowns (never built here) gives no outcome; Cedar's
            // authorizer is the authority on those.
            None => self.decide_whole(request, entities),
        }
    }
}

impl Decision {
    fn of(
        cedar_allows: bool,
        mut determining_policies: Vec<String>,
        mut errors: Vec<String>,
    ) -> Self {
        determining_policies.sort_unstable();
        errors.sort_unstable();
        Decision {
            // INVARIANT: an evaluation error never ends in an allow (see `Decision::allowed`).
            allowed: cedar_allows && errors.is_empty(),
            determining_policies,
            errors,
        }
    }
}

#[cfg(test)]
mod differential;
#[cfg(test)]
mod tests;
