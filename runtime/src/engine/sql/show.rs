//! `SHOW CATALOGS`, `SHOW SCHEMAS`, `SHOW TABLES` (what the caller may see) and `DESCRIBE`
//! (what the caller may read), answered from the snapshot while preparing.

use super::names::{find_table, table_parts};
use super::output::strings;
use super::prepared::PreparedInner;
use super::preparing::Preparing;
use crate::engine::access;
use crate::engine::error::QueryError;
use crate::engine::error::{internal, table_not_found};
use crate::engine::types::databricks_type_name;
use datafusion::arrow::array::{BooleanArray, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use lakeward_common::data::TableRecord;
use lakeward_policy::Securable;
use std::sync::Arc;

pub(crate) fn catalogs(p: &Preparing<'_>, like: Option<&str>) -> Result<PreparedInner, QueryError> {
    let catalogs = p.snapshot().catalogs.iter().map(|c| {
        let securable = Securable::Catalog {
            name: c.name.clone(),
        };
        (securable, c.name.as_str())
    });
    visible_names(p, "catalog", catalogs, like)
}

pub(crate) fn schemas(
    p: &Preparing<'_>,
    catalog: Option<String>,
    like: Option<&str>,
) -> Result<PreparedInner, QueryError> {
    let catalog = catalog.unwrap_or_else(|| p.names.catalog.clone());
    access::require_exists(
        p.snapshot(),
        &Securable::Catalog {
            name: catalog.clone(),
        },
    )?;
    let schemas = p
        .snapshot()
        .schemas
        .iter()
        .filter(|s| s.catalog == catalog)
        .map(|s| {
            let securable = Securable::Schema {
                catalog: s.catalog.clone(),
                name: s.name.clone(),
            };
            (securable, s.name.as_str())
        });
    visible_names(p, "databaseName", schemas, like)
}

/// One column of the names that match the pattern and that the caller may see.
fn visible_names<'s>(
    p: &Preparing<'_>,
    column: &str,
    listed: impl Iterator<Item = (Securable, &'s str)>,
    like: Option<&str>,
) -> Result<PreparedInner, QueryError> {
    let rows = listed
        .filter(|(_, name)| matches_like(like, name))
        .filter(|(securable, _)| access::visible(p.snapshot(), &p.ctx.access.caller, securable))
        .map(|(_, name)| vec![Some(name.to_owned())])
        .collect();
    Ok(PreparedInner::Rows(strings(&[column], rows)?))
}

pub(crate) fn tables(
    p: &Preparing<'_>,
    schema: Option<Vec<String>>,
    like: Option<&str>,
) -> Result<PreparedInner, QueryError> {
    let snapshot = p.snapshot();
    let schema = match schema {
        Some(parts) => p.names.schema(&parts)?,
        None => p.names.default_schema(),
    };
    access::require_exists(snapshot, &schema)?;
    let (catalog, schema_name, _) = table_parts(&schema);
    let mut tables: Vec<&TableRecord> = snapshot
        .tables
        .iter()
        .filter(|t| t.catalog == catalog && t.schema == schema_name)
        .filter(|t| matches_like(like, &t.name))
        .filter(|t| {
            let table = Securable::Table {
                catalog: t.catalog.clone(),
                schema: t.schema.clone(),
                name: t.name.clone(),
            };
            access::visible(snapshot, &p.ctx.access.caller, &table)
        })
        .collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(PreparedInner::Rows(table_rows(&tables)?))
}

/// `database | tableName | isTemporary`, as Databricks lists tables.
fn table_rows(tables: &[&TableRecord]) -> Result<RecordBatch, QueryError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("database", DataType::Utf8, false),
        Field::new("tableName", DataType::Utf8, false),
        Field::new("isTemporary", DataType::Boolean, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(
                tables.iter().map(|t| t.schema.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                tables.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(vec![false; tables.len()])),
        ],
    )
    .map_err(|e| internal(e.to_string()))
}

/// A table's columns with their Databricks type names; needs `SelectTable`.
pub(crate) fn describe(
    p: &mut Preparing<'_>,
    name: &[String],
) -> Result<PreparedInner, QueryError> {
    let table = p.names.table(name)?;
    let snapshot = p.snapshot().clone();
    let Some(record) = find_table(&snapshot, &table) else {
        return Err(table_not_found(&table.full_name()));
    };
    p.authz.check("SelectTable", &table)?;
    let rows = record
        .columns
        .iter()
        .map(|c| {
            let ty = c
                .data_type
                .parse::<DataType>()
                .map(|t| databricks_type_name(&t))
                .unwrap_or_else(|_| c.data_type.clone());
            vec![Some(c.name.clone()), Some(ty), None]
        })
        .collect();
    Ok(PreparedInner::Rows(strings(
        &["col_name", "data_type", "comment"],
        rows,
    )?))
}

/// Databricks' SHOW ... LIKE patterns: `*` any characters, `|` alternatives, case-insensitive.
fn matches_like(pattern: Option<&str>, name: &str) -> bool {
    let Some(pattern) = pattern else {
        return true;
    };
    let name: Vec<char> = name.to_lowercase().chars().collect();
    pattern.split('|').any(|alt| {
        let mut glob_chars: Vec<char> = Vec::new();
        for c in alt.trim().to_lowercase().chars() {
            // Runs of `*` are one `*`.
            if !(c == '*' && glob_chars.last() == Some(&'*')) {
                glob_chars.push(c);
            }
        }
        glob(&glob_chars, &name)
    })
}

/// `*`-only glob matching, iterative: on a mismatch, the last `*` takes one more character
/// (O(pattern × name) at worst, never exponential).
fn glob(pattern: &[char], name: &[char]) -> bool {
    let (mut p, mut n) = (0, 0);
    // The pattern position after the last `*` seen, and where in the name it resumed.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match (pattern.get(p), name.get(n)) {
            (Some('*'), _) => {
                p += 1;
                star = Some((p, n));
            }
            (Some(a), Some(b)) if a == b => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((after, from)) => {
                    p = after;
                    n = from + 1;
                    star = Some((after, from + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|c| *c == '*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(matches_like(Some("line*"), "lineitem"));
        assert!(matches_like(Some("x|NATION"), "nation"));
        assert!(!matches_like(Some("part"), "partsupp"));
        assert!(matches_like(Some("*"), ""));
        assert!(matches_like(Some("**"), "anything"));
        assert!(matches_like(Some("*item"), "lineitem"));
        assert!(matches_like(Some("l*e*m"), "lineitem"));
        assert!(!matches_like(Some("l*e*x"), "lineitem"));
        assert!(matches_like(Some("*s*p*"), "partsupp"));
        assert!(!matches_like(Some("*sup"), "partsupp"));
        assert!(!matches_like(Some(""), "x"));
        assert!(matches_like(Some(" | region"), "region"));
    }

    /// Many stars against a name that does not match: the old backtracking matcher took
    /// exponential time here (and never finished); this one is linear in the stars.
    #[test]
    fn like_patterns_with_many_stars_end() {
        let pattern = format!("{}x", "*".repeat(200));
        let name = "a".repeat(60);
        assert!(!matches_like(Some(&pattern), &name));
        let spread = format!("{}x", "a*".repeat(100));
        assert!(!matches_like(Some(&spread), &"a".repeat(200)));
        assert!(matches_like(
            Some(&spread),
            &format!("{}x", "a".repeat(200))
        ));
    }
}
