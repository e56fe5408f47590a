//! Chat queries and their rules.

use chrono::{DateTime, SubsecRound, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::deliver;
use crate::bus::Bus;
use crate::{
    envelope::FieldError,
    error::{ApiError, ErrorCode},
    frames::{ConversationData, MessageData, ServerFrame, UserRef},
};

pub const BODY_MAX: usize = 4000;
pub const TITLE_MAX: usize = 100;
pub const CLIENT_MSG_ID_MAX: usize = 64;
pub const MAX_MEMBERS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "conversation_kind", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Direct,
    Group,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Group => "group",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ConversationRow {
    pub id: Uuid,
    pub kind: Kind,
    pub title: Option<String>,
    pub created_by: Uuid,
    pub last_message_seq: i64,
    pub last_event_seq: i64,
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub username: String,
    pub joined_at: DateTime<Utc>,
    pub last_read_seq: i64,
}

struct MessageRow {
    id: Uuid,
    conversation_id: Uuid,
    seq: i64,
    author_id: Uuid,
    author_username: String,
    body: Option<String>,
    client_msg_id: Option<String>,
    created_at: DateTime<Utc>,
    edited_at: Option<DateTime<Utc>>,
    deleted_at: Option<DateTime<Utc>>,
}

impl From<MessageRow> for MessageData {
    fn from(m: MessageRow) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            seq: m.seq,
            author: UserRef {
                id: m.author_id,
                username: m.author_username,
            },
            body: m.body,
            client_msg_id: m.client_msg_id,
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted_at: m.deleted_at,
        }
    }
}

fn not_found() -> ApiError {
    ApiError::not_found("Conversation")
}

/// The conversation, if `user` is a member (anyone else gets 404, as if it did not exist).
pub async fn conversation_for(
    db: impl PgExecutor<'_>,
    user: Uuid,
    id: Uuid,
) -> Result<ConversationRow, ApiError> {
    sqlx::query_as!(
        ConversationRow,
        r#"SELECT c.id, c.kind AS "kind: Kind", c.title, c.created_by, c.last_message_seq,
                  c.last_event_seq, c.last_activity_at, c.created_at
           FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id
           WHERE c.id = $1 AND m.user_id = $2 AND m.left_at IS NULL"#,
        id,
        user
    )
    .fetch_optional(db)
    .await?
    .ok_or_else(not_found)
}

/// The key that makes a pair's direct conversation unique: both ids in order.
pub fn direct_key(a: Uuid, b: Uuid) -> String {
    let (a, b) = if a < b { (a, b) } else { (b, a) };
    format!("{a}:{b}")
}

/// Locks the conversation row (serialising its changes) and checks membership.
async fn lock_for(
    conn: &mut PgConnection,
    user: Uuid,
    id: Uuid,
) -> Result<ConversationRow, ApiError> {
    let row = sqlx::query_as!(
        ConversationRow,
        r#"SELECT id, kind AS "kind: Kind", title, created_by, last_message_seq, last_event_seq,
                  last_activity_at, created_at
           FROM conversations WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(not_found)?;
    if !is_member(&mut *conn, id, user).await? {
        return Err(not_found());
    }
    Ok(row)
}

pub async fn is_member(
    db: impl PgExecutor<'_>,
    conversation: Uuid,
    user: Uuid,
) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM conversation_members
                          WHERE conversation_id = $1 AND user_id = $2 AND left_at IS NULL) AS "e!""#,
        conversation,
        user
    )
    .fetch_one(db)
    .await?)
}

pub async fn members(
    db: impl PgExecutor<'_>,
    conversation: Uuid,
) -> Result<Vec<MemberRow>, ApiError> {
    Ok(sqlx::query_as!(
        MemberRow,
        "SELECT m.user_id, u.username, m.joined_at, m.last_read_seq
         FROM conversation_members m JOIN users u ON u.id = m.user_id
         WHERE m.conversation_id = $1 AND m.left_at IS NULL
         ORDER BY m.joined_at, m.user_id",
        conversation
    )
    .fetch_all(db)
    .await?)
}

