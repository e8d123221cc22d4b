//! The account (a single row) and the first-run bootstrap that creates it.

use super::directory::{Group, Principal};
use super::principals;
use super::tokens::{self, Token};
use super::workspaces::{self, Workspace, RUNNING};
use super::Store;
use lakeward_common::assertion::PrincipalKind;
use lakeward_common::internal::ADMINS_GROUP;
use sqlx::AnyConnection;
use sqlx::Row;

/// The account row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub(crate) account_id: String,
    pub(crate) default_workspace_id: i64,
}

/// The account, once bootstrapped.
pub(crate) async fn get(conn: &mut AnyConnection) -> Result<Option<Account>, sqlx::Error> {
    let row = sqlx::query("SELECT account_id, default_workspace_id FROM account WHERE id = 1")
        .fetch_optional(conn)
        .await?;
    row.map(|row| {
        Ok(Account {
            account_id: row.try_get("account_id")?,
            default_workspace_id: row.try_get("default_workspace_id")?,
        })
    })
    .transpose()
}

/// What [`bootstrap`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bootstrapped {
    pub(crate) account: Account,
    /// The admin's token value, only when it was created by this call.
    pub(crate) admin_token: Option<String>,
}

/// Creates the account, the default workspace and its groups, the account `admins` group,
/// the admin user and the admin's token, all in one transaction, unless the account exists.
/// Replicas starting together are safe: the write transaction serializes them, and the second
/// one finds the account.
pub(crate) async fn bootstrap(
    store: &Store,
    admin_user_name: &str,
) -> Result<Bootstrapped, sqlx::Error> {
    let mut tx = store.begin_write().await?;
    if let Some(account) = get(tx.conn()).await? {
        // Nothing to do: dropping `tx` rolls the version increment back.
        return Ok(Bootstrapped {
            account,
            admin_token: None,
        });
    }
    let now = super::now_ms();
    let account = Account {
        account_id: uuid::Uuid::new_v4().to_string(),
        default_workspace_id: super::new_numeric_id(),
    };
    let conn = tx.conn();
    // The admin may already exist if an operator created the user before first boot; reuse
    // them rather than fail on the unique name.
    let admin = match principals::by_name(conn, admin_user_name).await? {
        Some(admin) => admin,
        None => {
            let admin = Principal {
                id: super::new_numeric_id(),
                kind: PrincipalKind::User,
                user_name: admin_user_name.to_owned(),
                display_name: admin_user_name.to_owned(),
                active: true,
                application_id: None,
            };
            principals::insert(conn, &admin).await?;
            admin
        }
    };
    let account_admins = Group {
        id: super::new_numeric_id(),
        workspace_id: None,
        display_name: ADMINS_GROUP.to_owned(),
    };
    principals::insert_group(conn, &account_admins).await?;
    principals::add_member(conn, account_admins.id, admin.id).await?;
    let workspace = Workspace {
        workspace_id: account.default_workspace_id,
        workspace_name: "default".to_owned(),
        deployment_name: "default".to_owned(),
        workspace_status: RUNNING.to_owned(),
        attributes: serde_json::Map::new(),
        creation_time: now,
    };
    workspaces::create(conn, &workspace, &[admin.id]).await?;
    sqlx::query(
        "INSERT INTO account (id, account_id, default_workspace_id, created_at) VALUES (1, $1, $2, $3)",
    )
    .bind(&account.account_id)
    .bind(account.default_workspace_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let value = lakeward_common::token::generate_token();
    let token = Token {
        token_id: super::new_token_id(),
        workspace_id: account.default_workspace_id,
        owner_id: admin.id,
        created_by_id: admin.id,
        created_by_username: Some(admin.user_name.clone()),
        comment: "bootstrap".to_owned(),
        creation_time: now,
        expiry_time: -1,
    };
    tokens::insert(conn, &token, &lakeward_common::token::hash_token(&value)).await?;
    tx.commit().await?;
    tracing::info!(
        account_id = %account.account_id,
        workspace_id = account.default_workspace_id,
        "control plane bootstrapped"
    );
    Ok(Bootstrapped {
        account,
        admin_token: Some(value),
    })
}
