//! Loading, validating and deciding with one schema and its policies.

use crate::error::{locate, Located, PolicyError, PolicyWarning};
use crate::request::{self, AuthzRequest, Vocabulary};
use cedar_policy::ffi::DetailedError;
use cedar_policy::{
    Authorizer, Entities, Policy, PolicyId, PolicySet, Request, Schema, ValidationMode, Validator,
};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
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

/// A validated schema and policy set: immutable, and cheap to clone (an `Arc` inside), so a
/// reload swaps the whole bundle.
#[derive(Clone)]
pub struct PolicyBundle {
    inner: Arc<Inner>,
}

struct Inner {
    schema: Schema,
    policies: PolicySet,
    vocab: Vocabulary,
    authorizer: Authorizer,
    version: String,
    policy_ids: Vec<String>,
    warnings: Vec<PolicyWarning>,
    /// Whether any policy mentions `requestTime`; when none does, decisions do not depend on
    /// it and it is left out of the cache key.
    reads_request_time: bool,
    decisions: DecisionCache,
}

/// Decisions already made by this bundle. A decision is a pure function of the request, the
/// entities built from it and the policy set; the set is fixed for the bundle's life (a reload
/// makes a new bundle, with an empty cache), and everything the entities are built from is in
/// the key, so a hit returns exactly what evaluation would.
#[derive(Default)]
struct DecisionCache {
    /// parking_lot's: it does not poison, so a panic while it was held cannot switch the
    /// cache off for the bundle's life (std's made every later `get` and `put` skip).
    entries: parking_lot::Mutex<HashMap<AuthzRequest, Decision>>,
}

/// Past this many entries the cache starts over; it holds recent callers, not history.
const DECISION_CACHE_CAPACITY: usize = 16_384;

impl DecisionCache {
    fn get(&self, key: &AuthzRequest) -> Option<Decision> {
        self.entries.lock().get(key).cloned()
    }

    fn put(&self, key: AuthzRequest, decision: &Decision) {
        let mut entries = self.entries.lock();
        if entries.len() >= DECISION_CACHE_CAPACITY {
            entries.clear();
        }
        entries.insert(key, decision.clone());
    }
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
        validate(&schema, &parsed, &mut errors, &mut warnings);
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
                    policies: parsed.set,
                    vocab,
                    authorizer: Authorizer::new(),
                    policy_ids: parsed.ids,
                    warnings,
                    reads_request_time: sorted.iter().any(|(_, text)| text.contains("requestTime")),
                    decisions: DecisionCache::default(),
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

    /// Decides one request. Never fails: a request that cannot be built is a deny carrying the
    /// reason in [`Decision::errors`].
    pub fn authorize(&self, request: &AuthzRequest) -> Decision {
        let key = if self.inner.reads_request_time {
            None
        } else {
            Some(AuthzRequest {
                request_time_unix: 0,
                ..request.clone()
            })
        };
        if let Some(hit) = key.as_ref().and_then(|k| self.inner.decisions.get(k)) {
            return hit;
        }
        let decision = match request::build(&self.inner.vocab, &self.inner.schema, request) {
            Ok((req, entities)) => self.decide(&req, &entities),
            Err(error) => Decision::deny_with_error(error),
        };
        // Decisions with evaluation errors are not kept: each occurrence should be evaluated
        // (and logged) anew.
        if let (Some(key), true) = (key, decision.errors.is_empty()) {
            self.inner.decisions.put(key, &decision);
        }
        decision
    }

    pub(crate) fn vocabulary(&self) -> &Vocabulary {
        &self.inner.vocab
    }

    pub(crate) fn schema(&self) -> &Schema {
        &self.inner.schema
    }

