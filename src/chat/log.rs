//! Reading the event log back: what a member may replay, and what a connection starts
//! from. The socket's sync machine asks; PostgreSQL answers.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{error::ApiError, frames::ServerFrame};

/// Stored frames of a conversation after event `after`, as `user` may see them (from their
/// joining to their leaving; what someone they blocked did to a message while the block
/// stood, as `message.withheld`), in
/// order, at most `limit`; with the last event they may see. `None` when the user never
/// belonged to the conversation.
pub async fn events_after(
    db: impl PgExecutor<'_>,
    user: Uuid,
    conversation: Uuid,
    after: i64,
    limit: i64,
) -> Result<Option<(Vec<(i64, String)>, i64)>, ApiError> {
    let rows = sqlx::query!(
        r#"WITH bounds AS (
               SELECT GREATEST($3, m.joined_event_seq - 1) AS after,
                      LEAST(c.last_event_seq, m.left_event_seq) AS last
               FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
               WHERE m.conversation_id = $1 AND m.user_id = $2)
           SELECT b.last AS "last!", e.seq AS "seq?", e.frame::text AS "frame?",
                  (e.frame ->> 'type' LIKE 'message.%' AND EXISTS (
                       SELECT 1 FROM blocks k WHERE k.blocker_id = $2
                       AND k.blocked_id = (e.frame -> 'message' -> 'author' ->> 'id')::uuid
                       AND k.created_at <= e.created_at))
                      AS "withheld?"
           FROM bounds b
           LEFT JOIN LATERAL (
               SELECT seq, frame, created_at FROM conversation_events
               WHERE conversation_id = $1 AND seq > b.after AND seq <= b.last
               ORDER BY seq LIMIT $4) e ON true"#,
        conversation,
        user,
        after,
        limit
    )
    .fetch_all(db)
    .await?;
    let Some(last) = rows.first().map(|r| r.last) else {
        return Ok(None);
    };
    let frames = rows
        .into_iter()
        .filter_map(|r| {
            let seq = r.seq?;
            Some(if r.withheld == Some(true) {
                (seq, ServerFrame::withheld_text(conversation, seq))
            } else {
                (seq, r.frame?)
            })
        })
        .collect();
    Ok(Some((frames, last)))
}

/// A conversation `user` belongs to, or left, with the event numbers that bound what they
/// may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub conversation: Uuid,
    /// The conversation's last event, or the one that removed the user.
    pub last: i64,
    /// The event before the user joined.
    pub floor: i64,
    pub active: bool,
}

/// The conversations `user` is in (and those they left), and their notification number.
pub async fn memberships(
    db: impl PgExecutor<'_>,
    user: Uuid,
) -> Result<(Vec<Membership>, i64), ApiError> {
    let rows = sqlx::query!(
        r#"SELECT u.last_notification_seq, m.conversation_id AS "conversation?",
                  LEAST(c.last_event_seq, m.left_event_seq) AS last,
                  m.joined_event_seq AS "joined?", m.left_at
           FROM users u
           LEFT JOIN conversation_members m ON m.user_id = u.id
           LEFT JOIN conversations c ON c.id = m.conversation_id
           WHERE u.id = $1"#,
        user
    )
    .fetch_all(db)
    .await?;
    let notifications = rows.first().map_or(0, |r| r.last_notification_seq);
    let memberships = rows
        .into_iter()
        .filter_map(|r| {
            Some(Membership {
                conversation: r.conversation?,
                last: r.last?,
                floor: r.joined? - 1,
                active: r.left_at.is_none(),
            })
        })
        .collect();
    Ok((memberships, notifications))
}
