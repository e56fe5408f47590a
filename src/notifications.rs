//! Notifications: the one place that creates them (and publishes them for live delivery),
//! and their queries.
//!
//! Creation happens inside the caller's transaction, so a notification exists exactly when
//! what it tells of was committed; [`publish`] runs after the commit.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::{bus::Bus, error::ApiError};

/// The bus topic on which created notifications are announced.
pub const BUS_TOPIC: &str = "notification";

/// What kind of thing happened. Stable strings; clients may switch on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    ParticipationCreated,
    ParticipationWithdrawn,
    ParticipationInstrumentChanged,
    ParticipationAccepted,
    ParticipationDeclined,
    EventUpdated,
    EventCancelled,
    Announcement,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ParticipationCreated => "participation_created",
            Self::ParticipationWithdrawn => "participation_withdrawn",
            Self::ParticipationInstrumentChanged => "participation_instrument_changed",
            Self::ParticipationAccepted => "participation_accepted",
            Self::ParticipationDeclined => "participation_declined",
            Self::EventUpdated => "event_updated",
            Self::EventCancelled => "event_cancelled",
            Self::Announcement => "announcement",
        }
    }
}

/// A notification to create.
#[derive(Debug, Clone)]
pub struct Notice {
    pub kind: Kind,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub event_id: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NotificationRow {
    pub id: Uuid,
    pub user_id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub event_id: Option<Uuid>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// Creates the same notice for each recipient.
pub async fn create(
    conn: &mut PgConnection,
    recipients: &[Uuid],
    notice: &Notice,
) -> Result<Vec<NotificationRow>, ApiError> {
    if recipients.is_empty() {
        return Ok(Vec::new());
    }
    Ok(sqlx::query_as!(
        NotificationRow,
        r#"INSERT INTO notifications (user_id, type, title, body, link, event_id)
           SELECT r, $2, $3, $4, $5, $6 FROM UNNEST($1::uuid[]) r
           RETURNING id, user_id, type AS kind, title, body, link, event_id, read_at, created_at"#,
        recipients,
        notice.kind.as_str(),
        notice.title,
        notice.body,
        notice.link,
        notice.event_id,
    )
    .fetch_all(conn)
    .await?)
}

/// Creates an announcement for every active account.
pub async fn announce_to_all(
    conn: &mut PgConnection,
    notice: &Notice,
) -> Result<Vec<NotificationRow>, ApiError> {
    Ok(sqlx::query_as!(
        NotificationRow,
        r#"INSERT INTO notifications (user_id, type, title, body, link, event_id)
           SELECT id, $1, $2, $3, $4, $5 FROM users WHERE deactivated_at IS NULL
           RETURNING id, user_id, type AS kind, title, body, link, event_id, read_at, created_at"#,
        notice.kind.as_str(),
        notice.title,
        notice.body,
        notice.link,
        notice.event_id,
    )
    .fetch_all(conn)
    .await?)
}

/// Announces committed notifications for live delivery. Delivery may fail: clients catch up
/// from `GET /notifications`.
pub async fn publish(bus: &Bus, rows: &[NotificationRow]) {
    for row in rows {
        match serde_json::to_string(row) {
            Ok(payload) => bus.publish(BUS_TOPIC, &payload).await,
            Err(err) => tracing::warn!(error = %err, "cannot serialize a notification"),
        }
    }
}

pub type Key = (DateTime<Utc>, Uuid);

/// A user's notifications, newest first, after `before` (exclusive).
pub async fn list(
    db: impl PgExecutor<'_>,
    user: Uuid,
    unread_only: bool,
    before: Option<&Key>,
    fetch: i64,
) -> Result<Vec<NotificationRow>, ApiError> {
    Ok(sqlx::query_as!(
        NotificationRow,
        r#"SELECT id, user_id, type AS kind, title, body, link, event_id, read_at, created_at
           FROM notifications
           WHERE user_id = $1 AND (NOT $2 OR read_at IS NULL)
             AND ($3::timestamptz IS NULL OR (created_at, id) < ($3, $4))
           ORDER BY created_at DESC, id DESC
           LIMIT $5"#,
        user,
        unread_only,
        before.map(|b| b.0),
        before.map(|b| b.1),
        fetch,
    )
    .fetch_all(db)
    .await?)
}

pub async fn get(
    db: impl PgExecutor<'_>,
    user: Uuid,
    id: Uuid,
) -> Result<Option<NotificationRow>, ApiError> {
    Ok(sqlx::query_as!(
        NotificationRow,
        r#"SELECT id, user_id, type AS kind, title, body, link, event_id, read_at, created_at
           FROM notifications WHERE id = $1 AND user_id = $2"#,
        id,
        user,
    )
    .fetch_optional(db)
    .await?)
}

pub async fn unread_count(db: impl PgExecutor<'_>, user: Uuid) -> Result<i64, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM notifications WHERE user_id = $1 AND read_at IS NULL"#,
        user
    )
    .fetch_one(db)
    .await?)
}

/// Marks one as read (idempotent); `None` if it is not the user's.
pub async fn mark_read(
    db: impl PgExecutor<'_>,
    user: Uuid,
    id: Uuid,
) -> Result<Option<NotificationRow>, ApiError> {
    Ok(sqlx::query_as!(
        NotificationRow,
        r#"UPDATE notifications SET read_at = COALESCE(read_at, now())
           WHERE id = $1 AND user_id = $2
           RETURNING id, user_id, type AS kind, title, body, link, event_id, read_at, created_at"#,
        id,
        user,
    )
    .fetch_optional(db)
    .await?)
}

pub async fn mark_all_read(db: impl PgExecutor<'_>, user: Uuid) -> Result<u64, ApiError> {
    let done = sqlx::query!(
        "UPDATE notifications SET read_at = now() WHERE user_id = $1 AND read_at IS NULL",
        user
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

pub async fn delete(db: impl PgExecutor<'_>, user: Uuid, id: Uuid) -> Result<bool, ApiError> {
    let done = sqlx::query!(
        "DELETE FROM notifications WHERE id = $1 AND user_id = $2",
        id,
        user
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}
