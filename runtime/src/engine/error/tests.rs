use super::*;

#[test]
fn missing_tables_become_42p01() {
    let e = DataFusionError::Plan("table 'main.default.nope' not found".into());
    let s = SqlError::from(e);
    assert_eq!(s.error_code, "NOT_FOUND");
    assert_eq!(s.sql_state.as_deref(), Some("42P01"));
    assert!(s.message.contains("`main.default.nope`"), "{}", s.message);
}

#[test]
fn engine_errors_survive_a_trip_through_datafusion() {
    let own = bad_request_with_state("mine", "22000");
    let e = DataFusionError::External(Box::new(own.clone())).context("while running");
    assert_eq!(QueryError::from(&e), own);
    let reported = SqlError::new("ABORTED", "changed meanwhile");
    let e = DataFusionError::External(Box::new(reported.clone()));
    assert_eq!(SqlError::from(e), reported);
}

#[test]
fn memory_errors_are_resource_exhausted() {
    let e = DataFusionError::ResourcesExhausted("over the limit".into());
    let s = SqlError::from(DataFusionError::Context("x".into(), Box::new(e)));
    assert_eq!(s.error_code, "RESOURCE_EXHAUSTED");
    assert_eq!(s.message, "over the limit");
}

/// Every cause has its code and SQLSTATE in one place, and only denials name what was
/// refused.
#[test]
fn causes_become_codes_and_states() {
    let table = Securable::Table {
        catalog: "main".into(),
        schema: "default".into(),
        name: "t".into(),
    };
    let schema = Securable::Schema {
        catalog: "main".into(),
        name: "default".into(),
    };
    let denied = QueryError::PermissionDenied {
        user: "alice@example.com".into(),
        privilege: "SELECT",
        refused: Box::new(TableAccess {
            action: "SelectTable".into(),
            securable: table.clone(),
        }),
    };
    for (error, code, state, message) in [
        (
            syntax("[PARSE_SYNTAX_ERROR] x"),
            "BAD_REQUEST",
            Some("42601"),
            "[PARSE_SYNTAX_ERROR] x",
        ),
        (
            not_found(&table),
            "NOT_FOUND",
            Some("42P01"),
            "`main.default.t` cannot be found",
        ),
        (
            not_found(&schema),
            "NOT_FOUND",
            Some("42704"),
            "[SCHEMA_NOT_FOUND]",
        ),
        (
            already_exists(&table),
            "RESOURCE_ALREADY_EXISTS",
            Some("42P07"),
            "[TABLE_OR_VIEW_ALREADY_EXISTS]",
        ),
        (
            already_exists(&schema),
            "RESOURCE_ALREADY_EXISTS",
            Some("42P06"),
            "[SCHEMA_ALREADY_EXISTS]",
        ),
        (
            denied.clone(),
            "PERMISSION_DENIED",
            Some("42501"),
            "User alice@example.com does not have SELECT on table `main.default.t`",
        ),
        (
            unsupported("[NOT_SUPPORTED] x"),
            "BAD_REQUEST",
            Some("0A000"),
            "[NOT_SUPPORTED] x",
        ),
        (bad_request("b"), "BAD_REQUEST", None, "b"),
        (
            QueryError::ResourcesExhausted("m".into()),
            "RESOURCE_EXHAUSTED",
            None,
            "m",
        ),
        (
            internal("i"),
            "INTERNAL_ERROR",
            None,
            "the statement failed inside the engine",
        ),
        (
            io("reading the table's data", "/lake/x: os error 2"),
            "IO_ERROR",
            None,
            "reading the table's data failed",
        ),
    ] {
        let is_denial = matches!(error, QueryError::PermissionDenied { .. });
        let s = SqlError::from(error);
        assert_eq!(s.error_code, code, "{s:?}");
        assert_eq!(s.sql_state.as_deref(), state, "{s:?}");
        assert!(s.message.contains(message), "{s:?}");
        assert_eq!(s.denied.is_some(), is_denial, "{s:?}");
    }
    let s = SqlError::from(denied);
    assert_eq!(s.denied.map(|d| d.action).as_deref(), Some("SelectTable"));
}

/// What the engine's storage and DataFusion's internals say stays in the log.
#[test]
fn internals_never_reach_the_client() {
    let disk = "/srv/lake/workspaces/1/data/t.parquet";
    let not_found = object_store::Error::NotFound {
        path: "workspaces/1/data/t.parquet".into(),
        source: Box::new(std::io::Error::other(format!("File not found: {disk}"))),
    };
    let wrapped = DataFusionError::ArrowError(
        Box::new(datafusion::arrow::error::ArrowError::ExternalError(
            Box::new(DataFusionError::ObjectStore(Box::new(not_found))),
        )),
        None,
    );
    let parquet = DataFusionError::ParquetError(Box::new(parquet::errors::ParquetError::General(
        "Invalid Parquet file. Corrupt footer".into(),
    )));
    let worded = DataFusionError::Execution(format!(
        "Error writing to object store: Generic LocalFileSystem error: Unable to open {disk}"
    ));
    for (error, code) in [
        (wrapped, "IO_ERROR"),
        (parquet, "IO_ERROR"),
        (worded, "IO_ERROR"),
        (
            DataFusionError::Internal(format!("bad plan over {disk}")),
            "INTERNAL_ERROR",
        ),
        (
            DataFusionError::External(Box::new(std::fmt::Error)).context("while scanning"),
            "INTERNAL_ERROR",
        ),
    ] {
        let s = query_error(error);
        assert_eq!(s.error_code, code, "{s:?}");
        for internal in [
            disk,
            "Internal error",
            "Arrow error",
            "Parquet",
            "object store",
        ] {
            assert!(!s.message.contains(internal), "`{internal}` in {s:?}");
        }
    }
}

/// Mistakes in the statement keep DataFusion's words, without its prefixes for Arrow and
/// without the lake's URL.
#[test]
fn user_errors_keep_a_useful_message() {
    let cast = DataFusionError::ArrowError(
        Box::new(datafusion::arrow::error::ArrowError::CastError(
            "Cannot cast string 'abc' to value of Int32 type".into(),
        )),
        None,
    );
    let s = query_error(cast);
    assert_eq!(s.error_code, "BAD_REQUEST");
    assert_eq!(
        s.message,
        "Cast error: Cannot cast string 'abc' to value of Int32 type"
    );
    let empty = DataFusionError::Plan(format!(
        "No files found at {}workspaces/1/data/none/. Cannot infer schema",
        crate::engine::lake::LAKE_URL
    ));
    let s = query_error(empty);
    assert_eq!(
        s.message,
        "Error during planning: No files found at workspaces/1/data/none/. Cannot infer schema"
    );
    assert_eq!(from_datafusion::LAKE_URL, crate::engine::lake::LAKE_URL);
}