async fn member_ids(conn: &mut PgConnection, conversation: Uuid) -> Result<Vec<Uuid>, ApiError> {
    Ok(sqlx::query_scalar!(
        "SELECT user_id FROM conversation_members WHERE conversation_id = $1 AND left_at IS NULL",
        conversation
    )
    .fetch_all(conn)
    .await?)
}

/// Takes the next event number (and the next message number when `message`).
async fn bump(
    conn: &mut PgConnection,
    conversation: Uuid,
    message: bool,
) -> Result<(i64, i64), ApiError> {
    let row = sqlx::query!(
        "UPDATE conversations SET
             last_event_seq = last_event_seq + 1,
             last_message_seq = last_message_seq + CASE WHEN $2 THEN 1 ELSE 0 END,
             last_activity_at = CASE WHEN $2 THEN now() ELSE last_activity_at END
         WHERE id = $1
         RETURNING last_event_seq, last_message_seq",
        conversation,
        message
    )
    .fetch_one(conn)
    .await?;
    Ok((row.last_event_seq, row.last_message_seq))
}

/// Stores the frame of an event in the conversation's log.
async fn record(conn: &mut PgConnection, frame: &ServerFrame) -> Result<(), ApiError> {
    let Some((conversation, seq)) = frame.event_seq() else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "frame without an event number"
        )));
    };
    let json = serde_json::to_value(frame).map_err(ApiError::internal)?;
    sqlx::query!(
        "INSERT INTO conversation_events (conversation_id, seq, frame) VALUES ($1, $2, $3)",
        conversation,
        seq,
        json
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn user_ref(conn: &mut PgConnection, id: Uuid) -> Result<UserRef, ApiError> {
    let username = sqlx::query_scalar!("SELECT username FROM users WHERE id = $1", id)
        .fetch_one(conn)
        .await?;
    Ok(UserRef { id, username })
}

fn as_data(c: &ConversationRow, members: &[MemberRow]) -> ConversationData {
    ConversationData {
        id: c.id,
        kind: c.kind.as_str().to_owned(),
        title: c.title.clone(),
        members: members
            .iter()
            .map(|m| UserRef {
                id: m.user_id,
                username: m.username.clone(),
            })
            .collect(),
        created_at: c.created_at,
    }
}

/// Parses a title: at most 100 characters; empty means none.
pub fn parse_title(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > TITLE_MAX => Err(FieldError::new(
            "title",
            "too_long",
            format!("title must be at most {TITLE_MAX} characters"),
        )),
        Some(t) => Ok(Some(t.to_owned())),
    }
}

pub fn parse_body(raw: &str) -> Result<String, FieldError> {
    let body = raw.trim();
    if body.is_empty() {
        return Err(FieldError::new("body", "missing", "body must not be empty"));
    }
    if body.chars().count() > BODY_MAX {
        return Err(FieldError::new(
            "body",
            "too_long",
            format!("body must be at most {BODY_MAX} characters"),
        ));
    }
    Ok(body.to_owned())
}

