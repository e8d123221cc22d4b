//! The SQL surface, end to end through the engine: scripts in `tests/sql/*.slt` run against an
//! engine over a temporary lake, the real policies, and a fake control plane that applies
//! catalog changes to a snapshot in memory.
//!
//! The scripts are sqllogictest files, run by the `sqllogictest` crate's parser and runner:
//! `statement ok`, `statement error <regex>` (matched against "<error_code> <sql_state>
//! <message>"), `statement error (<SQLSTATE>)`, and `query <types>` whose rows follow `----`
//! with cells joined by " | " (NULL for nulls; types `I` integer, `R` decimal or floating
//! point, `T` text, `?` anything else). Each file has its own sessions.
//!
//! `connection <user>` before a record runs it as `admin`, `alice`, `bob` or `admin2` (the
//! admin of workspace 2, whose catalog is a second fake control plane's); records without one
//! run as `admin`. `control substitution on` makes `${LAKE}` the lake's absolute path.
//!
//! A few records hold commands to the test client, not SQL (dot-commands, as in the sqlite3
//! shell the format comes from):
//!
//! ```text
//! .defaults <catalog> <schema>          this session's default catalog and schema
//! .param <name> <TYPE|-> <value|NULL>   a parameter for this session's next statement
//! .write <path in lake>                 the lines below become that file
//! .files <dir in lake>                  one row: how many files the directory holds
//! ```

#![expect(clippy::unwrap_used, clippy::panic, reason = "tests: failures panic")]

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::future::BoxFuture;
use futures::TryStreamExt;
use lakeward_common::assertion::{IdentityClaims, PrincipalKind};
use lakeward_common::data::{CatalogChange, CatalogChangeResponse, CatalogSnapshot, GrantRecord};
use lakeward_common::internal::{GroupRecord, PrincipalRecord};
use lakeward_policy::PolicyBundle;
use lakeward_runtime::engine::{
    AccessContext, Caller, CatalogWriter, Compute, Engine, EngineConfig, Parameter, SqlError,
    StatementContext, StatementInput, WarehouseSizing,
};
use sqllogictest::{AsyncDB, Connection, DBOutput, DefaultColumnType, Normalizer, Record};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const WS: i64 = 1;
/// A second workspace sharing the lake.
const WS2: i64 = 2;

/// The control plane's catalog semantics, in memory.
struct FakeControlPlane {
    snapshot: Mutex<CatalogSnapshot>,
}

fn rejected(code: &str, message: String) -> SqlError {
    SqlError::new(code, message)
}

