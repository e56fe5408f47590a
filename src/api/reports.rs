//! `/reports…`: anyone reports what they can see; administrators work the queue.

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
    choice::Choice,
    pagination::{Page, PageRequest},
    responses::Errors,
    timestamp::{Timestamp, example_time},
};
use crate::{
    api::guard::{AdminUser, AuthUser},
    envelope::Envelope,
    error::ApiError,
    error_set,
    limits::{Key, Limit},
    moderation::{self, Action, Report, Status, Target},
    state::AppState,
};

error_set!(FileErrors: 400, 401, 413, 415, 422, 429, 500, 503);
error_set!(QueueErrors: 400, 401, 403, 422, 500, 503);
error_set!(ResolveErrors: 400, 401, 403, 404, 409, 413, 415, 422, 500, 503);

/// A report.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ReportView {
    pub id: Uuid,
    pub reporter_id: Uuid,
    pub target_type: Target,
    pub target_id: Uuid,
    pub reason: String,
    pub status: Status,
    /// Once resolved: `dismissed`, `user_suspended` or `content_deleted`.
    pub resolution: Option<String>,
    /// The administrator's note, if any.
    pub note: Option<String>,
    pub resolved_by: Option<Uuid>,
    pub resolved_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl From<Report> for ReportView {
    fn from(r: Report) -> Self {
        Self {
            id: r.id,
            reporter_id: r.reporter_id,
            target_type: r.target_type,
            target_id: r.target_id,
            reason: r.reason,
            status: r.status,
            resolution: r.resolution,
            note: r.note,
            resolved_by: r.resolved_by,
            resolved_at: r.resolved_at.map(Timestamp),
            created_at: Timestamp(r.created_at),
        }
    }
}

impl Example for ReportView {
    fn example() -> Self {
        Self {
            id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_0a01),
            reporter_id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_0001),
            target_type: Target::Message,
            target_id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_00d1),
            reason: "Spam links in every group.".into(),
            status: Status::Open,
            resolution: None,
            note: None,
            resolved_by: None,
            resolved_at: None,
            created_at: Timestamp(example_time()),
        }
    }
}

/// What is reported, and why.
#[derive(Debug, Object)]
#[oai(example)]
pub struct NewReport {
    /// `user`, `message`, `event` or `conversation`.
    pub target_type: Choice<Target>,
    /// The id of what is reported: something you can see (a message or a conversation you
    /// are a member of, any event, an active user other than you).
    pub target_id: Uuid,
    /// 1–1,000 characters.
    pub reason: String,
}

impl Example for NewReport {
    fn example() -> Self {
        let r = ReportView::example();
        Self {
            target_type: Choice(Ok(r.target_type)),
            target_id: r.target_id,
            reason: r.reason,
        }
    }
}

/// An administrator's decision.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Resolution {
    /// `dismiss`; `suspend_user` (the user reported, a message's author or an event's
    /// organiser: deactivated, every session ended, sockets closed with 4004);
    /// `delete_content` (a message is deleted, an event cancelled).
    pub action: Choice<Action>,
    /// At most 1,000 characters.
    pub note: Option<String>,
}

impl Example for Resolution {
    fn example() -> Self {
        Self {
            action: Choice(Ok(Action::DeleteContent)),
            note: Some("Spam, removed.".into()),
        }
    }
}

#[derive(ApiResponse)]
pub enum ReportResponse {
    /// Filed.
    #[oai(status = 201)]
    Created(Json<Envelope<ReportView>>),
    /// Your open report on the same thing, already filed; or, for administrators, the report.
    #[oai(status = 200)]
    Ok(Json<Envelope<ReportView>>),
}

#[derive(ApiResponse)]
pub enum ReportPage {
    /// Reports, oldest first.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<ReportView>>>),
}

pub struct ReportsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Safety")]
impl ReportsApi {
    /// Report a user, a message, an event or a conversation
    ///
    /// Goes to the administrators' queue. Reporting the same thing again while your report
    /// is open answers that report (200).
    #[oai(path = "/reports", method = "post", operation_id = "reports_create")]
    async fn file(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        body: Json<NewReport>,
    ) -> Result<ReportResponse, Errors<FileErrors>> {
        state
            .limits
            .check(Limit::Reports, Key::user(auth.0.id))
            .await?;
        let body = body.0;
        let target = body
            .target_type
            .parse("target_type")
            .map_err(|e| ApiError::validation(vec![e]))?;
        let (report, created) =
            moderation::file(&state.db, auth.0.id, target, body.target_id, &body.reason).await?;
        let view = ReportView::from(report);
        Ok(if created {
            ReportResponse::Created(Json(Envelope::created(
                "Reported. An administrator will look at it.",
                view,
            )))
        } else {
            ReportResponse::Ok(Json(Envelope::ok("Already reported.", view)))
        })
    }

    /// The report queue (administrators)
    ///
    /// The reports, oldest first: `open` ones by default, `resolved` or `all`. Administrators
    /// only.
    #[oai(path = "/reports", method = "get", operation_id = "reports_list")]
    async fn queue(
        &self,
        state: Data<&AppState>,
        _admin: AdminUser,
        /// `open` (default) or `resolved`; `all` for both.
        status: Query<Option<String>>,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<ReportPage, Errors<QueueErrors>> {
        let status = match status.0.as_deref() {
            None | Some("open") => Some(Status::Open),
            Some("resolved") => Some(Status::Resolved),
            Some("all") => None,
            Some(other) => {
                return Err(ApiError::field(
                    "status",
                    "invalid",
                    format!("status must be one of: open, resolved, all (got {other})"),
                )
                .into());
            }
        };
        let page = PageRequest::<moderation::ListKey>::parse(limit.0, cursor.0.as_deref())
            .map_err(ApiError::validation)?;
        let rows = moderation::list(&state.db, status, page.after.as_ref(), page.fetch()).await?;
        let (rows, next_cursor) = page.finish(rows, |r| (r.created_at, r.id));
        let items = rows.into_iter().map(ReportView::from).collect();
        Ok(ReportPage::Ok(Json(Envelope::ok(
            "Reports.",
            Page { items, next_cursor },
        ))))
    }

    /// Resolve a report (administrators)
    ///
    /// Every open report on the same target is resolved the same way.
    #[oai(
        path = "/reports/:id/resolve",
        method = "post",
        operation_id = "reports_resolve"
    )]
    async fn resolve(
        &self,
        state: Data<&AppState>,
        admin: AdminUser,
        id: Path<Uuid>,
        body: Json<Resolution>,
    ) -> Result<ReportResponse, Errors<ResolveErrors>> {
        let body = body.0;
        let action = body
            .action
            .parse("action")
            .map_err(|e| ApiError::validation(vec![e]))?;
        let report = moderation::resolve(
            &state.db,
            &state.bus,
            &admin.0,
            id.0,
            action,
            body.note.as_deref(),
        )
        .await?;
        Ok(ReportResponse::Ok(Json(Envelope::ok(
            "Report resolved.",
            ReportView::from(report),
        ))))
    }
}
