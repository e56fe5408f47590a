//! Notifications: the one place that creates them (and publishes them for live delivery),
//! and their queries.
//!
//! Creation happens inside the caller's transaction, so a notification exists exactly when
//! what it tells of was committed; [`publish`] runs after the commit.

mod delivery;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::{bus::Bus, error::ApiError};

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

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct NotificationRow {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The user's notification number: 1, 2, 3… (read and deleted changes take the next
    /// ones too), what a device's `resume` takes.
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub body: String,
    pub link: Option<String>,
    pub event_id: Option<Uuid>,
    pub read_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A change to a user's notifications, as it crosses the bus and is replayed.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum Change {
    Created(NotificationRow),
    Read {
        user_id: Uuid,
        seq: i64,
        ids: Vec<Uuid>,
        read_at: DateTime<Utc>,
    },
    Deleted {
        user_id: Uuid,
        seq: i64,
        ids: Vec<Uuid>,
    },
}

impl Change {
    pub fn user(&self) -> Uuid {
        match self {
            Self::Created(row) => row.user_id,
            Self::Read { user_id, .. } | Self::Deleted { user_id, .. } => *user_id,
        }
    }

    pub fn seq(&self) -> i64 {
        match self {
            Self::Created(row) => row.seq,
            Self::Read { seq, .. } | Self::Deleted { seq, .. } => *seq,
        }
    }
}

/// The bus topic of announcements to everyone: the batch id, whose rows (however many)
/// each instance reads from PostgreSQL for the users connected there.
pub use delivery::{
    batch_for, changes_after, frame, publish, publish_batch, publish_changes, serve_batches,
};

pub const BATCH_TOPIC: &str = "notification_batch";

/// Creates the same notice for each recipient, each taking the recipient's next number.
/// Recipients' rows are locked in id order, so concurrent creations never deadlock.
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
        r#"WITH locked AS (
               SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE),
           numbered AS (
               UPDATE users u SET last_notification_seq = u.last_notification_seq + 1
               FROM locked WHERE u.id = locked.id
               RETURNING u.id, u.last_notification_seq)
           INSERT INTO notifications (user_id, seq, type, title, body, link, event_id)
           SELECT id, last_notification_seq, $2, $3, $4, $5, $6 FROM numbered
           RETURNING id, user_id, seq, type AS kind, title, body, link, event_id, read_at,
                     created_at"#,
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

/// Creates an announcement for every active account, in one statement; returns its batch
/// (for [`publish_batch`]) and how many were created.
pub async fn announce_to_all(
    conn: &mut PgConnection,
    notice: &Notice,
) -> Result<(Uuid, i64), ApiError> {
    let batch = Uuid::new_v4();
    let created = sqlx::query_scalar!(
        r#"WITH locked AS (
               SELECT id FROM users WHERE deactivated_at IS NULL ORDER BY id FOR NO KEY UPDATE),
           numbered AS (
               UPDATE users u SET last_notification_seq = u.last_notification_seq + 1
               FROM locked WHERE u.id = locked.id
               RETURNING u.id, u.last_notification_seq),
           created AS (
               INSERT INTO notifications (user_id, seq, type, title, body, link, event_id, batch_id)
               SELECT id, last_notification_seq, $1, $2, $3, $4, $5, $6 FROM numbered
               RETURNING 1)
           SELECT count(*) AS "n!" FROM created"#,
        notice.kind.as_str(),
        notice.title,
        notice.body,
        notice.link,
        notice.event_id,
        batch,
    )
    .fetch_one(conn)
    .await?;
    Ok((batch, created))
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
        r#"SELECT id, user_id, seq, type AS kind, title, body, link, event_id, read_at, created_at
           FROM notifications
           WHERE user_id = $1 AND deleted_at IS NULL AND (NOT $2 OR read_at IS NULL)
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
        r#"SELECT id, user_id, seq, type AS kind, title, body, link, event_id, read_at, created_at
           FROM notifications WHERE id = $1 AND user_id = $2 AND deleted_at IS NULL"#,
        id,
        user,
    )
    .fetch_optional(db)
    .await?)
}

