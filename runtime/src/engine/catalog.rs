//! The catalog DataFusion plans against: the control plane's snapshot, read-only, each table a
//! `ListingTable` over its files in the lake with the columns the snapshot stores (no schema
//! inference at query time). Tables are wrapped so that the authorization walk over a plan can
//! tell exactly which securable every scan and write reaches.

use super::error::QueryError;
use super::error::{bad_request, internal};
use super::lake::Lake;
use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, SchemaProvider, Session, TableFunction,
    TableFunctionArgs, TableFunctionImpl, TableProvider,
};
use datafusion::common::{Constraints, Statistics};
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::cache::cache_manager::FileStatisticsCache;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use lakeward_common::data::{CatalogSnapshot, ColumnRecord, TableRecord};
use lakeward_policy::Securable;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;

/// The formats tables may have.
pub(crate) const FORMATS: [&str; 3] = ["PARQUET", "CSV", "JSON"];

/// The snapshot's arrow schema for a table.
pub(crate) fn table_schema(record: &TableRecord) -> Result<SchemaRef, QueryError> {
    let fields = record
        .columns
        .iter()
        .map(|c| {
            DataType::from_str(&c.data_type)
                .map(|ty| Field::new(&c.name, ty, c.nullable))
                .map_err(|e| {
                    internal(format!(
                        "column `{}` of `{}.{}.{}` has an unreadable type `{}`: {e}",
                        c.name, record.catalog, record.schema, record.name, c.data_type
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// The columns to store for an arrow schema.
pub(crate) fn columns_of(schema: &Schema, force_nullable: bool) -> Vec<ColumnRecord> {
    schema
        .fields()
        .iter()
        .map(|f| ColumnRecord {
            name: f.name().clone(),
            data_type: f.data_type().to_string(),
            nullable: force_nullable || f.is_nullable(),
        })
        .collect()
}

/// The options each format understands, lower-case; anything else is refused at CREATE time
/// rather than silently ignored.
pub(crate) fn validate_options(
    format: &str,
    options: &BTreeMap<String, String>,
) -> Result<(), QueryError> {
    let known: &[&str] = match format {
        "CSV" => &[
            "header",
            "delimiter",
            "sep",
            "quote",
            "escape",
            "comment",
            "file_extension",
        ],
        "JSON" | "PARQUET" => &["file_extension"],
        other => {
            return Err(bad_request(format!(
                "USING {other} is not supported; use PARQUET, CSV or JSON"
            )))
        }
    };
    for key in options.keys() {
        if !known.contains(&key.as_str()) {
            return Err(bad_request(format!(
                "OPTIONS: `{key}` is not an option of {format} tables (known: {})",
                known.join(", ")
            )));
        }
    }
    listing_options(format, options, true).map(|_| ())
}

fn one_byte(key: &str, value: &str) -> Result<u8, QueryError> {
    let unescaped = match value {
        "\\t" => "\t",
        other => other,
    };
    match unescaped.as_bytes() {
        [b] => Ok(*b),
        _ => Err(bad_request(format!(
            "OPTIONS: `{key}` must be a single character, not '{value}'"
        ))),
    }
}

fn truthy(key: &str, value: &str) -> Result<bool, QueryError> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad_request(format!(
            "OPTIONS: `{key}` must be true or false, not '{value}'"
        ))),
    }
}

/// How DataFusion reads a table of this format. `directory`: the location is a directory
/// (files are filtered by extension) rather than a single file.
pub(crate) fn listing_options(
    format: &str,
    options: &BTreeMap<String, String>,
    directory: bool,
) -> Result<ListingOptions, QueryError> {
    let file_format: Arc<dyn FileFormat> = match format {
        "PARQUET" => Arc::new(ParquetFormat::default()),
        "JSON" => Arc::new(JsonFormat::default()),
        "CSV" => {
            // Databricks reads CSV without a header unless told otherwise.
            let mut csv = CsvFormat::default().with_has_header(false);
            for (key, value) in options {
                csv = match key.as_str() {
                    "header" => csv.with_has_header(truthy(key, value)?),
                    "delimiter" | "sep" => csv.with_delimiter(one_byte(key, value)?),
                    "quote" => csv.with_quote(one_byte(key, value)?),
                    "escape" => csv.with_escape(Some(one_byte(key, value)?)),
                    "comment" => csv.with_comment(Some(one_byte(key, value)?)),
                    _ => csv,
                };
            }
            Arc::new(csv)
        }
        other => {
            return Err(bad_request(format!(
                "USING {other} is not supported; use PARQUET, CSV or JSON"
            )))
        }
    };
    let extension = if directory {
        options
            .get("file_extension")
            .cloned()
            .unwrap_or_else(|| file_format.get_ext())
    } else {
        // A single file is read whatever its name.
        String::new()
    };
    Ok(ListingOptions::new(file_format).with_file_extension(extension))
}

/// The error a write to a table outside the workspace's area of the lake gets (the shared
/// samples are read-only to every workspace).
pub(crate) fn read_only(record: &TableRecord) -> QueryError {
    bad_request(format!(
        "{}.{}.{} is read-only: its files (`{}`) lie outside this workspace's area of the lake",
        record.catalog, record.schema, record.name, record.location
    ))
}

/// A catalog table, as DataFusion reads and writes it, with the securable it is.
#[derive(Debug)]
pub(crate) struct LakeTable {
    pub(crate) securable: Securable,
    pub(crate) record: TableRecord,
    /// The statement's workspace: only a table inside its area of the lake takes writes.
    workspace_id: i64,
    inner: Arc<ListingTable>,
}

impl LakeTable {
    /// A table to read, with the warehouse's file-statistics cache.
    pub(crate) fn new(
        record: &TableRecord,
        workspace_id: i64,
        statistics: Option<Arc<FileStatisticsCache>>,
    ) -> Result<LakeTable, QueryError> {
        Self::build(record, workspace_id, table_schema(record)?, statistics)
    }

    /// Whether the statement's workspace may write this table's files.
    pub(crate) fn writable(&self) -> bool {
        Lake::in_area(self.workspace_id, &self.record.location)
    }

    /// A table to write into, seen with `schema`.
    pub(crate) fn with_schema(
        record: &TableRecord,
        workspace_id: i64,
        schema: SchemaRef,
    ) -> Result<LakeTable, QueryError> {
        Self::build(record, workspace_id, schema, None)
    }

    fn build(
        record: &TableRecord,
        workspace_id: i64,
        schema: SchemaRef,
        statistics: Option<Arc<FileStatisticsCache>>,
    ) -> Result<LakeTable, QueryError> {
        let directory = record.location.ends_with('/');
        let options = listing_options(&record.format, &record.options, directory)?;
        let url = Lake::table_url(&record.location)?;
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema);
        let inner = ListingTable::try_new(config)
            .map_err(|e| {
                internal(format!(
                    "table `{}.{}.{}` cannot be read: {e}",
                    record.catalog, record.schema, record.name
                ))
            })?
            .with_cache(statistics);
        Ok(LakeTable {
            securable: Securable::Table {
                catalog: record.catalog.clone(),
                schema: record.schema.clone(),
                name: record.name.clone(),
            },
            record: record.clone(),
            workspace_id,
            inner: Arc::new(inner),
        })
    }
}

/// A `TableProvider` for a table that wraps another (`inner`): reads are the inner table's,
/// the rest is written out in the macro's call.
macro_rules! wrapping_table_provider {
    ($table:ty { $($rest:tt)* }) => {
        #[async_trait]
        impl TableProvider for $table {
            fn schema(&self) -> SchemaRef {
                self.inner.schema()
            }

            async fn scan(
                &self,
                state: &dyn Session,
                projection: Option<&Vec<usize>>,
                filters: &[Expr],
                limit: Option<usize>,
            ) -> DfResult<Arc<dyn ExecutionPlan>> {
                self.inner.scan(state, projection, filters, limit).await
            }

            fn supports_filters_pushdown(
                &self,
                filters: &[&Expr],
            ) -> DfResult<Vec<TableProviderFilterPushDown>> {
                self.inner.supports_filters_pushdown(filters)
            }

            $($rest)*
        }
    };
}

wrapping_table_provider!(LakeTable {
    fn constraints(&self) -> Option<&Constraints> {
        self.inner.constraints()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }

    async fn insert_into(
        &self,
        state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return Err(DataFusionError::NotImplemented(
                "only INSERT INTO (append) is supported".into(),
            ));
        }
        if !self.writable() {
            return Err(DataFusionError::External(Box::new(read_only(&self.record))));
        }
        self.inner.insert_into(state, input, insert_op).await
    }
});

/// A built-in table function's table (`range`, `generate_series`): reads nothing, so the
/// authorization walk lets it through, and only it.
#[derive(Debug)]
pub(crate) struct FunctionTable {
    inner: Arc<dyn TableProvider>,
}

wrapping_table_provider!(FunctionTable {
    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }
});

#[derive(Debug)]
struct GuardedFunction {
    inner: Arc<dyn TableFunctionImpl>,
}

impl TableFunctionImpl for GuardedFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let inner = self.inner.call_with_args(args)?;
        Ok(Arc::new(FunctionTable { inner }))
    }
}

