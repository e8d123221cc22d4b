//! Names as statements write them, resolved against the statement's default catalog and
//! schema, and the snapshot look-ups every statement module shares.

use super::ast::Kind;
use crate::engine::error::QueryError;
use crate::engine::error::{bad_request, bad_request_with_state};
use lakeward_common::data::{CatalogSnapshot, TableRecord};
use lakeward_policy::Securable;

/// The statement's default catalog and schema (for one- and two-part names).
pub(crate) struct Names {
    pub(crate) catalog: String,
    pub(crate) schema: String,
}

impl Names {
    /// `main` and `default` unless the request names others.
    pub(crate) fn new(catalog: Option<&str>, schema: Option<&str>) -> Names {
        let or = |given: Option<&str>, default: &str| {
            given
                .filter(|s| !s.is_empty())
                .unwrap_or(default)
                .to_lowercase()
        };
        Names {
            catalog: or(catalog, "main"),
            schema: or(schema, "default"),
        }
    }

    pub(crate) fn table(&self, parts: &[String]) -> Result<Securable, QueryError> {
        let (catalog, schema, name) = match parts {
            [t] => (self.catalog.clone(), self.schema.clone(), t.clone()),
            [s, t] => (self.catalog.clone(), s.clone(), t.clone()),
            [c, s, t] => (c.clone(), s.clone(), t.clone()),
            _ => {
                return Err(bad_request(format!(
                    "`{}` is not a table name (catalog.schema.table)",
                    parts.join(".")
                )))
            }
        };
        Ok(Securable::Table {
            catalog,
            schema,
            name,
        })
    }

    pub(crate) fn schema(&self, parts: &[String]) -> Result<Securable, QueryError> {
        self.schema_name(parts).map(|s| s.securable)
    }

    /// A schema's name, with its parts at hand.
    pub(crate) fn schema_name(&self, parts: &[String]) -> Result<SchemaName, QueryError> {
        let (catalog, name) = match parts {
            [s] => (self.catalog.clone(), s.clone()),
            [c, s] => (c.clone(), s.clone()),
            _ => {
                return Err(bad_request(format!(
                    "`{}` is not a schema name (catalog.schema)",
                    parts.join(".")
                )))
            }
        };
        Ok(SchemaName {
            securable: Securable::Schema {
                catalog: catalog.clone(),
                name: name.clone(),
            },
            catalog,
            name,
        })
    }

    /// The statement's default schema, as a securable.
    pub(crate) fn default_schema(&self) -> Securable {
        Securable::Schema {
            catalog: self.catalog.clone(),
            name: self.schema.clone(),
        }
    }

    pub(crate) fn securable(&self, kind: Kind, parts: &[String]) -> Result<Securable, QueryError> {
        match (kind, parts) {
            (Kind::Table, _) => self.table(parts),
            (Kind::Schema, _) => self.schema(parts),
            (Kind::Catalog, [name]) => Ok(Securable::Catalog { name: name.clone() }),
            (Kind::Catalog, _) => Err(bad_request(format!(
                "`{}` is not a catalog name",
                parts.join(".")
            ))),
        }
    }
}

/// A schema, as a securable and as its catalog's and its own name.
pub(crate) struct SchemaName {
    pub(crate) securable: Securable,
    pub(crate) catalog: String,
    pub(crate) name: String,
}

/// Names we create must be plain: they become directory names in the lake.
pub(crate) fn valid_name(name: &str) -> Result<(), QueryError> {
    if !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(())
    } else {
        Err(bad_request_with_state(
            format!(
                "[INVALID_IDENTIFIER] `{name}` is not a valid name: use letters, digits and \
                 underscores"
            ),
            "42602",
        ))
    }
}

pub(crate) fn find_table<'s>(
    snapshot: &'s CatalogSnapshot,
    t: &Securable,
) -> Option<&'s TableRecord> {
    let Securable::Table {
        catalog,
        schema,
        name,
    } = t
    else {
        return None;
    };
    snapshot
        .tables
        .iter()
        .find(|r| &r.catalog == catalog && &r.schema == schema && &r.name == name)
}

pub(crate) fn parent_schema(t: &Securable) -> Securable {
    match t {
        Securable::Table {
            catalog, schema, ..
        } => Securable::Schema {
            catalog: catalog.clone(),
            name: schema.clone(),
        },
        other => other.clone(),
    }
}

/// (catalog, schema, table), empty where the securable has no such level.
pub(crate) fn table_parts(t: &Securable) -> (String, String, String) {
    match t {
        Securable::Table {
            catalog,
            schema,
            name,
        } => (catalog.clone(), schema.clone(), name.clone()),
        Securable::Schema { catalog, name } => (catalog.clone(), name.clone(), String::new()),
        Securable::Catalog { name } => (name.clone(), String::new(), String::new()),
    }
}