    pub(crate) fn decide(&self, request: &Request, entities: &Entities) -> Decision {
        let response = self
            .inner
            .authorizer
            .is_authorized(request, &self.inner.policies, entities);
        let diagnostics = response.diagnostics();
        let mut determining_policies: Vec<String> =
            diagnostics.reason().map(ToString::to_string).collect();
        determining_policies.sort_unstable();
        let mut errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
        errors.sort_unstable();
        Decision {
            // INVARIANT: an evaluation error never ends in an allow (see `Decision::allowed`).
            allowed: response.decision() == cedar_policy::Decision::Allow && errors.is_empty(),
            determining_policies,
            errors,
        }
    }
}

fn parse_schema(
    name: &str,
    text: &str,
    errors: &mut Vec<PolicyError>,
    warnings: &mut Vec<PolicyWarning>,
) -> Option<Schema> {
    match Schema::from_cedarschema_str(text) {
        Ok((schema, schema_warnings)) => {
            for w in schema_warnings {
                let located = locate(DetailedError::from(&w), name, text, 0);
                warnings.extend(located.into_iter().map(PolicyWarning::from));
            }
            Some(schema)
        }
        Err(e) => {
            let located = locate(DetailedError::from(&e), name, text, 0);
            errors.extend(located.into_iter().map(PolicyError::from));
            None
        }
    }
}

/// Strict validation, each diagnostic mapped back to the file its policy came from.
fn validate(
    schema: &Schema,
    parsed: &Parsed<'_>,
    errors: &mut Vec<PolicyError>,
    warnings: &mut Vec<PolicyWarning>,
) {
    let validation = Validator::new(schema.clone()).validate(&parsed.set, ValidationMode::Strict);
    let type_errors = validation
        .validation_errors()
        .flat_map(|e| parsed.locate(e.policy_id(), DetailedError::from(e)));
    errors.extend(
        fold_same_position(type_errors.collect())
            .into_iter()
            .map(PolicyError::from),
    );
    let type_warnings = validation
        .validation_warnings()
        .flat_map(|w| parsed.locate(w.policy_id(), DetailedError::from(w)));
    warnings.extend(
        fold_same_position(type_warnings.collect())
            .into_iter()
            .map(PolicyWarning::from),
    );
}

type Sources = Vec<(String, String)>;

/// Reads the schema files and policy files of `dir`, each sorted by name.
fn read_dir_sources(dir: &Path) -> Result<(Sources, Sources), Vec<PolicyError>> {
    let io_error = |path: &Path, e: std::io::Error| PolicyError::Load {
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| vec![io_error(dir, e)])?;
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => paths.push(entry.path()),
            Err(e) => errors.push(io_error(dir, e)),
        }
    }
    paths.sort();
    let (mut schemas, mut policies) = (Vec::new(), Vec::new());
    for path in paths {
        let list = match path.extension().and_then(|e| e.to_str()) {
            Some("cedarschema") => &mut schemas,
            Some("cedar") => &mut policies,
            _ => continue,
        };
        if !path.is_file() {
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => list.push((path.display().to_string(), text)),
            Err(e) => errors.push(io_error(&path, e)),
        }
    }
    if errors.is_empty() {
        Ok((schemas, policies))
    } else {
        Err(errors)
    }
}

/// The policies of every file, renamed to their final ids, and where each came from.
struct Parsed<'a> {
    set: PolicySet,
    ids: Vec<String>,
    /// id → (file name, file text, byte offset of the policy in the file)
    origin: HashMap<String, (&'a str, &'a str, usize)>,
}

impl Parsed<'_> {
    fn locate(&self, id: &PolicyId, diag: DetailedError) -> impl Iterator<Item = Located> {
        let located = match self.origin.get(id.to_string().as_str()) {
            Some((file, text, offset)) => locate(diag, file, text, *offset),
            // Cannot happen (every policy in the set came from a file); still say something.
            None => locate(diag, "<unknown>", "", 0),
        };
        located.into_iter()
    }
}

/// Parses every policy file; syntax errors, templates and id clashes go to `errors`, and the
/// policies that parsed are returned so they can still be validated.
fn parse_policies<'a>(files: &[(&'a str, &'a str)], errors: &mut Vec<PolicyError>) -> Parsed<'a> {
    let mut parsed = Parsed {
        set: PolicySet::new(),
        ids: Vec::new(),
        origin: HashMap::new(),
    };
    for &(file, text) in files {
        parsed.add_file(file, text, errors);
    }
    parsed
}

