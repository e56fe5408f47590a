//! Blocks. When one person blocks another, between the two of them: no direct conversation
//! is started, none they already have carries another message (its row is marked
//! `blocked`, which the send path reads under the lock it takes anyway), neither adds the
//! other to a group, neither sees the other's presence, and neither finds the other in
//! musician search. Either one's block is enough; unblocking lifts only one's own.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::{error::ApiError, frames::UserRef};

/// The answer to a send in a direct conversation closed by a block.
pub fn closed() -> ApiError {
    ApiError::forbidden("You cannot message this person.")
}

/// The answer to starting a conversation with, or adding, someone on the other side of a
/// block.
pub fn refused() -> ApiError {
    ApiError::forbidden("You cannot start a conversation with or add this person.")
}

/// A person I blocked.
pub struct Blocked {
    pub user: UserRef,
    pub blocked_at: DateTime<Utc>,
}

/// `by` blocks `user`; `false` when it was already so.
pub async fn block(db: &PgPool, by: Uuid, user: Uuid) -> Result<(Blocked, bool), ApiError> {
    if by == user {
        return Err(ApiError::field(
            "user_id",
            "invalid",
            "you cannot block yourself",
        ));
    }
    let mut tx = db.begin().await?;
    if crate::accounts::find_active(&mut *tx, user)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found("User"));
    }
    let created = sqlx::query!(
        "INSERT INTO blocks (blocker_id, blocked_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        by,
        user
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    mark_direct(&mut tx, by, user).await?;
    let row = sqlx::query!(
        "SELECT u.username, b.created_at FROM blocks b JOIN users u ON u.id = b.blocked_id
         WHERE b.blocker_id = $1 AND b.blocked_id = $2",
        by,
        user
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let blocked = Blocked {
        user: UserRef {
            id: user,
            username: row.username,
        },
        blocked_at: row.created_at,
    };
    Ok((blocked, created))
}

/// `by` lifts their block on `user`; `false` when there was none.
pub async fn unblock(db: &PgPool, by: Uuid, user: Uuid) -> Result<bool, ApiError> {
    let mut tx = db.begin().await?;
    let removed = sqlx::query!(
        "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
        by,
        user
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    mark_direct(&mut tx, by, user).await?;
    tx.commit().await?;
    Ok(removed)
}

/// Marks the pair's direct conversation, if any, as closed while either one blocks the other.
async fn mark_direct(conn: &mut PgConnection, a: Uuid, b: Uuid) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE conversations c
         SET blocked = EXISTS (SELECT 1 FROM blocks
                               WHERE (blocker_id = $1 AND blocked_id = $2)
                                  OR (blocker_id = $2 AND blocked_id = $1))
         FROM conversation_members x
         JOIN conversation_members y ON y.conversation_id = x.conversation_id AND y.user_id = $2
         WHERE x.user_id = $1 AND c.id = x.conversation_id AND c.kind = 'direct'",
        a,
        b
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub type ListKey = (DateTime<Utc>, Uuid);

/// The people `by` blocked, most recent first.
pub async fn list(
    db: &PgPool,
    by: Uuid,
    after: Option<&ListKey>,
    fetch: i64,
) -> Result<Vec<Blocked>, ApiError> {
    Ok(sqlx::query!(
        "SELECT b.blocked_id, u.username, b.created_at FROM blocks b
         JOIN users u ON u.id = b.blocked_id
         WHERE b.blocker_id = $1
           AND ($2::timestamptz IS NULL OR (b.created_at, b.blocked_id) < ($2, $3))
         ORDER BY b.created_at DESC, b.blocked_id DESC
         LIMIT $4",
        by,
        after.map(|a| a.0),
        after.map(|a| a.1),
        fetch
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| Blocked {
        user: UserRef {
            id: r.blocked_id,
            username: r.username,
        },
        blocked_at: r.created_at,
    })
    .collect())
}

/// Whether `a` and any of `others` are on the two sides of a block (either way).
pub async fn any_between(
    db: impl PgExecutor<'_>,
    a: Uuid,
    others: &[Uuid],
) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM blocks
                          WHERE (blocker_id = $1 AND blocked_id = ANY($2))
                             OR (blocked_id = $1 AND blocker_id = ANY($2))) AS "e!""#,
        a,
        others
    )
    .fetch_one(db)
    .await?)
}
