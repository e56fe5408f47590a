//! The WebSocket protocol's frames (version 1): what the server sends and what clients
//! send, as two serde enums tagged by `type`. Documented in `protocol/`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const PROTOCOL_VERSION: u32 = 1;
/// Longest `ref` a client may choose (it is echoed back).
pub const MAX_REF_BYTES: usize = 128;

// A user as frames and REST answers name them (no doc comment: it would change the
// OpenAPI document).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, poem_openapi::Object)]
pub struct UserRef {
    pub id: Uuid,
    pub username: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MessageData {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// The message number in its conversation: 1, 2, 3… with no gap.
    pub seq: i64,
    pub author: UserRef,
    /// `null` once deleted.
    pub body: Option<String>,
    pub client_msg_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConversationData {
    pub id: Uuid,
    pub kind: String,
    pub title: Option<String>,
    pub members: Vec<UserRef>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ResyncScope {
    All,
    Conversation,
    Notifications,
}

/// A numbered stream a client follows: a conversation's events, or the user's
/// notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StreamId {
    Conversation(Uuid),
    Notifications,
}

/// Server → client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type")]
pub enum ServerFrame {
    /// First frame of an authenticated session.
    #[serde(rename = "ready")]
    Ready {
        protocol: u32,
        user_id: Uuid,
        session_id: Uuid,
        /// The server pings this often; answer pongs (browsers do it themselves).
        heartbeat_secs: u64,
    },
    /// Answer to `send`: the stored message (the first one, for a retried `client_msg_id`).
    #[serde(rename = "ack")]
    Ack {
        #[serde(rename = "ref")]
        reference: String,
        message: MessageData,
    },
    /// A refused client frame (with its `ref` when it had one) or a session problem.
    #[serde(rename = "error")]
    Error {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
        reference: Option<String>,
        code: String,
        message: String,
        /// With `rate_limited` or `overloaded`: seconds to wait before sending that kind of
        /// frame again (nothing was stored).
        #[serde(skip_serializing_if = "Option::is_none", default)]
        retry_after: Option<u64>,
    },
    #[serde(rename = "message.created")]
    MessageCreated {
        conversation_id: Uuid,
        seq: i64,
        message: MessageData,
    },
    #[serde(rename = "message.edited")]
    MessageEdited {
        conversation_id: Uuid,
        seq: i64,
        message: MessageData,
    },
    #[serde(rename = "message.deleted")]
    MessageDeleted {
        conversation_id: Uuid,
        seq: i64,
        message: MessageData,
    },
    /// Event `seq` of the conversation tells of a message by someone the receiver blocked:
    /// the number is taken, nothing of the message is shown (README, "Security").
    #[serde(rename = "message.withheld")]
    MessageWithheld { conversation_id: Uuid, seq: i64 },
    /// A member's read marker moved forward (to message number `last_read_seq`).
    #[serde(rename = "read.updated")]
    ReadUpdated {
        conversation_id: Uuid,
        seq: i64,
        user_id: Uuid,
        last_read_seq: i64,
    },
    #[serde(rename = "member.joined")]
    MemberJoined {
        conversation_id: Uuid,
        seq: i64,
        user: UserRef,
        by: Uuid,
    },
    #[serde(rename = "member.left")]
    MemberLeft {
        conversation_id: Uuid,
        seq: i64,
        user_id: Uuid,
        by: Uuid,
    },
    /// A member's role in a group changed (`owner`, `admin` or `member`): set by the owner,
    /// or handed on when the owner left (`by` is then the one who left).
    #[serde(rename = "member.role_changed")]
    MemberRoleChanged {
        conversation_id: Uuid,
        seq: i64,
        user_id: Uuid,
        role: String,
        by: Uuid,
    },
    /// The owner changed the group's settings.
    #[serde(rename = "conversation.settings_changed")]
    ConversationSettingsChanged {
        conversation_id: Uuid,
        seq: i64,
        new_members_see_history: bool,
        by: Uuid,
    },
    #[serde(rename = "conversation.created")]
    ConversationCreated {
        conversation_id: Uuid,
        seq: i64,
        conversation: ConversationData,
    },
    #[serde(rename = "conversation.renamed")]
    ConversationRenamed {
        conversation_id: Uuid,
        seq: i64,
        title: Option<String>,
        by: Uuid,
    },
    /// Someone is typing (not stored, not replayed).
    #[serde(rename = "typing")]
    Typing {
        conversation_id: Uuid,
        user_id: Uuid,
    },
    /// Someone you talk with came online or went offline (not stored, not replayed).
    #[serde(rename = "presence")]
    Presence {
        user_id: Uuid,
        status: String,
        last_seen_at: Option<DateTime<Utc>>,
    },
    /// `seq`: the user's notification number (also `notification.seq`).
    #[serde(rename = "notification.created")]
    NotificationCreated {
        seq: i64,
        notification: serde_json::Value,
    },
    /// Notifications were read (on another device, or all at once).
    #[serde(rename = "notification.read")]
    NotificationRead {
        seq: i64,
        notification_ids: Vec<Uuid>,
        read_at: DateTime<Utc>,
    },
    #[serde(rename = "notification.deleted")]
    NotificationDeleted {
        seq: i64,
        notification_ids: Vec<Uuid>,
    },
    /// Events may have been missed. `scope` `all` (`conversation_id` null): the transport
    /// reconnected, send `resume`; `conversation`: too much was missed there to replay,
    /// refetch it over REST; `notifications`: likewise for notifications.
    #[serde(rename = "resync_required")]
    ResyncRequired {
        conversation_id: Option<Uuid>,
        scope: ResyncScope,
        reason: String,
    },
    /// The end of a resume: everything missed has been sent. `notifications_seq` is the
    /// notification number to resume from next time.
    #[serde(rename = "resumed")]
    Resumed {
        replayed: u64,
        notifications_seq: i64,
    },
    #[serde(rename = "pong")]
    Pong {
        #[serde(rename = "ref", skip_serializing_if = "Option::is_none", default)]
        reference: Option<String>,
    },
}

impl ServerFrame {
    /// The conversation event number, for frames stored in the event log.
    pub fn event_seq(&self) -> Option<(Uuid, i64)> {
        match self {
            Self::MessageCreated {
                conversation_id,
                seq,
                ..
            }
            | Self::MessageEdited {
                conversation_id,
                seq,
                ..
            }
            | Self::MessageDeleted {
                conversation_id,
                seq,
                ..
            }
            | Self::MessageWithheld {
                conversation_id,
                seq,
            }
            | Self::ReadUpdated {
                conversation_id,
                seq,
                ..
            }
            | Self::MemberJoined {
                conversation_id,
                seq,
                ..
            }
            | Self::MemberLeft {
                conversation_id,
                seq,
                ..
            }
            | Self::ConversationCreated {
                conversation_id,
                seq,
                ..
            }
            | Self::MemberRoleChanged {
                conversation_id,
                seq,
                ..
            }
            | Self::ConversationSettingsChanged {
                conversation_id,
                seq,
                ..
            }
            | Self::ConversationRenamed {
                conversation_id,
                seq,
                ..
            } => Some((*conversation_id, *seq)),
            _ => None,
        }
    }
}

impl ServerFrame {
    /// The author of the message a frame tells of (created, edited or deleted).
    pub fn message_author(&self) -> Option<Uuid> {
        match self {
            Self::MessageCreated { message, .. }
            | Self::MessageEdited { message, .. }
            | Self::MessageDeleted { message, .. } => Some(message.author.id),
            _ => None,
        }
    }

    /// What a receiver who blocked `message_author` gets instead of this frame, serialised.
    pub fn withheld_text(conversation_id: Uuid, seq: i64) -> String {
        serde_json::to_string(&Self::MessageWithheld {
            conversation_id,
            seq,
        })
        .unwrap_or_default()
    }
}

impl ClientFrame {
    /// The field holding a negative event number, if any (numbers start at 0).
    pub fn negative_number(&self) -> Option<String> {
        match self {
            Self::Resume {
                conversations,
                notifications,
            } => {
                if notifications.is_some_and(|n| n < 0) {
                    return Some("notifications".into());
                }
                conversations
                    .iter()
                    .find(|(_, seq)| **seq < 0)
                    .map(|(id, _)| format!("conversations.{id}"))
            }
            _ => None,
        }
    }

    /// The client-chosen `ref`, when the frame has one.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Self::Send { reference, .. } => Some(reference),
            Self::Ping { reference } => reference.as_deref(),
            _ => None,
        }
    }
}