/// DataFusion's built-in table functions, each wrapped so its tables are recognisable.
pub(crate) fn table_functions() -> std::collections::HashMap<String, Arc<TableFunction>> {
    datafusion::functions_table::all_default_table_functions()
        .into_iter()
        .map(|f| {
            let guarded = Arc::new(GuardedFunction {
                inner: f.function().clone(),
            });
            (
                f.name().to_owned(),
                Arc::new(TableFunction::new(f.name().to_owned(), guarded)),
            )
        })
        .collect()
}

/// The snapshot as DataFusion's catalog list. Read-only: registering anything is refused (or,
/// where DataFusion's trait cannot fail, ignored), so nothing lands in an in-memory catalog.
#[derive(Debug)]
pub(crate) struct SnapshotCatalogs {
    view: SnapshotView,
}

/// What every level of the catalog hands down to the tables it opens.
#[derive(Debug, Clone)]
struct SnapshotView {
    snapshot: Arc<CatalogSnapshot>,
    workspace_id: i64,
    statistics: Option<Arc<FileStatisticsCache>>,
}

impl SnapshotCatalogs {
    /// `statistics`: the warehouse's cache of file statistics, shared by the tables of every
    /// statement (DataFusion checks each entry against the file's size and mtime).
    pub(crate) fn new(
        snapshot: Arc<CatalogSnapshot>,
        workspace_id: i64,
        statistics: Option<Arc<FileStatisticsCache>>,
    ) -> Self {
        SnapshotCatalogs {
            view: SnapshotView {
                snapshot,
                workspace_id,
                statistics,
            },
        }
    }
}

