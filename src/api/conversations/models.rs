//! The shapes of conversations, members and messages in requests and answers, with their
//! examples and the conversions from the chat store's rows.

use crate::api::timestamp::{Timestamp, example_time};
use poem_openapi::{
    ApiResponse, Object,
    payload::Json,
    types::{Example, MaybeUndefined},
};
use uuid::Uuid;

use crate::{
    api::choice::Choice,
    api::pagination::Page,
    chat::store::{MemberRow, Role, Summary},
    envelope::{Envelope, Nothing},
    error_set,
    frames::MessageData,
    frames::UserRef,
};

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct MessageView {
    pub id: Uuid,
    pub conversation_id: Uuid,
    /// Number in the conversation: 1, 2, 3… with no gap.
    pub seq: i64,
    pub author: UserRef,
    /// `null` once deleted (the message stays in history as a tombstone).
    pub body: Option<String>,
    pub client_msg_id: Option<String>,
    pub created_at: Timestamp,
    pub edited_at: Option<Timestamp>,
    pub deleted: bool,
    pub deleted_at: Option<Timestamp>,
}

impl From<MessageData> for MessageView {
    fn from(m: MessageData) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            seq: m.seq,
            author: UserRef {
                id: m.author.id,
                username: m.author.username,
            },
            body: m.body,
            client_msg_id: m.client_msg_id,
            created_at: Timestamp(m.created_at),
            edited_at: m.edited_at.map(Timestamp),
            deleted: m.deleted_at.is_some(),
            deleted_at: m.deleted_at.map(Timestamp),
        }
    }
}

impl Example for MessageView {
    fn example() -> Self {
        Self {
            id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_00c1),
            conversation_id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_00c0),
            seq: 42,
            author: UserRef {
                id: Uuid::from_u128(0x0190_9c1e_7a4b_7c3d_9e2f_1a2b_3c4d_5e6f),
                username: "nina_keys".into(),
            },
            body: Some("Rehearsal moved to 8pm, bring your own stand.".into()),
            client_msg_id: Some("a1b2c3".into()),
            created_at: Timestamp(example_time()),
            edited_at: None,
            deleted: false,
            deleted_at: None,
        }
    }
}

/// A message with who has read it.
#[derive(Debug, Object)]
#[oai(example)]
pub struct MessageDetails {
    #[oai(flatten)]
    pub message: MessageView,
    /// Members, other than the author, whose read marker reached this message.
    pub read_by: Vec<UserRef>,
}

impl Example for MessageDetails {
    fn example() -> Self {
        Self {
            message: MessageView::example(),
            read_by: vec![UserRef {
                id: Uuid::from_u128(0x0190_9c1e_7a4b_7c3d_9e2f_1a2b_3c4d_5e70),
                username: "miles_b".into(),
            }],
        }
    }
}

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct MemberView {
    pub user_id: Uuid,
    pub username: String,
    /// In a group: `owner` (one), `admin` or `member`. In a direct conversation: `member`.
    pub role: Role,
    pub joined_at: Timestamp,
    /// Messages up to this number are read.
    pub last_read_seq: i64,
}

impl From<MemberRow> for MemberView {
    fn from(m: MemberRow) -> Self {
        Self {
            user_id: m.user_id,
            username: m.username,
            role: m.role,
            joined_at: Timestamp(m.joined_at),
            last_read_seq: m.last_read_seq,
        }
    }
}

