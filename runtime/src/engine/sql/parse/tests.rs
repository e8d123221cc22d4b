use super::*;

fn parsed(sql: &str) -> Stmt {
    parse(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn grants_normalise_privilege_names() {
    let Stmt::Grant(Grant {
        privileges,
        kind,
        name,
        principal,
        revoke,
    }) = parsed(
        "GRANT SELECT, ALL PRIVILEGES, USE CATALOG, create table ON CATALOG Main TO `alice@example.com`",
    )
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
    let Stmt::CreateTable(CreateTable {
        name,
        columns,
        using,
        options,
        location,
        query_at,
        ..
    }) = parsed(
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
    assert_eq!(
        columns[1].data_type,
        datafusion::arrow::datatypes::DataType::Decimal128(10, 2)
    );
    assert_eq!(using.as_deref(), Some("CSV"));
    assert_eq!(options.get("delimiter").map(String::as_str), Some(";"));
    assert_eq!(location.as_deref(), Some("data/trips/"));
    assert!(query_at.is_none());
    let sql = "CREATE OR REPLACE TABLE t AS SELECT 1 AS x";
    let Stmt::CreateTable(CreateTable {
        query_at,
        or_replace,
        ..
    }) = parsed(sql)
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
        assert_eq!(e.error_code(), "BAD_REQUEST", "{sql}");
    }
}

#[test]
fn like_patterns_are_capped() {
    let long = format!("SHOW CATALOGS LIKE '{}'", "*".repeat(MAX_LIKE_PATTERN + 1));
    let e = parse(&long).err().unwrap_or_else(|| panic!("accepted"));
    assert_eq!(e.error_code(), "BAD_REQUEST");
    assert!(e.to_string().contains("1000"), "{e}");
    let ok = format!("SHOW TABLES LIKE '{}'", "*".repeat(MAX_LIKE_PATTERN));
    assert!(parse(&ok).is_ok());
}
