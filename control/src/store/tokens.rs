//! Personal access tokens, stored by hash only.

use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use sqlx::Row;

/// A token's metadata (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) token_id: String,
    pub(crate) workspace_id: i64,
    pub(crate) owner_id: i64,
    pub(crate) created_by_id: i64,
    /// The creator's `userName`, if the creator still exists.
    pub(crate) created_by_username: Option<String>,
    pub(crate) comment: String,
    /// Milliseconds since the epoch.
    pub(crate) creation_time: i64,
    /// Milliseconds since the epoch; `-1` is no expiry.
    pub(crate) expiry_time: i64,
}

/// Which tokens a listing returns: always one workspace, optionally narrowed.
#[derive(Debug, Default, Clone)]
pub(crate) struct Filter {
    pub(crate) workspace_id: i64,
    pub(crate) owner_id: Option<i64>,
    pub(crate) created_by_id: Option<i64>,
    pub(crate) created_by_username: Option<String>,
}

const SELECT: &str = "SELECT t.token_id, t.workspace_id, t.owner_id, t.created_by_id, p.user_name AS created_by_username,
        t.comment, t.creation_time, t.expiry_time
    FROM tokens t LEFT JOIN principals p ON p.id = t.created_by_id";

fn from_row(row: &AnyRow) -> Result<Token, sqlx::Error> {
    Ok(Token {
        token_id: row.try_get("token_id")?,
        workspace_id: row.try_get("workspace_id")?,
        owner_id: row.try_get("owner_id")?,
        created_by_id: row.try_get("created_by_id")?,
        created_by_username: row.try_get("created_by_username")?,
        comment: row.try_get("comment")?,
        creation_time: row.try_get("creation_time")?,
        expiry_time: row.try_get("expiry_time")?,
    })
}

/// Stores a new token under the hash of its value.
pub(crate) async fn insert(
    conn: &mut AnyConnection,
    token: &Token,
    token_hash: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO tokens (token_id, token_hash, workspace_id, owner_id, created_by_id, comment, creation_time, expiry_time)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&token.token_id)
    .bind(token_hash)
    .bind(token.workspace_id)
    .bind(token.owner_id)
    .bind(token.created_by_id)
    .bind(&token.comment)
    .bind(token.creation_time)
    .bind(token.expiry_time)
    .execute(conn)
    .await?;
    Ok(())
}

/// How many tokens `owner_id` has in the workspace (expired ones included: they still exist
/// and are listed until deleted).
pub(crate) async fn count_owned(
    conn: &mut AnyConnection,
    workspace_id: i64,
    owner_id: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT COUNT(*) FROM tokens WHERE workspace_id = $1 AND owner_id = $2")
        .bind(workspace_id)
        .bind(owner_id)
        .fetch_one(conn)
        .await
}

/// The tokens matching `filter`, oldest first.
pub(crate) async fn list(
    conn: &mut AnyConnection,
    filter: &Filter,
) -> Result<Vec<Token>, sqlx::Error> {
    // Absent filters compare against themselves, so one statement serves every combination.
    let sql = format!(
        "{SELECT} WHERE t.workspace_id = $1
           AND ($2 = 0 OR t.owner_id = $3)
           AND ($4 = 0 OR t.created_by_id = $5)
           AND ($6 = 0 OR p.user_name = $7)
         ORDER BY t.creation_time, t.token_id"
    );
    let rows = sqlx::query(&sql)
        .bind(filter.workspace_id)
        .bind(i64::from(filter.owner_id.is_some()))
        .bind(filter.owner_id.unwrap_or(0))
        .bind(i64::from(filter.created_by_id.is_some()))
        .bind(filter.created_by_id.unwrap_or(0))
        .bind(i64::from(filter.created_by_username.is_some()))
        .bind(filter.created_by_username.clone().unwrap_or_default())
        .fetch_all(conn)
        .await?;
    rows.iter().map(from_row).collect()
}

/// The token `token_id` of this workspace, if it is there (and, when `owner_id` is given,
/// belongs to that principal).
pub(crate) async fn get(
    conn: &mut AnyConnection,
    workspace_id: i64,
    token_id: &str,
    owner_id: Option<i64>,
) -> Result<Option<Token>, sqlx::Error> {
    let sql = format!(
        "{SELECT} WHERE t.workspace_id = $1 AND t.token_id = $2 AND ($3 = 0 OR t.owner_id = $4)"
    );
    let row = sqlx::query(&sql)
        .bind(workspace_id)
        .bind(token_id)
        .bind(i64::from(owner_id.is_some()))
        .bind(owner_id.unwrap_or(0))
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// Deletes the token if [`get`] would find it; says whether it did.
pub(crate) async fn delete(
    conn: &mut AnyConnection,
    workspace_id: i64,
    token_id: &str,
    owner_id: Option<i64>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "DELETE FROM tokens WHERE workspace_id = $1 AND token_id = $2 AND ($3 = 0 OR owner_id = $4)",
    )
    .bind(workspace_id)
    .bind(token_id)
    .bind(i64::from(owner_id.is_some()))
    .bind(owner_id.unwrap_or(0))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Sets a token's comment if [`get`] would find it; says whether it did.
pub(crate) async fn set_comment(
    conn: &mut AnyConnection,
    workspace_id: i64,
    token_id: &str,
    owner_id: Option<i64>,
    comment: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE tokens SET comment = $1
         WHERE workspace_id = $2 AND token_id = $3 AND ($4 = 0 OR owner_id = $5)",
    )
    .bind(comment)
    .bind(workspace_id)
    .bind(token_id)
    .bind(i64::from(owner_id.is_some()))
    .bind(owner_id.unwrap_or(0))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// The token stored under `token_hash`, whatever its workspace.
pub(crate) async fn by_hash(
    conn: &mut AnyConnection,
    token_hash: &str,
) -> Result<Option<Token>, sqlx::Error> {
    let sql = format!("{SELECT} WHERE t.token_hash = $1");
    let row = sqlx::query(&sql)
        .bind(token_hash)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(from_row).transpose()
}
