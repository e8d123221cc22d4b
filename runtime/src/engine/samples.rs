//! The `samples` catalog: TPC-H generated in-process (no download) and written into the lake as
//! Parquet at `samples/tpch/<table>/`, plus the catalog changes that describe it.

use super::catalog::columns_of;
use super::lake::Lake;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatchReader;
use lakeward_common::data::{CatalogChange, CatalogRecord, GrantChange, SchemaRecord, TableRecord};
use lakeward_common::internal::{ADMINS_GROUP, USERS_GROUP};
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::collections::BTreeMap;
use std::sync::Arc;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

pub(crate) const CATALOG: &str = "samples";
pub(crate) const SCHEMA: &str = "tpch";
/// The file each sample table's data lives in, inside its directory.
const DATA_FILE: &str = "data.parquet";

/// The eight TPC-H tables.
pub(crate) const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

fn schema_of(table: &str) -> Option<SchemaRef> {
    Some(match table {
        "customer" => CustomerArrow::schema_ref(),
        "lineitem" => LineItemArrow::schema_ref(),
        "nation" => NationArrow::schema_ref(),
        "orders" => OrderArrow::schema_ref(),
        "part" => PartArrow::schema_ref(),
        "partsupp" => PartSuppArrow::schema_ref(),
        "region" => RegionArrow::schema_ref(),
        "supplier" => SupplierArrow::schema_ref(),
        _ => return None,
    })
}

type Reader = Box<dyn RecordBatchReader + Send>;

fn generator(table: &str, sf: f64) -> Option<Reader> {
    Some(match table {
        "customer" => Box::new(CustomerArrow::new(CustomerGenerator::new(sf, 1, 1))),
        "lineitem" => Box::new(LineItemArrow::new(LineItemGenerator::new(sf, 1, 1))),
        "nation" => Box::new(NationArrow::new(NationGenerator::new(sf, 1, 1))),
        "orders" => Box::new(OrderArrow::new(OrderGenerator::new(sf, 1, 1))),
        "part" => Box::new(PartArrow::new(PartGenerator::new(sf, 1, 1))),
        "partsupp" => Box::new(PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1))),
        "region" => Box::new(RegionArrow::new(RegionGenerator::new(sf, 1, 1))),
        "supplier" => Box::new(SupplierArrow::new(SupplierGenerator::new(sf, 1, 1))),
        _ => return None,
    })
}

fn data_path(table: &str) -> Result<Path, object_store::path::Error> {
    Path::parse(format!("{CATALOG}/{SCHEMA}/{table}/{DATA_FILE}"))
}

/// Writes every missing sample table. Runs on a thread and runtime of its own, so that it can
/// be called from anywhere (before serving, or from `spawn_blocking`).
pub(crate) fn ensure_sample_data(lake: &Lake, scale_factor: f64) -> anyhow::Result<()> {
    if !(scale_factor > 0.0 && scale_factor.is_finite()) {
        anyhow::bail!("samples_scale_factor must be positive, not {scale_factor}");
    }
    let store = lake.fresh_store()?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                runtime.block_on(write_missing(store, scale_factor))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the sample data writer failed"))?
    })
}

async fn write_missing(store: Arc<dyn ObjectStore>, scale_factor: f64) -> anyhow::Result<()> {
    for table in TABLES {
        let path = data_path(table)?;
        if store.head(&path).await.is_ok() {
            continue;
        }
        let Some(reader) = generator(table, scale_factor) else {
            anyhow::bail!("no generator for {table}");
        };
        // Written under a name the table's listing ignores (no `.parquet` suffix), then renamed:
        // a crash leaves no half file where readers look.
        let temp = Path::parse(format!(
            "{CATALOG}/{SCHEMA}/{table}/_{DATA_FILE}.{}.tmp",
            uuid::Uuid::new_v4().simple()
        ))?;
        let result = write_parquet(store.clone(), &temp, reader).await;
        if let Err(e) = result {
            let _ = store.delete(&temp).await;
            return Err(e.context(format!("writing samples.tpch.{table}")));
        }
        store.rename(&temp, &path).await?;
        tracing::info!(table, scale_factor, "wrote TPC-H sample table");
    }
    Ok(())
}

async fn write_parquet(
    store: Arc<dyn ObjectStore>,
    path: &Path,
    reader: Reader,
) -> anyhow::Result<()> {
    let schema = reader.schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer =
        AsyncArrowWriter::try_new(BufWriter::new(store, path.clone()), schema, Some(props))?;
    for batch in reader {
        writer.write(&batch?).await?;
    }
    writer.close().await?;
    Ok(())
}

/// The catalog changes that describe the samples and the workspace's `main.default`.
pub(crate) fn seed_changes() -> Vec<CatalogChange> {
    let mut changes = vec![
        CatalogChange::CreateCatalog {
            catalog: CatalogRecord {
                name: CATALOG.into(),
                owner: ADMINS_GROUP.into(),
                comment: Some("TPC-H sample data, generated by Lakeward".into()),
            },
            if_not_exists: true,
        },
        CatalogChange::CreateSchema {
            schema: SchemaRecord {
                catalog: CATALOG.into(),
                name: SCHEMA.into(),
                owner: ADMINS_GROUP.into(),
                comment: None,
            },
            if_not_exists: true,
        },
    ];
    for table in TABLES {
        let Some(schema) = schema_of(table) else {
            continue;
        };
        changes.push(CatalogChange::CreateTable {
            table: TableRecord {
                catalog: CATALOG.into(),
                schema: SCHEMA.into(),
                name: table.into(),
                owner: ADMINS_GROUP.into(),
                table_type: "EXTERNAL".into(),
                format: "PARQUET".into(),
                location: format!("{CATALOG}/{SCHEMA}/{table}/"),
                columns: columns_of(&schema, false),
                options: BTreeMap::new(),
                comment: None,
            },
            if_not_exists: true,
            replace: false,
        });
    }
    changes.push(CatalogChange::UpdateGrants {
        securable_type: "CATALOG".into(),
        full_name: CATALOG.into(),
        changes: vec![GrantChange {
            principal: USERS_GROUP.into(),
            add: vec!["SELECT".into(), "USE_CATALOG".into(), "USE_SCHEMA".into()],
            remove: vec![],
        }],
    });
    changes.push(CatalogChange::CreateCatalog {
        catalog: CatalogRecord {
            name: "main".into(),
            owner: ADMINS_GROUP.into(),
            comment: None,
        },
        if_not_exists: true,
    });
    changes.push(CatalogChange::CreateSchema {
        schema: SchemaRecord {
            catalog: "main".into(),
            name: "default".into(),
            owner: ADMINS_GROUP.into(),
            comment: None,
        },
        if_not_exists: true,
    });
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn seed_describes_eight_readable_tables() {
        let changes = seed_changes();
        let tables: Vec<_> = changes
            .iter()
            .filter_map(|c| match c {
                CatalogChange::CreateTable { table, .. } => Some(table),
                _ => None,
            })
            .collect();
        assert_eq!(tables.len(), 8);
        let lineitem = tables.iter().find(|t| t.name == "lineitem").unwrap();
        assert_eq!(lineitem.columns[0].name, "l_orderkey");
        for column in &lineitem.columns {
            datafusion::arrow::datatypes::DataType::from_str(&column.data_type)
                .unwrap_or_else(|e| panic!("{}: {e}", column.data_type));
        }
        assert!(changes.iter().any(|c| matches!(
            c,
            CatalogChange::UpdateGrants { full_name, changes, .. }
                if full_name == "samples" && changes[0].principal == "users"
        )));
    }
}