impl<'a> Parsed<'a> {
    fn add_file(&mut self, file: &'a str, text: &'a str, errors: &mut Vec<PolicyError>) {
        let set = match PolicySet::from_str(text) {
            Ok(set) => set,
            Err(e) => {
                let located = locate(DetailedError::from(&e), file, text, 0);
                errors.extend(located.into_iter().map(PolicyError::from));
                return;
            }
        };
        for template in set.templates() {
            let offset = offset_of(text, &template.to_string(), 0);
            let message = "templates (policies with `?principal` or `?resource`) are not supported";
            errors.push(at(file, text, offset, message.into()));
        }
        let stem = Path::new(file)
            .file_stem()
            .map_or_else(|| file.to_owned(), |s| s.to_string_lossy().into_owned());
        let mut search_from = 0;
        for (index, policy) in in_source_order(&set) {
            let offset = offset_of(text, &policy.to_string(), search_from);
            search_from = offset + 1;
            let id = match policy.annotation("id") {
                Some(id) => id.to_owned(),
                None => format!("{stem}:{index}"),
            };
            if let Err(message) = self.add_policy(id, policy, (file, text, offset)) {
                errors.push(at(file, text, offset, message));
            }
        }
    }

    fn add_policy(
        &mut self,
        id: String,
        policy: &Policy,
        origin: (&'a str, &'a str, usize),
    ) -> Result<(), String> {
        if id.is_empty() {
            return Err("empty `@id` annotation".into());
        }
        if let Some((first, _, _)) = self.origin.get(id.as_str()) {
            return Err(if *first == origin.0 {
                format!("duplicate policy id `{id}` (used twice in this file)")
            } else {
                format!("duplicate policy id `{id}` (also used in `{first}`)")
            });
        }
        self.set
            .add(policy.new_id(PolicyId::new(&id)))
            .map_err(|e| e.to_string())?;
        self.origin.insert(id.clone(), origin);
        self.ids.push(id);
        Ok(())
    }
}

/// The policies of one parsed text with their 0-based position in it.
fn in_source_order(set: &PolicySet) -> Vec<(usize, &Policy)> {
    // Cedar names the policies of a text `policy0`, `policy1`, ... in source order
    // (documented on `PolicySet::from_str`), and iterates them in no particular order.
    let mut policies: Vec<_> = set
        .policies()
        .map(|p| {
            let index = p
                .id()
                .to_string()
                .strip_prefix("policy")
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            (index, p)
        })
        .collect();
    policies.sort_by_key(|(index, _)| *index);
    policies
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

fn at(file: &str, text: &str, offset: usize, message: String) -> PolicyError {
    let (line, column) = crate::error::line_column(text, offset);
    PolicyError::Source {
        file: file.to_owned(),
        line,
        column,
        message,
    }
}

/// Where a policy's text (as cedar kept it) starts in its file; 0 when not found.
fn offset_of(text: &str, policy_text: &str, from: usize) -> usize {
    text.get(from..)
        .and_then(|rest| rest.find(policy_text))
        .map_or(0, |i| from + i)
}

/// FNV-1a over file names and contents: stable across runs, platforms and Rust versions
/// (unlike `DefaultHasher`), and collision resistance is not needed for a version label.
fn version_of(schema_name: &str, schema_text: &str, policies: &[(&str, &str)]) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes.iter().chain([0u8].iter()) {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    let base = |name: &str| {
        Path::new(name)
            .file_name()
            .map_or_else(|| name.to_owned(), |n| n.to_string_lossy().into_owned())
    };
    feed(base(schema_name).as_bytes());
    feed(schema_text.as_bytes());
    for (name, text) in policies {
        feed(base(name).as_bytes());
        feed(text.as_bytes());
    }
    format!("{hash:016x}").chars().take(12).collect()
}

#[cfg(test)]
mod tests;
