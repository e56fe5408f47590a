//! `/conversations…` and `/messages/{id}`: chat over REST. Every change is also pushed
//! over the socket (see `protocol/`).

mod models;

use poem::web::Data;
use poem_openapi::{
    OpenApi,
    param::{Path, Query},
    payload::Json,
};
use uuid::Uuid;

pub use self::models::*;
use super::{
    ApiTags,
    pagination::{Page, PageRequest, encode},
    responses::Errors,
};
use crate::{
    api::guard::AuthUser,
    chat::store,
    envelope::{Envelope, Nothing},
    error::ApiError,
    frames::UserRef,
    limits::{Key, Limit},
    state::AppState,
};

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
        // Starting a conversation tells everyone in it: a write that fans out.
        state
            .limits
            .check(Limit::Changes, Key::user(auth.0.id))
            .await?;
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
        let v = one(&state, auth.0.id, row.id).await?;
        Ok(if created {
            ConversationResponse::Created(Json(Envelope::created("Conversation started.", v)))
        } else {
            ConversationResponse::Ok(Json(Envelope::ok("Conversation already exists.", v)))
        })
    }

    /// My conversations
    ///
    /// Conversations I am a member of, most recent activity first, each with its last message
    /// (one I may see) and my unread count. Paged with `cursor`.
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
        let items = rows.into_iter().map(view).collect();
        Ok(ConversationPage::Ok(Json(Envelope::ok(
            "Conversations.",
            Page { items, next_cursor },
        ))))
    }

    /// A conversation
    ///
    /// One conversation of mine, as in the list: last message, unread count, my role and the
    /// event number to resume the socket from. Non-members get 404.
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

    /// Rename a group, or change its settings
    ///
    /// Any member renames a group; only its owner changes `new_members_see_history`. Each
    /// change is told to the members (`conversation.renamed`,
    /// `conversation.settings_changed`).
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
        body: Json<ConversationChanges>,
    ) -> Result<ConversationResponse, Errors<WriteErrors>> {
        super::costs::fan_out(&state, auth.0.id, id.0).await?;
        let changes = body.0;
        if !changes.title.is_undefined() {
            let title = store::parse_title(changes.title.as_opt_deref().flatten())
                .map_err(|e| ApiError::validation(vec![e]))?;
            store::rename(&state.db, &state.bus, auth.0.id, id.0, title).await?;
        }
        if let Some(visible) = changes.new_members_see_history {
            store::share_history(&state.db, &state.bus, auth.0.id, id.0, visible).await?;
        }
        Ok(ConversationResponse::Ok(Json(Envelope::ok(
            "Conversation updated.",
            one(&state, auth.0.id, id.0).await?,
        ))))
    }

    /// Members
    ///
    /// The current members, each with their role (`owner`, `admin`, `member`), when they joined
    /// and their read marker.
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
        Ok(member_page(&state, id.0, "Members.").await?)
    }

    /// Add a member (group owner or admins)
    ///
    /// Adds someone to a group; the owner and admins only (403 otherwise), never across a
    /// block. They read the messages from now on unless the owner shares the history. Adding a
    /// member again changes nothing. Members are told (`member.joined`).
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
        super::costs::fan_out(&state, auth.0.id, id.0).await?;
        store::add_member(&state.db, &state.bus, auth.0.id, id.0, body.0.user_id).await?;
        Ok(member_page(&state, id.0, "Member added.").await?)
    }

    /// Remove a member, or leave (your own id)
    ///
    /// The owner removes admins and members, an admin removes members; anyone leaves. When
    /// the owner leaves, the longest-standing admin (or else member) becomes the owner.
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
        super::costs::fan_out(&state, auth.0.id, id.0).await?;
        store::remove_member(&state.db, &state.bus, auth.0.id, id.0, user_id.0).await?;
        let message = if user_id.0 == auth.0.id {
            "You left."
        } else {
            "Member removed."
        };
        Ok(DoneResponse::Ok(Json(Envelope::ok(message, Nothing))))
    }

    /// Change a member's role (group owner)
    ///
    /// `admin` lets them add and remove members; `member` takes that back; `owner` hands
    /// the group on (you become an admin). Told to the members as `member.role_changed`.
    #[oai(
        path = "/conversations/:id/participants/:user_id",
        method = "patch",
        operation_id = "conversations_set_role"
    )]
    async fn set_role(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        user_id: Path<Uuid>,
        body: Json<SetMemberRole>,
    ) -> Result<MembersResponse, Errors<WriteErrors>> {
        super::costs::fan_out(&state, auth.0.id, id.0).await?;
        let role = body
            .0
            .role
            .parse("role")
            .map_err(|e| ApiError::validation(vec![e]))?;
        store::set_role(&state.db, &state.bus, auth.0.id, id.0, user_id.0, role).await?;
        Ok(member_page(&state, id.0, "Role changed.").await?)
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
        let rows = store::history(&state.db, auth.0.id, id.0, before, after, page.fetch())
            .await?
            .ok_or_else(|| ApiError::not_found("Conversation"))?;
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
        let (message, created) = state
            .sends
            .send(
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
    ///
    /// Moves my read marker forward to message number `seq` (never backward): `moved` says
    /// whether it did. The members are told (`read.updated`).
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
    ) -> Result<ReadResponse, Errors<MarkErrors>> {
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
    ///
    /// A message of a conversation I am a member of (and may see: from when I joined, unless
    /// the history is shared), with who has read it.
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
    ///
    /// Changes the text of my own message; the members are told (`message.edited`). A deleted
    /// message cannot be edited (409).
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
        super::costs::fan_out(&state, auth.0.id, id.0).await?;
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
        super::costs::fan_out(&state, auth.0.id, id.0).await?;
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
        .map(view)
        .ok_or_else(|| ApiError::not_found("Conversation"))
}

async fn member_page(
    state: &AppState,
    id: Uuid,
    message: &'static str,
) -> Result<MembersResponse, ApiError> {
    let items = store::members(&state.db, id)
        .await?
        .into_iter()
        .map(MemberView::from)
        .collect();
    Ok(MembersResponse::Ok(Json(Envelope::ok(
        message,
        Page {
            items,
            next_cursor: None,
        },
    ))))
}
