//! `/conversations…` and `/messages/{id}`: chat over REST. Every change is also pushed
//! over the socket (see `protocol/`).

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::Example,
};
use uuid::Uuid;

use super::{
    ApiTags,
    events::UserRef,
    pagination::{Page, PageRequest, encode},
    responses::Errors,
};
use crate::{
    auth::AuthUser,
    chat::store::{self, ConversationRow, MemberRow, Summary},
    envelope::{Envelope, Nothing},
    error::ApiError,
    error_set,
    frames::MessageData,
    limits::{Key, Limit},
    state::AppState,
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
    pub created_at: DateTime<Utc>,
    pub edited_at: Option<DateTime<Utc>>,
    pub deleted: bool,
    pub deleted_at: Option<DateTime<Utc>>,
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
            created_at: m.created_at,
            edited_at: m.edited_at,
            deleted: m.deleted_at.is_some(),
            deleted_at: m.deleted_at,
        }
    }
}

fn example_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_default()
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
            created_at: example_time(),
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
    pub joined_at: DateTime<Utc>,
    /// Messages up to this number are read.
    pub last_read_seq: i64,
}

impl From<MemberRow> for MemberView {
    fn from(m: MemberRow) -> Self {
        Self {
            user_id: m.user_id,
            username: m.username,
            joined_at: m.joined_at,
            last_read_seq: m.last_read_seq,
        }
    }
}

impl Example for MemberView {
    fn example() -> Self {
        Self {
            user_id: Uuid::from_u128(0x0190_9c1e_7a4b_7c3d_9e2f_1a2b_3c4d_5e70),
            username: "miles_b".into(),
            joined_at: example_time(),
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
    pub last_message: Option<MessageView>,
    /// Messages from others after my read marker (deleted ones excepted).
    pub unread_count: i64,
    pub last_read_seq: i64,
    pub last_message_seq: i64,
    /// The conversation's latest event number: resume the socket from it.
    pub last_event_seq: i64,
    pub last_activity_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl Example for ConversationView {
    fn example() -> Self {
        Self {
            id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_00c0),
            kind: "group".into(),
            title: Some("Friday jam band".into()),
            last_message: Some(MessageView::example()),
            unread_count: 1,
            last_read_seq: 41,
            last_message_seq: 42,
            last_event_seq: 57,
            last_activity_at: example_time(),
            created_at: example_time(),
        }
    }
}

fn view(
    c: ConversationRow,
    last_message: Option<MessageData>,
    unread: i64,
    last_read_seq: i64,
) -> ConversationView {
    ConversationView {
        id: c.id,
        kind: c.kind.as_str().to_owned(),
        title: c.title,
        last_message: last_message.map(MessageView::from),
        unread_count: unread,
        last_read_seq,
        last_message_seq: c.last_message_seq,
        last_event_seq: c.last_event_seq,
        last_activity_at: c.last_activity_at,
        created_at: c.created_at,
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

#[derive(Debug, Object)]
#[oai(example)]
pub struct Rename {
    /// At most 100 characters; `null` or empty removes it.
    pub title: Option<String>,
}

impl Example for Rename {
    fn example() -> Self {
        Self {
            title: Some("Sunday session".into()),
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
error_set!(WriteErrors: 400, 401, 403, 404, 409, 413, 415, 422, 500, 503);
error_set!(SendErrors: 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503);

pub struct ConversationsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Chat")]
impl ConversationsApi {
    /// Start a conversation
    ///
    /// With one other person and no title: a direct conversation, created once (asking
    /// again answers the existing one with 200). Otherwise a group.
    #[oai(
        path = "/conversations",
        method = "post",
        operation_id = "conversations_create"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        body: Json<NewConversation>,
    ) -> Result<ConversationResponse, Errors<WriteErrors>> {
        let title = store::parse_title(body.0.title.as_deref())
            .map_err(|e| ApiError::validation(vec![e]))?;
        let (row, created) = store::create(
            &state.db,
            &state.bus,
            auth.0.id,
            &body.0.participant_ids,
            title,
        )
        .await?;
        let v = view(row, None, 0, 0);
        Ok(if created {
            ConversationResponse::Created(Json(Envelope::created("Conversation started.", v)))
        } else {
            ConversationResponse::Ok(Json(Envelope::ok("Conversation already exists.", v)))
        })
    }

    /// My conversations
    #[oai(
        path = "/conversations",
        method = "get",
        operation_id = "conversations_list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<ConversationPage, Errors<ListErrors>> {
        let page = PageRequest::<store::ListKey>::parse(limit.0, cursor.0.as_deref())
            .map_err(ApiError::validation)?;
        let rows = store::list(
            &state.db,
            auth.0.id,
            None,
            page.after.as_ref(),
            page.fetch(),
        )
        .await?;
        let (rows, next_cursor) = page.finish(rows, |s| {
            (s.conversation.last_activity_at, s.conversation.id)
        });
        let items = rows
            .into_iter()
            .map(|s: Summary| view(s.conversation, s.last_message, s.unread, s.last_read_seq))
            .collect();
        Ok(ConversationPage::Ok(Json(Envelope::ok(
            "Conversations.",
            Page { items, next_cursor },
        ))))
    }

    /// A conversation
    #[oai(
        path = "/conversations/:id",
        method = "get",
        operation_id = "conversations_get"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<ConversationResponse, Errors<GetErrors>> {
        Ok(ConversationResponse::Ok(Json(Envelope::ok(
            "Conversation.",
            one(&state, auth.0.id, id.0).await?,
        ))))
    }

    /// Rename a group conversation
    #[oai(
        path = "/conversations/:id",
        method = "patch",
        operation_id = "conversations_rename"
    )]
    async fn rename(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        body: Json<Rename>,
    ) -> Result<ConversationResponse, Errors<WriteErrors>> {
        let title = store::parse_title(body.0.title.as_deref())
            .map_err(|e| ApiError::validation(vec![e]))?;
        store::rename(&state.db, &state.bus, auth.0.id, id.0, title).await?;
        Ok(ConversationResponse::Ok(Json(Envelope::ok(
            "Conversation renamed.",
            one(&state, auth.0.id, id.0).await?,
        ))))
    }

    /// Members
    #[oai(
        path = "/conversations/:id/participants",
        method = "get",
        operation_id = "conversations_members"
    )]
    async fn members(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<MembersResponse, Errors<GetErrors>> {
        store::conversation_for(&state.db, auth.0.id, id.0).await?;
        let items = store::members(&state.db, id.0)
            .await?
            .into_iter()
            .map(MemberView::from)
            .collect();
        Ok(MembersResponse::Ok(Json(Envelope::ok(
            "Members.",
            Page {
                items,
                next_cursor: None,
            },
        ))))
    }

    /// Add a member (group conversations)
    #[oai(
        path = "/conversations/:id/participants",
        method = "post",
        operation_id = "conversations_add_member"
    )]
    async fn add_member(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        body: Json<AddMember>,
    ) -> Result<MembersResponse, Errors<WriteErrors>> {
        store::add_member(&state.db, &state.bus, auth.0.id, id.0, body.0.user_id).await?;
        let items = store::members(&state.db, id.0)
            .await?
            .into_iter()
            .map(MemberView::from)
            .collect();
        Ok(MembersResponse::Ok(Json(Envelope::ok(
            "Member added.",
            Page {
                items,
                next_cursor: None,
            },
        ))))
    }

