//! Chat: the rows, the reads and the helpers that writes share. The writes themselves
//! (each a transaction that takes the next event number, records the frame and publishes
//! it after commit) are in `commands.rs`.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::{
    envelope::FieldError,
    error::ApiError,
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

/// A member's role in a group: the owner (one), admins the owner names, members. In a
/// direct conversation everyone is a `Member`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    poem_openapi::Enum,
    sqlx::Type,
    serde::Serialize,
)]
#[sqlx(type_name = "member_role", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename = "MemberRole", rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    /// Owners and admins add and remove members.
    pub fn manages_members(self) -> bool {
        matches!(self, Self::Owner | Self::Admin)
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
    /// Set by the owner: members added later see the messages from before they joined.
    pub new_members_see_history: bool,
}

#[derive(Debug, Clone)]
pub struct MemberRow {
    pub user_id: Uuid,
    pub username: String,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
    pub last_read_seq: i64,
}

pub(super) struct MessageRow {
    pub(super) id: Uuid,
    pub(super) conversation_id: Uuid,
    pub(super) seq: i64,
    pub(super) author_id: Uuid,
    pub(super) author_username: String,
    pub(super) body: Option<String>,
    pub(super) client_msg_id: Option<String>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) edited_at: Option<DateTime<Utc>>,
    pub(super) deleted_at: Option<DateTime<Utc>>,
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

pub(super) fn not_found() -> ApiError {
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
                  c.last_event_seq, c.last_activity_at, c.created_at, c.new_members_see_history
           FROM conversations c JOIN conversation_members m ON m.conversation_id = c.id
           WHERE c.id = $1 AND m.user_id = $2 AND m.left_at IS NULL"#,
        id,
        user
    )
    .fetch_optional(db)
    .await?
    .ok_or_else(not_found)
}

/// A conversation between its creator and one other person, with no title, is direct
/// (one per pair); anything else is a group.
pub fn is_direct(others: usize, title: Option<&str>) -> bool {
    others == 1 && title.is_none()
}

/// The key that makes a pair's direct conversation unique: both ids in order.
pub fn direct_key(a: Uuid, b: Uuid) -> String {
    let (a, b) = if a < b { (a, b) } else { (b, a) };
    format!("{a}:{b}")
}

/// Locks the conversation row (serialising its changes) and checks membership.
pub(super) async fn lock_for(
    conn: &mut PgConnection,
    user: Uuid,
    id: Uuid,
) -> Result<ConversationRow, ApiError> {
    Ok(lock_as(conn, user, id).await?.0)
}

/// [`lock_for`], with `user`'s role.
pub(super) async fn lock_as(
    conn: &mut PgConnection,
    user: Uuid,
    id: Uuid,
) -> Result<(ConversationRow, Role), ApiError> {
    let row = lock_row(&mut *conn, id).await?;
    let role = role_of(&mut *conn, id, user).await?.ok_or_else(not_found)?;
    Ok((row, role))
}

/// Locks the conversation row, whoever asks (moderation).
pub(super) async fn lock_row(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<ConversationRow, ApiError> {
    sqlx::query_as!(
        ConversationRow,
        r#"SELECT id, kind AS "kind: Kind", title, created_by, last_message_seq, last_event_seq,
                  last_activity_at, created_at, new_members_see_history
           FROM conversations WHERE id = $1 FOR NO KEY UPDATE"#,
        id
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(not_found)
}

/// `user`'s role, if a member.
pub(super) async fn role_of(
    db: impl PgExecutor<'_>,
    conversation: Uuid,
    user: Uuid,
) -> Result<Option<Role>, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT role AS "role: Role" FROM conversation_members
           WHERE conversation_id = $1 AND user_id = $2 AND left_at IS NULL"#,
        conversation,
        user
    )
    .fetch_optional(db)
    .await?)
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
        r#"SELECT m.user_id, u.username, m.role AS "role: Role", m.joined_at, m.last_read_seq
           FROM conversation_members m JOIN users u ON u.id = m.user_id
           WHERE m.conversation_id = $1 AND m.left_at IS NULL
           ORDER BY m.joined_at, m.user_id"#,
        conversation
    )
    .fetch_all(db)
    .await?)
}

pub(super) async fn member_ids(
    conn: &mut PgConnection,
    conversation: Uuid,
) -> Result<Vec<Uuid>, ApiError> {
    Ok(sqlx::query_scalar!(
        "SELECT user_id FROM conversation_members WHERE conversation_id = $1 AND left_at IS NULL",
        conversation
    )
    .fetch_all(conn)
    .await?)
}

