//! The scheduler against a real engine (statements `SELECT 1`), with a host that never
//! prepares again: the bounds on live statements and on kept result bytes.

use super::*;
use crate::engine::{
    AccessContext, Caller, CatalogWriter, EngineConfig, StatementContext, StatementInput,
    WarehouseSizing,
};
use crate::results::{ResultFormat, ResultLimits, INLINE_LIMIT_BYTES};
use lakeward_common::assertion::{IdentityClaims, PrincipalKind};
use lakeward_common::data::{CatalogChange, CatalogChangeResponse, CatalogSnapshot};
use lakeward_common::internal::PrincipalRecord;
use lakeward_policy::PolicyBundle;
use std::path::Path;

const WAREHOUSE: &str = "0123456789abcdef";

struct Host;

impl StatementHost for Host {
    fn catalog_version(&self) -> u64 {
        0
    }

    fn prepare_again(
        self: Arc<Self>,
        _statement: Arc<Statement>,
        _compute: Arc<Compute>,
    ) -> BoxFuture<'static, Result<Prepared, SqlError>> {
        Box::pin(async { Err(SqlError::new("INTERNAL_ERROR", "not in these tests")) })
    }

    fn record_activity(&self, _warehouse_id: &str, _workspace_id: i64, _at_ms: i64) {}
}

struct NoWrites;

impl CatalogWriter for NoWrites {
    fn apply(
        &self,
        _change: CatalogChange,
    ) -> BoxFuture<'static, Result<CatalogChangeResponse, SqlError>> {
        Box::pin(async { Err(SqlError::new("BAD_REQUEST", "no writes here")) })
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    _host: Arc<Host>,
    engine: crate::engine::Engine,
    compute: Arc<Compute>,
    policies: PolicyBundle,
    scheduler: Arc<Scheduler>,
}

fn claims(user: &str) -> IdentityClaims {
    let mut claims = IdentityClaims::gateway("acct", "r");
    claims.sub = user.into();
    claims.user_name = format!("{user}@x");
    claims.workspace_id = Some(7);
    claims
}

fn fixture(bounds: Bounds, retention: Duration) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let engine = crate::engine::Engine::new(EngineConfig {
        lake_url: dir.path().join("lake").display().to_string(),
        s3: None,
        spill_dir: dir.path().join("spill"),
        cores: 2,
        memory_per_unit_bytes: 64 << 20,
        max_memory_bytes: 1 << 30,
        samples_scale_factor: 0.001,
    })
    .unwrap();
    let compute = engine.compute(
        WAREHOUSE,
        &WarehouseSizing {
            cluster_size: "Small".into(),
            serverless: false,
            max_num_clusters: 1,
        },
    );
    let policies =
        PolicyBundle::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/policies"))
            .unwrap();
    let host = Arc::new(Host);
    let weak: Weak<dyn StatementHost> = Arc::downgrade(&host) as Weak<dyn StatementHost>;
    let scheduler = Arc::new(Scheduler::new(SchedulerDeps {
        host: weak,
        io: Handle::current(),
        query: Handle::current(),
        samples: watch::channel(SamplesState::Ready).1,
        retention,
        bounds,
    }));
    Fixture {
        _dir: dir,
        _host: host,
        engine,
        compute,
        policies,
        scheduler,
    }
}

impl Fixture {
    async fn new_statement(&self, user: &str, warehouse: &str) -> NewStatement {
        let claims = claims(user);
        let caller = Caller {
            claims: claims.clone(),
            principal: PrincipalRecord {
                id: user.into(),
                kind: PrincipalKind::User,
                user_name: claims.user_name.clone(),
                display_name: user.into(),
                active: true,
                groups: vec![],
                token_use_workspaces: vec![],
            },
            workspace_id: 7,
            workspace_name: "7".into(),
        };
        let input = StatementInput {
            sql: "SELECT 1 AS x".into(),
            ..StatementInput::default()
        };
        let context = StatementContext {
            access: AccessContext {
                caller,
                snapshot: Arc::new(CatalogSnapshot::default()),
                policies: self.policies.clone(),
            },
            compute: self.compute.clone(),
            writer: Arc::new(NoWrites),
        };
        let prepared = self.engine.prepare(context, input.clone()).await;
        assert!(prepared.is_ok(), "SELECT 1 prepares");
        NewStatement {
            claims,
            input,
            workspace_id: 7,
            warehouse_id: warehouse.into(),
            format: ResultFormat::JsonArray,
            limits: ResultLimits {
                chunk_bytes: 1 << 20,
                row_limit: None,
                byte_limit: None,
                inline_cap: INLINE_LIMIT_BYTES,
            },
            needs_samples: false,
            prepared,
            prepared_version: 0,
        }
    }

