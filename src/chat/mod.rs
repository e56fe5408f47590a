//! Conversations and messages: the rules, shared by the REST API and the socket.
//!
//! Every change to a conversation takes the next event number under the conversation's row
//! lock, is stored as the frame that tells it (`conversation_events`), and after commit is
//! published for live delivery to the members' devices. PostgreSQL is the truth: a client
//! that missed a live frame gets it again by resuming from its last event number.

mod batch;
pub mod bulk;
pub mod commands;
pub mod log;
pub mod membership;
mod pages;
pub mod sender;
pub mod store;

pub use sender::Sender;

use uuid::Uuid;

use crate::{
    bus::Bus,
    frames::{ServerFrame, StreamId},
    hub::{self, Delivery},
};

/// Publishes a committed frame to `users` (every device of each, on every instance),
/// serialised once here.
pub async fn deliver(bus: &Bus, users: Vec<Uuid>, frame: ServerFrame) {
    if users.is_empty() {
        return;
    }
    let text = match serde_json::to_string(&frame) {
        Ok(t) => t,
        Err(err) => {
            tracing::warn!(error = %err, "cannot serialize a frame");
            return;
        }
    };
    let event = frame
        .event_seq()
        .map(|(c, seq)| (StreamId::Conversation(c), seq));
    let delivery = Delivery {
        users: &users,
        event,
        text: &text,
    };
    hub::publish(bus, &[delivery]).await;
}
