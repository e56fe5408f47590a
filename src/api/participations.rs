//! `/participations/{id}` and `/users/me/participations`: changing, withdrawing, listing.

use crate::api::timestamp::Timestamp;
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
    choice::{Choice, Choices},
    pagination::{Page, PageRequest},
    responses::Errors,
};
use crate::{
    api::guard::AuthUser,
    auth::Role,
    envelope::{Envelope, FieldError},
    error::ApiError,
    error_set,
    events::participations::{self, Change, ParticipationRow, ParticipationStatus},
    frames::UserRef,
    state::AppState,
};

impl Choices for ParticipationStatus {
    const NAMES: &'static str = "accepted, declined";
}

#[derive(Debug, Clone, Object)]
#[oai(example)]
pub struct ParticipationView {
    pub id: Uuid,
    pub event_id: Uuid,
    pub user: UserRef,
    pub instrument_id: Uuid,
    pub instrument_name: String,
    pub status: ParticipationStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<ParticipationRow> for ParticipationView {
    fn from(p: ParticipationRow) -> Self {
        Self {
            id: p.id,
            event_id: p.event_id,
            user: UserRef {
                id: p.user_id,
                username: p.username,
            },
            instrument_id: p.instrument_id,
            instrument_name: p.instrument_name,
            status: p.status,
            created_at: Timestamp(p.created_at),
            updated_at: Timestamp(p.updated_at),
        }
    }
}

impl Example for ParticipationView {
    fn example() -> Self {
        let at = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        Self {
            id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_00a1),
            event_id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_00e1),
            user: UserRef {
                id: Uuid::from_u128(0x0190_9c1e_7a4b_7c3d_9e2f_1a2b_3c4d_5e70),
                username: "miles_b".into(),
            },
            instrument_id: Uuid::from_u128(0x0190_9c1e_0000_7000_8000_0000_0000_0001),
            instrument_name: "Double Bass".into(),
            status: ParticipationStatus::Pending,
            created_at: Timestamp(at),
            updated_at: Timestamp(at),
        }
    }
}

/// The participant sends `instrument_id`; the organiser sends `status`. Not both.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ParticipationChange {
    /// Another instrument (participant only); an accepted participation goes back to pending.
    pub instrument_id: Option<Uuid>,
    /// `accepted` or `declined` (organiser only).
    pub status: Option<Choice<ParticipationStatus>>,
}

impl Example for ParticipationChange {
    fn example() -> Self {
        Self {
            instrument_id: None,
            status: Some(Choice(Ok(ParticipationStatus::Accepted))),
        }
    }
}

#[derive(ApiResponse)]
pub enum ParticipationResponse {
    /// The participation as it now stands.
    #[oai(status = 200)]
    Ok(Json<Envelope<ParticipationView>>),
}

#[derive(ApiResponse)]
pub enum MyParticipations {
    /// My participations, newest first.
    #[oai(status = 200)]
    Ok(Json<Envelope<Page<ParticipationView>>>),
}

error_set!(ListErrors: 400, 401, 422, 500, 503);
error_set!(ChangeErrors: 400, 401, 403, 404, 409, 413, 415, 422, 429, 500, 503);
error_set!(WithdrawErrors: 400, 401, 404, 409, 422, 429, 500, 503);

pub struct ParticipationsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Events")]
impl ParticipationsApi {
    /// My participations
    ///
    /// The events I take part in (or asked to), with each participation's status and
    /// instrument. Paged with `cursor`.
    #[oai(
        path = "/users/me/participations",
        method = "get",
        operation_id = "participations_mine"
    )]
    async fn mine(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        /// 1–100, default 20.
        limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> Result<MyParticipations, Errors<ListErrors>> {
        let page = PageRequest::<participations::Key>::parse(limit.0, cursor.0.as_deref())
            .map_err(ApiError::validation)?;
        let rows = participations::of_user(&state.db, auth.0.id, page.after.as_ref(), page.fetch())
            .await?;
        let (rows, next_cursor) = page.finish(rows, |p| (p.created_at, p.id));
        let items = rows.into_iter().map(ParticipationView::from).collect();
        Ok(MyParticipations::Ok(Json(Envelope::ok(
            "Your participations.",
            Page { items, next_cursor },
        ))))
    }

    /// Change a participation
    ///
    /// The participant changes instrument (the organiser is notified); the organiser
    /// accepts or declines (the participant is notified). Allowed: `pending → accepted`,
    /// `pending → declined`, `accepted → declined`; anything else is `409
    /// invalid_transition`.
    #[oai(
        path = "/participations/:id",
        method = "patch",
        operation_id = "participations_update"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
        body: Json<ParticipationChange>,
    ) -> Result<ParticipationResponse, Errors<ChangeErrors>> {
        super::costs::fan_out(&state, auth.0.id, id.0).await?;
        let change = match (body.0.instrument_id, body.0.status) {
            (Some(instrument), None) => Change::Instrument(instrument),
            (None, Some(status)) => {
                let status = status
                    .parse("status")
                    .map_err(|e| ApiError::validation(vec![e]))?;
                if !matches!(
                    status,
                    ParticipationStatus::Accepted | ParticipationStatus::Declined
                ) {
                    return Err(ApiError::validation(vec![FieldError::new(
                        "status",
                        "invalid",
                        "status must be accepted or declined (to withdraw, use DELETE)",
                    )])
                    .into());
                }
                Change::Status(status)
            }
            _ => {
                return Err(ApiError::validation(vec![FieldError::new(
                    "body",
                    "value_error",
                    "send either instrument_id or status",
                )])
                .into());
            }
        };
        let row = participations::change(
            &state.db,
            &state.bus,
            auth.0.id,
            auth.0.role == Role::Admin,
            id.0,
            change,
        )
        .await?;
        Ok(ParticipationResponse::Ok(Json(Envelope::ok(
            "Participation updated.",
            row.into(),
        ))))
    }

    /// Withdraw
    ///
    /// The participant withdraws; the organiser is notified.
    #[oai(
        path = "/participations/:id",
        method = "delete",
        operation_id = "participations_withdraw"
    )]
    async fn withdraw(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<ParticipationResponse, Errors<WithdrawErrors>> {
        super::costs::fan_out(&state, auth.0.id, id.0).await?;
        let row = participations::withdraw(&state.db, &state.bus, auth.0.id, id.0).await?;
        Ok(ParticipationResponse::Ok(Json(Envelope::ok(
            "Withdrawn.",
            row.into(),
        ))))
    }
}