impl FakeControlPlane {
    fn apply_now(&self, change: CatalogChange) -> Result<CatalogChangeResponse, SqlError> {
        let mut s = self.snapshot.lock().unwrap();
        let changed = match change {
            CatalogChange::CreateCatalog {
                catalog,
                if_not_exists,
            } => {
                if s.catalogs.iter().any(|c| c.name == catalog.name) {
                    if !if_not_exists {
                        return Err(rejected("RESOURCE_ALREADY_EXISTS", catalog.name));
                    }
                    false
                } else {
                    s.catalogs.push(catalog);
                    true
                }
            }
            CatalogChange::CreateSchema {
                schema,
                if_not_exists,
            } => {
                if !s.catalogs.iter().any(|c| c.name == schema.catalog) {
                    return Err(rejected("RESOURCE_DOES_NOT_EXIST", schema.catalog));
                }
                if s.schemas
                    .iter()
                    .any(|x| x.catalog == schema.catalog && x.name == schema.name)
                {
                    if !if_not_exists {
                        return Err(rejected("RESOURCE_ALREADY_EXISTS", schema.name));
                    }
                    false
                } else {
                    s.schemas.push(schema);
                    true
                }
            }
            CatalogChange::DropSchema {
                catalog,
                name,
                if_exists,
                cascade,
            } => {
                let exists = s
                    .schemas
                    .iter()
                    .any(|x| x.catalog == catalog && x.name == name);
                if !exists {
                    if !if_exists {
                        return Err(rejected("RESOURCE_DOES_NOT_EXIST", name));
                    }
                    false
                } else {
                    let has_tables = s
                        .tables
                        .iter()
                        .any(|t| t.catalog == catalog && t.schema == name);
                    if has_tables && !cascade {
                        return Err(rejected("INVALID_PARAMETER_VALUE", name));
                    }
                    let prefix = format!("{catalog}.{name}");
                    s.tables
                        .retain(|t| !(t.catalog == catalog && t.schema == name));
                    s.schemas
                        .retain(|x| !(x.catalog == catalog && x.name == name));
                    s.grants.retain(|g| {
                        g.full_name != prefix && !g.full_name.starts_with(&format!("{prefix}."))
                    });
                    true
                }
            }
            CatalogChange::CreateTable {
                table,
                if_not_exists,
                replace,
            } => {
                if !s
                    .schemas
                    .iter()
                    .any(|x| x.catalog == table.catalog && x.name == table.schema)
                {
                    return Err(rejected("RESOURCE_DOES_NOT_EXIST", table.schema));
                }
                let at = s.tables.iter().position(|t| {
                    t.catalog == table.catalog && t.schema == table.schema && t.name == table.name
                });
                match at {
                    Some(i) if replace => {
                        s.tables[i] = table;
                        true
                    }
                    Some(_) if if_not_exists => false,
                    Some(_) => return Err(rejected("RESOURCE_ALREADY_EXISTS", table.name)),
                    None => {
                        s.tables.push(table);
                        true
                    }
                }
            }
            CatalogChange::DropTable {
                catalog,
                schema,
                name,
                if_exists,
            } => {
                let before = s.tables.len();
                s.tables
                    .retain(|t| !(t.catalog == catalog && t.schema == schema && t.name == name));
                if before == s.tables.len() {
                    if !if_exists {
                        return Err(rejected("RESOURCE_DOES_NOT_EXIST", name));
                    }
                    false
                } else {
                    let full = format!("{catalog}.{schema}.{name}");
                    s.grants.retain(|g| g.full_name != full);
                    true
                }
            }
            CatalogChange::UpdateGrants {
                securable_type,
                full_name,
                changes,
            } => {
                for change in changes {
                    if !["users", "admins", "alice@example.com", "bob@example.com"]
                        .contains(&change.principal.as_str())
                    {
                        return Err(rejected(
                            "INVALID_PARAMETER_VALUE",
                            format!("unknown principal {}", change.principal),
                        ));
                    }
                    let at = s.grants.iter().position(|g| {
                        g.securable_type == securable_type
                            && g.full_name == full_name
                            && g.principal == change.principal
                    });
                    let i = match at {
                        Some(i) => i,
                        None => {
                            s.grants.push(GrantRecord {
                                securable_type: securable_type.clone(),
                                full_name: full_name.clone(),
                                principal: change.principal.clone(),
                                privileges: vec![],
                            });
                            s.grants.len() - 1
                        }
                    };
                    let privileges = &mut s.grants[i].privileges;
                    for p in change.add {
                        if !privileges.contains(&p) {
                            privileges.push(p);
                        }
                    }
                    privileges.retain(|p| !change.remove.contains(p));
                }
                s.grants.retain(|g| !g.privileges.is_empty());
                true
            }
        };
        s.version += 1;
        Ok(CatalogChangeResponse {
            version: s.version,
            changed,
        })
    }
}

struct Writer(Arc<FakeControlPlane>);

impl CatalogWriter for Writer {
    fn apply(
        &self,
        change: CatalogChange,
    ) -> BoxFuture<'static, Result<CatalogChangeResponse, SqlError>> {
        let result = self.0.apply_now(change);
        Box::pin(async move { result })
    }
}

fn caller(name: &str, admin: bool) -> Caller {
    caller_in(name, admin, WS)
}

fn caller_in(name: &str, admin: bool, ws: i64) -> Caller {
    let user_name = format!("{name}@example.com");
    let id = format!("{}", 100 + name.len());
    let mut groups = vec![GroupRecord {
        id: format!("g-users-{ws}"),
        display_name: "users".into(),
        workspace_id: Some(ws),
    }];
    if admin {
        groups.push(GroupRecord {
            id: format!("g-admins-{ws}"),
            display_name: "admins".into(),
            workspace_id: Some(ws),
        });
    }
    Caller {
        claims: IdentityClaims {
            iss: "lakeward-gateway".into(),
            aud: "lakeward-runtime".into(),
            iat: 1_700_000_000,
            exp: 1_700_000_060,
            sub: id.clone(),
            kind: PrincipalKind::User,
            user_name: user_name.clone(),
            groups: groups.iter().map(|g| g.id.clone()).collect(),
            workspace_id: Some(ws),
            account_id: "acct".into(),
            token_id: Some("tok".into()),
            auth_method: "pat".into(),
            request_id: "req".into(),
            client_ip: "127.0.0.1".into(),
        },
        principal: PrincipalRecord {
            id,
            kind: PrincipalKind::User,
            user_name,
            display_name: name.into(),
            active: true,
            groups,
            token_use_workspaces: vec![ws],
        },
        workspace_id: ws,
        workspace_name: format!("ws{ws}"),
    }
}

