//! The policy set indexed by what its scopes constrain, so that a decision asks Cedar only
//! about the policies whose scope can match the request.
//!
//! Cedar evaluates a policy as `principal-scope && action-scope && resource-scope && body`,
//! left to right and short-circuiting, and a scope constraint never fails to evaluate
//! (`principal in E` is a lookup of the request's principal's ancestors, false when it is
//! not in the store). So a policy whose scope does not match the request is not satisfied and
//! reports no error: leaving it out changes neither the decision, nor the determining
//! policies, nor the errors. The index only ever leaves out such policies.
//!
//! **Invariant:** for every request and entity store, [`ScopeIndex::slice`] returns exactly the
//! policies whose scope Cedar would evaluate to true. Each policy is filed in one bucket per
//! key of one constraint of its scope (a principal or resource `==` entity, `in` entity or
//! `is` type, or an action `==` or `in` list); a request picks the buckets of everything a
//! constraint could match (its entity itself, the entity's ancestors in the store for `in`,
//! its type for `is`) and the unscoped bucket, which holds the policies whose scope
//! constrains nothing. Each picked policy's whole scope is then tested as Cedar evaluates it
//! ([`Scope::matches`]), so that Cedar evaluates only the policies that can apply.

use crate::quick_hash::QuickHash;
use cedar_policy::{
    ActionConstraint, Entities, EntityTypeName, EntityUid, Policy, PolicySet, PrincipalConstraint,
    Request, ResourceConstraint,
};
use cedar_policy_core::ast::{self, Effect, Literal, PartialValue, ValueKind};
use cedar_policy_core::authorizer::AuthorizationError as CoreAuthorizationError;
use cedar_policy_core::evaluator::Evaluator;
use cedar_policy_core::extensions::Extensions;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// The policy set in buckets of policy numbers.
pub(crate) struct ScopeIndex {
    /// Every policy, numbered.
    policies: Vec<Indexed>,
    /// The policy numbers of every bucket, one bucket after another.
    members: Vec<u32>,
    /// The policies whose scope constrains nothing the index files by; every request picks
    /// them.
    unscoped: Bucket,
    principal: Slot,
    action: Slot,
    resource: Slot,
}

/// A bucket: its range of [`ScopeIndex::members`].
#[derive(Clone, Copy, Default)]
struct Bucket {
    start: u32,
    len: u32,
}

/// Cedar's answer: whether it allows, the policies that determined it, the policies that
/// failed to evaluate (with why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) allows: bool,
    pub(crate) determining: Vec<String>,
    pub(crate) errors: Vec<String>,
}

/// One policy, in the forms a decision uses.
pub(crate) struct Indexed {
    /// Cedar's own form of the policy.
    pub(crate) policy: ast::Policy,
    /// The policy's id as Cedar's responses print it (escaped), printed once.
    id: String,
    scope: Scope,
}

/// A policy's scope as Cedar evaluates it.
struct Scope {
    principal: EntityScope,
    action: ActionScope,
    resource: EntityScope,
}

/// A uid or type with its [`print`]: comparing prints first leaves the uid itself (behind
/// pointers, cold in a large set) untouched unless it is likely the same.
struct Known<T> {
    print: u64,
    value: T,
}

impl<T: Hash> Known<T> {
    fn new(value: T) -> Self {
        Self {
            print: print(&value),
            value,
        }
    }
}

enum EntityScope {
    Any,
    Eq(Known<EntityUid>),
    In(Known<EntityUid>),
    Is(Known<EntityTypeName>),
    IsIn(Known<EntityTypeName>, Known<EntityUid>),
}

enum ActionScope {
    Any,
    Eq(Known<EntityUid>),
    In(Vec<Known<EntityUid>>),
}

/// The buckets filed under one of the scope's three positions, by the [`print`] of the uid
/// or type (two that share a print share a bucket, which only adds candidates that the
/// exact scope test then leaves out).
#[derive(Default)]
struct Slot {
    /// `== E`: the request's entity is `E`.
    eq: HashMap<u64, Bucket, QuickHash>,
    /// `in E` (and `is T in E`): the request's entity is `E` or has it among its ancestors.
    within: HashMap<u64, Bucket, QuickHash>,
    /// `is T`: the request's entity is of type `T`.
    is: HashMap<u64, Bucket, QuickHash>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Position {
    Principal,
    Action,
    Resource,
}

/// Where a policy can be filed: a kind of constraint at a position, and the print of what it
/// names.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Eq(Position, u64),
    In(Position, u64),
    Is(Position, u64),
}