    /// Submits, queues and runs one statement to its end.
    async fn run(&self, user: &str) -> Result<Arc<Statement>, Exhausted> {
        let statement = self
            .scheduler
            .submit(self.new_statement(user, WAREHOUSE).await)?;
        let generation = self.scheduler.generation(WAREHOUSE);
        self.scheduler.enqueue(&statement, 7, generation).unwrap();
        self.scheduler
            .running_with(WAREHOUSE, 7, self.compute.clone(), generation);
        assert!(statement.wait_until_done(Duration::from_secs(30)).await);
        Ok(statement)
    }
}

fn bounds(live: usize, bytes: u64) -> Bounds {
    Bounds {
        live_per_caller: live,
        live_per_warehouse: live + 1,
        result_bytes_per_caller: bytes,
        result_bytes_per_warehouse: bytes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_statements_are_bounded_per_caller_and_warehouse() {
    let f = fixture(bounds(2, 1 << 30), Duration::from_secs(3600));
    let first = f
        .scheduler
        .submit(f.new_statement("alice", WAREHOUSE).await)
        .unwrap();
    f.scheduler
        .submit(f.new_statement("alice", WAREHOUSE).await)
        .unwrap();
    let refused = f
        .scheduler
        .submit(f.new_statement("alice", WAREHOUSE).await)
        .err();
    assert_eq!(refused, Some(Exhausted::CallerStatements(2)));
    // The warehouse holds one more, from someone else; then it is full too.
    f.scheduler
        .submit(f.new_statement("bob", WAREHOUSE).await)
        .unwrap();
    let refused = f
        .scheduler
        .submit(f.new_statement("carol", WAREHOUSE).await)
        .err();
    assert!(
        matches!(refused, Some(Exhausted::WarehouseStatements(3, _))),
        "{refused:?}"
    );
    // Another warehouse has room of its own.
    f.scheduler
        .submit(f.new_statement("carol", "fedcba9876543210").await)
        .unwrap();
    // A statement that failed to prepare holds nothing.
    let mut failed = f.new_statement("alice", WAREHOUSE).await;
    failed.prepared = Err(SqlError::new("BAD_REQUEST", "syntax"));
    assert_eq!(
        f.scheduler.submit(failed).unwrap().state(),
        StatementState::Failed
    );
    // A cancelled statement gives its share back.
    f.scheduler.cancel(&first);
    f.scheduler
        .submit(f.new_statement("alice", WAREHOUSE).await)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_results_are_bounded_and_released_when_they_expire() {
    // How many bytes one `SELECT 1` result keeps.
    let measure = fixture(bounds(10, 1 << 30), Duration::from_secs(3600));
    let one = measure.run("alice").await.unwrap();
    assert_eq!(one.state(), StatementState::Succeeded);
    let size = one.result().unwrap().retained_bytes();
    assert!(size > 0);

    // A caller may keep exactly one such result; the next statement is refused up front.
    let f = fixture(bounds(10, size), Duration::from_secs(3600));
    let kept = f.run("alice").await.unwrap();
    assert_eq!(kept.state(), StatementState::Succeeded);
    let refused = f.run("alice").await.err();
    assert_eq!(refused, Some(Exhausted::CallerResults(size)));
    // The warehouse's bound holds for everyone on it.
    let refused = f.run("bob").await.err();
    assert!(
        matches!(refused, Some(Exhausted::WarehouseResults(_, _))),
        "{refused:?}"
    );

    // A result that would not fit fails its statement rather than being kept.
    let tight = fixture(bounds(10, size - 1), Duration::from_secs(3600));
    let failed = tight.run("alice").await.unwrap();
    assert_eq!(failed.state(), StatementState::Failed);
    let response: serde_json::Value = serde_json::from_str(&failed.response()).unwrap();
    assert_eq!(
        response["status"]["error"]["error_code"], "RESOURCE_EXHAUSTED",
        "{response}"
    );
    assert!(failed.result().is_none());
    // And held nothing: the next statement is admitted.
    assert!(tight.run("alice").await.is_ok());

    // Expired results give their bytes back.
    let expiring = fixture(bounds(10, size), Duration::ZERO);
    expiring.run("alice").await.unwrap();
    assert!(expiring.run("alice").await.is_err());
    expiring.scheduler.expire();
    let again = expiring.run("alice").await.unwrap();
    assert_eq!(again.state(), StatementState::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_retention_does_not_overflow_the_expiry() {
    let f = fixture(bounds(10, 1 << 30), Duration::from_secs(u64::MAX));
    let open = f.run("alice").await.unwrap();
    let closed = f.run("alice").await.unwrap();
    {
        let mut inner = closed.inner.lock();
        assert!(closed.transition(&mut inner, StatementState::Closed));
    }
    // How long a closed statement is remembered, twice the retention, overflowed here.
    f.scheduler.expire();
    f.scheduler.expire();
    assert_eq!(open.state(), StatementState::Succeeded);
    assert!(f.scheduler.get(&closed.id).is_some());
}
