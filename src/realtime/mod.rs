//! Real time: the WebSocket protocol, the hub that fans frames out to connections, and
//! the connections themselves.

pub mod connection;

pub mod hub;
pub mod presence;
pub mod route;
pub mod sync;
pub mod writer;

use crate::{frames::ServerFrame, notifications::Change};

/// The frame that tells a notification change.
pub fn notification_frame(change: &Change) -> ServerFrame {
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