/// A 64-bit digest of a uid or type, the same for equal values.
fn print<T: Hash + ?Sized>(value: &T) -> u64 {
    QuickHash.hash_one(value)
}

/// One of the request's principal, action and resource, with its ancestors in the store.
struct Seen<'a> {
    uid: &'a EntityUid,
    print: u64,
    type_print: u64,
    ancestors: Vec<(u64, &'a EntityUid)>,
}

impl<'a> Seen<'a> {
    fn new(uid: &'a EntityUid, entities: &'a Entities) -> Self {
        let ancestors = entities
            .ancestors(uid)
            .map(|all| all.map(|a| (print(a), a)).collect())
            .unwrap_or_default();
        Self {
            uid,
            print: print(uid),
            type_print: print(uid.type_name()),
            ancestors,
        }
    }

    /// `uid == e`.
    fn is(&self, e: &Known<EntityUid>) -> bool {
        self.print == e.print && *self.uid == e.value
    }

    /// `uid in e`, as Cedar evaluates it: the entity itself or one of its ancestors.
    fn within(&self, e: &Known<EntityUid>) -> bool {
        self.is(e)
            || self
                .ancestors
                .iter()
                .any(|(print, a)| *print == e.print && **a == e.value)
    }

    /// `uid is t`.
    fn of_type(&self, t: &Known<EntityTypeName>) -> bool {
        self.type_print == t.print && *self.uid.type_name() == t.value
    }
}

impl EntityScope {
    fn matches(&self, seen: &Seen<'_>) -> bool {
        match self {
            EntityScope::Any => true,
            EntityScope::Eq(e) => seen.is(e),
            EntityScope::In(e) => seen.within(e),
            EntityScope::Is(t) => seen.of_type(t),
            EntityScope::IsIn(t, e) => seen.of_type(t) && seen.within(e),
        }
    }
}

impl Scope {
    fn matches(&self, principal: &Seen<'_>, action: &Seen<'_>, resource: &Seen<'_>) -> bool {
        let action_matches = match &self.action {
            ActionScope::Any => true,
            ActionScope::Eq(a) => action.is(a),
            ActionScope::In(list) => list.iter().any(|a| action.within(a)),
        };
        action_matches && self.principal.matches(principal) && self.resource.matches(resource)
    }
}

impl ScopeIndex {
    /// Files every policy of `set` (static policies only: templates are refused at load).
    pub(crate) fn new(set: &PolicySet) -> Self {
        let policies: Vec<(&Policy, Vec<Vec<Key>>)> =
            set.policies().map(|p| (p, filings(p))).collect();
        // How many policies could be filed under each key: each policy goes where the fewest
        // others could, so that a request's buckets stay small (a policy per group is filed
        // by its group, not by the action all of them share).
        let mut crowd: HashMap<Key, usize, QuickHash> = HashMap::default();
        for (_, options) in &policies {
            for key in options.iter().flatten() {
                *crowd.entry(*key).or_default() += 1;
            }
        }
        let mut filed: HashMap<Key, Vec<u32>, QuickHash> = HashMap::default();
        let mut unscoped = Vec::new();
        let mut indexed = Vec::with_capacity(policies.len());
        for (number, (policy, options)) in (0u32..).zip(&policies) {
            let core: &ast::Policy = policy.as_ref();
            indexed.push(Indexed {
                policy: core.clone(),
                id: policy.id().to_string(),
                scope: scope_of(policy),
            });
            let chosen = options.iter().min_by_key(|keys| {
                keys.iter()
                    .map(|k| crowd.get(k).copied().unwrap_or(0))
                    .sum::<usize>()
            });
            match chosen {
                None => unscoped.push(number),
                Some(keys) => {
                    for key in keys {
                        filed.entry(*key).or_default().push(number);
                    }
                }
            }
        }
        let mut index = Self {
            policies: indexed,
            members: Vec::new(),
            unscoped: Bucket::default(),
            principal: Slot::default(),
            action: Slot::default(),
            resource: Slot::default(),
        };
        index.unscoped = index.add_bucket(&unscoped);
        for (key, numbers) in filed {
            let bucket = index.add_bucket(&numbers);
            let (position, print) = match key {
                Key::Eq(position, print) | Key::In(position, print) | Key::Is(position, print) => {
                    (position, print)
                }
            };
            let slot = match position {
                Position::Principal => &mut index.principal,
                Position::Action => &mut index.action,
                Position::Resource => &mut index.resource,
            };
            let table = match key {
                Key::Eq(..) => &mut slot.eq,
                Key::In(..) => &mut slot.within,
                Key::Is(..) => &mut slot.is,
            };
            table.insert(print, bucket);
        }
        index
    }

