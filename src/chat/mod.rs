//! Conversations and messages: the rules, shared by the REST API and the socket.
//!
//! Every change to a conversation takes the next event number under the conversation's row
//! lock, is stored as the frame that tells it (`conversation_events`), and after commit is
//! published for live delivery to the members' devices. PostgreSQL is the truth: a client
//! that missed a live frame gets it again by resuming from its last event number.

pub mod log;
pub mod store;

use serde::Serialize;
use uuid::Uuid;

use crate::{bus::Bus, frames::ServerFrame};

/// Bus topic for frames to deliver to users' connected devices.
pub const DELIVER_TOPIC: &str = "deliver";

#[derive(Serialize, serde::Deserialize)]
pub struct Delivery {
    pub users: Vec<Uuid>,
    pub frame: ServerFrame,
    /// When it was published (Unix microseconds), for the fan-out lag metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at_us: Option<i64>,
}

/// Publishes a committed frame to `users` (every device of each, on every instance).
pub async fn deliver(bus: &Bus, users: Vec<Uuid>, frame: ServerFrame) {
    if users.is_empty() {
        return;
    }
    let sent_at_us = Some(chrono::Utc::now().timestamp_micros());
    match serde_json::to_string(&Delivery {
        users,
        frame,
        sent_at_us,
    }) {
        Ok(payload) => bus.publish(DELIVER_TOPIC, &payload).await,
        Err(err) => tracing::warn!(error = %err, "cannot serialize a frame"),
    }
}