struct Harness {
    _dir: tempfile::TempDir,
    lake: PathBuf,
    engine: Engine,
    control: Arc<FakeControlPlane>,
    /// Workspace 2's catalog.
    control2: Arc<FakeControlPlane>,
    policies: PolicyBundle,
    compute: Arc<Compute>,
    callers: HashMap<String, Caller>,
}

struct Output {
    schema: SchemaRef,
    rows: Vec<Vec<String>>,
}

fn config(dir: &Path, memory_per_unit: u64) -> EngineConfig {
    EngineConfig {
        lake_url: dir.join("lake").to_string_lossy().into_owned(),
        s3: None,
        spill_dir: dir.join("spill"),
        cores: 4,
        memory_per_unit_bytes: memory_per_unit,
        max_memory_bytes: 1 << 30,
        samples_scale_factor: 0.01,
    }
}

impl Harness {
    async fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), 256 << 20);
        let lake = PathBuf::from(&config.lake_url);
        let engine = Engine::new(config).unwrap();
        let e = engine.clone();
        tokio::task::spawn_blocking(move || e.ensure_sample_data())
            .await
            .unwrap()
            .unwrap();
        let seeded = || {
            let control = Arc::new(FakeControlPlane {
                snapshot: Mutex::new(CatalogSnapshot::default()),
            });
            for change in engine.seed_changes() {
                control.apply_now(change).unwrap();
            }
            control
        };
        let (control, control2) = (seeded(), seeded());
        let policies = PolicyBundle::load_dir(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies"),
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let compute = engine.compute(
            "0123456789abcdef",
            &WarehouseSizing {
                cluster_size: "Small".into(),
                serverless: false,
                max_num_clusters: 1,
            },
        );
        let callers = HashMap::from([
            ("admin".to_owned(), caller("admin", true)),
            ("alice".to_owned(), caller("alice", false)),
            ("bob".to_owned(), caller("bob", false)),
            ("admin2".to_owned(), caller_in("admin2", true, WS2)),
        ]);
        Harness {
            _dir: dir,
            lake,
            engine,
            control,
            control2,
            policies,
            compute,
            callers,
        }
    }

    fn control_of(&self, caller: &Caller) -> &Arc<FakeControlPlane> {
        if caller.workspace_id == WS2 {
            &self.control2
        } else {
            &self.control
        }
    }

    fn context(&self, user: &str, compute: &Arc<Compute>) -> StatementContext {
        let caller = self.callers[user].clone();
        let control = self.control_of(&caller).clone();
        let snapshot = Arc::new(control.snapshot.lock().unwrap().clone());
        StatementContext {
            access: AccessContext {
                caller,
                snapshot,
                policies: self.policies.clone(),
            },
            compute: compute.clone(),
            writer: Arc::new(Writer(control)),
        }
    }

    async fn run_on(
        &self,
        compute: &Arc<Compute>,
        user: &str,
        input: StatementInput,
    ) -> Result<Output, SqlError> {
        let prepared = self
            .engine
            .prepare(self.context(user, compute), input)
            .await?;
        let stream = prepared.run().await?;
        let schema = stream.schema();
        let batches: Vec<RecordBatch> = stream
            .try_collect()
            .await
            .map_err(|e| SqlError::from_datafusion(&e))?;
        let mut rows = Vec::new();
        let options = FormatOptions::default().with_null("NULL");
        for batch in &batches {
            let formatters: Vec<_> = batch
                .columns()
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
                .collect();
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| f.value(row).to_string())
                        .collect(),
                );
            }
        }
        Ok(Output { schema, rows })
    }

    async fn run(&self, user: &str, input: StatementInput) -> Result<Output, SqlError> {
        self.run_on(&self.compute, user, input).await
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// A failed statement as the scripts match it: "<error_code> <sql_state> <message>".
#[derive(Debug)]
struct Failed(SqlError);

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = &self.0;
        let state = e.sql_state.as_deref().unwrap_or_default();
        write!(f, "{} {state} {}", e.error_code, e.message)
    }
}

