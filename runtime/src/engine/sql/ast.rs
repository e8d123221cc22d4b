//! The statements the front end parses itself, in Databricks' grammar (queries and `INSERT`
//! stay text for DataFusion).

use datafusion::arrow::datatypes::DataType;
use std::collections::BTreeMap;

/// The kind of securable a `GRANT`, `SHOW GRANTS` or `DROP` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Catalog,
    Schema,
    Table,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Catalog => "CATALOG",
            Kind::Schema => "SCHEMA",
            Kind::Table => "TABLE",
        }
    }
}

#[derive(Debug)]
pub(crate) struct ColumnDef {
    pub(crate) name: String,
    pub(crate) data_type: DataType,
    pub(crate) nullable: bool,
}

#[derive(Debug)]
pub(crate) struct CreateSchema {
    pub(crate) name: Vec<String>,
    pub(crate) if_not_exists: bool,
    pub(crate) comment: Option<String>,
}

#[derive(Debug)]
pub(crate) struct CreateTable {
    pub(crate) name: Vec<String>,
    pub(crate) or_replace: bool,
    pub(crate) if_not_exists: bool,
    pub(crate) columns: Option<Vec<ColumnDef>>,
    pub(crate) using: Option<String>,
    pub(crate) options: BTreeMap<String, String>,
    pub(crate) location: Option<String>,
    pub(crate) comment: Option<String>,
    /// Where the `AS` query starts in the statement.
    pub(crate) query_at: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct DropSchema {
    pub(crate) name: Vec<String>,
    pub(crate) if_exists: bool,
    pub(crate) cascade: bool,
}

#[derive(Debug)]
pub(crate) struct DropTable {
    pub(crate) name: Vec<String>,
    pub(crate) if_exists: bool,
}

#[derive(Debug)]
pub(crate) struct ShowGrants {
    pub(crate) principal: Option<String>,
    pub(crate) kind: Kind,
    pub(crate) name: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Grant {
    pub(crate) revoke: bool,
    pub(crate) privileges: Vec<String>,
    pub(crate) kind: Kind,
    pub(crate) name: Vec<String>,
    pub(crate) principal: String,
}

#[derive(Debug)]
pub(crate) enum Stmt {
    /// Handed to DataFusion: a query (or EXPLAIN of one), or INSERT.
    DataFusion,
    CreateSchema(CreateSchema),
    CreateTable(CreateTable),
    DropTable(DropTable),
    DropSchema(DropSchema),
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
    ShowGrants(ShowGrants),
    Describe {
        name: Vec<String>,
    },
    Grant(Grant),
}
