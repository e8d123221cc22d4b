//! The SQL front end: which statements exist, how each is parsed, planned, authorized and run.
//!
//! Queries and `INSERT` go to DataFusion's parser and planner (over the snapshot's catalog);
//! everything that changes or lists the catalog (`CREATE`, `DROP`, `SHOW`, `DESCRIBE`, `GRANT`,
//! `REVOKE`) is parsed here, in Databricks' grammar, and becomes [`CatalogChange`]s. Any other
//! statement, DataFusion's own DDL (`CREATE EXTERNAL TABLE`, `COPY`, `SET`, ...) included, is
//! refused before it reaches DataFusion: every write goes through our catalog.

use super::access::{self, Authorizer};
use super::catalog::{
    columns_of, listing_options, read_only, table_functions, validate_options, FunctionTable,
    LakeTable, SnapshotCatalogs, FORMATS,
};
use super::error::{
    bad_request, internal, schema_not_found, syntax, table_not_found, unsupported, ALREADY_EXISTS,
};
use super::lake::{overlaps, Lake};
use super::params::{self, Bound};
use super::types::{databricks_type_name, parse_type_name};
use super::{CatalogWriter, Compute, Prepared, SqlError, StatementContext, StatementInput};
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::cte_worktable::CteWorkTable;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::TableReference;
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, WriteOp};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{collect, execute_stream};
use datafusion::sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Statement as SqlStatement, TableObject};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::Token;
use futures::TryStreamExt;
use lakeward_common::data::{
    CatalogChange, CatalogSnapshot, ColumnRecord, GrantChange, SchemaRecord, TableRecord,
};
use lakeward_policy::Securable;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

// ---------------------------------------------------------------------------------------------
// Statements

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Catalog,
    Schema,
    Table,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Catalog => "CATALOG",
            Kind::Schema => "SCHEMA",
            Kind::Table => "TABLE",
        }
    }
}

#[derive(Debug)]
struct ColumnDef {
    name: String,
    data_type: DataType,
    nullable: bool,
}

#[derive(Debug)]
enum Stmt {
    /// Handed to DataFusion: a query (or EXPLAIN of one), or INSERT.
    DataFusion,
    CreateSchema {
        name: Vec<String>,
        if_not_exists: bool,
        comment: Option<String>,
    },
    CreateTable {
        name: Vec<String>,
        or_replace: bool,
        if_not_exists: bool,
        columns: Option<Vec<ColumnDef>>,
        using: Option<String>,
        options: BTreeMap<String, String>,
        location: Option<String>,
        comment: Option<String>,
        /// Where the `AS` query starts in the statement.
        query_at: Option<usize>,
    },
    DropTable {
        name: Vec<String>,
        if_exists: bool,
    },
    DropSchema {
        name: Vec<String>,
        if_exists: bool,
        cascade: bool,
    },
    ShowCatalogs {
        like: Option<String>,
    },
    ShowSchemas {
        catalog: Option<String>,
        like: Option<String>,
    },
    ShowTables {
        schema: Option<Vec<String>>,
        like: Option<String>,
    },
    ShowGrants {
        principal: Option<String>,
        kind: Kind,
        name: Vec<String>,
    },
    Describe {
        name: Vec<String>,
    },
    Grant {
        revoke: bool,
        privileges: Vec<String>,
        kind: Kind,
        name: Vec<String>,
        principal: String,
    },
}

// ---------------------------------------------------------------------------------------------
// The parser for the statements we own.

struct Cursor<'a> {
    sql: &'a str,
    tokens: Vec<(Token, usize)>,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(sql: &'a str) -> Result<Self, SqlError> {
        let raw = params::tokenize(sql)?;
        let offsets = params::Offsets::new(sql);
        let tokens = raw
            .into_iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
            .map(|t| {
                let at = offsets.at(t.span.start);
                (t.token, at)
            })
            .collect();
        Ok(Cursor {
            sql,
            tokens,
            pos: 0,
        })
    }

    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn is_kw(token: Option<&Token>, kw: &str) -> bool {
        matches!(token, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(kw))
    }

    fn peek_kw(&self, kw: &str) -> bool {
        Self::is_kw(self.peek(), kw)
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.peek_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_kws(&mut self, kws: &[&str]) -> bool {
        let all = kws
            .iter()
            .enumerate()
            .all(|(i, kw)| Self::is_kw(self.tokens.get(self.pos + i).map(|(t, _)| t), kw));
        if all {
            self.pos += kws.len();
        }
        all
    }

    fn expect_kw(&mut self, kw: &str) -> Result<(), SqlError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.error(kw))
        }
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &Token) -> Result<(), SqlError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(&format!("'{token}'")))
        }
    }

    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.sql.len(), |(_, at)| *at)
    }

    fn error(&self, expected: &str) -> SqlError {
        let found = self
            .peek()
            .map_or_else(|| "end of input".to_owned(), |t| format!("'{t}'"));
        syntax(format!(
            "[PARSE_SYNTAX_ERROR] Syntax error at or near {found}: expected {expected}"
        ))
    }

    fn ident(&mut self) -> Result<String, SqlError> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let value = w.value.clone();
                self.pos += 1;
                Ok(value)
            }
            _ => Err(self.error("an identifier")),
        }
    }

    fn object_name(&mut self) -> Result<Vec<String>, SqlError> {
        let mut parts = vec![self.ident()?.to_lowercase()];
        while self.eat(&Token::Period) {
            parts.push(self.ident()?.to_lowercase());
        }
        Ok(parts)
    }

    fn string(&mut self) -> Result<String, SqlError> {
        match self.peek() {
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => {
                let value = s.clone();
                self.pos += 1;
                Ok(value)
            }
            _ => Err(self.error("a string literal")),
        }
    }

    /// An option value: a string, a number or a bare word (`true`).
    fn option_value(&mut self) -> Result<String, SqlError> {
        match self.peek() {
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => {
                let value = s.clone();
                self.pos += 1;
                Ok(value)
            }
            Some(Token::Number(n, _)) => {
                let value = n.clone();
                self.pos += 1;
                Ok(value)
            }
            Some(Token::Word(w)) => {
                let value = w.value.clone();
                self.pos += 1;
                Ok(value)
            }
            _ => Err(self.error("an option value")),
        }
    }

    fn end(&mut self) -> Result<(), SqlError> {
        while self.eat(&Token::SemiColon) {}
        if self.peek().is_some() {
            return Err(self.error("the end of the statement"));
        }
        Ok(())
    }

    fn like(&mut self) -> Result<Option<String>, SqlError> {
        // `LIKE 'pattern'` or, as Databricks also accepts, the bare pattern.
        let like = self.eat_kw("LIKE");
        if like || matches!(self.peek(), Some(Token::SingleQuotedString(_))) {
            let pattern = self.string()?;
            if pattern.chars().count() > MAX_LIKE_PATTERN {
                return Err(bad_request(format!(
                    "the LIKE pattern is longer than {MAX_LIKE_PATTERN} characters"
                )));
            }
            Ok(Some(pattern))
        } else {
            Ok(None)
        }
    }

    fn kind(&mut self) -> Option<Kind> {
        if self.eat_kw("TABLE") {
            Some(Kind::Table)
        } else if self.eat_kw("SCHEMA") || self.eat_kw("DATABASE") {
            Some(Kind::Schema)
        } else if self.eat_kw("CATALOG") {
            Some(Kind::Catalog)
        } else {
            None
        }
    }
}

