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
use std::hash::Hash;

/// The policy set in buckets of policy numbers.
pub(crate) struct ScopeIndex {
    /// Every policy, numbered.
    policies: Vec<Indexed>,
    /// Bucket 0 holds the policies whose scope constrains nothing the index files by; every
    /// request picks it.
    buckets: Vec<Vec<u32>>,
    principal: Slot,
    action: Slot,
    resource: Slot,
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
    /// `policy.condition()`, which Cedar's evaluator otherwise builds anew (a tree of new
    /// nodes) every time it evaluates the policy.
    pub(crate) condition: ast::Expr,
    scope: Scope,
}

/// A policy's scope as Cedar evaluates it.
struct Scope {
    principal: EntityScope,
    action: ActionScope,
    resource: EntityScope,
}

enum EntityScope {
    Any,
    Eq(EntityUid),
    In(EntityUid),
    Is(EntityTypeName),
    IsIn(EntityTypeName, EntityUid),
}

enum ActionScope {
    Any,
    Eq(EntityUid),
    In(Vec<EntityUid>),
}

/// The buckets filed under one of the scope's three positions.
#[derive(Default)]
struct Slot {
    /// `== E`: the request's entity is `E`.
    eq: HashMap<EntityUid, usize, QuickHash>,
    /// `in E` (and `is T in E`): the request's entity is `E` or has it among its ancestors.
    within: HashMap<EntityUid, usize, QuickHash>,
    /// `is T`: the request's entity is of type `T`.
    is: HashMap<EntityTypeName, usize, QuickHash>,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Position {
    Principal,
    Action,
    Resource,
}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    Eq(Position, EntityUid),
    In(Position, EntityUid),
    Is(Position, EntityTypeName),
}

const UNSCOPED: usize = 0;

/// One of the request's principal, action and resource, with its ancestors in the store.
struct Seen<'a> {
    uid: &'a EntityUid,
    ancestors: Vec<&'a EntityUid>,
}

impl<'a> Seen<'a> {
    fn new(uid: &'a EntityUid, entities: &'a Entities) -> Self {
        let ancestors = entities
            .ancestors(uid)
            .map(Iterator::collect)
            .unwrap_or_default();
        Self { uid, ancestors }
    }

    /// `uid in e`, as Cedar evaluates it: the entity itself or one of its ancestors.
    fn within(&self, e: &EntityUid) -> bool {
        self.uid == e || self.ancestors.contains(&e)
    }
}

impl EntityScope {
    fn matches(&self, seen: &Seen<'_>) -> bool {
        match self {
            EntityScope::Any => true,
            EntityScope::Eq(e) => seen.uid == e,
            EntityScope::In(e) => seen.within(e),
            EntityScope::Is(t) => seen.uid.type_name() == t,
            EntityScope::IsIn(t, e) => seen.uid.type_name() == t && seen.within(e),
        }
    }
}

