//! The parser for the statements the front end owns (`CREATE`, `DROP`, `SHOW`, `DESCRIBE`,
//! `GRANT`, `REVOKE`), in Databricks' grammar. Queries and `INSERT` are left to DataFusion;
//! anything else is refused here, before DataFusion could run it.

use super::ast::{
    ColumnDef, CreateSchema, CreateTable, DropSchema, DropTable, Grant, Kind, ShowGrants, Stmt,
};
use super::cursor::Cursor;
use crate::engine::error::QueryError;
use crate::engine::error::{bad_request, syntax, unsupported};
use crate::engine::types::parse_type_name;
use datafusion::sql::parser::DFParserBuilder;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::Token;
use std::collections::BTreeMap;

/// The longest `SHOW ... LIKE` pattern accepted.
pub(crate) const MAX_LIKE_PATTERN: usize = 1000;

pub(crate) fn parse(sql: &str) -> Result<Stmt, QueryError> {
    let mut c = Cursor::new(sql)?;
    let first = match c.peek() {
        None => return Err(syntax("[PARSE_EMPTY_STATEMENT] The statement is empty")),
        Some(Token::LParen) => return Ok(Stmt::DataFusion),
        Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        Some(_) => return Err(c.error("a statement")),
    };
    if ["SELECT", "WITH", "VALUES", "EXPLAIN", "INSERT", "FROM"].contains(&first.as_str()) {
        return Ok(Stmt::DataFusion);
    }
    c.advance();
    let stmt = match first.as_str() {
        "CREATE" => create(&mut c)?,
        "DROP" => drop(&mut c)?,
        "SHOW" => show(&mut c)?,
        "DESCRIBE" | "DESC" => {
            c.eat_kw("TABLE");
            c.eat_kw("EXTENDED");
            Stmt::Describe {
                name: c.object_name()?,
            }
        }
        "GRANT" | "REVOKE" => grant(&mut c, first == "REVOKE")?,
        other => return Err(refused(sql, other)),
    };
    if !matches!(&stmt, Stmt::CreateTable(t) if t.query_at.is_some()) {
        c.end()?;
    }
    Ok(stmt)
}

/// A misspelt statement is a syntax error (DataFusion's message); a statement DataFusion
/// knows but we do not run (SET, COPY, USE, DELETE, ...) is refused.
fn refused(sql: &str, first: &str) -> QueryError {
    let dialect = GenericDialect {};
    let parsed = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()
        .and_then(|mut p| p.parse_statements());
    match parsed {
        Err(e) => QueryError::from(e),
        Ok(_) => unsupported(format!(
            "[NOT_SUPPORTED] {first} statements are not supported"
        )),
    }
}

fn kind(c: &mut Cursor<'_>) -> Option<Kind> {
    if c.eat_kw("TABLE") {
        Some(Kind::Table)
    } else if c.eat_kw("SCHEMA") || c.eat_kw("DATABASE") {
        Some(Kind::Schema)
    } else if c.eat_kw("CATALOG") {
        Some(Kind::Catalog)
    } else {
        None
    }
}

/// `LIKE 'pattern'` or, as Databricks also accepts, the bare pattern.
fn like(c: &mut Cursor<'_>) -> Result<Option<String>, QueryError> {
    let like = c.eat_kw("LIKE");
    if !like && !matches!(c.peek(), Some(Token::SingleQuotedString(_))) {
        return Ok(None);
    }
    let pattern = c.string()?;
    if pattern.chars().count() > MAX_LIKE_PATTERN {
        return Err(bad_request(format!(
            "the LIKE pattern is longer than {MAX_LIKE_PATTERN} characters"
        )));
    }
    Ok(Some(pattern))
}

fn principal(c: &mut Cursor<'_>) -> Result<String, QueryError> {
    match c.peek() {
        Some(Token::SingleQuotedString(_) | Token::DoubleQuotedString(_)) => c.string(),
        // Principals are named as written (a userName or a group's display name).
        Some(Token::Word(_)) => c.ident(),
        _ => Err(c.error("a principal")),
    }
}