impl std::error::Error for Failed {}

fn client_error(message: String) -> Failed {
    Failed(SqlError::new("TEST_CLIENT", message))
}

/// One script connection: a user's session, with its defaults and pending parameters.
struct Session {
    harness: Arc<Harness>,
    user: String,
    defaults: (Option<String>, Option<String>),
    params: Vec<Parameter>,
}

impl Session {
    fn new(harness: Arc<Harness>, user: String) -> Session {
        Session {
            harness,
            user,
            defaults: (None, None),
            params: Vec::new(),
        }
    }

    /// A dot-command: `.defaults`, `.param`, `.write` or `.files`.
    fn command(&mut self, text: &str) -> Result<DBOutput<DefaultColumnType>, Failed> {
        let (line, body) = text.split_once('\n').unwrap_or((text, ""));
        let words: Vec<&str> = line.split_whitespace().collect();
        let lake = &self.harness.lake;
        match words.as_slice() {
            [".defaults", catalog, schema] => {
                self.defaults = (Some((*catalog).to_owned()), Some((*schema).to_owned()));
            }
            [".param", name, type_name, value @ ..] => {
                let value = value.join(" ");
                self.params.push(Parameter {
                    name: (*name).to_owned(),
                    type_name: (*type_name != "-").then(|| (*type_name).to_owned()),
                    value: (value != "NULL").then_some(value),
                });
            }
            [".write", path] => {
                let path = lake.join(path);
                let written = path
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::write(&path, format!("{body}\n")));
                written.map_err(|e| client_error(format!("{}: {e}", path.display())))?;
            }
            [".files", dir] => {
                return Ok(DBOutput::Rows {
                    types: vec![DefaultColumnType::Integer],
                    rows: vec![vec![count_files(&lake.join(dir)).to_string()]],
                });
            }
            _ => return Err(client_error(format!("unknown command `{line}`"))),
        }
        Ok(DBOutput::StatementComplete(0))
    }
}

/// The column types the scripts name: integers, decimals and floating point, text, the rest.
fn column_type(data_type: &DataType) -> DefaultColumnType {
    if data_type.is_integer() {
        DefaultColumnType::Integer
    } else if data_type.is_floating() || data_type.is_decimal() {
        DefaultColumnType::FloatingPoint
    } else if matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        DefaultColumnType::Text
    } else {
        DefaultColumnType::Any
    }
}

#[async_trait::async_trait]
impl AsyncDB for Session {
    type Error = Failed;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Failed> {
        if sql.starts_with('.') {
            return self.command(sql);
        }
        let input = StatementInput {
            sql: sql.to_owned(),
            parameters: std::mem::take(&mut self.params),
            catalog: self.defaults.0.clone(),
            schema: self.defaults.1.clone(),
        };
        let output = self.harness.run(&self.user, input).await.map_err(Failed)?;
        if output.schema.fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let types = output
            .schema
            .fields()
            .iter()
            .map(|f| column_type(f.data_type()))
            .collect();
        Ok(DBOutput::Rows {
            types,
            rows: output.rows,
        })
    }

    async fn shutdown(&mut self) {}

    fn error_sql_state(err: &Failed) -> Option<String> {
        err.0.sql_state.clone()
    }
}

/// Rows match when their cells, joined by " | ", are the expected lines.
fn cells_joined_by_bars(_: Normalizer, actual: &[Vec<String>], expected: &[String]) -> bool {
    actual.len() == expected.len()
        && actual
            .iter()
            .zip(expected)
            .all(|(row, line)| row.join(" | ") == line.trim_end())
}

/// The user a record runs as: its connection's name, `admin` by default.
fn user_of(record: &Record<DefaultColumnType>) -> Option<String> {
    match record {
        Record::Statement { connection, .. }
        | Record::Query { connection, .. }
        | Record::Let { connection, .. } => Some(match connection {
            Connection::Default => "admin".to_owned(),
            Connection::Named(name) => name.clone(),
        }),
        _ => None,
    }
}

