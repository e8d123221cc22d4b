//! The schema, as an ordered list of migrations embedded in the binary (`sqlx::migrate!` needs
//! sqlx's macros, which the workspace does not build). Every statement is written to run
//! unchanged on SQLite and PostgreSQL: `BIGINT` and `TEXT` columns only, booleans as `0`/`1`,
//! ids generated in Rust, no foreign keys (deletes cascade explicitly in the store's code, in
//! the same transaction).

use super::Backend;
use sqlx::{AnyPool, Executor};

/// One migration: its number and its statements, run in order in one transaction.
pub(super) struct Migration {
    version: i64,
    statements: &'static [&'static str],
}

/// Every migration, oldest first. Never edit one that has shipped: append a new one.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
    version: 1,
    statements: &[
        // A single row; its `version` grows with every committed change the gateway caches.
        "CREATE TABLE IF NOT EXISTS state_version (id BIGINT PRIMARY KEY, version BIGINT NOT NULL)",
        "INSERT INTO state_version (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        // A single row, written by the first bootstrap.
        "CREATE TABLE IF NOT EXISTS account (
            id BIGINT PRIMARY KEY,
            account_id TEXT NOT NULL,
            default_workspace_id BIGINT NOT NULL,
            created_at BIGINT NOT NULL
        )",
        "CREATE TABLE IF NOT EXISTS workspaces (
            workspace_id BIGINT PRIMARY KEY,
            workspace_name TEXT NOT NULL,
            deployment_name TEXT NOT NULL UNIQUE,
            workspace_status TEXT NOT NULL,
            attributes TEXT NOT NULL,
            creation_time BIGINT NOT NULL
        )",
        // Users and service principals. For a service principal `user_name` holds its
        // application id, so one unique index covers both name spaces.
        "CREATE TABLE IF NOT EXISTS principals (
            id BIGINT PRIMARY KEY,
            kind TEXT NOT NULL,
            user_name TEXT NOT NULL UNIQUE,
            display_name TEXT NOT NULL,
            active BIGINT NOT NULL,
            application_id TEXT,
            created_at BIGINT NOT NULL
        )",
        // `workspace_id` NULL is an account-level group. `scope` repeats it as text
        // (`account` or `ws:<id>`) because PostgreSQL's unique indexes treat NULLs as distinct.
        "CREATE TABLE IF NOT EXISTS scim_groups (
            id BIGINT PRIMARY KEY,
            workspace_id BIGINT,
            scope TEXT NOT NULL,
            display_name TEXT NOT NULL,
            UNIQUE (scope, display_name)
        )",
        "CREATE TABLE IF NOT EXISTS group_members (
            group_id BIGINT NOT NULL,
            principal_id BIGINT NOT NULL,
            PRIMARY KEY (group_id, principal_id)
        )",
        "CREATE INDEX IF NOT EXISTS group_members_by_principal ON group_members (principal_id)",
        // Token values are never stored, only their SHA-256.
        "CREATE TABLE IF NOT EXISTS tokens (
            token_id TEXT PRIMARY KEY,
            token_hash TEXT NOT NULL UNIQUE,
            workspace_id BIGINT NOT NULL,
            owner_id BIGINT NOT NULL,
            created_by_id BIGINT NOT NULL,
            comment TEXT NOT NULL,
            creation_time BIGINT NOT NULL,
            expiry_time BIGINT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS tokens_by_owner ON tokens (workspace_id, owner_id)",
        "CREATE TABLE IF NOT EXISTS ip_access_lists (
            list_id TEXT PRIMARY KEY,
            workspace_id BIGINT,
            scope TEXT NOT NULL,
            label TEXT NOT NULL,
            list_type TEXT NOT NULL,
            enabled BIGINT NOT NULL,
            ip_addresses TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            created_by BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            updated_by BIGINT NOT NULL
        )",
        "CREATE INDEX IF NOT EXISTS ip_access_lists_by_scope ON ip_access_lists (scope)",
        "CREATE TABLE IF NOT EXISTS workspace_conf (
            workspace_id BIGINT NOT NULL,
            conf_key TEXT NOT NULL,
            conf_value TEXT NOT NULL,
            PRIMARY KEY (workspace_id, conf_key)
        )",
        "CREATE TABLE IF NOT EXISTS account_settings (
            setting_key TEXT PRIMARY KEY,
            setting_value TEXT NOT NULL,
            etag TEXT NOT NULL
        )",
    ],
},
    Migration {
        version: 2,
        statements: &[
            // Direct grants on workspace objects (`authorization/tokens` for now). The grantee
            // is a principal's or a group's id (both come from one id space).
            "CREATE TABLE IF NOT EXISTS object_permissions (
                workspace_id BIGINT NOT NULL,
                object_key TEXT NOT NULL,
                grantee_id BIGINT NOT NULL,
                permission_level TEXT NOT NULL,
                PRIMARY KEY (workspace_id, object_key, grantee_id)
            )",
            "CREATE INDEX IF NOT EXISTS object_permissions_by_grantee ON object_permissions (grantee_id)",
            // Workspaces created before token permissions existed let every member use tokens;
            // keep it so by granting `CAN_USE` to their `users` groups (the default of new
            // workspaces too, see `workspaces::create`).
            "INSERT INTO object_permissions (workspace_id, object_key, grantee_id, permission_level)
             SELECT workspace_id, 'authorization/tokens', id, 'CAN_USE' FROM scim_groups
             WHERE display_name = 'users' AND workspace_id IS NOT NULL
             ON CONFLICT (workspace_id, object_key, grantee_id) DO NOTHING",
            // What the gateway caches about principals changes meaning: make it refetch (on a
            // store that has any, so a fresh one still starts at version 0).
            "UPDATE state_version SET version = version + 1
             WHERE id = 1 AND EXISTS (SELECT 1 FROM scim_groups)",
        ],
    },
    Migration {
        version: 3,
        statements: &[
            // SQL warehouses, as the runtime defines them (`lakeward_common::data`). `spec` is
            // the API's JSON, stored opaquely; the id is 16 random lowercase hex digits. Their
            // permissions are rows of `object_permissions` under `warehouses/<id>`.
            "CREATE TABLE IF NOT EXISTS warehouses (
                id TEXT PRIMARY KEY,
                workspace_id BIGINT NOT NULL,
                spec TEXT NOT NULL,
                state TEXT NOT NULL,
                creator_name TEXT NOT NULL,
                last_activity_ms BIGINT NOT NULL,
                created_at BIGINT NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS warehouses_by_workspace ON warehouses (workspace_id)",
            // The lake's catalog, per workspace. Names are stored lower-case (Unity Catalog
            // names are case-insensitive), so the primary keys also refuse names that differ
            // only in case.
            "CREATE TABLE IF NOT EXISTS catalogs (
                workspace_id BIGINT NOT NULL,
                name TEXT NOT NULL,
                owner TEXT NOT NULL,
                comment TEXT,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, name)
            )",
            "CREATE TABLE IF NOT EXISTS catalog_schemas (
                workspace_id BIGINT NOT NULL,
                catalog_name TEXT NOT NULL,
                name TEXT NOT NULL,
                owner TEXT NOT NULL,
                comment TEXT,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, catalog_name, name)
            )",
            // `columns` and `options` are JSON text (`ColumnRecord`s, a string map).
            "CREATE TABLE IF NOT EXISTS catalog_tables (
                workspace_id BIGINT NOT NULL,
                catalog_name TEXT NOT NULL,
                schema_name TEXT NOT NULL,
                name TEXT NOT NULL,
                owner TEXT NOT NULL,
                table_type TEXT NOT NULL,
                format TEXT NOT NULL,
                location TEXT NOT NULL,
                columns TEXT NOT NULL,
                options TEXT NOT NULL,
                comment TEXT,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (workspace_id, catalog_name, schema_name, name)
            )",
            // One row per privilege: removing a principal's last one leaves no trace of it.
            // Principals are named as in SQL (`userName`, application id, group name).
            "CREATE TABLE IF NOT EXISTS catalog_grants (
                workspace_id BIGINT NOT NULL,
                securable_type TEXT NOT NULL,
                full_name TEXT NOT NULL,
                principal TEXT NOT NULL,
                privilege TEXT NOT NULL,
                PRIMARY KEY (workspace_id, securable_type, full_name, principal, privilege)
            )",
        ],
    },
];

/// A fixed key for PostgreSQL's advisory lock, so that replicas starting together migrate one
/// at a time (`CREATE TABLE IF NOT EXISTS` is not safe against a concurrent twin there).
const PG_MIGRATION_LOCK: i64 = 0x6c61_6b65_7761_7264; // "lakeward"

/// Applies every migration not yet recorded in `schema_migrations`, all in one transaction.
pub(super) async fn run(pool: &AnyPool, backend: Backend) -> Result<(), sqlx::Error> {
    let mut tx = match backend {
        // IMMEDIATE takes the write lock at once, so two processes cannot both decide that a
        // migration is missing.
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    };
    if backend == Backend::Postgres {
        // Released at commit. Selected through `FROM` so that no `void` column comes back.
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1) AS l")
            .bind(PG_MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    (&mut *tx)
        .execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await?;
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        tracing::info!(
            version = migration.version,
            "applying control-plane migration"
        );
        for statement in migration.statements {
            (&mut *tx).execute(*statement).await?;
        }
        sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(super::now_ms())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}