fn drop(c: &mut Cursor<'_>) -> Result<Stmt, QueryError> {
    match kind(c) {
        Some(Kind::Table) => {
            let if_exists = c.eat_kws(&["IF", "EXISTS"]);
            Ok(Stmt::DropTable(DropTable {
                name: c.object_name()?,
                if_exists,
            }))
        }
        Some(Kind::Schema) => {
            let if_exists = c.eat_kws(&["IF", "EXISTS"]);
            let name = c.object_name()?;
            let cascade = c.eat_kw("CASCADE");
            if !cascade {
                c.eat_kw("RESTRICT");
            }
            Ok(Stmt::DropSchema(DropSchema {
                name,
                if_exists,
                cascade,
            }))
        }
        _ => Err(unsupported(
            "[NOT_SUPPORTED] Only DROP TABLE and DROP SCHEMA are supported",
        )),
    }
}

fn show(c: &mut Cursor<'_>) -> Result<Stmt, QueryError> {
    let in_or_from = |c: &mut Cursor<'_>| c.eat_kw("IN") || c.eat_kw("FROM");
    if c.eat_kw("CATALOGS") {
        Ok(Stmt::ShowCatalogs { like: like(c)? })
    } else if c.eat_kw("SCHEMAS") || c.eat_kw("DATABASES") {
        let catalog = if in_or_from(c) {
            Some(c.ident()?.to_lowercase())
        } else {
            None
        };
        Ok(Stmt::ShowSchemas {
            catalog,
            like: like(c)?,
        })
    } else if c.eat_kw("TABLES") {
        let schema = if in_or_from(c) {
            Some(c.object_name()?)
        } else {
            None
        };
        Ok(Stmt::ShowTables {
            schema,
            like: like(c)?,
        })
    } else if c.eat_kw("GRANTS") || c.eat_kw("GRANT") {
        let principal = if c.peek_kw("ON") {
            None
        } else {
            Some(principal(c)?)
        };
        c.expect_kw("ON")?;
        let kind = kind(c).unwrap_or(Kind::Table);
        Ok(Stmt::ShowGrants(ShowGrants {
            principal,
            kind,
            name: c.object_name()?,
        }))
    } else {
        Err(unsupported(
            "[NOT_SUPPORTED] SHOW supports CATALOGS, SCHEMAS, TABLES and GRANTS",
        ))
    }
}

fn grant(c: &mut Cursor<'_>, revoke: bool) -> Result<Stmt, QueryError> {
    let privileges = privileges(c)?;
    c.expect_kw("ON")?;
    let kind = kind(c).unwrap_or(Kind::Table);
    let name = c.object_name()?;
    c.expect_kw(if revoke { "FROM" } else { "TO" })?;
    let principal = principal(c)?;
    Ok(Stmt::Grant(Grant {
        revoke,
        privileges,
        kind,
        name,
        principal,
    }))
}

/// `SELECT, ALL PRIVILEGES, USE CATALOG, CREATE TABLE, ...` → Unity Catalog privilege names.
fn privileges(c: &mut Cursor<'_>) -> Result<Vec<String>, QueryError> {
    let mut out = Vec::new();
    loop {
        let mut words = Vec::new();
        while let Some(Token::Word(w)) = c.peek() {
            if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("ON") {
                break;
            }
            words.push(w.value.to_ascii_uppercase());
            c.advance();
        }
        if words.is_empty() {
            return Err(c.error("a privilege"));
        }
        let name = match words.join("_").as_str() {
            "ALL" | "ALL_PRIVILEGES" => "ALL_PRIVILEGES".to_owned(),
            "USAGE" => "USE_SCHEMA".to_owned(),
            other => other.to_owned(),
        };
        out.push(name);
        if !c.eat(&Token::Comma) {
            break;
        }
    }
    Ok(out)
}

fn create(c: &mut Cursor<'_>) -> Result<Stmt, QueryError> {
    let or_replace = c.eat_kws(&["OR", "REPLACE"]);
    match kind(c) {
        Some(Kind::Schema) if !or_replace => {
            let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
            let name = c.object_name()?;
            let comment = if c.eat_kw("COMMENT") {
                Some(c.string()?)
            } else {
                None
            };
            Ok(Stmt::CreateSchema(CreateSchema {
                name,
                if_not_exists,
                comment,
            }))
        }
        Some(Kind::Table) => create_table(c, or_replace).map(Stmt::CreateTable),
        _ => Err(unsupported(
            "[NOT_SUPPORTED] Only CREATE SCHEMA and CREATE TABLE are supported (DataFusion's \
             CREATE EXTERNAL TABLE, views and functions are not)",
        )),
    }
}