/// Starts a conversation. Two people (the creator and one other) make a direct conversation,
/// created once: asking again answers the existing one (`false`).
pub async fn create(
    db: &PgPool,
    bus: &Bus,
    creator: Uuid,
    participants: &[Uuid],
    title: Option<String>,
) -> Result<(ConversationRow, bool), ApiError> {
    let mut others: Vec<Uuid> = participants
        .iter()
        .copied()
        .filter(|p| *p != creator)
        .collect();
    others.sort();
    others.dedup();
    if others.is_empty() {
        return Err(ApiError::field(
            "participant_ids",
            "missing",
            "name at least one other person",
        ));
    }
    if others.len() + 1 > MAX_MEMBERS {
        return Err(ApiError::field(
            "participant_ids",
            "too_long",
            format!("a conversation has at most {MAX_MEMBERS} members"),
        ));
    }
    let active: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM users WHERE id = ANY($1) AND deactivated_at IS NULL"#,
        &others
    )
    .fetch_one(db)
    .await?;
    if active as usize != others.len() {
        return Err(ApiError::field(
            "participant_ids",
            "not_found",
            "a participant does not exist",
        ));
    }
    let direct = others.len() == 1 && title.is_none();
    let direct_key = direct.then(|| direct_key(creator, others[0]));
    let mut tx = db.begin().await?;
    if let Some(key) = &direct_key {
        // Serialise concurrent "start a chat with X" for the same pair.
        sqlx::query!("SELECT pg_advisory_xact_lock(hashtext($1))", key)
            .execute(&mut *tx)
            .await?;
        let existing =
            sqlx::query_scalar!("SELECT id FROM conversations WHERE direct_key = $1", key)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(id) = existing {
            tx.commit().await?;
            return Ok((conversation_for(db, creator, id).await?, false));
        }
    }
    let kind = if direct { Kind::Direct } else { Kind::Group };
    let id = sqlx::query_scalar!(
        "INSERT INTO conversations (kind, title, direct_key, created_by, last_event_seq)
         VALUES ($1, $2, $3, $4, 1) RETURNING id",
        kind as Kind,
        title,
        direct_key,
        creator
    )
    .fetch_one(&mut *tx)
    .await?;
    let mut everyone = others.clone();
    everyone.push(creator);
    sqlx::query!(
        "INSERT INTO conversation_members (conversation_id, user_id) SELECT $1, u FROM UNNEST($2::uuid[]) u",
        id,
        &everyone
    )
    .execute(&mut *tx)
    .await?;
    let row = conversation_for(&mut *tx, creator, id).await?;
    let members = members(&mut *tx, id).await?;
    let frame = ServerFrame::ConversationCreated {
        conversation_id: id,
        seq: 1,
        conversation: as_data(&row, &members),
    };
    record(&mut tx, &frame).await?;
    tx.commit().await?;
    deliver(bus, everyone, frame).await;
    Ok((row, true))
}

/// Renames a group conversation.
pub async fn rename(
    db: &PgPool,
    bus: &Bus,
    by: Uuid,
    id: Uuid,
    title: Option<String>,
) -> Result<ConversationRow, ApiError> {
    let mut tx = db.begin().await?;
    let row = lock_for(&mut tx, by, id).await?;
    if row.kind == Kind::Direct {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            "A direct conversation has no title.",
        ));
    }
    let (seq, _) = bump(&mut tx, id, false).await?;
    sqlx::query!(
        "UPDATE conversations SET title = $2 WHERE id = $1",
        id,
        title
    )
    .execute(&mut *tx)
    .await?;
    let frame = ServerFrame::ConversationRenamed {
        conversation_id: id,
        seq,
        title,
        by,
    };
    record(&mut tx, &frame).await?;
    let users = member_ids(&mut tx, id).await?;
    let row = conversation_for(&mut *tx, by, id).await?;
    tx.commit().await?;
    deliver(bus, users, frame).await;
    Ok(row)
}

/// Adds a member to a group conversation (idempotent: an existing member is not re-added).
pub async fn add_member(
    db: &PgPool,
    bus: &Bus,
    by: Uuid,
    id: Uuid,
    user: Uuid,
) -> Result<bool, ApiError> {
    let mut tx = db.begin().await?;
    let row = lock_for(&mut tx, by, id).await?;
    if row.kind == Kind::Direct {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            "A direct conversation has exactly two members; start a group instead.",
        ));
    }
    if is_member(&mut *tx, id, user).await? {
        return Ok(false);
    }
    let exists = crate::accounts::find_active(&mut *tx, user)
        .await?
        .is_some();
    if !exists {
        return Err(ApiError::not_found("User"));
    }
    let count = member_ids(&mut tx, id).await?.len();
    if count >= MAX_MEMBERS {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            format!("A conversation has at most {MAX_MEMBERS} members."),
        ));
    }
    let (seq, _) = bump(&mut tx, id, false).await?;
    sqlx::query!(
        "INSERT INTO conversation_members (conversation_id, user_id, joined_event_seq)
         VALUES ($1, $2, $3)
         ON CONFLICT (conversation_id, user_id)
         DO UPDATE SET left_at = NULL, joined_at = now(), last_read_seq = 0,
                       joined_event_seq = $3, left_event_seq = NULL",
        id,
        user,
        seq
    )
    .execute(&mut *tx)
    .await?;
    let frame = ServerFrame::MemberJoined {
        conversation_id: id,
        seq,
        user: user_ref(&mut tx, user).await?,
        by,
    };
    record(&mut tx, &frame).await?;
    let users = member_ids(&mut tx, id).await?;
    tx.commit().await?;
    deliver(bus, users, frame).await;
    Ok(true)
}

