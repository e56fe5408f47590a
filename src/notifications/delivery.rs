//! Getting notification changes to devices: published once per change after commit,
//! announcements' batches read by each instance for its connected users, and the replay of
//! what a device missed after its last number.

use sqlx::{PgExecutor, PgPool};
use uuid::Uuid;

use super::{BATCH_TOPIC, Change, NotificationRow};
use crate::{
    bus::{Bus, BusEvent},
    error::ApiError,
    frames::{ServerFrame, StreamId},
    hub::{self, Delivery, Hub},
};

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