fn create_table(c: &mut Cursor<'_>, or_replace: bool) -> Result<CreateTable, QueryError> {
    let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
    let name = c.object_name()?;
    let columns = if c.peek() == Some(&Token::LParen) {
        Some(column_defs(c)?)
    } else {
        None
    };
    let mut table = CreateTable {
        name,
        or_replace,
        if_not_exists,
        columns,
        using: None,
        options: BTreeMap::new(),
        location: None,
        comment: None,
        query_at: None,
    };
    loop {
        if c.eat_kw("USING") {
            table.using = Some(c.ident()?.to_ascii_uppercase());
        } else if c.eat_kw("OPTIONS") {
            table.options.extend(options(c)?);
        } else if c.eat_kw("LOCATION") {
            table.location = Some(c.string()?);
        } else if c.eat_kw("COMMENT") {
            table.comment = Some(c.string()?);
        } else if c.eat_kw("AS") {
            table.query_at = Some(c.offset());
            break;
        } else {
            break;
        }
    }
    if table.query_at.is_none() {
        c.end()?;
    }
    if or_replace && if_not_exists {
        return Err(syntax(
            "[PARSE_SYNTAX_ERROR] OR REPLACE and IF NOT EXISTS cannot be used together",
        ));
    }
    Ok(table)
}

/// `(key 'value', key = value, a.b 'c')`, keys lower-cased.
fn options(c: &mut Cursor<'_>) -> Result<BTreeMap<String, String>, QueryError> {
    let mut options = BTreeMap::new();
    c.expect(&Token::LParen)?;
    loop {
        let mut key = c.ident()?;
        while c.eat(&Token::Period) {
            key = format!("{key}.{}", c.ident()?);
        }
        c.eat(&Token::Eq);
        let value = c.option_value()?;
        options.insert(key.to_ascii_lowercase(), value);
        if !c.eat(&Token::Comma) {
            break;
        }
    }
    c.expect(&Token::RParen)?;
    Ok(options)
}

/// `(name TYPE [NOT NULL] [COMMENT '...'], ...)`: the type is the text up to the next
/// top-level `,`/`)` or `NOT`/`COMMENT`, parsed by [`parse_type_name`].
fn column_defs(c: &mut Cursor<'_>) -> Result<Vec<ColumnDef>, QueryError> {
    c.expect(&Token::LParen)?;
    let mut columns = Vec::new();
    loop {
        let name = c.ident()?;
        let start = c.offset();
        skip_type(c)?;
        let text = c.text_since(start);
        let data_type =
            parse_type_name(text).map_err(|e| syntax(format!("column `{name}`: {e}")))?;
        let mut nullable = true;
        loop {
            if c.eat_kws(&["NOT", "NULL"]) {
                nullable = false;
            } else if c.eat_kw("COMMENT") {
                c.string()?;
            } else {
                break;
            }
        }
        columns.push(ColumnDef {
            name,
            data_type,
            nullable,
        });
        if !c.eat(&Token::Comma) {
            break;
        }
    }
    c.expect(&Token::RParen)?;
    Ok(columns)
}

/// Steps over a column's type: up to the next top-level `,`/`)` or `NOT`/`COMMENT`.
fn skip_type(c: &mut Cursor<'_>) -> Result<(), QueryError> {
    let mut depth = 0i32;
    loop {
        match c.peek() {
            None => return Err(c.error("')'")),
            Some(Token::LParen | Token::Lt) => depth += 1,
            Some(Token::RParen | Token::Gt) if depth > 0 => depth -= 1,
            Some(Token::ShiftRight) if depth > 1 => depth -= 2,
            Some(Token::Comma | Token::RParen) if depth == 0 => return Ok(()),
            Some(Token::Word(w))
                if depth == 0
                    && w.quote_style.is_none()
                    && (w.value.eq_ignore_ascii_case("NOT")
                        || w.value.eq_ignore_ascii_case("COMMENT")) =>
            {
                return Ok(())
            }
            _ => {}
        }
        c.advance();
    }
}

#[cfg(test)]
mod tests;