fn parse(sql: &str) -> Result<Stmt, SqlError> {
    let mut c = Cursor::new(sql)?;
    let first = match c.peek() {
        None => return Err(syntax("[PARSE_EMPTY_STATEMENT] The statement is empty")),
        Some(Token::LParen) => return Ok(Stmt::DataFusion),
        Some(Token::Word(w)) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
        Some(_) => return Err(c.error("a statement")),
    };
    match first.as_str() {
        "SELECT" | "WITH" | "VALUES" | "EXPLAIN" | "INSERT" | "FROM" => Ok(Stmt::DataFusion),
        "CREATE" => {
            c.pos += 1;
            parse_create(&mut c)
        }
        "DROP" => {
            c.pos += 1;
            let stmt = match c.kind() {
                Some(Kind::Table) => {
                    let if_exists = c.eat_kws(&["IF", "EXISTS"]);
                    Stmt::DropTable {
                        name: c.object_name()?,
                        if_exists,
                    }
                }
                Some(Kind::Schema) => {
                    let if_exists = c.eat_kws(&["IF", "EXISTS"]);
                    let name = c.object_name()?;
                    let cascade = c.eat_kw("CASCADE");
                    if !cascade {
                        c.eat_kw("RESTRICT");
                    }
                    Stmt::DropSchema {
                        name,
                        if_exists,
                        cascade,
                    }
                }
                _ => {
                    return Err(unsupported(
                        "[NOT_SUPPORTED] Only DROP TABLE and DROP SCHEMA are supported",
                    ))
                }
            };
            c.end()?;
            Ok(stmt)
        }
        "SHOW" => {
            c.pos += 1;
            let stmt = if c.eat_kw("CATALOGS") {
                Stmt::ShowCatalogs { like: c.like()? }
            } else if c.eat_kw("SCHEMAS") || c.eat_kw("DATABASES") {
                let catalog = if c.eat_kw("IN") || c.eat_kw("FROM") {
                    Some(c.ident()?.to_lowercase())
                } else {
                    None
                };
                Stmt::ShowSchemas {
                    catalog,
                    like: c.like()?,
                }
            } else if c.eat_kw("TABLES") {
                let schema = if c.eat_kw("IN") || c.eat_kw("FROM") {
                    Some(c.object_name()?)
                } else {
                    None
                };
                Stmt::ShowTables {
                    schema,
                    like: c.like()?,
                }
            } else if c.eat_kw("GRANTS") || c.eat_kw("GRANT") {
                let principal = if c.peek_kw("ON") {
                    None
                } else {
                    Some(principal(&mut c)?)
                };
                c.expect_kw("ON")?;
                let kind = c.kind().unwrap_or(Kind::Table);
                Stmt::ShowGrants {
                    principal,
                    kind,
                    name: c.object_name()?,
                }
            } else {
                return Err(unsupported(
                    "[NOT_SUPPORTED] SHOW supports CATALOGS, SCHEMAS, TABLES and GRANTS",
                ));
            };
            c.end()?;
            Ok(stmt)
        }
        "DESCRIBE" | "DESC" => {
            c.pos += 1;
            c.eat_kw("TABLE");
            c.eat_kw("EXTENDED");
            let name = c.object_name()?;
            c.end()?;
            Ok(Stmt::Describe { name })
        }
        "GRANT" | "REVOKE" => {
            c.pos += 1;
            let revoke = first == "REVOKE";
            let privileges = privileges(&mut c)?;
            c.expect_kw("ON")?;
            let kind = c.kind().unwrap_or(Kind::Table);
            let name = c.object_name()?;
            c.expect_kw(if revoke { "FROM" } else { "TO" })?;
            let principal = principal(&mut c)?;
            c.end()?;
            Ok(Stmt::Grant {
                revoke,
                privileges,
                kind,
                name,
                principal,
            })
        }
        other => {
            // A misspelt statement is a syntax error (DataFusion's message); a statement
            // DataFusion knows but we do not run (SET, COPY, USE, DELETE, ...) is refused.
            let dialect = GenericDialect {};
            DFParserBuilder::new(sql)
                .with_dialect(&dialect)
                .build()
                .and_then(|mut p| p.parse_statements())
                .map_err(SqlError::from)?;
            Err(unsupported(format!(
                "[NOT_SUPPORTED] {other} statements are not supported"
            )))
        }
    }
}

fn principal(c: &mut Cursor<'_>) -> Result<String, SqlError> {
    match c.peek() {
        Some(Token::SingleQuotedString(_) | Token::DoubleQuotedString(_)) => c.string(),
        // Principals are named as written (a userName or a group's display name).
        Some(Token::Word(_)) => c.ident(),
        _ => Err(c.error("a principal")),
    }
}