/// Removes a member (or leaves, when `user == by`). The one removed is told too.
pub async fn remove_member(
    db: &PgPool,
    bus: &Bus,
    by: Uuid,
    id: Uuid,
    user: Uuid,
) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let row = lock_for(&mut tx, by, id).await?;
    if row.kind == Kind::Direct {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            "Nobody leaves a direct conversation.",
        ));
    }
    if !is_member(&mut *tx, id, user).await? {
        return Err(ApiError::not_found("Member"));
    }
    let mut users = member_ids(&mut tx, id).await?;
    let (seq, _) = bump(&mut tx, id, false).await?;
    // They see the event that removes them, and nothing after.
    sqlx::query!(
        "UPDATE conversation_members SET left_at = now(), left_event_seq = $3
         WHERE conversation_id = $1 AND user_id = $2",
        id,
        user,
        seq
    )
    .execute(&mut *tx)
    .await?;
    let frame = ServerFrame::MemberLeft {
        conversation_id: id,
        seq,
        user_id: user,
        by,
    };
    record(&mut tx, &frame).await?;
    tx.commit().await?;
    users.sort();
    deliver(bus, users, frame).await;
    Ok(())
}

/// Sends a message. A retry with the same `client_msg_id` answers the first message
/// (`false`), never a twin.
pub async fn send(
    db: &PgPool,
    bus: &Bus,
    author: Uuid,
    id: Uuid,
    body: &str,
    client_msg_id: Option<&str>,
) -> Result<(MessageData, bool), ApiError> {
    let body = parse_body(body).map_err(|e| ApiError::validation(vec![e]))?;
    let client_msg_id = client_msg_id.map(str::trim).filter(|c| !c.is_empty());
    if client_msg_id.is_some_and(|c| c.len() > CLIENT_MSG_ID_MAX) {
        return Err(ApiError::field(
            "client_msg_id",
            "too_long",
            format!("client_msg_id must be at most {CLIENT_MSG_ID_MAX} bytes"),
        ));
    }
    let mut tx = db.begin().await?;
    // The conversation's row lock serialises its changes: these are the last numbers taken.
    let last = sqlx::query!(
        "SELECT last_message_seq, last_event_seq FROM conversations WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(not_found)?;
    // Read once the lock is held, so that a concurrent retry's message is seen.
    let context = sqlx::query!(
        r#"SELECT (SELECT username FROM users WHERE id = $2) AS "author!",
                  ARRAY(SELECT user_id FROM conversation_members
                        WHERE conversation_id = $1 AND left_at IS NULL) AS "members!",
                  (SELECT id FROM messages
                   WHERE conversation_id = $1 AND author_id = $2 AND client_msg_id = $3) AS first"#,
        id,
        author,
        client_msg_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if !context.members.contains(&author) {
        return Err(not_found());
    }
    if let Some(first) = context.first {
        return Ok((message_by_id(&mut *tx, first).await?, false));
    }
    let message = MessageData {
        id: Uuid::new_v4(),
        conversation_id: id,
        seq: last.last_message_seq + 1,
        author: UserRef {
            id: author,
            username: context.author,
        },
        body: Some(body),
        client_msg_id: client_msg_id.map(str::to_owned),
        // Stored with microseconds: the frame says exactly what the history will.
        created_at: Utc::now().trunc_subsecs(6),
        edited_at: None,
        deleted_at: None,
    };
    let frame = ServerFrame::MessageCreated {
        conversation_id: id,
        seq: last.last_event_seq + 1,
        message: message.clone(),
    };
    // One round trip: the numbers, the message, the sender's read marker (they have read
    // what they wrote) and the event log.
    sqlx::query!(
        "WITH bump AS (
             UPDATE conversations
             SET last_message_seq = $3, last_event_seq = $4, last_activity_at = $5
             WHERE id = $1),
         stored AS (
             INSERT INTO messages (id, conversation_id, seq, author_id, body, client_msg_id, created_at)
             VALUES ($6, $1, $3, $2, $7, $8, $5)),
         seen AS (
             UPDATE conversation_members SET last_read_seq = $3
             WHERE conversation_id = $1 AND user_id = $2 AND last_read_seq < $3)
         INSERT INTO conversation_events (conversation_id, seq, frame) VALUES ($1, $4, $9)",
        id,
        author,
        message.seq,
        last.last_event_seq + 1,
        message.created_at,
        message.id,
        message.body,
        client_msg_id,
        serde_json::to_value(&frame).map_err(ApiError::internal)?,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    deliver(bus, context.members, frame).await;
    Ok((message, true))
}

async fn message_by_id(db: impl PgExecutor<'_>, id: Uuid) -> Result<MessageData, ApiError> {
    sqlx::query_as!(
        MessageRow,
        "SELECT m.id, m.conversation_id, m.seq, m.author_id, u.username AS author_username, m.body,
                m.client_msg_id, m.created_at, m.edited_at, m.deleted_at
         FROM messages m JOIN users u ON u.id = m.author_id WHERE m.id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .map(MessageData::from)
    .ok_or_else(|| ApiError::not_found("Message"))
}

/// A message, if `user` is a member of its conversation.
pub async fn message_for(
    db: impl PgExecutor<'_> + Copy,
    user: Uuid,
    id: Uuid,
) -> Result<MessageData, ApiError> {
    let message = message_by_id(db, id).await?;
    if !is_member(db, message.conversation_id, user).await? {
        return Err(ApiError::not_found("Message"));
    }
    Ok(message)
}

/// Members (other than the author) who have read up to the message.
pub async fn read_by(
    db: impl PgExecutor<'_>,
    message: &MessageData,
) -> Result<Vec<UserRef>, ApiError> {
    Ok(sqlx::query!(
        "SELECT m.user_id, u.username FROM conversation_members m JOIN users u ON u.id = m.user_id
         WHERE m.conversation_id = $1 AND m.left_at IS NULL AND m.last_read_seq >= $2 AND m.user_id <> $3
         ORDER BY u.username",
        message.conversation_id,
        message.seq,
        message.author.id
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|r| UserRef {
        id: r.user_id,
        username: r.username,
    })
    .collect())
}

/// Edits (`Some(body)`) or deletes (`None`) a message; only its author may.
pub async fn change_message(
    db: &PgPool,
    bus: &Bus,
    user: Uuid,
    id: Uuid,
    new_body: Option<&str>,
) -> Result<MessageData, ApiError> {
    let body = new_body
        .map(|b| parse_body(b).map_err(|e| ApiError::validation(vec![e])))
        .transpose()?;
    let current = message_for(db, user, id).await?;
    if current.author.id != user {
        return Err(ApiError::forbidden("Only the author can change a message."));
    }
    let mut tx = db.begin().await?;
    lock_for(&mut tx, user, current.conversation_id).await?;
    let current = message_by_id(&mut *tx, id).await?;
    if current.deleted_at.is_some() {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            "This message was deleted.",
        ));
    }
    match &body {
        Some(b) => {
            sqlx::query!(
                "UPDATE messages SET body = $2, edited_at = now() WHERE id = $1",
                id,
                b
            )
            .execute(&mut *tx)
            .await?;
        }
        None => {
            sqlx::query!(
                "UPDATE messages SET body = NULL, deleted_at = now() WHERE id = $1",
                id
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    let (seq, _) = bump(&mut tx, current.conversation_id, false).await?;
    let message = message_by_id(&mut *tx, id).await?;
    let frame = if body.is_some() {
        ServerFrame::MessageEdited {
            conversation_id: message.conversation_id,
            seq,
            message: message.clone(),
        }
    } else {
        ServerFrame::MessageDeleted {
            conversation_id: message.conversation_id,
            seq,
            message: message.clone(),
        }
    };
    record(&mut tx, &frame).await?;
    let users = member_ids(&mut tx, message.conversation_id).await?;
    tx.commit().await?;
    deliver(bus, users, frame).await;
    Ok(message)
}

/// Moves `user`'s read marker forward to message `seq` (never backward); `None` when it
/// did not move.
pub async fn mark_read(
    db: &PgPool,
    bus: &Bus,
    user: Uuid,
    id: Uuid,
    seq: i64,
) -> Result<Option<i64>, ApiError> {
    let mut tx = db.begin().await?;
    let row = lock_for(&mut tx, user, id).await?;
    if seq < 0 || seq > row.last_message_seq {
        return Err(ApiError::field(
            "seq",
            "out_of_range",
            format!("seq must be between 0 and {}", row.last_message_seq),
        ));
    }
    let moved = sqlx::query!(
        "UPDATE conversation_members SET last_read_seq = $3
         WHERE conversation_id = $1 AND user_id = $2 AND last_read_seq < $3",
        id,
        user,
        seq
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        > 0;
    if !moved {
        return Ok(None);
    }
    let (event_seq, _) = bump(&mut tx, id, false).await?;
    let frame = ServerFrame::ReadUpdated {
        conversation_id: id,
        seq: event_seq,
        user_id: user,
        last_read_seq: seq,
    };
    record(&mut tx, &frame).await?;
    let users = member_ids(&mut tx, id).await?;
    tx.commit().await?;
    deliver(bus, users, frame).await;
    Ok(Some(seq))
}

/// History, newest first before `before`, or oldest first after `after`.
pub async fn history(
    db: impl PgExecutor<'_>,
    conversation: Uuid,
    before: Option<i64>,
    after: Option<i64>,
    fetch: i64,
) -> Result<Vec<MessageData>, ApiError> {
    let rows = sqlx::query_as!(
        MessageRow,
        "SELECT m.id, m.conversation_id, m.seq, m.author_id, u.username AS author_username, m.body,
                m.client_msg_id, m.created_at, m.edited_at, m.deleted_at
         FROM messages m JOIN users u ON u.id = m.author_id
         WHERE m.conversation_id = $1
           AND ($2::bigint IS NULL OR m.seq < $2)
           AND ($3::bigint IS NULL OR m.seq > $3)
         ORDER BY CASE WHEN $3::bigint IS NULL THEN -m.seq ELSE m.seq END
         LIMIT $4",
        conversation,
        before,
        after,
        fetch
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(MessageData::from).collect())
}

/// A conversation in the list: with its last message and my unread count.
pub struct Summary {
    pub conversation: ConversationRow,
    pub last_message: Option<MessageData>,
    pub unread: i64,
    pub last_read_seq: i64,
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
    let rows = sqlx::query!(
        r#"SELECT c.id, c.kind AS "kind: Kind", c.title, c.created_by, c.last_message_seq,
                  c.last_event_seq, c.last_activity_at, c.created_at, m.last_read_seq,
                  (SELECT count(*) FROM messages x
                   WHERE x.conversation_id = c.id AND x.seq > m.last_read_seq
                     AND x.author_id <> $1 AND x.deleted_at IS NULL) AS "unread!",
                  (SELECT x.id FROM messages x WHERE x.conversation_id = c.id
                   ORDER BY x.seq DESC LIMIT 1) AS last_message_id
           FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
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
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let last_message = match r.last_message_id {
            Some(id) => Some(message_by_id(db, id).await?),
            None => None,
        };
        out.push(Summary {
            conversation: ConversationRow {
                id: r.id,
                kind: r.kind,
                title: r.title,
                created_by: r.created_by,
                last_message_seq: r.last_message_seq,
                last_event_seq: r.last_event_seq,
                last_activity_at: r.last_activity_at,
                created_at: r.created_at,
            },
            last_message,
            unread: r.unread,
            last_read_seq: r.last_read_seq,
        });
    }
    Ok(out)
}