async fn run_script(h: &Arc<Harness>, script: &Path) {
    // The runner opens a connection the first time a record names it; the record being run
    // tells which user it is for.
    let next_user = Arc::new(Mutex::new("admin".to_owned()));
    let make = {
        let (h, next_user) = (h.clone(), next_user.clone());
        move || {
            let user = next_user.lock().unwrap().clone();
            assert!(h.callers.contains_key(&user), "no user `{user}`");
            let session = Session::new(h.clone(), user);
            async move { Ok::<_, Failed>(session) }
        }
    };
    let mut runner = sqllogictest::Runner::new(make);
    runner.with_validator(cells_joined_by_bars);
    runner.with_column_validator(sqllogictest::strict_column_validator);
    runner.set_var("LAKE".into(), h.lake.to_string_lossy().into_owned());
    let records = sqllogictest::parse_file::<DefaultColumnType>(script)
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    for record in records {
        if let Some(user) = user_of(&record) {
            *next_user.lock().unwrap() = user;
        }
        if let Err(e) = runner.run_async(record).await {
            panic!("{}", e.display(false));
        }
    }
    runner.shutdown_async().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_scripts() {
    let h = Arc::new(Harness::new().await);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    for script in scripts {
        run_script(&h, &script).await;
    }
}

fn sql(text: &str) -> StatementInput {
    StatementInput {
        sql: text.into(),
        ..Default::default()
    }
}

fn cents(value: i64) -> String {
    format!("{}.{:02}", value / 100, value % 100)
}

/// TPC-H Q1's grouping over the sample lineitem, checked against sums computed straight from
/// the generator (no Arrow, Parquet or DataFusion involved).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_pricing_summary_matches_the_generator() {
    let h = Harness::new().await;
    let output = h
        .run(
            "alice",
            sql(
                "SELECT l_returnflag, l_linestatus, count(*), sum(l_quantity), \
                 sum(l_extendedprice) \
                 FROM samples.tpch.lineitem WHERE l_shipdate <= DATE '1998-09-02' \
                 GROUP BY l_returnflag, l_linestatus ORDER BY l_returnflag, l_linestatus",
            ),
        )
        .await
        .unwrap();
    let mut expected: std::collections::BTreeMap<(String, String), (i64, i64, i64)> =
        Default::default();
    for item in tpchgen::generators::LineItemGenerator::new(0.01, 1, 1).iter() {
        if item.l_shipdate.to_string().as_str() > "1998-09-02" {
            continue;
        }
        let entry = expected
            .entry((item.l_returnflag.to_owned(), item.l_linestatus.to_owned()))
            .or_default();
        entry.0 += 1;
        entry.1 += item.l_quantity;
        entry.2 += item.l_extendedprice.0;
    }
    let want: Vec<Vec<String>> = expected
        .into_iter()
        .map(|((flag, status), (n, qty, price))| {
            vec![flag, status, n.to_string(), cents(qty * 100), cents(price)]
        })
        .collect();
    assert_eq!(want.len(), 4, "TPC-H Q1 has four groups");
    assert_eq!(output.rows, want);
}

/// A statement that needs more memory than its warehouse has fails with RESOURCE_EXHAUSTED,
/// naming the warehouse's limit; the engine keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_is_an_error_not_a_crash() {
    let h = Harness::new().await;
    // The same lake, on an engine whose warehouses get 256 KiB per unit.
    let tiny_engine = Engine::new(config(h._dir.path(), 256 << 10)).unwrap();
    let tiny = tiny_engine.compute(
        "tinytinytinytiny",
        &WarehouseSizing {
            cluster_size: "2X-Small".into(),
            serverless: false,
            max_num_clusters: 1,
        },
    );
    assert_eq!(tiny.memory_limit_bytes(), 256 << 10);
    let prepared = tiny_engine
        .prepare(
            h.context("alice", &tiny),
            sql("SELECT a.l_comment, count(*) FROM samples.tpch.lineitem a \
                 JOIN samples.tpch.lineitem b ON a.l_comment = b.l_comment \
                 GROUP BY a.l_comment ORDER BY 2 DESC"),
        )
        .await
        .unwrap();
    let result: Result<Vec<RecordBatch>, SqlError> = match prepared.run().await {
        Ok(stream) => stream
            .try_collect()
            .await
            .map_err(|e| SqlError::from_datafusion(&e)),
        Err(e) => Err(e),
    };
    let error = result.expect_err("a 256 KiB warehouse cannot hash-join lineitem with itself");
    assert_eq!(error.error_code, "RESOURCE_EXHAUSTED", "{error:?}");
    assert!(
        error.message.contains("tinytinytinytiny") && error.message.contains("256"),
        "{}",
        error.message
    );
    // The normal warehouse still answers.
    let ok = h
        .run("alice", sql("SELECT count(*) FROM samples.tpch.region"))
        .await
        .unwrap();
    assert_eq!(ok.rows, vec![vec!["5".to_owned()]]);
}