/// `SELECT, ALL PRIVILEGES, USE CATALOG, CREATE TABLE, ...` → Unity Catalog privilege names.
fn privileges(c: &mut Cursor<'_>) -> Result<Vec<String>, SqlError> {
    let mut out = Vec::new();
    loop {
        let mut words = Vec::new();
        while let Some(Token::Word(w)) = c.peek() {
            if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("ON") {
                break;
            }
            words.push(w.value.to_ascii_uppercase());
            c.pos += 1;
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

fn parse_create(c: &mut Cursor<'_>) -> Result<Stmt, SqlError> {
    let or_replace = c.eat_kws(&["OR", "REPLACE"]);
    match c.kind() {
        Some(Kind::Schema) if !or_replace => {
            let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
            let name = c.object_name()?;
            let mut comment = None;
            if c.eat_kw("COMMENT") {
                comment = Some(c.string()?);
            }
            c.end()?;
            Ok(Stmt::CreateSchema {
                name,
                if_not_exists,
                comment,
            })
        }
        Some(Kind::Table) => {
            let if_not_exists = c.eat_kws(&["IF", "NOT", "EXISTS"]);
            let name = c.object_name()?;
            let columns = if c.peek() == Some(&Token::LParen) {
                Some(column_defs(c)?)
            } else {
                None
            };
            let (mut using, mut options, mut location, mut comment) =
                (None, BTreeMap::new(), None, None);
            let mut query_at = None;
            loop {
                if c.eat_kw("USING") {
                    using = Some(c.ident()?.to_ascii_uppercase());
                } else if c.eat_kw("OPTIONS") {
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
                } else if c.eat_kw("LOCATION") {
                    location = Some(c.string()?);
                } else if c.eat_kw("COMMENT") {
                    comment = Some(c.string()?);
                } else if c.eat_kw("AS") {
                    query_at = Some(c.offset());
                    break;
                } else {
                    break;
                }
            }
            if query_at.is_none() {
                c.end()?;
            }
            if or_replace && if_not_exists {
                return Err(syntax(
                    "[PARSE_SYNTAX_ERROR] OR REPLACE and IF NOT EXISTS cannot be used together",
                ));
            }
            Ok(Stmt::CreateTable {
                name,
                or_replace,
                if_not_exists,
                columns,
                using,
                options,
                location,
                comment,
                query_at,
            })
        }
        _ => Err(unsupported(
            "[NOT_SUPPORTED] Only CREATE SCHEMA and CREATE TABLE are supported (DataFusion's \
             CREATE EXTERNAL TABLE, views and functions are not)",
        )),
    }
}

/// `(name TYPE [NOT NULL] [COMMENT '...'], ...)`: the type is the text up to the next
/// top-level `,`/`)` or `NOT`/`COMMENT`, parsed by [`parse_type_name`].
fn column_defs(c: &mut Cursor<'_>) -> Result<Vec<ColumnDef>, SqlError> {
    c.expect(&Token::LParen)?;
    let mut columns = Vec::new();
    loop {
        let name = c.ident()?;
        let start = c.offset();
        let mut depth = 0i32;
        loop {
            match c.peek() {
                None => return Err(c.error("')'")),
                Some(Token::LParen | Token::Lt) => depth += 1,
                Some(Token::RParen | Token::Gt) if depth > 0 => depth -= 1,
                Some(Token::ShiftRight) if depth > 1 => depth -= 2,
                Some(Token::Comma | Token::RParen) if depth == 0 => break,
                Some(Token::Word(w))
                    if depth == 0
                        && w.quote_style.is_none()
                        && (w.value.eq_ignore_ascii_case("NOT")
                            || w.value.eq_ignore_ascii_case("COMMENT")) =>
                {
                    break
                }
                _ => {}
            }
            c.pos += 1;
        }
        let text = c.sql[start..c.offset()].trim();
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

// ---------------------------------------------------------------------------------------------
// Names

struct Names {
    catalog: String,
    schema: String,
}

impl Names {
    fn table(&self, parts: &[String]) -> Result<Securable, SqlError> {
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

    fn schema(&self, parts: &[String]) -> Result<Securable, SqlError> {
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
        Ok(Securable::Schema { catalog, name })
    }

    fn securable(&self, kind: Kind, parts: &[String]) -> Result<Securable, SqlError> {
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

/// Names we create must be plain: they become directory names in the lake.
fn valid_name(name: &str) -> Result<(), SqlError> {
    if !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(())
    } else {
        Err(bad_request(format!(
            "[INVALID_IDENTIFIER] `{name}` is not a valid name: use letters, digits and \
             underscores"
        ))
        .with_sql_state("42602"))
    }
}

fn find_table<'s>(snapshot: &'s CatalogSnapshot, t: &Securable) -> Option<&'s TableRecord> {
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

fn parent_schema(t: &Securable) -> Securable {
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

fn table_parts(t: &Securable) -> (String, String, String) {
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

// ---------------------------------------------------------------------------------------------
// What `run` does

/// Work a DDL statement leaves for `run`.
pub(crate) struct Changes {
    lake: Arc<Lake>,
    writer: Arc<dyn CatalogWriter>,
    workspace_id: i64,
    /// The snapshot the statement was prepared against (new tables' locations are checked
    /// against it again before anything is applied).
    snapshot: Arc<CatalogSnapshot>,
    changes: Vec<CatalogChange>,
    /// Managed locations (inside the workspace's area) whose files, as listed before the
    /// changes are applied, go once the control plane says the changes took effect.
    wipe: Vec<String>,
}

pub(crate) struct Ctas {
    state: SessionState,
    plan: LogicalPlan,
    compute: Arc<Compute>,
    lake: Arc<Lake>,
    writer: Arc<dyn CatalogWriter>,
    workspace_id: i64,
    snapshot: Arc<CatalogSnapshot>,
    /// Always a managed location inside the workspace's area.
    record: TableRecord,
    replace: bool,
    if_not_exists: bool,
}

pub(crate) enum PreparedInner {
    /// A result computed while preparing (SHOW, DESCRIBE) or nothing to do.
    Rows(RecordBatch),
    Query {
        state: SessionState,
        plan: LogicalPlan,
        compute: Arc<Compute>,
    },
    Insert {
        state: SessionState,
        plan: LogicalPlan,
        compute: Arc<Compute>,
    },
    Ctas(Box<Ctas>),
    Changes(Changes),
}

fn empty() -> PreparedInner {
    PreparedInner::Rows(RecordBatch::new_empty(Arc::new(Schema::empty())))
}

fn strings(columns: &[&str], rows: Vec<Vec<Option<String>>>) -> Result<RecordBatch, SqlError> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(*c, DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let arrays: Vec<ArrayRef> = (0..columns.len())
        .map(|i| {
            Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| r.get(i).cloned().flatten())
                    .collect::<Vec<_>>(),
            )) as ArrayRef
        })
        .collect();
    RecordBatch::try_new(schema, arrays).map_err(|e| internal(e.to_string()))
}

fn affected(rows: i64) -> Result<RecordBatch, SqlError> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("num_affected_rows", DataType::Int64, false),
        Field::new("num_inserted_rows", DataType::Int64, false),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![rows])),
            Arc::new(Int64Array::from(vec![rows])),
        ],
    )
    .map_err(|e| internal(e.to_string()))
}

fn once(batch: RecordBatch) -> SendableRecordBatchStream {
    let schema = batch.schema();
    let batches = if batch.num_rows() == 0 && batch.num_columns() == 0 {
        vec![]
    } else {
        vec![Ok(batch)]
    };
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter(batches),
    ))
}

