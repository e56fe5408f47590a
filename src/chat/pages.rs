//! The pages that REST reads: a user's conversations (with each one's last message and
//! unread count) and a conversation's history, each in one statement. Messages someone
//! wrote after the reader blocked them are left out of all three while the block stands
//! (what was said before stays).

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::store::{ConversationRow, Kind, MessageRow, Role};
use crate::{error::ApiError, frames::MessageData};

/// History, newest first before `before`, or oldest first after `after`, if `user` is a
/// member (`None` otherwise): membership and the page in one round trip.
pub async fn history(
    db: impl PgExecutor<'_>,
    user: Uuid,
    conversation: Uuid,
    before: Option<i64>,
    after: Option<i64>,
    fetch: i64,
) -> Result<Option<Vec<MessageData>>, ApiError> {
    // One row per message, or one row of NULLs for a member of an empty page; no row at
    // all when `user` is not a member.
    let rows = sqlx::query!(
        r#"SELECT m.id AS "id?", m.seq AS "seq?", m.author_id AS "author_id?",
                  m.author_username AS "author_username?", m.body, m.client_msg_id,
                  m.created_at AS "created_at?", m.edited_at, m.deleted_at
           FROM conversation_members me
           LEFT JOIN LATERAL (
               SELECT x.id, x.seq, x.author_id, u.username AS author_username, x.body,
                      x.client_msg_id, x.created_at, x.edited_at, x.deleted_at
               FROM messages x JOIN users u ON u.id = x.author_id
               WHERE x.conversation_id = $1 AND x.seq > me.history_from_seq
                 AND NOT EXISTS (SELECT 1 FROM blocks k
                                 WHERE k.blocker_id = $5 AND k.blocked_id = x.author_id
                                   AND k.created_at <= x.created_at)
                 AND ($2::bigint IS NULL OR x.seq < $2)
                 AND ($3::bigint IS NULL OR x.seq > $3)
               ORDER BY CASE WHEN $3::bigint IS NULL THEN -x.seq ELSE x.seq END
               LIMIT $4) m ON true
           WHERE me.conversation_id = $1 AND me.user_id = $5 AND me.left_at IS NULL
           ORDER BY CASE WHEN $3::bigint IS NULL THEN -m.seq ELSE m.seq END"#,
        conversation,
        before,
        after,
        fetch,
        user
    )
    .fetch_all(db)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let page = rows
        .into_iter()
        .filter_map(|r| {
            Some(MessageData::from(MessageRow {
                id: r.id?,
                conversation_id: conversation,
                seq: r.seq?,
                author_id: r.author_id?,
                author_username: r.author_username?,
                body: r.body,
                client_msg_id: r.client_msg_id,
                created_at: r.created_at?,
                edited_at: r.edited_at,
                deleted_at: r.deleted_at,
            }))
        })
        .collect();
    Ok(Some(page))
}

/// A conversation in the list: with its last message and my unread count.
pub struct Summary {
    pub conversation: ConversationRow,
    pub last_message: Option<MessageData>,
    pub unread: i64,
    pub last_read_seq: i64,
    /// My role.
    pub role: Role,
}

pub type ListKey = (DateTime<Utc>, Uuid);

/// `user`'s conversations (or just `only`), most recent activity first.
pub async fn list(
    db: &PgPool,
    user: Uuid,
    only: Option<Uuid>,
    after: Option<&ListKey>,
    fetch: i64,
) -> Result<Vec<Summary>, ApiError> {
    // The page, its unread counts and each conversation's last message in one statement.
    let rows = sqlx::query!(
        r#"SELECT c.id, c.kind AS "kind: Kind", c.title, c.created_by, c.last_message_seq,
                  c.last_event_seq, c.last_activity_at, c.created_at,
                  c.new_members_see_history, m.last_read_seq, m.role AS "role: Role",
                  (SELECT count(*) FROM messages x
                   WHERE x.conversation_id = c.id
                     AND x.seq > GREATEST(m.last_read_seq, m.history_from_seq)
                     AND x.author_id <> $1 AND x.deleted_at IS NULL
                     AND NOT EXISTS (SELECT 1 FROM blocks k
                                     WHERE k.blocker_id = $1 AND k.blocked_id = x.author_id
                                   AND k.created_at <= x.created_at))
                      AS "unread!",
                  l.id AS "last_id?", l.seq AS "last_seq?", l.author_id AS "last_author_id?",
                  l.author_username AS "last_author_username?", l.body AS last_body,
                  l.client_msg_id AS last_client_msg_id, l.created_at AS "last_created_at?",
                  l.edited_at AS last_edited_at, l.deleted_at AS last_deleted_at
           FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
           LEFT JOIN LATERAL (
               SELECT x.id, x.seq, x.author_id, u.username AS author_username, x.body,
                      x.client_msg_id, x.created_at, x.edited_at, x.deleted_at
               FROM messages x JOIN users u ON u.id = x.author_id
               WHERE x.conversation_id = c.id AND x.seq > m.history_from_seq
                 AND NOT EXISTS (SELECT 1 FROM blocks k
                                 WHERE k.blocker_id = $1 AND k.blocked_id = x.author_id
                                   AND k.created_at <= x.created_at)
               ORDER BY x.seq DESC LIMIT 1) l ON true
           WHERE m.user_id = $1 AND m.left_at IS NULL
             AND ($2::timestamptz IS NULL OR (c.last_activity_at, c.id) < ($2, $3))
             AND ($5::uuid IS NULL OR c.id = $5)
           ORDER BY c.last_activity_at DESC, c.id DESC
           LIMIT $4"#,
        user,
        after.map(|a| a.0),
        after.map(|a| a.1),
        fetch,
        only
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let last = (|| {
                Some(MessageRow {
                    id: r.last_id?,
                    conversation_id: r.id,
                    seq: r.last_seq?,
                    author_id: r.last_author_id?,
                    author_username: r.last_author_username?,
                    body: r.last_body,
                    client_msg_id: r.last_client_msg_id,
                    created_at: r.last_created_at?,
                    edited_at: r.last_edited_at,
                    deleted_at: r.last_deleted_at,
                })
            })();
            Summary {
                conversation: ConversationRow {
                    id: r.id,
                    kind: r.kind,
                    title: r.title,
                    created_by: r.created_by,
                    last_message_seq: r.last_message_seq,
                    last_event_seq: r.last_event_seq,
                    last_activity_at: r.last_activity_at,
                    created_at: r.created_at,
                    new_members_see_history: r.new_members_see_history,
                },
                last_message: last.map(MessageData::from),
                unread: r.unread,
                last_read_seq: r.last_read_seq,
                role: r.role,
            }
        })
        .collect())
}