    /// Remove a member, or leave (your own id)
    #[oai(
        path = "/conversations/:id/participants/:user_id",
        method = "delete",
        operation_id = "conversations_remove_member"
    )]
    async fn remove_member(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        user_id: Path<Uuid>,
    ) -> Result<DoneResponse, Errors<WriteErrors>> {
        store::remove_member(&state.db, &state.bus, auth.0.id, id.0, user_id.0).await?;
        let message = if user_id.0 == auth.0.id {
            "You left."
        } else {
            "Member removed."
        };
        Ok(DoneResponse::Ok(Json(Envelope::ok(message, Nothing))))
    }

    /// History
    ///
    /// Newest first; pass `next_cursor` as `cursor` for older messages. With `after` (a
    /// message number), oldest first from there: what arrived since.
    #[oai(
        path = "/conversations/:id/messages",
        method = "get",
        operation_id = "conversations_messages"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn history(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        /// Only messages with a number below this.
        before: Query<Option<i64>>,
        /// Only messages with a number above this, oldest first.
        after: Query<Option<i64>>,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<MessagePage, Errors<GetErrors>> {
        let page = PageRequest::<(Option<i64>, Option<i64>)>::parse(limit.0, cursor.0.as_deref())
            .map_err(ApiError::validation)?;
        let (before, after) = match page.after {
            Some(key) => key,
            None => (before.0, after.0),
        };
        if before.is_some() && after.is_some() {
            return Err(
                ApiError::field("after", "value_error", "use before or after, not both").into(),
            );
        }
        store::conversation_for(&state.db, auth.0.id, id.0).await?;
        let rows = store::history(&state.db, id.0, before, after, page.fetch()).await?;
        let forward = after.is_some();
        let (rows, _) = page.finish(rows, |m| m.seq);
        let next_cursor = (rows.len() == page.limit as usize)
            .then(|| {
                rows.last().map(|m| {
                    if forward {
                        (None, Some(m.seq))
                    } else {
                        (Some(m.seq), None)
                    }
                })
            })
            .flatten()
            .map(|key: (Option<i64>, Option<i64>)| encode(&key));
        let items = rows.into_iter().map(MessageView::from).collect();
        Ok(MessagePage::Ok(Json(Envelope::ok(
            "Messages.",
            Page { items, next_cursor },
        ))))
    }

    /// Send a message
    ///
    /// Pushed to every connected device of every member. A repeated `client_msg_id`
    /// answers the first message (200) instead of sending a twin. Sends are limited per
    /// user, over REST and the socket together (`429`).
    #[oai(
        path = "/conversations/:id/messages",
        method = "post",
        operation_id = "conversations_send"
    )]
    async fn send(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        body: Json<NewMessage>,
    ) -> Result<MessageResponse, Errors<SendErrors>> {
        state
            .limits
            .check(Limit::Messages, Key::user(auth.0.id))
            .await?;
        let (message, created) = store::send(
            &state.db,
            &state.bus,
            auth.0.id,
            id.0,
            &body.0.body,
            body.0.client_msg_id.as_deref(),
        )
        .await?;
        Ok(if created {
            MessageResponse::Created(Json(Envelope::created("Sent.", message.into())))
        } else {
            MessageResponse::Ok(Json(Envelope::ok("Already sent.", message.into())))
        })
    }

    /// Mark read
    #[oai(
        path = "/conversations/:id/read",
        method = "post",
        operation_id = "conversations_read"
    )]
    async fn read(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        body: Json<MarkRead>,
    ) -> Result<ReadResponse, Errors<WriteErrors>> {
        let moved = store::mark_read(&state.db, &state.bus, auth.0.id, id.0, body.0.seq).await?;
        let current = one(&state, auth.0.id, id.0).await?.last_read_seq;
        Ok(ReadResponse::Ok(Json(Envelope::ok(
            "Read marker.",
            ReadMarker {
                last_read_seq: current,
                moved: moved.is_some(),
            },
        ))))
    }

    /// A message, with who has read it
    #[oai(path = "/messages/:id", method = "get", operation_id = "messages_get")]
    async fn message(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<DetailsResponse, Errors<GetErrors>> {
        let message = store::message_for(&state.db, auth.0.id, id.0).await?;
        let read_by = store::read_by(&state.db, &message)
            .await?
            .into_iter()
            .map(|u| UserRef {
                id: u.id,
                username: u.username,
            })
            .collect();
        Ok(DetailsResponse::Ok(Json(Envelope::ok(
            "Message.",
            MessageDetails {
                message: message.into(),
                read_by,
            },
        ))))
    }

    /// Edit my message
    #[oai(
        path = "/messages/:id",
        method = "patch",
        operation_id = "messages_edit"
    )]
    async fn edit(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        body: Json<EditMessage>,
    ) -> Result<MessageResponse, Errors<WriteErrors>> {
        let message =
            store::change_message(&state.db, &state.bus, auth.0.id, id.0, Some(&body.0.body))
                .await?;
        Ok(MessageResponse::Ok(Json(Envelope::ok(
            "Edited.",
            message.into(),
        ))))
    }

    /// Delete my message
    ///
    /// It stays in history as a tombstone (`deleted: true`, `body: null`).
    #[oai(
        path = "/messages/:id",
        method = "delete",
        operation_id = "messages_delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<MessageResponse, Errors<WriteErrors>> {
        let message = store::change_message(&state.db, &state.bus, auth.0.id, id.0, None).await?;
        Ok(MessageResponse::Ok(Json(Envelope::ok(
            "Deleted.",
            message.into(),
        ))))
    }
}

async fn one(state: &AppState, user: Uuid, id: Uuid) -> Result<ConversationView, ApiError> {
    // Only a member's own list holds it; anyone else gets 404.
    store::list(&state.db, user, Some(id), None, 1)
        .await?
        .pop()
        .map(|s| view(s.conversation, s.last_message, s.unread, s.last_read_seq))
        .ok_or_else(|| ApiError::not_found("Conversation"))
}