/// Dropping the result stream stops the statement (DataFusion cancels on drop): a huge cross
/// join is started, dropped, and the engine stays usable at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_stops_the_work() {
    let h = Harness::new().await;
    let prepared = h
        .engine
        .prepare(
            h.context("alice", &h.compute),
            sql("SELECT count(*) FROM samples.tpch.lineitem a, samples.tpch.lineitem b"),
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let stream = prepared.run().await.unwrap();
    drop(stream);
    let ok = h
        .run("alice", sql("SELECT count(*) FROM samples.tpch.nation"))
        .await
        .unwrap();
    assert_eq!(ok.rows, vec![vec!["25".to_owned()]]);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touched_records_every_authorized_securable() {
    let h = Harness::new().await;
    let prepared = h
        .engine
        .prepare(
            h.context("alice", &h.compute),
            sql(
                "SELECT count(*) FROM samples.tpch.nation n WHERE n.n_regionkey IN \
                 (SELECT r_regionkey FROM samples.tpch.region)",
            ),
        )
        .await
        .unwrap();
    let touched: Vec<String> = prepared
        .touched
        .iter()
        .map(|t| format!("{} {}", t.action, t.securable.full_name()))
        .collect();
    assert_eq!(
        touched,
        [
            "SelectTable samples.tpch.nation",
            "SelectTable samples.tpch.region"
        ]
    );
    // Sample data is written once: a second call finds it and writes nothing.
    let e = h.engine.clone();
    tokio::task::spawn_blocking(move || e.ensure_sample_data())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count_files(&h.lake.join("samples/tpch")), 8);
}

/// `CREATE TABLE IF NOT EXISTS` prepared while the table did not exist, run after it was
/// created and filled: the control plane answers `changed: false`, and nothing is wiped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_not_exists_never_wipes_a_table_created_meanwhile() {
    let h = Harness::new().await;
    let stale = h
        .engine
        .prepare(
            h.context("admin", &h.compute),
            sql("CREATE TABLE IF NOT EXISTS main.default.race (x INT)"),
        )
        .await
        .unwrap();
    h.run(
        "admin",
        sql("CREATE TABLE main.default.race AS SELECT 1 AS x"),
    )
    .await
    .unwrap();
    h.run("admin", sql("INSERT INTO main.default.race VALUES (2)"))
        .await
        .unwrap();
    let location = h.lake.join("workspaces/1/managed/main/default/race");
    assert_eq!(count_files(&location), 2);
    let _: Vec<RecordBatch> = stale.run().await.unwrap().try_collect().await.unwrap();
    assert_eq!(
        count_files(&location),
        2,
        "the existing table's files were wiped"
    );
    let rows = h
        .run("admin", sql("SELECT count(*) FROM main.default.race"))
        .await
        .unwrap();
    assert_eq!(rows.rows, vec![vec!["2".to_owned()]]);

    // The same for CTAS: ours is discarded, theirs stays.
    let stale = h
        .engine
        .prepare(
            h.context("admin", &h.compute),
            sql("CREATE TABLE IF NOT EXISTS main.default.race2 AS SELECT 7 AS x"),
        )
        .await
        .unwrap();
    h.run(
        "admin",
        sql("CREATE TABLE main.default.race2 AS SELECT 1 AS x"),
    )
    .await
    .unwrap();
    let _: Vec<RecordBatch> = stale.run().await.unwrap().try_collect().await.unwrap();
    let rows = h
        .run("admin", sql("SELECT x FROM main.default.race2"))
        .await
        .unwrap();
    assert_eq!(rows.rows, vec![vec!["1".to_owned()]]);
    assert_eq!(
        count_files(&h.lake.join("workspaces/1/managed/main/default/race2")),
        1
    );
}