pub async fn unread_count(db: impl PgExecutor<'_>, user: Uuid) -> Result<i64, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM notifications
           WHERE user_id = $1 AND read_at IS NULL AND deleted_at IS NULL"#,
        user
    )
    .fetch_one(db)
    .await?)
}

/// Takes the user's next notification number (locking the user's row until commit).
async fn next_number(conn: &mut PgConnection, user: Uuid) -> Result<i64, ApiError> {
    Ok(sqlx::query_scalar!(
        "UPDATE users SET last_notification_seq = last_notification_seq + 1 WHERE id = $1
         RETURNING last_notification_seq",
        user
    )
    .fetch_one(conn)
    .await?)
}

/// Marks one as read (idempotent); `None` if it is not the user's. A change is pushed to
/// the user's devices.
pub async fn mark_read(
    db: &PgPool,
    bus: &Bus,
    user: Uuid,
    id: Uuid,
) -> Result<Option<NotificationRow>, ApiError> {
    // The number first: it locks the user's notifications, so the row read next is not
    // changed by a concurrent read or deletion. Not taken if nothing changes (rollback).
    let mut tx = db.begin().await?;
    let seq = next_number(&mut tx, user).await?;
    let Some(row) = get(&mut *tx, user, id).await? else {
        return Ok(None);
    };
    if row.read_at.is_some() {
        return Ok(Some(row));
    }
    let row = sqlx::query_as!(
        NotificationRow,
        r#"UPDATE notifications SET read_at = now(), changed_seq = $3
           WHERE id = $1 AND user_id = $2
           RETURNING id, user_id, seq, type AS kind, title, body, link, event_id, read_at,
                     created_at"#,
        id,
        user,
        seq,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Some(read_at) = row.read_at {
        let change = Change::Read {
            user_id: user,
            seq,
            ids: vec![id],
            read_at,
        };
        publish_changes(bus, vec![change]).await;
    }
    Ok(Some(row))
}

/// Marks every unread one as read, as one change; how many.
pub async fn mark_all_read(db: &PgPool, bus: &Bus, user: Uuid) -> Result<u64, ApiError> {
    let mut tx = db.begin().await?;
    let seq = next_number(&mut tx, user).await?;
    let read = sqlx::query!(
        r#"UPDATE notifications SET read_at = now(), changed_seq = $2
           WHERE user_id = $1 AND read_at IS NULL AND deleted_at IS NULL
           RETURNING id, read_at AS "read_at!""#,
        user,
        seq,
    )
    .fetch_all(&mut *tx)
    .await?;
    let Some(read_at) = read.first().map(|r| r.read_at) else {
        // Nothing changed: no number taken.
        tx.rollback().await?;
        return Ok(0);
    };
    tx.commit().await?;
    let ids: Vec<Uuid> = read.iter().map(|r| r.id).collect();
    let n = ids.len() as u64;
    let change = Change::Read {
        user_id: user,
        seq,
        ids,
        read_at,
    };
    publish_changes(bus, vec![change]).await;
    Ok(n)
}

/// Deletes one (kept as a tombstone so that devices replay the deletion); `false` if it is
/// not the user's.
pub async fn delete(db: &PgPool, bus: &Bus, user: Uuid, id: Uuid) -> Result<bool, ApiError> {
    let mut tx = db.begin().await?;
    let seq = next_number(&mut tx, user).await?;
    if get(&mut *tx, user, id).await?.is_none() {
        return Ok(false);
    }
    sqlx::query!(
        "UPDATE notifications SET deleted_at = now(), changed_seq = $3
         WHERE id = $1 AND user_id = $2",
        id,
        user,
        seq,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let change = Change::Deleted {
        user_id: user,
        seq,
        ids: vec![id],
    };
    publish_changes(bus, vec![change]).await;
    Ok(true)
}