    fn add_bucket(&mut self, numbers: &[u32]) -> Bucket {
        let bucket = Bucket {
            start: u32::try_from(self.members.len()).unwrap_or(u32::MAX),
            len: u32::try_from(numbers.len()).unwrap_or(u32::MAX),
        };
        self.members.extend_from_slice(numbers);
        bucket
    }

    fn members(&self, bucket: Bucket) -> &[u32] {
        let start = bucket.start as usize;
        self.members
            .get(start..start + bucket.len as usize)
            .unwrap_or_default()
    }

    /// The policies whose scope matches `request`, each once, in load order. A request with
    /// an unknown principal, action or resource (never built here: that is partial
    /// evaluation) gets every policy.
    pub(crate) fn slice(&self, request: &Request, entities: &Entities) -> Vec<&Indexed> {
        let (Some(principal), Some(action), Some(resource)) =
            (request.principal(), request.action(), request.resource())
        else {
            return self.policies.iter().collect();
        };
        let principal = Seen::new(principal, entities);
        let action = Seen::new(action, entities);
        let resource = Seen::new(resource, entities);
        let mut picked = Vec::with_capacity(8);
        picked.push(self.unscoped);
        self.principal.pick(&principal, &mut picked);
        self.action.pick(&action, &mut picked);
        self.resource.pick(&resource, &mut picked);
        let mut numbers: Vec<u32> = picked
            .into_iter()
            .flat_map(|b| self.members(b))
            .copied()
            .collect();
        // A policy filed under several action keys (`action in [A, B]`) may come from more
        // than one bucket.
        numbers.sort_unstable();
        numbers.dedup();
        numbers
            .into_iter()
            .filter_map(|n| self.policies.get(n as usize))
            .filter(|p| p.scope.matches(&principal, &action, &resource))
            .collect()
    }