impl Example for MemberView {
    fn example() -> Self {
        Self {
            user_id: Uuid::from_u128(0x0190_9c1e_7a4b_7c3d_9e2f_1a2b_3c4d_5e70),
            username: "miles_b".into(),
            role: Role::Admin,
            joined_at: Timestamp(example_time()),
            last_read_seq: 41,
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct ConversationView {
    pub id: Uuid,
    /// `direct` (two people, created once) or `group`.
    pub kind: String,
    pub title: Option<String>,
    /// My role here (see `MemberView.role`).
    pub my_role: Role,
    /// Whether members added from now on see the messages from before they joined (set by
    /// the owner; `false` by default: a new member reads from when they joined).
    pub new_members_see_history: bool,
    pub last_message: Option<MessageView>,
    /// Messages from others after my read marker (deleted ones excepted).
    pub unread_count: i64,
    pub last_read_seq: i64,
    pub last_message_seq: i64,
    /// The conversation's latest event number: resume the socket from it.
    pub last_event_seq: i64,
    pub last_activity_at: Timestamp,
    pub created_at: Timestamp,
}

impl Example for ConversationView {
    fn example() -> Self {
        Self {
            id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_00c0),
            kind: "group".into(),
            title: Some("Friday jam band".into()),
            my_role: Role::Owner,
            new_members_see_history: false,
            last_message: Some(MessageView::example()),
            unread_count: 1,
            last_read_seq: 41,
            last_message_seq: 42,
            last_event_seq: 57,
            last_activity_at: Timestamp(example_time()),
            created_at: Timestamp(example_time()),
        }
    }
}

pub(super) fn view(s: Summary) -> ConversationView {
    let Summary {
        conversation: c,
        last_message,
        unread,
        last_read_seq,
        role,
    } = s;
    ConversationView {
        id: c.id,
        kind: c.kind.as_str().to_owned(),
        title: c.title,
        my_role: role,
        new_members_see_history: c.new_members_see_history,
        last_message: last_message.map(MessageView::from),
        unread_count: unread,
        last_read_seq,
        last_message_seq: c.last_message_seq,
        last_event_seq: c.last_event_seq,
        last_activity_at: Timestamp(c.last_activity_at),
        created_at: Timestamp(c.created_at),
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct NewConversation {
    /// The others (you are added). One other person and no title: a direct conversation.
    pub participant_ids: Vec<Uuid>,
    /// At most 100 characters; makes it a group.
    pub title: Option<String>,
}

impl Example for NewConversation {
    fn example() -> Self {
        Self {
            participant_ids: vec![MemberView::example().user_id],
            title: None,
        }
    }
}

/// What to change; what is left out stays.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ConversationChanges {
    /// At most 100 characters; `null` or empty removes it. Any member of a group.
    pub title: MaybeUndefined<String>,
    /// Whether members added from now on see the messages from before they joined. The
    /// group's owner only.
    pub new_members_see_history: Option<bool>,
}

impl Example for ConversationChanges {
    fn example() -> Self {
        Self {
            title: MaybeUndefined::Value("Sunday session".into()),
            new_members_see_history: None,
        }
    }
}

/// A member's new role. `owner` hands the group on (you become an admin).
#[derive(Debug, Object)]
#[oai(example)]
pub struct SetMemberRole {
    pub role: Choice<Role>,
}

impl Example for SetMemberRole {
    fn example() -> Self {
        Self {
            role: Choice(Ok(Role::Admin)),
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct AddMember {
    pub user_id: Uuid,
}

impl Example for AddMember {
    fn example() -> Self {
        Self {
            user_id: MemberView::example().user_id,
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct NewMessage {
    /// 1–4,000 characters.
    pub body: String,
    /// Your idempotency key (≤ 64 bytes): a retry with the same key answers the first
    /// message instead of sending a twin.
    pub client_msg_id: Option<String>,
}

impl Example for NewMessage {
    fn example() -> Self {
        Self {
            body: "See you at 8!".into(),
            client_msg_id: Some("7f3e2a90-1".into()),
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct EditMessage {
    /// 1–4,000 characters.
    pub body: String,
}

impl Example for EditMessage {
    fn example() -> Self {
        Self {
            body: "See you at 8:30!".into(),
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct MarkRead {
    /// Read up to this message number (the marker never moves back).
    pub seq: i64,
}

impl Example for MarkRead {
    fn example() -> Self {
        Self { seq: 42 }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct ReadMarker {
    pub last_read_seq: i64,
    /// Whether this call moved it.
    pub moved: bool,
}

impl Example for ReadMarker {
    fn example() -> Self {
        Self {
            last_read_seq: 42,
            moved: true,
        }
    }
}

#[derive(ApiResponse)]
pub enum ConversationResponse {
    /// Created.
    #[oai(status = 201)]
    Created(Json<Envelope<ConversationView>>),
    /// The conversation (for a direct one that already existed, too).
    #[oai(status = 200)]
    Ok(Json<Envelope<ConversationView>>),
}

#[derive(ApiResponse)]
pub enum ConversationPage {
    /// Most recent activity first.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<ConversationView>>>),
}

#[derive(ApiResponse)]
pub enum MembersResponse {
    /// Members, in order of arrival.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<MemberView>>>),
}

#[derive(ApiResponse)]
pub enum DoneResponse {
    /// Done.
    #[oai(status = 200)]
    Ok(Json<Envelope<Nothing>>),
}

#[derive(ApiResponse)]
pub enum MessageResponse {
    /// Sent.
    #[oai(status = 201)]
    Created(Json<Envelope<MessageView>>),
    /// The message (for a retried `client_msg_id`: the first one, not a twin).
    #[oai(status = 200)]
    Ok(Json<Envelope<MessageView>>),
}

#[derive(ApiResponse)]
pub enum MessagePage {
    /// Newest first (with `before`), or oldest first (with `after`).
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<MessageView>>>),
}

#[derive(ApiResponse)]
pub enum DetailsResponse {
    /// The message and who read it.
    #[oai(status = 200)]
    Ok(Json<Envelope<MessageDetails>>),
}

#[derive(ApiResponse)]
pub enum ReadResponse {
    /// Your read marker.
    #[oai(status = 200)]
    Ok(Json<Envelope<ReadMarker>>),
}

error_set!(ListErrors: 400, 401, 422, 500, 503);
error_set!(GetErrors: 400, 401, 404, 422, 500, 503);
error_set!(WriteErrors: 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503);
error_set!(MarkErrors: 400, 401, 403, 404, 409, 413, 415, 422, 500, 503);
error_set!(SendErrors: 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503);