impl PreparedInner {
    pub(crate) async fn run(self) -> Result<SendableRecordBatchStream, SqlError> {
        match self {
            PreparedInner::Rows(batch) => Ok(once(batch)),
            PreparedInner::Query {
                state,
                plan,
                compute,
            } => {
                let physical = state
                    .create_physical_plan(&plan)
                    .await
                    .map_err(|e| SqlError::from(compute.inner.explain(e)))?;
                let stream = execute_stream(physical, state.task_ctx())
                    .map_err(|e| SqlError::from(compute.inner.explain(e)))?;
                let schema = stream.schema();
                let guard = compute.clone();
                let mapped = stream.map_err(move |e| guard.inner.explain(e));
                Ok(Box::pin(RecordBatchStreamAdapter::new(schema, mapped)))
            }
            PreparedInner::Insert {
                state,
                plan,
                compute,
            } => {
                let rows = execute_count(&state, &plan, &compute).await?;
                Ok(once(affected(rows)?))
            }
            PreparedInner::Ctas(ctas) => ctas.run().await,
            PreparedInner::Changes(changes) => changes.run().await,
        }
    }
}

/// Runs a write plan and sums the rows DataFusion's sink reports.
async fn execute_count(
    state: &SessionState,
    plan: &LogicalPlan,
    compute: &Arc<Compute>,
) -> Result<i64, SqlError> {
    let explain = |e: DataFusionError| SqlError::from(compute.inner.explain(e));
    let physical = state.create_physical_plan(plan).await.map_err(explain)?;
    let batches = collect(physical, state.task_ctx()).await.map_err(explain)?;
    let mut rows: i64 = 0;
    for batch in &batches {
        if let Some(column) = batch.columns().first() {
            let counts = datafusion::arrow::compute::cast(column, &DataType::Int64)
                .map_err(|e| internal(e.to_string()))?;
            if let Some(counts) = counts.as_any().downcast_ref::<Int64Array>() {
                rows = rows.saturating_add(counts.iter().flatten().sum::<i64>());
            }
        }
    }
    Ok(rows)
}

impl Changes {
    async fn run(self) -> Result<SendableRecordBatchStream, SqlError> {
        for change in &self.changes {
            if let CatalogChange::CreateTable { table, .. } = change {
                check_overlap(&self.snapshot, table)?;
            }
        }
        // Listed before the changes: files written after them (an INSERT into a table just
        // created) are not the old table's and stay.
        let mut doomed = Vec::new();
        for location in &self.wipe {
            doomed.extend(self.lake.list_managed(self.workspace_id, location).await?);
        }
        let mut changed = true;
        for change in self.changes {
            changed &= self.writer.apply(change).await?.changed;
        }
        // A no-op (`IF NOT EXISTS` on a table that exists by now, `IF EXISTS` on one already
        // gone) deletes nothing: the files may belong to the table that is there.
        if changed && !doomed.is_empty() {
            self.lake.delete_managed(self.workspace_id, &doomed).await?;
        }
        Ok(once(RecordBatch::new_empty(Arc::new(Schema::empty()))))
    }
}