impl Scope {
    fn matches(&self, principal: &Seen<'_>, action: &Seen<'_>, resource: &Seen<'_>) -> bool {
        let action_matches = match &self.action {
            ActionScope::Any => true,
            ActionScope::Eq(a) => action.uid == a,
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
        let mut crowd: HashMap<&Key, usize> = HashMap::new();
        for (_, options) in &policies {
            for key in options.iter().flatten() {
                *crowd.entry(key).or_default() += 1;
            }
        }
        let mut index = Self {
            policies: Vec::with_capacity(policies.len()),
            buckets: vec![Vec::new()],
            principal: Slot::default(),
            action: Slot::default(),
            resource: Slot::default(),
        };
        for (number, (policy, options)) in (0u32..).zip(&policies) {
            let core: &ast::Policy = policy.as_ref();
            index.policies.push(Indexed {
                policy: core.clone(),
                condition: core.condition(),
                scope: scope_of(policy),
            });
            let chosen = options.iter().min_by_key(|keys| {
                keys.iter()
                    .map(|k| crowd.get(k).copied().unwrap_or(0))
                    .sum::<usize>()
            });
            match chosen {
                None => index.file(UNSCOPED, number),
                Some(keys) => {
                    for key in keys {
                        let bucket = index.bucket_for(key);
                        index.file(bucket, number);
                    }
                }
            }
        }
        index
    }

    fn file(&mut self, bucket: usize, policy: u32) {
        if let Some(b) = self.buckets.get_mut(bucket) {
            b.push(policy);
        }
    }

    fn bucket_for(&mut self, key: &Key) -> usize {
        let next = self.buckets.len();
        let bucket = match key {
            Key::Eq(position, uid) => *self.slot(*position).eq.entry(uid.clone()).or_insert(next),
            Key::In(position, uid) => *self
                .slot(*position)
                .within
                .entry(uid.clone())
                .or_insert(next),
            Key::Is(position, ty) => *self.slot(*position).is.entry(ty.clone()).or_insert(next),
        };
        if bucket == next {
            self.buckets.push(Vec::new());
        }
        bucket
    }

    fn slot(&mut self, position: Position) -> &mut Slot {
        match position {
            Position::Principal => &mut self.principal,
            Position::Action => &mut self.action,
            Position::Resource => &mut self.resource,
        }
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
        picked.push(UNSCOPED);
        self.principal.pick(&principal, &mut picked);
        self.action.pick(&action, &mut picked);
        self.resource.pick(&resource, &mut picked);
        let mut numbers: Vec<u32> = picked
            .into_iter()
            .filter_map(|b| self.buckets.get(b))
            .flatten()
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
            // `Evaluator::partial_evaluate(policy)`, over the condition built once.
            let outcome = match evaluator.partial_interpret(&indexed.condition, policy.env()) {
                Ok(PartialValue::Value(value)) => match value.value_kind() {
                    ValueKind::Lit(Literal::Bool(satisfied)) => Ok(*satisfied),
                    // A condition is a conjunction, a boolean or an error; were it not,
                    // Cedar's own evaluation of the policy says what it is.
                    _ => match evaluator.partial_evaluate(policy) {
                        Ok(evaluated) => Ok(evaluated.left()?),
                        Err(error) => Err(error),
                    },
                },
                Ok(PartialValue::Residual(_)) => return None,
                Err(error) => Err(error),
            };
            match outcome {
                Ok(true) => match policy.effect() {
                    Effect::Permit => permits.push(policy.id().to_string()),
                    Effect::Forbid => forbids.push(policy.id().to_string()),
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
        self.buckets.len()
    }
}

impl Slot {
    fn pick(&self, seen: &Seen<'_>, picked: &mut Vec<usize>) {
        picked.extend(self.eq.get(seen.uid));
        picked.extend(self.is.get(seen.uid.type_name()));
        if !self.within.is_empty() {
            picked.extend(self.within.get(seen.uid));
            picked.extend(seen.ancestors.iter().filter_map(|a| self.within.get(*a)));
        }
    }
}

fn entity_scope(
    eq: Option<EntityUid>,
    within: Option<EntityUid>,
    is: Option<EntityTypeName>,
) -> EntityScope {
    match (eq, within, is) {
        (Some(e), _, _) => EntityScope::Eq(e),
        (None, Some(e), Some(t)) => EntityScope::IsIn(t, e),
        (None, Some(e), None) => EntityScope::In(e),
        (None, None, Some(t)) => EntityScope::Is(t),
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
            ActionConstraint::Eq(a) => ActionScope::Eq(a),
            ActionConstraint::In(list) => ActionScope::In(list),
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
            options.extend(eq.map(|e| vec![Key::Eq(position, e)]));
            options.extend(within.map(|e| vec![Key::In(position, e)]));
            options.extend(is.map(|t| vec![Key::Is(position, t)]));
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
        ActionConstraint::Eq(a) => options.push(vec![Key::Eq(Position::Action, a)]),
        // `action in []` matches nothing; it stays unscoped (and its scope test says no).
        ActionConstraint::In(list) if !list.is_empty() => {
            let mut keys: Vec<Key> = Vec::with_capacity(list.len());
            for a in list {
                let key = Key::In(Position::Action, a);
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
