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
    deliver_hiding(bus, users, &[], frame).await;
}

/// [`deliver`], and to `withheld` (members who blocked the message's author) a
/// `message.withheld` of the same number instead, in the same bus message.
pub async fn deliver_hiding(bus: &Bus, users: Vec<Uuid>, withheld: &[Uuid], frame: ServerFrame) {
    if users.is_empty() && withheld.is_empty() {
        return;
    }
    let text = match serde_json::to_string(&frame) {
        Ok(t) => t,
        Err(err) => {
            tracing::warn!(error = %err, "cannot serialize a frame");
            return;
        }
    };
    let seq = frame.event_seq();
    let event = seq.map(|(c, seq)| (StreamId::Conversation(c), seq));
    let hidden = seq
        .filter(|_| !withheld.is_empty())
        .map(|(c, seq)| ServerFrame::withheld_text(c, seq))
        .unwrap_or_default();
    let deliveries = [
        Delivery {
            users: &users,
            event,
            text: &text,
        },
        Delivery {
            users: withheld,
            event,
            text: &hidden,
        },
    ];
    hub::publish(bus, &deliveries).await;
}

/// The members of `conversation`: those who see `author`'s messages, and those who blocked
/// `author` (they are told only that the number is taken: `message.withheld`).
async fn members_hiding(
    conn: &mut sqlx::PgConnection,
    conversation: Uuid,
    author: Uuid,
) -> Result<(Vec<Uuid>, Vec<Uuid>), crate::error::ApiError> {
    let rows: Vec<(Uuid, bool)> = sqlx::query_as(
        "SELECT m.user_id, EXISTS (SELECT 1 FROM blocks b
                                   WHERE b.blocker_id = m.user_id AND b.blocked_id = $2)
         FROM conversation_members m WHERE m.conversation_id = $1 AND m.left_at IS NULL",
    )
    .bind(conversation)
    .bind(author)
    .fetch_all(conn)
    .await?;
    let (hiding, seeing): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.1);
    Ok((
        seeing.into_iter().map(|r| r.0).collect(),
        hiding.into_iter().map(|r| r.0).collect(),
    ))
}
