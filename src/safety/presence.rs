//! Who sees whose presence (online, offline, last seen).

use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;

/// Whose presence goes to whom: `user`'s to the people they share a conversation with that
/// they took part in (started it or wrote in it: being added by a stranger shares
/// nothing), unless a block stands between them or `user` turned sharing off.
/// `Audience`: who sees `user`'s presence; `Visible`: whose presence `user` sees.
#[derive(Clone, Copy)]
pub enum Side {
    Audience,
    Visible,
}

pub async fn presence_contacts(
    db: &PgPool,
    user: Uuid,
    side: Side,
    limit: i64,
) -> Result<Vec<Uuid>, ApiError> {
    // `shown` is the one whose presence would be shown, `viewer` the one who would see it.
    Ok(sqlx::query_scalar!(
        r#"SELECT DISTINCT other.user_id AS "id!" FROM conversation_members mine
           JOIN conversation_members other ON other.conversation_id = mine.conversation_id
           JOIN conversations c ON c.id = mine.conversation_id
           CROSS JOIN LATERAL (
             SELECT CASE WHEN $3 THEN $1 ELSE other.user_id END AS shown) s
           JOIN users su ON su.id = s.shown
           WHERE mine.user_id = $1 AND mine.left_at IS NULL AND other.left_at IS NULL
             AND other.user_id <> $1
             AND su.share_presence
             AND (c.created_by = s.shown
                  OR EXISTS (SELECT 1 FROM messages x
                             WHERE x.conversation_id = c.id AND x.author_id = s.shown))
             AND NOT EXISTS (SELECT 1 FROM blocks b
                             WHERE (b.blocker_id = $1 AND b.blocked_id = other.user_id)
                                OR (b.blocker_id = other.user_id AND b.blocked_id = $1))
           LIMIT $2"#,
        user,
        limit,
        matches!(side, Side::Audience)
    )
    .fetch_all(db)
    .await?)
}

/// Turns `user`'s presence sharing on or off; `false` when it was already so.
pub async fn set_share_presence(db: &PgPool, user: Uuid, share: bool) -> Result<bool, ApiError> {
    Ok(sqlx::query!(
        "UPDATE users SET share_presence = $2 WHERE id = $1 AND share_presence <> $2",
        user,
        share
    )
    .execute(db)
    .await?
    .rows_affected()
        > 0)
}

/// Whether `user` shares their presence.
pub async fn shares_presence(db: &PgPool, user: Uuid) -> Result<bool, ApiError> {
    Ok(
        sqlx::query_scalar!("SELECT share_presence FROM users WHERE id = $1", user)
            .fetch_optional(db)
            .await?
            .unwrap_or(false),
    )
}