/// A new managed table whose directory overlaps another table's location is refused (the
/// other table here is a definition from before workspace areas, pointing at a parent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_tables_never_overlap_another_tables_location() {
    let h = Harness::new().await;
    {
        let mut snapshot = h.control.snapshot.lock().unwrap();
        let mut legacy = snapshot.tables[0].clone();
        legacy.catalog = "main".into();
        legacy.schema = "default".into();
        legacy.name = "legacy".into();
        legacy.location = "workspaces/1/managed/main/".into();
        snapshot.tables.push(legacy);
    }
    let e = h
        .run("admin", sql("CREATE TABLE main.default.fresh (a INT)"))
        .await
        .err()
        .unwrap();
    assert_eq!(e.error_code, "BAD_REQUEST");
    assert!(
        e.message.contains("main.default.fresh")
            && e.message.contains("main.default.legacy")
            && e.message.contains("workspaces/1/managed/main/"),
        "{}",
        e.message
    );
    let e = h
        .run(
            "admin",
            sql("CREATE TABLE main.default.fresh AS SELECT 1 AS a"),
        )
        .await
        .err()
        .unwrap();
    assert!(e.message.contains("overlaps"), "{}", e.message);
    assert_eq!(count_files(&h.lake.join("workspaces/1/managed")), 0);
}

/// A denied statement names what it attempted, for the audit record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denials_name_the_refused_access() {
    let h = Harness::new().await;
    h.run("admin", sql("CREATE TABLE main.default.t AS SELECT 1 AS x"))
        .await
        .unwrap();
    let e = h
        .run("alice", sql("SELECT * FROM main.default.t"))
        .await
        .err()
        .unwrap();
    assert_eq!(e.error_code, "PERMISSION_DENIED");
    let denied = e.denied.unwrap();
    assert_eq!(denied.action, "SelectTable");
    assert_eq!(denied.securable.full_name(), "main.default.t");
    let e = h
        .run("alice", sql("DROP TABLE main.default.t"))
        .await
        .err()
        .unwrap();
    assert_eq!(e.denied.map(|d| d.action).as_deref(), Some("DropTable"));
    // Other failures carry none.
    let e = h.run("alice", sql("SELEC 1")).await.err().unwrap();
    assert!(e.denied.is_none());
}

/// Errors while planning and reading (files that are not what the table says, a location with
/// no files) say what failed, never the lake's files on disk, the object store's URLs or
/// DataFusion's internals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_errors_never_show_the_lake() {
    let h = Harness::new().await;
    let data = h.lake.join("workspaces/1/data");
    std::fs::create_dir_all(data.join("junk")).unwrap();
    std::fs::write(data.join("junk/part-1.parquet"), b"this is not parquet").unwrap();
    let lake = h.lake.to_string_lossy().into_owned();
    let shown = |e: &SqlError| {
        let seen = format!("{} {:?} {}", e.error_code, e.sql_state, e.message);
        for internal in [
            lake.as_str(),
            "lakeward://",
            "Internal error",
            "Arrow error",
            "Parquet error",
            "Object Store error",
            "os error",
            "backtrace",
        ] {
            assert!(!seen.contains(internal), "`{internal}` in `{seen}`");
        }
        seen
    };
    // Columns inferred from a file that is not Parquet.
    let e = h
        .run(
            "admin",
            sql("CREATE TABLE main.default.junk USING PARQUET LOCATION 'data/junk/'"),
        )
        .await
        .err()
        .unwrap();
    let seen = shown(&e);
    assert!(seen.contains("data/junk/"), "{seen}");
    // Columns declared, the file read when the table is.
    h.run(
        "admin",
        sql("CREATE TABLE main.default.junk (a INT) USING PARQUET LOCATION 'data/junk/'"),
    )
    .await
    .unwrap();
    let e = h
        .run("admin", sql("SELECT * FROM main.default.junk"))
        .await
        .err()
        .unwrap();
    shown(&e);
    assert_eq!(e.error_code, "IO_ERROR", "{e:?}");
    // An empty location: the message says what is wrong, with the location as given.
    let e = h
        .run(
            "admin",
            sql("CREATE TABLE main.default.none USING PARQUET LOCATION 'data/none/'"),
        )
        .await
        .err()
        .unwrap();
    let seen = shown(&e);
    assert!(seen.contains("Cannot infer schema"), "{seen}");
}