    /// What Cedar's authorizer answers over the whole set, found over the slice: each policy
    /// of the slice evaluated by Cedar's evaluator, the outcomes combined by the rule of
    /// Cedar's authorizer (`Authorizer::is_authorized_core`, which only takes a whole
    /// `PolicySet`): a satisfied `forbid` denies and the satisfied forbids determine;
    /// otherwise the satisfied `permit`s allow and determine; a policy that fails to evaluate
    /// is skipped and its error reported. Asking the authorizer once per bucket, or building a
    /// `PolicySet` of the slice per request, cost more than the evaluations themselves.
    ///
    /// `None` when a policy evaluates to a residual, which needs an unknown in the request
    /// (never built here): then only the authorizer can answer.
    pub(crate) fn evaluate(&self, request: &Request, entities: &Entities) -> Option<Outcome> {
        let evaluator = Evaluator::new(
            request.as_ref().clone(),
            entities.as_ref(),
            Extensions::all_available(),
        );
        let (mut permits, mut forbids, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for indexed in self.slice(request, entities) {
            let policy = &indexed.policy;
            // Cedar evaluates `principal-scope && action-scope && resource-scope && body`; the
            // slice holds only policies whose scope is true (and a scope cannot fail), so the
            // conjunction is the body's value: a boolean, or the body's error.
            let outcome = match policy.non_scope_constraints() {
                None => Ok(true),
                Some(body) => match evaluator.partial_interpret(body, policy.env()) {
                    Ok(PartialValue::Value(value)) => match value.value_kind() {
                        ValueKind::Lit(Literal::Bool(satisfied)) => Ok(*satisfied),
                        // Not a boolean (a validated policy's body always is): the
                        // conjunction's type error is Cedar's to word.
                        _ => match evaluator.partial_evaluate(policy) {
                            Ok(evaluated) => Ok(evaluated.left()?),
                            Err(error) => Err(error),
                        },
                    },
                    Ok(PartialValue::Residual(_)) => return None,
                    Err(error) => Err(error),
                },
            };
            match outcome {
                Ok(true) => match policy.effect() {
                    Effect::Permit => permits.push(indexed.id.clone()),
                    Effect::Forbid => forbids.push(indexed.id.clone()),
                },
                Ok(false) => {}
                Err(error) => {
                    let id = policy.id().clone();
                    let error = CoreAuthorizationError::PolicyEvaluationError { id, error };
                    errors.push(cedar_policy::AuthorizationError::from(error).to_string());
                }
            }
        }
        Some(if forbids.is_empty() {
            Outcome {
                allows: !permits.is_empty(),
                determining: permits,
                errors,
            }
        } else {
            Outcome {
                allows: false,
                determining: forbids,
                errors,
            }
        })
    }

    /// How many buckets the set was filed into (the unscoped one included).
    #[cfg(test)]
    pub(crate) fn bucket_count(&self) -> usize {
        1 + [&self.principal, &self.action, &self.resource]
            .iter()
            .map(|s| s.eq.len() + s.within.len() + s.is.len())
            .sum::<usize>()
    }
}

impl Slot {
    fn pick(&self, seen: &Seen<'_>, picked: &mut Vec<Bucket>) {
        picked.extend(self.eq.get(&seen.print));
        picked.extend(self.is.get(&seen.type_print));
        if !self.within.is_empty() {
            picked.extend(self.within.get(&seen.print));
            picked.extend(
                seen.ancestors
                    .iter()
                    .filter_map(|(p, _)| self.within.get(p)),
            );
        }
    }
}

fn entity_scope(
    eq: Option<EntityUid>,
    within: Option<EntityUid>,
    is: Option<EntityTypeName>,
) -> EntityScope {
    match (eq, within, is) {
        (Some(e), _, _) => EntityScope::Eq(Known::new(e)),
        (None, Some(e), Some(t)) => EntityScope::IsIn(Known::new(t), Known::new(e)),
        (None, Some(e), None) => EntityScope::In(Known::new(e)),
        (None, None, Some(t)) => EntityScope::Is(Known::new(t)),
        (None, None, None) => EntityScope::Any,
    }
}

fn principal_parts(
    c: PrincipalConstraint,
) -> (Option<EntityUid>, Option<EntityUid>, Option<EntityTypeName>) {
    match c {
        PrincipalConstraint::Any => (None, None, None),
        PrincipalConstraint::Eq(e) => (Some(e), None, None),
        PrincipalConstraint::In(e) => (None, Some(e), None),
        PrincipalConstraint::Is(t) => (None, None, Some(t)),
        PrincipalConstraint::IsIn(t, e) => (None, Some(e), Some(t)),
    }
}

fn resource_parts(
    c: ResourceConstraint,
) -> (Option<EntityUid>, Option<EntityUid>, Option<EntityTypeName>) {
    match c {
        ResourceConstraint::Any => (None, None, None),
        ResourceConstraint::Eq(e) => (Some(e), None, None),
        ResourceConstraint::In(e) => (None, Some(e), None),
        ResourceConstraint::Is(t) => (None, None, Some(t)),
        ResourceConstraint::IsIn(t, e) => (None, Some(e), Some(t)),
    }
}

fn scope_of(policy: &Policy) -> Scope {
    let (pe, pi, pt) = principal_parts(policy.principal_constraint());
    let (re, ri, rt) = resource_parts(policy.resource_constraint());
    Scope {
        principal: entity_scope(pe, pi, pt),
        action: match policy.action_constraint() {
            ActionConstraint::Any => ActionScope::Any,
            ActionConstraint::Eq(a) => ActionScope::Eq(Known::new(a)),
            ActionConstraint::In(list) => {
                ActionScope::In(list.into_iter().map(Known::new).collect())
            }
        },
        resource: entity_scope(re, ri, rt),
    }
}

/// The ways a policy can be filed: one list of keys per constraint of its scope (a policy
/// filed under a list goes into each key's bucket). None: the scope constrains nothing.
fn filings(policy: &Policy) -> Vec<Vec<Key>> {
    let mut options = Vec::new();
    let mut entity =
        |position,
         (eq, within, is): (Option<EntityUid>, Option<EntityUid>, Option<EntityTypeName>)| {
            options.extend(eq.map(|e| vec![Key::Eq(position, print(&e))]));
            options.extend(within.map(|e| vec![Key::In(position, print(&e))]));
            options.extend(is.map(|t| vec![Key::Is(position, print(&t))]));
        };
    entity(
        Position::Principal,
        principal_parts(policy.principal_constraint()),
    );
    entity(
        Position::Resource,
        resource_parts(policy.resource_constraint()),
    );
    match policy.action_constraint() {
        ActionConstraint::Any => {}
        ActionConstraint::Eq(a) => options.push(vec![Key::Eq(Position::Action, print(&a))]),
        // `action in []` matches nothing; it stays unscoped (and its scope test says no).
        ActionConstraint::In(list) if !list.is_empty() => {
            let mut keys: Vec<Key> = Vec::with_capacity(list.len());
            for a in list {
                let key = Key::In(Position::Action, print(&a));
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            options.push(keys);
        }
        ActionConstraint::In(_) => {}
    }
    options
}

#[cfg(test)]
mod tests;
