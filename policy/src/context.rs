//! The context of one decision, built two ways from the same fields:
//! - [`checked`], through Cedar's public API, which builds an expression of the record and
//!   evaluates it (parsing the name `ip` anew for every address);
//! - [`direct`], the record's values made directly, the `ip` constructor looked up once per
//!   bundle. That was about a sixth of an uncached decision.
//!
//! Both give the same values (the differential tests compare decisions over them); [`direct`]
//! takes [`checked`] whenever a value cannot be made (an address the constructor refuses), so
//! the error is Cedar's.

use crate::error::chain;
use cedar_policy::{Context, EntityUid, RestrictedExpression};
use cedar_policy_core::ast;
use cedar_policy_core::extensions::Extensions;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One field of the context.
#[derive(Debug, Clone)]
pub(crate) enum Field {
    Ip(String),
    Entity(EntityUid),
    String(String),
    Long(i64),
    StringSet(Vec<String>),
}

/// The `ip` constructor, resolved once.
#[derive(Debug)]
pub(crate) struct Constructors {
    ip: &'static ast::ExtensionFunction,
}

impl Constructors {
    pub(crate) fn new() -> Result<Self, String> {
        let ip_name = "ip".parse::<ast::Name>().map_err(|e| chain(&e))?;
        let ip = Extensions::all_available()
            .func(&ip_name)
            .map_err(|e| chain(&e))?;
        Ok(Self { ip })
    }
}

/// The context as the public API builds it.
pub(crate) fn checked(fields: Vec<(&'static str, Field)>) -> Result<Context, String> {
    let pairs = fields.into_iter().map(|(key, field)| {
        let value = match field {
            Field::Ip(address) => RestrictedExpression::new_ip(address),
            Field::Entity(uid) => RestrictedExpression::new_entity_uid(uid),
            Field::String(s) => RestrictedExpression::new_string(s),
            Field::Long(n) => RestrictedExpression::new_long(n),
            Field::StringSet(items) => RestrictedExpression::new_set(
                items.into_iter().map(RestrictedExpression::new_string),
            ),
        };
        (key.to_owned(), value)
    });
    Context::from_pairs(pairs).map_err(|e| chain(&e))
}

/// The same context, its values made directly.
pub(crate) fn direct(
    constructors: &Constructors,
    fields: Vec<(&'static str, Field)>,
) -> Result<Context, String> {
    let mut record = BTreeMap::new();
    for (key, field) in &fields {
        let value = match field {
            Field::Ip(address) => match constructors.ip.call(&[ast::Value::from(address.as_str())])
            {
                Ok(ast::PartialValue::Value(v)) => v,
                _ => return checked(fields),
            },
            Field::Entity(uid) => ast::Value::from(ast::EntityUID::from(uid.clone())),
            Field::String(s) => ast::Value::from(s.as_str()),
            Field::Long(n) => ast::Value::from(*n),
            Field::StringSet(items) => {
                ast::Value::set(items.iter().map(|s| ast::Value::from(s.as_str())), None)
            }
        };
        if record.insert((*key).into(), value).is_some() {
            // A repeated key: Cedar's error, not ours.
            return checked(fields);
        }
    }
    Ok(Context::from(ast::Context::Value(Arc::new(record))))
}

#[cfg(test)]
mod tests;