impl Ctas {
    async fn run(self) -> Result<SendableRecordBatchStream, SqlError> {
        check_overlap(&self.snapshot, &self.record)?;
        let ws = self.workspace_id;
        let location = self.record.location.clone();
        // Files already there: the replaced managed table's, or leftovers of a statement that
        // died between writing and committing. They go once the new definition is in, and
        // only if it went in.
        let before: BTreeSet<_> = self
            .lake
            .list_managed(ws, &location)
            .await?
            .into_iter()
            .collect();
        let schema: SchemaRef = Arc::new(self.plan.schema().as_arrow().clone());
        let target_schema = Arc::new(Schema::new(
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let target = LakeTable::with_schema(&self.record, ws, target_schema)?;
        let insert = LogicalPlanBuilder::insert_into(
            self.plan,
            TableReference::bare(self.record.name.clone()),
            provider_as_source(Arc::new(target)),
            InsertOp::Append,
        )
        .and_then(LogicalPlanBuilder::build)
        .map_err(SqlError::from)?;
        let written = execute_count(&self.state, &insert, &self.compute).await;
        let lake = self.lake.clone();
        let discard_new = |before: &BTreeSet<object_store::path::Path>| {
            let before = before.clone();
            let location = location.clone();
            async move {
                let all = lake.list_managed(ws, &location).await.unwrap_or_default();
                let files: Vec<_> = all.into_iter().filter(|f| !before.contains(f)).collect();
                if let Err(e) = lake.delete_managed(ws, &files).await {
                    tracing::warn!(%e, location, "cannot remove the files of a failed CTAS");
                }
            }
        };
        let rows = match written {
            Ok(rows) => rows,
            Err(e) => {
                discard_new(&before).await;
                return Err(e);
            }
        };
        let change = CatalogChange::CreateTable {
            table: self.record.clone(),
            if_not_exists: self.if_not_exists,
            replace: self.replace,
        };
        let response = match self.writer.apply(change).await {
            Ok(response) => response,
            Err(e) => {
                discard_new(&before).await;
                return Err(e);
            }
        };
        if !response.changed {
            // `IF NOT EXISTS` and the table exists by now: what is there stays, ours goes.
            discard_new(&before).await;
            return Ok(once(affected(0)?));
        }
        let old: Vec<_> = before.into_iter().collect();
        self.lake.delete_managed(ws, &old).await?;
        Ok(once(affected(rows)?))
    }
}

// ---------------------------------------------------------------------------------------------
// Preparing

pub(crate) async fn prepare(
    lake: Arc<Lake>,
    ctx: StatementContext,
    input: StatementInput,
) -> Result<Prepared, SqlError> {
    access::check_context(&ctx.access)?;
    let bound = params::bind(&input.sql, &input.parameters)?;
    let names = Names {
        catalog: input
            .catalog
            .as_deref()
            .filter(|c| !c.is_empty())
            .unwrap_or("main")
            .to_lowercase(),
        schema: input
            .schema
            .as_deref()
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_lowercase(),
    };
    let stmt = parse(&bound.sql)?;
    let mut authz = Authorizer::new(&ctx.access);
    let inner = prepare_stmt(&lake, &ctx, &names, &bound, stmt, &mut authz).await?;
    let mut touched = authz.touched;
    touched.sort();
    touched.dedup();
    Ok(Prepared { touched, inner })
}

fn session(ctx: &StatementContext, names: &Names) -> Result<SessionState, SqlError> {
    let compute = &ctx.compute.inner;
    let config = compute
        .session
        .clone()
        .with_default_catalog_and_schema(&names.catalog, &names.schema);
    let runtime = compute.runtime()?;
    let statistics = runtime.cache_manager.get_file_statistic_cache();
    Ok(SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_table_factories(HashMap::new())
        .with_table_functions(table_functions())
        .with_catalog_list(Arc::new(SnapshotCatalogs::new(
            ctx.access.snapshot.clone(),
            ctx.access.caller.workspace_id,
            statistics,
        )))
        .build())
}

/// Parses with DataFusion, accepting only a query, `EXPLAIN` of one, or (when `insert`)
/// `INSERT INTO ... SELECT/VALUES`.
async fn plan_sql(
    state: &SessionState,
    sql: &str,
    bound: &Bound,
    insert: bool,
) -> Result<LogicalPlan, SqlError> {
    let dialect = GenericDialect {};
    let mut statements = DFParserBuilder::new(sql)
        .with_dialect(&dialect)
        .build()?
        .parse_statements()?;
    if statements.len() != 1 {
        return Err(bad_request(
            "[NOT_SUPPORTED] Exactly one statement per request is supported",
        ));
    }
    let Some(statement) = statements.pop_front() else {
        return Err(syntax("[PARSE_EMPTY_STATEMENT] The statement is empty"));
    };
    let allowed = match &statement {
        DFStatement::Statement(s) => match s.as_ref() {
            SqlStatement::Query(_) => true,
            SqlStatement::Insert(i) => {
                insert
                    && !i.overwrite
                    && !i.replace_into
                    && i.or.is_none()
                    && i.on.is_none()
                    && i.returning.is_none()
                    && i.partitioned.is_none()
                    && i.source.is_some()
                    && matches!(i.table, TableObject::TableName(_))
            }
            _ => false,
        },
        DFStatement::Explain(e) => matches!(
            e.statement.as_ref(),
            DFStatement::Statement(s) if matches!(s.as_ref(), SqlStatement::Query(_))
        ),
        _ => false,
    };
    if !allowed {
        return Err(unsupported(if insert {
            "[NOT_SUPPORTED] Only INSERT INTO <table> [(columns)] SELECT ... / VALUES ... is \
             supported"
        } else {
            "[NOT_SUPPORTED] This statement is not supported"
        }));
    }
    let plan = state.statement_to_plan(statement).await?;
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_statements(false)
        .with_allow_dml(insert)
        .verify_plan(&plan)?;
    if bound.used.is_empty() {
        Ok(plan)
    } else {
        Ok(plan.with_param_values(bound.param_values())?)
    }
}

/// Authorizes every table the plan reads (`SelectTable`) and writes (`ModifyTable`); returns
/// the tables written.
fn authorize_plan(
    plan: &LogicalPlan,
    authz: &mut Authorizer<'_>,
) -> Result<Vec<TableRecord>, SqlError> {
    let mut failure: Option<SqlError> = None;
    let mut written = Vec::new();
    let walked = plan.apply_with_subqueries(|node| {
        let outcome = match node {
            LogicalPlan::TableScan(scan) => match source_as_provider(&scan.source) {
                Ok(provider) => {
                    if let Some(table) = provider.downcast_ref::<LakeTable>() {
                        authz.check("SelectTable", &table.securable)
                    } else if provider.is::<FunctionTable>() || provider.is::<CteWorkTable>() {
                        Ok(())
                    } else {
                        Err(internal(format!(
                            "the statement reads `{}`, which is not a catalog table",
                            scan.table_name
                        )))
                    }
                }
                Err(_) => Err(internal(format!(
                    "the statement reads `{}`, which is not a catalog table",
                    scan.table_name
                ))),
            },
            LogicalPlan::Dml(dml) => {
                let target = source_as_provider(&dml.target).ok();
                match (
                    &dml.op,
                    target.as_ref().and_then(|p| p.downcast_ref::<LakeTable>()),
                ) {
                    (WriteOp::Insert(InsertOp::Append), Some(table)) => {
                        written.push(table.record.clone());
                        authz.check("ModifyTable", &table.securable).and_then(|()| {
                            if table.writable() {
                                Ok(())
                            } else {
                                Err(read_only(&table.record))
                            }
                        })
                    }
                    _ => Err(unsupported("[NOT_SUPPORTED] Only INSERT INTO is supported")),
                }
            }
            LogicalPlan::Ddl(_) | LogicalPlan::Statement(_) | LogicalPlan::Copy(_) => Err(
                unsupported("[NOT_SUPPORTED] This statement is not supported"),
            ),
            _ => Ok(()),
        };
        match outcome {
            Ok(()) => Ok(TreeNodeRecursion::Continue),
            Err(e) => {
                failure = Some(e);
                Ok(TreeNodeRecursion::Stop)
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    walked.map_err(SqlError::from)?;
    Ok(written)
}

async fn prepare_stmt(
    lake: &Arc<Lake>,
    ctx: &StatementContext,
    names: &Names,
    bound: &Bound,
    stmt: Stmt,
    authz: &mut Authorizer<'_>,
) -> Result<PreparedInner, SqlError> {
    let snapshot = ctx.access.snapshot.clone();
    let ws = ctx.access.caller.workspace_id;
    let changes = |changes: Vec<CatalogChange>, wipe: Vec<String>| {
        PreparedInner::Changes(Changes {
            lake: lake.clone(),
            writer: ctx.writer.clone(),
            workspace_id: ws,
            snapshot: snapshot.clone(),
            changes,
            wipe,
        })
    };
    let owner = ctx.access.caller.principal.user_name.clone();
    match stmt {
        Stmt::DataFusion => {
            let state = session(ctx, names)?;
            let is_insert = matches!(
                Cursor::new(&bound.sql)?.peek(),
                Some(Token::Word(w)) if w.value.eq_ignore_ascii_case("INSERT")
            );
            let plan = plan_sql(&state, &bound.sql, bound, is_insert).await?;
            let written = authorize_plan(&plan, authz)?;
            for table in &written {
                if table.format != "PARQUET" {
                    return Err(unsupported(format!(
                        "[NOT_SUPPORTED] INSERT into {} table `{}.{}.{}`: only Parquet tables \
                         take inserts",
                        table.format, table.catalog, table.schema, table.name
                    )));
                }
                if !table.location.ends_with('/') {
                    return Err(unsupported(format!(
                        "[NOT_SUPPORTED] INSERT into `{}.{}.{}`: its location is a single file",
                        table.catalog, table.schema, table.name
                    )));
                }
            }
            let compute = ctx.compute.clone();
            Ok(if is_insert {
                PreparedInner::Insert {
                    state,
                    plan,
                    compute,
                }
            } else {
                PreparedInner::Query {
                    state,
                    plan,
                    compute,
                }
            })
        }

        Stmt::CreateSchema {
            name,
            if_not_exists,
            comment,
        } => {
            let schema = names.schema(&name)?;
            let Securable::Schema { catalog, name } = &schema else {
                return Err(internal("schema name"));
            };
            valid_name(name)?;
            let parent = Securable::Catalog {
                name: catalog.clone(),
            };
            access::require_exists(&snapshot, &parent)?;
            authz.check("CreateSchema", &parent)?;
            if access::owner_of(&snapshot, &schema).is_some() {
                if if_not_exists {
                    return Ok(empty());
                }
                return Err(SqlError::new(
                    ALREADY_EXISTS,
                    format!(
                        "[SCHEMA_ALREADY_EXISTS] Cannot create schema `{}` because it already \
                         exists",
                        schema.full_name()
                    ),
                )
                .with_sql_state("42P06"));
            }
            Ok(changes(
                vec![CatalogChange::CreateSchema {
                    schema: SchemaRecord {
                        catalog: catalog.clone(),
                        name: name.clone(),
                        owner,
                        comment,
                    },
                    if_not_exists,
                }],
                vec![],
            ))
        }

        Stmt::DropSchema {
            name,
            if_exists,
            cascade,
        } => {
            let schema = names.schema(&name)?;
            let Securable::Schema { catalog, name } = &schema else {
                return Err(internal("schema name"));
            };
            if access::owner_of(&snapshot, &schema).is_none() {
                if if_exists {
                    return Ok(empty());
                }
                return Err(schema_not_found(&schema.full_name()));
            }
            authz.check("DropSchema", &schema)?;
            let tables: Vec<&TableRecord> = snapshot
                .tables
                .iter()
                .filter(|t| &t.catalog == catalog && &t.schema == name)
                .collect();
            if !tables.is_empty() && !cascade {
                return Err(bad_request(format!(
                    "[SCHEMA_NOT_EMPTY] Cannot drop schema `{}` because it contains objects; \
                     use DROP SCHEMA ... CASCADE to drop the schema and all its objects",
                    schema.full_name()
                ))
                .with_sql_state("2BP01"));
            }
            let wipe = tables
                .iter()
                .filter(|t| owns_files(ws, t))
                .map(|t| t.location.clone())
                .collect();
            Ok(changes(
                vec![CatalogChange::DropSchema {
                    catalog: catalog.clone(),
                    name: name.clone(),
                    if_exists,
                    cascade,
                }],
                wipe,
            ))
        }

        Stmt::DropTable { name, if_exists } => {
            let table = names.table(&name)?;
            let Some(record) = find_table(&snapshot, &table) else {
                if if_exists {
                    return Ok(empty());
                }
                return Err(table_not_found(&table.full_name()));
            };
            authz.check("DropTable", &table)?;
            let (catalog, schema, name) = table_parts(&table);
            // Only a managed table of this workspace's area has files that go with it; an
            // external table's (the shared samples included) stay.
            let wipe = if owns_files(ws, record) {
                vec![record.location.clone()]
            } else {
                vec![]
            };
            Ok(changes(
                vec![CatalogChange::DropTable {
                    catalog,
                    schema,
                    name,
                    if_exists,
                }],
                wipe,
            ))
        }

        Stmt::CreateTable {
            name,
            or_replace,
            if_not_exists,
            columns,
            using,
            options,
            location,
            comment,
            query_at,
        } => {
            let table = names.table(&name)?;
            let (catalog, schema_name, table_name) = table_parts(&table);
            valid_name(&table_name)?;
            let schema = parent_schema(&table);
            access::require_exists(&snapshot, &schema)?;
            authz.check("CreateTable", &schema)?;
            let existing = find_table(&snapshot, &table);
            if existing.is_some() {
                if if_not_exists {
                    return Ok(empty());
                }
                if !or_replace {
                    return Err(SqlError::new(
                        ALREADY_EXISTS,
                        format!(
                            "[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table `{}` because \
                             it already exists",
                            table.full_name()
                        ),
                    )
                    .with_sql_state("42P07"));
                }
                // Replacing discards the old definition (and a managed table's data).
                authz.check("DropTable", &table)?;
                if let Some(existing) = existing {
                    if !Lake::in_area(ws, &existing.location) {
                        return Err(read_only(existing));
                    }
                }
            }
            // The replaced table's files go with it only when it was a managed table of this
            // workspace (never an external table's directory).
            let mut wipe: Vec<String> = existing
                .filter(|e| owns_files(ws, e))
                .map(|e| e.location.clone())
                .into_iter()
                .collect();
            let format = using.unwrap_or_else(|| "PARQUET".to_owned());
            let format = if format == "DELTA" && location.is_none() {
                // Managed tables are Parquet here; Databricks' default format is accepted.
                "PARQUET".to_owned()
            } else {
                format
            };
            if !FORMATS.contains(&format.as_str()) {
                return Err(unsupported(format!(
                    "[NOT_SUPPORTED] USING {format}: tables are PARQUET, CSV or JSON"
                )));
            }
            validate_options(&format, &options)?;
            let mut record = TableRecord {
                catalog: catalog.clone(),
                schema: schema_name.clone(),
                name: table_name.clone(),
                owner,
                table_type: "MANAGED".into(),
                format: format.clone(),
                location: Lake::managed_location(ws, &catalog, &schema_name, &table_name),
                columns: vec![],
                options,
                comment,
            };

            if let Some(at) = query_at {
                if columns.is_some() {
                    return Err(unsupported(
                        "[NOT_SUPPORTED] CREATE TABLE AS SELECT takes its columns from the query",
                    ));
                }
                if location.is_some() || format != "PARQUET" {
                    return Err(unsupported(
                        "[NOT_SUPPORTED] CREATE TABLE AS SELECT makes managed Parquet tables \
                         (no LOCATION, USING PARQUET)",
                    ));
                }
                let state = session(ctx, names)?;
                let query = &bound.sql[at..];
                if !matches!(
                    Cursor::new(query)?.peek(),
                    Some(Token::Word(w)) if ["SELECT", "WITH", "VALUES", "FROM"].iter().any(|k| w.value.eq_ignore_ascii_case(k))
                ) && !matches!(Cursor::new(query)?.peek(), Some(Token::LParen))
                {
                    return Err(syntax(
                        "[PARSE_SYNTAX_ERROR] CREATE TABLE ... AS must be followed by a query",
                    ));
                }
                let plan = plan_sql(&state, query, bound, false).await?;
                authorize_plan(&plan, authz)?;
                let arrow = plan.schema().as_arrow().clone();
                let mut seen = BTreeSet::new();
                for field in arrow.fields() {
                    if !seen.insert(field.name().to_lowercase()) {
                        return Err(bad_request(format!(
                            "[COLUMN_ALREADY_EXISTS] The column `{}` appears twice; alias one \
                             of them",
                            field.name()
                        ))
                        .with_sql_state("42711"));
                    }
                }
                record.columns = columns_of(&arrow, true);
                check_overlap(&snapshot, &record)?;
                return Ok(PreparedInner::Ctas(Box::new(Ctas {
                    state,
                    plan,
                    compute: ctx.compute.clone(),
                    lake: lake.clone(),
                    writer: ctx.writer.clone(),
                    workspace_id: ws,
                    snapshot: snapshot.clone(),
                    record,
                    replace: existing.is_some(),
                    if_not_exists,
                })));
            }

            match location {
                None => {
                    let Some(columns) = columns else {
                        return Err(bad_request(
                            "CREATE TABLE needs columns, a LOCATION to read them from, or AS \
                             SELECT",
                        ));
                    };
                    if format != "PARQUET" {
                        return Err(unsupported(
                            "[NOT_SUPPORTED] managed tables are Parquet; give CSV and JSON \
                             tables a LOCATION",
                        ));
                    }
                    record.columns = column_records(&columns)?;
                    check_overlap(&snapshot, &record)?;
                    // A new managed table starts empty: the replaced table's files, or
                    // leftovers of an interrupted statement, go (once it is in).
                    if !wipe.contains(&record.location) {
                        wipe.push(record.location.clone());
                    }
                }
                Some(given) => {
                    let mut resolved = lake.resolve_location(ws, &given)?;
                    if !resolved.ends_with('/') && !lake.is_file(&resolved).await {
                        resolved.push('/');
                    }
                    record.table_type = "EXTERNAL".into();
                    record.location = resolved;
                    // Before reading anything there: another table's files are not ours.
                    check_overlap(&snapshot, &record)?;
                    record.columns = match columns {
                        Some(columns) => column_records(&columns)?,
                        None => {
                            let state = session(ctx, names)?;
                            let options = listing_options(
                                &record.format,
                                &record.options,
                                record.location.ends_with('/'),
                            )?;
                            let url = Lake::table_url(&record.location)?;
                            let inferred =
                                options.infer_schema(&state, &url).await.map_err(|e| {
                                    bad_request(format!(
                                        "cannot read the columns of LOCATION '{given}': {}",
                                        SqlError::from(e).message
                                    ))
                                })?;
                            columns_of(&inferred, true)
                        }
                    };
                }
            }
            Ok(changes(
                vec![CatalogChange::CreateTable {
                    table: record,
                    if_not_exists,
                    replace: or_replace,
                }],
                wipe,
            ))
        }

        Stmt::Describe { name } => {
            let table = names.table(&name)?;
            let Some(record) = find_table(&snapshot, &table) else {
                return Err(table_not_found(&table.full_name()));
            };
            authz.check("SelectTable", &table)?;
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

        Stmt::ShowCatalogs { like } => {
            let rows = snapshot
                .catalogs
                .iter()
                .filter(|c| matches_like(like.as_deref(), &c.name))
                .filter(|c| {
                    access::visible(
                        &snapshot,
                        &ctx.access.caller,
                        &Securable::Catalog {
                            name: c.name.clone(),
                        },
                    )
                })
                .map(|c| vec![Some(c.name.clone())])
                .collect();
            Ok(PreparedInner::Rows(strings(&["catalog"], rows)?))
        }

        Stmt::ShowSchemas { catalog, like } => {
            let catalog = catalog.unwrap_or_else(|| names.catalog.clone());
            access::require_exists(
                &snapshot,
                &Securable::Catalog {
                    name: catalog.clone(),
                },
            )?;
            let rows = snapshot
                .schemas
                .iter()
                .filter(|s| s.catalog == catalog && matches_like(like.as_deref(), &s.name))
                .filter(|s| {
                    access::visible(
                        &snapshot,
                        &ctx.access.caller,
                        &Securable::Schema {
                            catalog: s.catalog.clone(),
                            name: s.name.clone(),
                        },
                    )
                })
                .map(|s| vec![Some(s.name.clone())])
                .collect();
            Ok(PreparedInner::Rows(strings(&["databaseName"], rows)?))
        }

        Stmt::ShowTables { schema, like } => {
            let schema = match schema {
                Some(parts) => names.schema(&parts)?,
                None => Securable::Schema {
                    catalog: names.catalog.clone(),
                    name: names.schema.clone(),
                },
            };
            access::require_exists(&snapshot, &schema)?;
            let (catalog, schema_name, _) = table_parts(&schema);
            let mut tables: Vec<&TableRecord> = snapshot
                .tables
                .iter()
                .filter(|t| t.catalog == catalog && t.schema == schema_name)
                .filter(|t| matches_like(like.as_deref(), &t.name))
                .filter(|t| {
                    access::visible(
                        &snapshot,
                        &ctx.access.caller,
                        &Securable::Table {
                            catalog: t.catalog.clone(),
                            schema: t.schema.clone(),
                            name: t.name.clone(),
                        },
                    )
                })
                .collect();
            tables.sort_by(|a, b| a.name.cmp(&b.name));
            let schema_ref = Arc::new(Schema::new(vec![
                Field::new("database", DataType::Utf8, false),
                Field::new("tableName", DataType::Utf8, false),
                Field::new("isTemporary", DataType::Boolean, false),
            ]));
            let batch = RecordBatch::try_new(
                schema_ref,
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
            .map_err(|e| internal(e.to_string()))?;
            Ok(PreparedInner::Rows(batch))
        }

        Stmt::ShowGrants {
            principal,
            kind,
            name,
        } => {
            let securable = names.securable(kind, &name)?;
            access::require_exists(&snapshot, &securable)?;
            authz.check("ManageGrants", &securable)?;
            let mut rows = Vec::new();
            for level in securable.lineage() {
                for grant in &snapshot.grants {
                    if !grant.securable_type.eq_ignore_ascii_case(level.kind())
                        || grant.full_name != level.full_name()
                        || principal.as_ref().is_some_and(|p| p != &grant.principal)
                    {
                        continue;
                    }
                    for privilege in &grant.privileges {
                        rows.push(vec![
                            Some(grant.principal.clone()),
                            Some(privilege.clone()),
                            Some(level.kind().to_owned()),
                            Some(level.full_name()),
                        ]);
                    }
                }
            }
            rows.sort();
            Ok(PreparedInner::Rows(strings(
                &["principal", "action_type", "object_type", "object_key"],
                rows,
            )?))
        }

        Stmt::Grant {
            revoke,
            privileges,
            kind,
            name,
            principal,
        } => {
            let securable = names.securable(kind, &name)?;
            let allowed: &[&str] = match kind {
                Kind::Catalog => &[
                    "SELECT",
                    "MODIFY",
                    "USE_CATALOG",
                    "USE_SCHEMA",
                    "CREATE_SCHEMA",
                    "CREATE_TABLE",
                    "ALL_PRIVILEGES",
                    "MANAGE",
                ],
                Kind::Schema => &[
                    "SELECT",
                    "MODIFY",
                    "USE_SCHEMA",
                    "CREATE_TABLE",
                    "ALL_PRIVILEGES",
                    "MANAGE",
                ],
                Kind::Table => &["SELECT", "MODIFY", "ALL_PRIVILEGES", "MANAGE"],
            };
            for privilege in &privileges {
                if !allowed.contains(&privilege.as_str()) {
                    return Err(bad_request(format!(
                        "[INVALID_PRIVILEGE] {privilege} is not a privilege of a {} (use {})",
                        kind.name().to_lowercase(),
                        allowed.join(", ")
                    )));
                }
            }
            access::require_exists(&snapshot, &securable)?;
            authz.check("ManageGrants", &securable)?;
            let change = if revoke {
                GrantChange {
                    principal,
                    add: vec![],
                    remove: privileges,
                }
            } else {
                GrantChange {
                    principal,
                    add: privileges,
                    remove: vec![],
                }
            };
            Ok(changes(
                vec![CatalogChange::UpdateGrants {
                    securable_type: kind.name().to_owned(),
                    full_name: securable.full_name(),
                    changes: vec![change],
                }],
                vec![],
            ))
        }
    }
}

fn column_records(columns: &[ColumnDef]) -> Result<Vec<ColumnRecord>, SqlError> {
    let mut seen = BTreeSet::new();
    columns
        .iter()
        .map(|c| {
            if !seen.insert(c.name.to_lowercase()) {
                return Err(bad_request(format!(
                    "[COLUMN_ALREADY_EXISTS] The column `{}` is defined twice",
                    c.name
                ))
                .with_sql_state("42711"));
            }
            Ok(ColumnRecord {
                name: c.name.clone(),
                data_type: c.data_type.to_string(),
                nullable: c.nullable,
            })
        })
        .collect()
}

/// The longest `SHOW ... LIKE` pattern accepted.
const MAX_LIKE_PATTERN: usize = 1000;

/// Whether a table's files belong to it and go with it (drop, replace): a managed table whose
/// location is a managed directory of this workspace's area. Anything else (external tables,
/// the shared samples, locations outside the area) is never deleted.
fn owns_files(workspace_id: i64, table: &TableRecord) -> bool {
    table.table_type == "MANAGED" && Lake::is_managed_location(workspace_id, &table.location)
}

/// `BAD_REQUEST` naming both tables when the new table's location equals, contains or lies
/// inside another table's in the workspace's snapshot (the table it replaces aside): a table
/// over another's files would read and write them under its own grants.
fn check_overlap(snapshot: &CatalogSnapshot, record: &TableRecord) -> Result<(), SqlError> {
    let other = snapshot.tables.iter().find(|t| {
        !(t.catalog == record.catalog && t.schema == record.schema && t.name == record.name)
            && overlaps(&t.location, &record.location)
    });
    match other {
        None => Ok(()),
        Some(t) => Err(bad_request(format!(
            "the location `{}` of `{}.{}.{}` overlaps the location `{}` of table `{}.{}.{}`: \
             tables cannot share files",
            record.location,
            record.catalog,
            record.schema,
            record.name,
            t.location,
            t.catalog,
            t.schema,
            t.name
        ))),
    }
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

    fn parsed(sql: &str) -> Stmt {
        parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn grants_normalise_privilege_names() {
        let Stmt::Grant {
            privileges,
            kind,
            name,
            principal,
            revoke,
        } = parsed("GRANT SELECT, ALL PRIVILEGES, USE CATALOG, create table ON CATALOG Main TO `alice@example.com`")
        else {
            panic!("not a grant")
        };
        assert!(!revoke);
        assert_eq!(
            privileges,
            ["SELECT", "ALL_PRIVILEGES", "USE_CATALOG", "CREATE_TABLE"]
        );
        assert_eq!(kind, Kind::Catalog);
        assert_eq!(name, ["main"]);
        assert_eq!(principal, "alice@example.com");
    }

    #[test]
    fn create_table_clauses() {
        let Stmt::CreateTable {
            name,
            columns,
            using,
            options,
            location,
            query_at,
            ..
        } = parsed(
            "CREATE TABLE IF NOT EXISTS s.Trips (id BIGINT NOT NULL, fare DECIMAL(10, 2), tags ARRAY<STRING>) \
             USING csv OPTIONS (header 'true', delimiter = ';') LOCATION 'data/trips/'",
        )
        else {
            panic!("not a create table")
        };
        assert_eq!(name, ["s", "trips"]);
        let columns = columns.unwrap_or_default();
        assert_eq!(columns.len(), 3);
        assert!(!columns[0].nullable);
        assert_eq!(columns[1].data_type, DataType::Decimal128(10, 2));
        assert_eq!(using.as_deref(), Some("CSV"));
        assert_eq!(options.get("delimiter").map(String::as_str), Some(";"));
        assert_eq!(location.as_deref(), Some("data/trips/"));
        assert!(query_at.is_none());
        let sql = "CREATE OR REPLACE TABLE t AS SELECT 1 AS x";
        let Stmt::CreateTable {
            query_at,
            or_replace,
            ..
        } = parsed(sql)
        else {
            panic!("not a ctas")
        };
        assert!(or_replace);
        assert_eq!(&sql[query_at.unwrap_or(0)..], "SELECT 1 AS x");
    }

    #[test]
    fn datafusion_only_statements_are_refused() {
        for sql in [
            "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
            "SET datafusion.execution.target_partitions = 1",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "CREATE VIEW v AS SELECT 1",
            "DELETE FROM t",
            "USE CATALOG main",
        ] {
            let e = parse(sql).err().unwrap_or_else(|| panic!("{sql} accepted"));
            assert_eq!(e.error_code, "BAD_REQUEST", "{sql}");
        }
    }

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

    #[test]
    fn like_patterns_are_capped() {
        let long = format!("SHOW CATALOGS LIKE '{}'", "*".repeat(MAX_LIKE_PATTERN + 1));
        let e = parse(&long).err().unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.error_code, "BAD_REQUEST");
        assert!(e.message.contains("1000"), "{}", e.message);
        let ok = format!("SHOW TABLES LIKE '{}'", "*".repeat(MAX_LIKE_PATTERN));
        assert!(parse(&ok).is_ok());
    }
}
