//! The parts of the server's frames the chat scenario reads.

use std::borrow::Cow;

use serde::Deserialize;
use uuid::Uuid;

#[derive(Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
}

/// A frame's `type`. Live frames start with it (serde writes the tag first): read it
/// without a second parse. Frames replayed from the event log have their keys in another
/// order.
pub fn kind(text: &str) -> &str {
    if let Some(rest) = text.strip_prefix(r#"{"type":""#) {
        rest.split('"').next().unwrap_or_default()
    } else {
        match serde_json::from_str::<Kind<'_>>(text) {
            Ok(k) => match k.kind {
                Cow::Borrowed(kind) => kind,
                Cow::Owned(_) => "",
            },
            Err(_) => "",
        }
    }
}

#[derive(Deserialize)]
pub struct Created<'a> {
    #[serde(borrow)]
    pub message: CreatedMessage<'a>,
}

#[derive(Deserialize)]
pub struct CreatedMessage<'a> {
    pub conversation_id: Uuid,
    pub seq: i64,
    #[serde(borrow)]
    pub body: Option<Cow<'a, str>>,
}

/// Any conversation frame (its event number), with its message when it has one.
#[derive(Deserialize)]
pub struct Event<'a> {
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
    #[serde(default)]
    pub seq: Option<i64>,
    #[serde(borrow, default)]
    pub message: Option<EventMessage<'a>>,
}

#[derive(Deserialize)]
pub struct EventMessage<'a> {
    pub seq: i64,
    #[serde(borrow, default)]
    pub body: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub client_msg_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub struct Ack<'a> {
    #[serde(rename = "ref", borrow)]
    pub reference: Cow<'a, str>,
    pub message: AckedMessage,
}

#[derive(Deserialize)]
pub struct AckedMessage {
    pub conversation_id: Uuid,
    pub seq: i64,
}

#[derive(Deserialize)]
pub struct Refused<'a> {
    #[serde(rename = "ref", borrow, default)]
    pub reference: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub code: Cow<'a, str>,
    #[serde(default)]
    pub retry_after: Option<u64>,
}

#[derive(Deserialize)]
pub struct Resync {
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
    #[serde(default)]
    pub scope: Option<String>,
}

#[derive(Deserialize)]
pub struct Resumed {
    #[serde(default)]
    pub replayed: u64,
    #[serde(default)]
    pub notifications_seq: Option<i64>,
}

/// `notification.created` (and `.read`, `.deleted`, which take numbers too).
#[derive(Deserialize)]
pub struct Notification {
    #[serde(default)]
    pub seq: Option<i64>,
    #[serde(default)]
    pub notification: Option<NotificationBody>,
}

#[derive(Deserialize)]
pub struct NotificationBody {
    pub id: Uuid,
    #[serde(default)]
    pub seq: Option<i64>,
}