impl CatalogProviderList for SnapshotCatalogs {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.view
            .snapshot
            .catalogs
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let name = name.to_lowercase();
        self.view
            .snapshot
            .catalogs
            .iter()
            .any(|c| c.name == name)
            .then(|| {
                Arc::new(SnapshotCatalog {
                    view: self.view.clone(),
                    name,
                }) as Arc<dyn CatalogProvider>
            })
    }
}

#[derive(Debug)]
struct SnapshotCatalog {
    view: SnapshotView,
    name: String,
}

impl CatalogProvider for SnapshotCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.view
            .snapshot
            .schemas
            .iter()
            .filter(|s| s.catalog == self.name)
            .map(|s| s.name.clone())
            .collect()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        let name = name.to_lowercase();
        self.view
            .snapshot
            .schemas
            .iter()
            .any(|s| s.catalog == self.name && s.name == name)
            .then(|| {
                Arc::new(SnapshotSchema {
                    view: self.view.clone(),
                    catalog: self.name.clone(),
                    name,
                }) as Arc<dyn SchemaProvider>
            })
    }
}

#[derive(Debug)]
struct SnapshotSchema {
    view: SnapshotView,
    catalog: String,
    name: String,
}

impl SnapshotSchema {
    fn record(&self, table: &str) -> Option<&TableRecord> {
        let table = table.to_lowercase();
        self.view
            .snapshot
            .tables
            .iter()
            .find(|t| t.catalog == self.catalog && t.schema == self.name && t.name == table)
    }
}

#[async_trait]
impl SchemaProvider for SnapshotSchema {
    fn table_names(&self) -> Vec<String> {
        self.view
            .snapshot
            .tables
            .iter()
            .filter(|t| t.catalog == self.catalog && t.schema == self.name)
            .map(|t| t.name.clone())
            .collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        match self.record(name) {
            None => Ok(None),
            Some(record) => {
                let table =
                    LakeTable::new(record, self.view.workspace_id, self.view.statistics.clone())
                        .map_err(|e| DataFusionError::External(Box::new(e)))?;
                Ok(Some(Arc::new(table)))
            }
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.record(name).is_some()
    }
}