/// Takes the next event number (and the next message number when `message`).
pub(super) async fn bump(
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
pub(super) async fn record(conn: &mut PgConnection, frame: &ServerFrame) -> Result<(), ApiError> {
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

/// Records `frame` as the conversation's next event, commits `tx`, and tells every member's
/// devices.
pub(super) async fn commit_and_tell(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    bus: &crate::bus::Bus,
    frame: ServerFrame,
) -> Result<(), ApiError> {
    let Some((conversation, _)) = frame.event_seq() else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "frame without an event number"
        )));
    };
    record(&mut tx, &frame).await?;
    let (users, withheld) = match frame.message_author() {
        Some(author) => super::members_hiding(&mut tx, conversation, author).await?,
        None => (member_ids(&mut tx, conversation).await?, Vec::new()),
    };
    tx.commit().await?;
    super::deliver_hiding(bus, users, &withheld, frame).await;
    Ok(())
}

pub(super) async fn user_ref(conn: &mut PgConnection, id: Uuid) -> Result<UserRef, ApiError> {
    let username = sqlx::query_scalar!("SELECT username FROM users WHERE id = $1", id)
        .fetch_one(conn)
        .await?;
    Ok(UserRef { id, username })
}

pub(super) fn as_data(c: &ConversationRow, members: &[MemberRow]) -> ConversationData {
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

/// Parses a title: one line of at most 100 characters; blank means none.
pub fn parse_title(raw: Option<&str>) -> Result<Option<String>, FieldError> {
    match raw {
        None => Ok(None),
        Some(t) => crate::domain::ProfileText::line("title", t, TITLE_MAX),
    }
}

pub fn parse_body(raw: &str) -> Result<String, FieldError> {
    let body = raw.trim();
    if crate::domain::is_blank(body) {
        return Err(FieldError::new(
            "body",
            "missing",
            "body must show something: it is empty or only invisible characters",
        ));
    }
    if body.contains('\0') {
        return Err(FieldError::new(
            "body",
            "invalid_characters",
            "body must not contain NUL (\\u0000) characters",
        ));
    }
    // Counted as sent, surrounding spaces included (the document's `maxLength`).
    if raw.chars().count() > BODY_MAX {
        return Err(FieldError::new(
            "body",
            "too_long",
            format!("body must be at most {BODY_MAX} characters"),
        ));
    }
    Ok(body.to_owned())
}

pub(super) async fn message_by_id(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<MessageData, ApiError> {
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

/// The stored messages with these (conversation, author, `client_msg_id`) keys, in one
/// round trip.
pub(super) async fn message_rows_for_keys(
    db: impl PgExecutor<'_>,
    keys: &[(Uuid, Uuid, &str)],
) -> Result<Vec<MessageData>, ApiError> {
    let (conversations, authors, client_ids): (Vec<Uuid>, Vec<Uuid>, Vec<&str>) =
        keys.iter().fold(Default::default(), |mut acc, (c, a, k)| {
            acc.0.push(*c);
            acc.1.push(*a);
            acc.2.push(*k);
            acc
        });
    let rows = sqlx::query_as!(
        MessageRow,
        r#"SELECT m.id, m.conversation_id, m.seq, m.author_id, u.username AS author_username,
                  m.body, m.client_msg_id, m.created_at, m.edited_at, m.deleted_at
           FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS k(c, a, cm)
           JOIN messages m ON m.conversation_id = k.c AND m.author_id = k.a AND m.client_msg_id = k.cm
           JOIN users u ON u.id = m.author_id"#,
        &conversations,
        &authors,
        &client_ids as &[&str]
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(MessageData::from).collect())
}

/// A message, if `user` is a member of its conversation who may see it (a member added to
/// a group sees the messages from when they joined, unless the owner shares history; no
/// one sees what someone they blocked wrote after the block).
pub async fn message_for(
    db: impl PgExecutor<'_> + Copy,
    user: Uuid,
    id: Uuid,
) -> Result<MessageData, ApiError> {
    let message = message_by_id(db, id).await?;
    // Nor one written by someone after `user` blocked them, while the block stands.
    let from = sqlx::query_scalar!(
        "SELECT history_from_seq FROM conversation_members
         WHERE conversation_id = $1 AND user_id = $2 AND left_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $2 AND blocked_id = $3
                           AND created_at <= $4)",
        message.conversation_id,
        user,
        message.author.id,
        message.created_at
    )
    .fetch_optional(db)
    .await?;
    match from {
        Some(from) if message.seq > from => Ok(message),
        _ => Err(ApiError::not_found("Message")),
    }
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

pub use super::commands::{change_message, create, mark_read, remove_message, rename};
pub use super::membership::{add_member, remove_member, set_role, share_history};
pub use super::pages::{ListKey, Summary, history, list};
