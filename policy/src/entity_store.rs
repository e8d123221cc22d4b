//! The entity store of one decision, built two ways from the same description:
//! - [`checked`], through Cedar's public API, which computes the transitive closure of the
//!   hierarchy itself (and, given a schema, checks every entity against it);
//! - [`fast`], with the closure computed here over the few entities of one request and
//!   handed to Cedar as already computed. Cedar's closure runs a strongly-connected-components
//!   pass with a hash map per visited node, and was the largest single cost of an uncached
//!   decision (about a quarter of its instructions).
//!
//! Both give stores with the same entities, attributes, parents and ancestors (the
//! differential tests compare them). [`fast`] takes [`checked`] whenever the closure here
//! could not give exactly what Cedar would (a cycle or a repeated uid), so errors are Cedar's.

use crate::error::chain;
use cedar_policy::{Entities, Entity, EntityUid, RestrictedExpression, Schema};
use cedar_policy_core::ast;
use cedar_policy_core::entities::{self as core_entities, NoEntitiesSchema, TCComputation};
use cedar_policy_core::extensions::Extensions;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One entity the façade builds: its uid, attributes and parents (no parent twice).
#[derive(Debug, Clone)]
pub(crate) struct EntitySpec {
    pub(crate) uid: EntityUid,
    pub(crate) attrs: Vec<(&'static str, AttrValue)>,
    pub(crate) parents: Vec<EntityUid>,
}

/// The attribute values the façade gives entities.
#[derive(Debug, Clone)]
pub(crate) enum AttrValue {
    String(String),
    Bool(bool),
}

impl EntitySpec {
    pub(crate) fn new(uid: EntityUid, parents: Vec<EntityUid>) -> Self {
        Self {
            uid,
            attrs: Vec::new(),
            parents,
        }
    }

    pub(crate) fn with(mut self, name: &'static str, value: AttrValue) -> Self {
        self.attrs.push((name, value));
        self
    }

    /// The public API's entity (its ancestors are computed when it joins a store).
    pub(crate) fn to_entity(&self) -> Result<Entity, String> {
        let attrs: HashMap<String, RestrictedExpression> = self
            .attrs
            .iter()
            .map(|(name, value)| {
                let value = match value {
                    AttrValue::String(s) => RestrictedExpression::new_string(s.clone()),
                    AttrValue::Bool(b) => RestrictedExpression::new_bool(*b),
                };
                ((*name).to_owned(), value)
            })
            .collect();
        let parents: HashSet<EntityUid> = self.parents.iter().cloned().collect();
        Entity::new(self.uid.clone(), attrs, parents).map_err(|e| chain(&e))
    }
}

/// The store as Cedar builds it: closure computed by Cedar, entities checked against `schema`
/// when one is given. `extra` joins the store as it is (action entities from the schema).
pub(crate) fn checked(
    specs: &[EntitySpec],
    extra: impl IntoIterator<Item = Entity>,
    schema: Option<&Schema>,
) -> Result<Entities, String> {
    let mut entities = specs
        .iter()
        .map(EntitySpec::to_entity)
        .collect::<Result<Vec<_>, _>>()?;
    entities.extend(extra);
    Entities::from_entities(entities, schema).map_err(|e| chain(&e))
}

/// The store [`checked`] builds for one request (its non-action entities and its action,
/// `action` and `shared` being the same entity), with the closure computed here when it can
/// be, and by Cedar when the hierarchy has a cycle (so the error is Cedar's).
pub(crate) fn fast(
    specs: Vec<EntitySpec>,
    action: &Entity,
    shared: &Arc<ast::Entity>,
) -> Result<Entities, String> {
    let Some(indirect) = indirect_ancestors(&specs) else {
        return checked(&specs, [action.clone()], None);
    };
    let mut store: Vec<ast::Entity> = Vec::with_capacity(specs.len() + 1);
    for (spec, indirect) in specs.into_iter().zip(indirect) {
        let attrs = spec.attrs.into_iter().map(|(name, value)| {
            let value: ast::PartialValue = match value {
                AttrValue::String(s) => ast::Value::from(s).into(),
                AttrValue::Bool(b) => ast::Value::from(b).into(),
            };
            (name.into(), value)
        });
        store.push(ast::Entity::new_with_attr_partial_value(
            spec.uid.into(),
            attrs,
            indirect.into_iter().map(Into::into).collect(),
            spec.parents.into_iter().map(Into::into).collect(),
            [],
        ));
    }
    store.push(ast::Entity::clone(shared));
    // Repeated uids fail here exactly as in `checked`: both stores are built by the same
    // function, which checks for them before anything else.
    let entities = core_entities::Entities::from_entities(
        store,
        None::<&NoEntitiesSchema>,
        // INVARIANT: `indirect_ancestors` gave every entity all its ancestors, as Cedar's own
        // closure would, and declined cycles.
        TCComputation::AssumeAlreadyComputed,
        Extensions::all_available(),
    )
    .map_err(|e| chain(&e))?;
    Ok(Entities::from(entities))
}

/// Every entity's ancestors beyond its parents: those its parents in the store have (parents
/// and beyond). `None` on a cycle, which Cedar rejects.
fn indirect_ancestors(specs: &[EntitySpec]) -> Option<Vec<Vec<EntityUid>>> {
    // Only entities with parents can pass ancestors on: a parent that is not among them is a
    // leaf of the store or not in it, and adds only itself. The façade builds few of them (the
    // principal, the workspace, a securable's lineage), so a list beats a hash map.
    let inner: Vec<usize> = (0..specs.len())
        .filter(|&i| specs.get(i).is_some_and(|s| !s.parents.is_empty()))
        .collect();
    let mut done: Vec<Option<Vec<EntityUid>>> = vec![None; specs.len()];
    let mut visiting = vec![false; specs.len()];
    for &i in &inner {
        visit(i, specs, &inner, &mut done, &mut visiting)?;
    }
    Some(done.into_iter().map(Option::unwrap_or_default).collect())
}

fn visit(
    i: usize,
    specs: &[EntitySpec],
    inner: &[usize],
    done: &mut [Option<Vec<EntityUid>>],
    visiting: &mut [bool],
) -> Option<()> {
    if done.get(i)?.is_some() {
        return Some(());
    }
    if std::mem::replace(visiting.get_mut(i)?, true) {
        return None;
    }
    let spec = specs.get(i)?;
    let mut indirect: Vec<EntityUid> = Vec::new();
    for parent in &spec.parents {
        let Some(&p) = inner
            .iter()
            .find(|&&j| specs.get(j).is_some_and(|s| s.uid == *parent))
        else {
            continue;
        };
        visit(p, specs, inner, done, visiting)?;
        let through = specs
            .get(p)?
            .parents
            .iter()
            .chain(done.get(p)?.iter().flatten());
        for ancestor in through {
            if !spec.parents.contains(ancestor) && !indirect.contains(ancestor) {
                indirect.push(ancestor.clone());
            }
        }
    }
    if spec.parents.contains(&spec.uid) || indirect.contains(&spec.uid) {
        return None;
    }
    *done.get_mut(i)? = Some(indirect);
    Some(())
}

#[cfg(test)]
mod tests;
