//! Notifications: the one place that creates them (and publishes them for live delivery),
//! and their queries.
//!
//! Creation happens inside the caller's transaction, so a notification exists exactly when
//! what it tells of was committed; [`publish`] runs after the commit.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::{
    bus::{Bus, BusEvent},
    error::ApiError,
    frames::{ServerFrame, StreamId},
    hub::{self, Delivery, Hub},
};

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
               SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE),
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
               SELECT id FROM users WHERE deactivated_at IS NULL ORDER BY id FOR UPDATE),
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

/// Announces committed notifications for live delivery, in one bus message. Delivery may
/// fail: devices catch up by number (`resume`).
pub async fn publish(bus: &Bus, rows: &[NotificationRow]) {
    let changes = rows.iter().cloned().map(Change::Created).collect();
    publish_changes(bus, changes).await;
}

pub async fn publish_changes(bus: &Bus, changes: Vec<Change>) {
    let framed: Vec<(Uuid, i64, String)> = changes
        .iter()
        .filter_map(|c| Some((c.user(), c.seq(), serde_json::to_string(&frame(c)).ok()?)))
        .collect();
    let users: Vec<[Uuid; 1]> = framed.iter().map(|f| [f.0]).collect();
    let deliveries: Vec<Delivery<'_>> = framed
        .iter()
        .zip(&users)
        .map(|((_, seq, text), user)| Delivery {
            users: user,
            event: Some((StreamId::Notifications, *seq)),
            text,
        })
        .collect();
    hub::publish(bus, &deliveries).await;
}

/// Announces an announcement's batch: one bus message whatever the number of recipients.
pub async fn publish_batch(bus: &Bus, batch: Uuid) {
    bus.publish(BATCH_TOPIC, &batch.to_string()).await;
}

/// Delivers announcements' batches to the users connected to this instance: one query
/// per batch and instance. Runs until the bus closes.
pub fn serve_batches(bus: &Bus, db: PgPool, hub: Hub) {
    let mut events = bus.subscribe();
    tokio::spawn(async move {
        loop {
            let batch = match events.recv().await {
                Ok(BusEvent::Message { topic, payload }) if &*topic == BATCH_TOPIC => {
                    Uuid::parse_str(&payload).ok()
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => None,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let Some(batch) = batch else { continue };
            let users = hub.local_users();
            if users.is_empty() {
                continue;
            }
            match batch_for(&db, batch, &users).await {
                Ok(rows) => {
                    for row in rows {
                        let (user, seq) = (row.user_id, row.seq);
                        if let Ok(text) = serde_json::to_string(&frame(&Change::Created(row))) {
                            let event = Some((StreamId::Notifications, seq));
                            hub.send_local(&[user], event, &std::sync::Arc::from(text));
                        }
                    }
                }
                // Devices get them by number at their next resume.
                Err(err) => tracing::warn!(error = %err, "cannot read an announcement"),
            }
        }
    });
}

/// The rows of a batch for these users (those connected to this instance).
pub async fn batch_for(
    db: impl PgExecutor<'_>,
    batch: Uuid,
    users: &[Uuid],
) -> Result<Vec<NotificationRow>, ApiError> {
    Ok(sqlx::query_as!(
        NotificationRow,
        r#"SELECT id, user_id, seq, type AS kind, title, body, link, event_id, read_at, created_at
           FROM notifications WHERE batch_id = $1 AND user_id = ANY($2)"#,
        batch,
        users,
    )
    .fetch_all(db)
    .await?)
}

/// What a device missed after number `after`, in order (at most `limit` rows looked at),
/// the user's last number, and whether that was all.
pub async fn changes_after(
    db: impl PgExecutor<'_>,
    user: Uuid,
    after: i64,
    limit: i64,
) -> Result<(Vec<Change>, i64, bool), ApiError> {
    let rows = sqlx::query!(
        r#"SELECT u.last_notification_seq AS "last!", n.id AS "id?", n.seq AS "seq?",
                  n.changed_seq, n.type AS "kind?", n.title AS "title?", n.body AS "body?",
                  n.link, n.event_id, n.read_at, n.created_at AS "created_at?", n.deleted_at
           FROM users u
           LEFT JOIN LATERAL (
               SELECT * FROM notifications
               WHERE user_id = u.id AND (seq > $2 OR changed_seq > $2)
               ORDER BY GREATEST(seq, changed_seq)
               LIMIT $3) n ON true
           WHERE u.id = $1"#,
        user,
        after,
        limit,
    )
    .fetch_all(db)
    .await?;
    let last = rows.first().map_or(after, |r| r.last);
    let complete = (rows.len() as i64) < limit;
    let mut changes: Vec<Change> = Vec::new();
    for r in rows {
        let (Some(id), Some(seq), Some(kind), Some(title), Some(body), Some(created_at)) =
            (r.id, r.seq, r.kind, r.title, r.body, r.created_at)
        else {
            continue;
        };
        if seq > after {
            // Created since: its current state, unless it is already gone.
            if r.deleted_at.is_none() {
                changes.push(Change::Created(NotificationRow {
                    id,
                    user_id: user,
                    seq,
                    kind,
                    title,
                    body,
                    link: r.link,
                    event_id: r.event_id,
                    read_at: r.read_at,
                    created_at,
                }));
            }
            continue;
        }
        let Some(changed) = r.changed_seq else {
            continue;
        };
        // One change may have touched several rows (mark all read): one frame.
        let merged = match changes.last_mut() {
            Some(Change::Read { seq, ids, .. }) if *seq == changed && r.deleted_at.is_none() => {
                ids.push(id);
                true
            }
            Some(Change::Deleted { seq, ids, .. }) if *seq == changed && r.deleted_at.is_some() => {
                ids.push(id);
                true
            }
            _ => false,
        };
        if merged {
            continue;
        }
        match (r.deleted_at, r.read_at) {
            (Some(_), _) => changes.push(Change::Deleted {
                user_id: user,
                seq: changed,
                ids: vec![id],
            }),
            (None, Some(read_at)) => changes.push(Change::Read {
                user_id: user,
                seq: changed,
                ids: vec![id],
                read_at,
            }),
            (None, None) => {}
        }
    }
    changes.sort_by_key(Change::seq);
    Ok((changes, last, complete))
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

/// The frame that tells a notification change.
pub fn frame(change: &Change) -> ServerFrame {
    match change {
        Change::Created(row) => ServerFrame::NotificationCreated {
            seq: row.seq,
            notification: serde_json::to_value(row).unwrap_or_default(),
        },
        Change::Read {
            seq, ids, read_at, ..
        } => ServerFrame::NotificationRead {
            seq: *seq,
            notification_ids: ids.clone(),
            read_at: *read_at,
        },
        Change::Deleted { seq, ids, .. } => ServerFrame::NotificationDeleted {
            seq: *seq,
            notification_ids: ids.clone(),
        },
    }
}