/// Client → server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientFrame {
    /// Browsers, which cannot set headers: the first frame, within 5 seconds.
    #[serde(rename = "auth")]
    Auth { token: String },
    /// Send a message; answered by `ack` (same `ref`) or `error`.
    #[serde(rename = "send")]
    Send {
        #[serde(rename = "ref")]
        reference: String,
        conversation_id: Uuid,
        body: String,
        #[serde(default)]
        client_msg_id: Option<String>,
    },
    #[serde(rename = "typing")]
    Typing { conversation_id: Uuid },
    /// Mark read up to message number `seq`.
    #[serde(rename = "read")]
    Read { conversation_id: Uuid, seq: i64 },
    #[serde(rename = "ping")]
    Ping {
        #[serde(rename = "ref", default)]
        reference: Option<String>,
    },
    /// After a reconnect, or on `resync_required`: the last event number processed per
    /// conversation (and of notifications). Everything after is replayed in order, then
    /// `resumed`; conversations not listed are replayed from the user's joining (or
    /// `resync_required` when too much was missed).
    #[serde(rename = "resume")]
    Resume {
        conversations: std::collections::HashMap<Uuid, i64>,
        /// The last notification number processed; absent: no notification replayed.
        #[serde(default)]
        notifications: Option<i64>,
    },
}

impl ClientFrame {
    /// Parses one text frame from a client. Any input is answered (never a panic): the
    /// socket replies `invalid_frame` with the error. Fuzzed by `fuzz/` (target
    /// `client_frame`).
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}
