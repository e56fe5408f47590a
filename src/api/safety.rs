//! `/users/me/blocks…` and `/users/me/privacy`: blocking people and hiding one's presence.
//! Reports are in `reports.rs`.

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
    pagination::{Page, PageRequest},
    responses::Errors,
    timestamp::{Timestamp, example_time},
};
use crate::{
    api::guard::AuthUser,
    chat,
    envelope::Envelope,
    error::ApiError,
    error_set,
    frames::{ServerFrame, UserRef},
    safety::{
        blocks::{self, Blocked},
        presence::{self, Side},
    },
    state::AppState,
};

error_set!(ListErrors: 400, 401, 422, 500, 503);
error_set!(BlockErrors: 400, 401, 404, 422, 500, 503);
error_set!(ReadErrors: 401, 500, 503);
error_set!(PrivacyErrors: 400, 401, 413, 415, 422, 500, 503);

/// Someone I blocked.
#[derive(Debug, Object)]
#[oai(example)]
pub struct BlockView {
    pub user: UserRef,
    pub blocked_at: Timestamp,
}

impl From<Blocked> for BlockView {
    fn from(b: Blocked) -> Self {
        Self {
            user: b.user,
            blocked_at: Timestamp(b.blocked_at),
        }
    }
}

impl Example for BlockView {
    fn example() -> Self {
        Self {
            user: UserRef {
                id: Uuid::from_u128(0x0190_9c1e_7a4b_7c3d_9e2f_1a2b_3c4d_5e70),
                username: "spam_bot".into(),
            },
            blocked_at: Timestamp(example_time()),
        }
    }
}

/// My privacy settings.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Privacy {
    /// Whether people I talk with see me online, offline and when I was last seen. `true` by
    /// default.
    pub share_presence: bool,
}

impl Example for Privacy {
    fn example() -> Self {
        Self {
            share_presence: false,
        }
    }
}

#[derive(ApiResponse)]
pub enum BlockResponse {
    /// Blocked now.
    #[oai(status = 201)]
    Created(Json<Envelope<BlockView>>),
    /// Already blocked.
    #[oai(status = 200)]
    Ok(Json<Envelope<BlockView>>),
}

#[derive(ApiResponse)]
pub enum UnblockResponse {
    /// Unblocked (or was not blocked).
    #[oai(status = 200)]
    Ok(Json<Envelope<UnblockResult>>),
}

/// Whether a block was lifted.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UnblockResult {
    pub user_id: Uuid,
    /// `false` when there was no block to lift.
    pub unblocked: bool,
}

impl Example for UnblockResult {
    fn example() -> Self {
        Self {
            user_id: BlockView::example().user.id,
            unblocked: true,
        }
    }
}

#[derive(ApiResponse)]
pub enum BlockPage {
    /// People I blocked, most recent first.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<BlockView>>>),
}

#[derive(ApiResponse)]
pub enum PrivacyResponse {
    /// My privacy settings.
    #[oai(status = 200)]
    Ok(Json<Envelope<Privacy>>),
}

pub struct SafetyApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Safety")]
impl SafetyApi {
    /// Block someone
    ///
    /// Between the two of you, from now on: no direct conversation is started, and none
    /// you already have carries another message (sends answer 403); neither adds the other
    /// to a group; neither sees the other's presence; neither finds the other in musician
    /// search. They are not told. Blocking again answers 200.
    #[oai(
        path = "/users/me/blocks/:user_id",
        method = "put",
        operation_id = "blocks_put"
    )]
    async fn block(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        user_id: Path<Uuid>,
    ) -> Result<BlockResponse, Errors<BlockErrors>> {
        let (blocked, created) = blocks::block(&state.db, auth.0.id, user_id.0).await?;
        let view = BlockView::from(blocked);
        Ok(if created {
            BlockResponse::Created(Json(Envelope::created("Blocked.", view)))
        } else {
            BlockResponse::Ok(Json(Envelope::ok("Already blocked.", view)))
        })
    }

    /// Unblock someone
    ///
    /// Lifts my block on someone (their own block on me, if any, stays). `unblocked: false`
    /// when there was none.
    #[oai(
        path = "/users/me/blocks/:user_id",
        method = "delete",
        operation_id = "blocks_delete"
    )]
    async fn unblock(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        user_id: Path<Uuid>,
    ) -> Result<UnblockResponse, Errors<BlockErrors>> {
        let unblocked = blocks::unblock(&state.db, auth.0.id, user_id.0).await?;
        Ok(UnblockResponse::Ok(Json(Envelope::ok(
            if unblocked {
                "Unblocked."
            } else {
                "Was not blocked."
            },
            UnblockResult {
                user_id: user_id.0,
                unblocked,
            },
        ))))
    }

    /// People I blocked
    ///
    /// The people I blocked, most recent first. Paged with `cursor`.
    #[oai(
        path = "/users/me/blocks",
        method = "get",
        operation_id = "blocks_list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<BlockPage, Errors<ListErrors>> {
        let page = PageRequest::<blocks::ListKey>::parse(limit.0, cursor.0.as_deref())
            .map_err(ApiError::validation)?;
        let rows = blocks::list(&state.db, auth.0.id, page.after.as_ref(), page.fetch()).await?;
        let (rows, next_cursor) = page.finish(rows, |b| (b.blocked_at, b.user.id));
        let items = rows.into_iter().map(BlockView::from).collect();
        Ok(BlockPage::Ok(Json(Envelope::ok(
            "Blocked people.",
            Page { items, next_cursor },
        ))))
    }

    /// My privacy settings
    ///
    /// My privacy settings: whether people I talk with see my presence.
    #[oai(
        path = "/users/me/privacy",
        method = "get",
        operation_id = "privacy_get"
    )]
    async fn privacy(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
    ) -> Result<PrivacyResponse, Errors<ReadErrors>> {
        let share_presence = presence::shares_presence(&state.db, auth.0.id).await?;
        Ok(PrivacyResponse::Ok(Json(Envelope::ok(
            "Your privacy settings.",
            Privacy { share_presence },
        ))))
    }

    /// Change my privacy settings
    ///
    /// With `share_presence: false`, nobody sees you online, offline or when you were last
    /// seen (those who saw you online are told `offline`, without a time), and you are left
    /// out of others' presence snapshots.
    #[oai(
        path = "/users/me/privacy",
        method = "put",
        operation_id = "privacy_put"
    )]
    async fn set_privacy(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        body: Json<Privacy>,
    ) -> Result<PrivacyResponse, Errors<PrivacyErrors>> {
        let user = auth.0.id;
        let share = body.0.share_presence;
        // Who saw my presence until now: told I am gone, if I stop sharing.
        let audience = if share {
            Vec::new()
        } else {
            presence::presence_contacts(&state.db, user, Side::Audience, 500).await?
        };
        let changed = presence::set_share_presence(&state.db, user, share).await?;
        if changed && !share {
            let frame = ServerFrame::Presence {
                user_id: user,
                status: "offline".into(),
                last_seen_at: None,
            };
            chat::deliver(&state.bus, audience, frame).await;
        }
        Ok(PrivacyResponse::Ok(Json(Envelope::ok(
            "Privacy settings saved.",
            Privacy {
                share_presence: share,
            },
        ))))
    }
}
