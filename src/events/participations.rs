//! Participations: joining an event with an instrument, and the status lifecycle.
//!
//! Every change locks the event's row first, so that counting places and taking one happen
//! as one step: when two musicians race for the last place, exactly one gets it.
//!
//! Rules:
//! - An event that lists needed instruments accepts only those, each up to its quantity;
//!   an event that lists none is open to any instrument of the catalogue.
//! - `capacity`, when set, bounds the active (pending + accepted) participations.
//! - One active participation per musician per event; the organiser does not join their own.
//! - Lifecycle: `pending → accepted | declined` and `accepted → declined` by the organiser;
//!   `pending | accepted → withdrawn` by the participant. Changing instrument puts an
//!   accepted participation back to `pending`. `declined` and `withdrawn` are final (a
//!   withdrawn musician may join again, as a new participation).

use chrono::{DateTime, Utc};
use poem_openapi::Enum;
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use super::{EventRow, EventStatus, store};
use crate::{
    bus::Bus,
    envelope::FieldError,
    error::{ApiError, ErrorCode},
    notifications::{self, Kind, Notice, NotificationRow},
};

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Enum, sqlx::Type, serde::Serialize, serde::Deserialize,
)]
#[sqlx(type_name = "participation_status", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum ParticipationStatus {
    Pending,
    Accepted,
    Declined,
    Withdrawn,
}

impl ParticipationStatus {
    pub fn is_active(self) -> bool {
        matches!(self, Self::Pending | Self::Accepted)
    }
}

#[derive(Debug, Clone)]
pub struct ParticipationRow {
    pub id: Uuid,
    pub event_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
    pub instrument_id: Uuid,
    pub instrument_name: String,
    pub status: ParticipationStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn fetch(
    db: impl PgExecutor<'_>,
    id: Uuid,
) -> Result<Option<ParticipationRow>, ApiError> {
    Ok(sqlx::query_as!(
        ParticipationRow,
        r#"SELECT p.id, p.event_id, p.user_id, u.username, p.instrument_id, i.name AS instrument_name,
                  p.status AS "status: ParticipationStatus", p.created_at, p.updated_at
           FROM participations p
           JOIN users u ON u.id = p.user_id
           JOIN instruments i ON i.id = p.instrument_id
           WHERE p.id = $1"#,
        id
    )
    .fetch_optional(db)
    .await?)
}

pub type Key = (DateTime<Utc>, Uuid);

/// Active participants of an event, in order of arrival.
pub async fn of_event(
    db: impl PgExecutor<'_>,
    event: Uuid,
    after: Option<&Key>,
    fetch: i64,
) -> Result<Vec<ParticipationRow>, ApiError> {
    Ok(sqlx::query_as!(
        ParticipationRow,
        r#"SELECT p.id, p.event_id, p.user_id, u.username, p.instrument_id, i.name AS instrument_name,
                  p.status AS "status: ParticipationStatus", p.created_at, p.updated_at
           FROM participations p
           JOIN users u ON u.id = p.user_id
           JOIN instruments i ON i.id = p.instrument_id
           WHERE p.event_id = $1 AND p.status IN ('pending', 'accepted')
             AND ($2::timestamptz IS NULL OR (p.created_at, p.id) > ($2, $3))
           ORDER BY p.created_at, p.id
           LIMIT $4"#,
        event,
        after.map(|a| a.0),
        after.map(|a| a.1),
        fetch,
    )
    .fetch_all(db)
    .await?)
}

/// A musician's participations, newest first.
pub async fn of_user(
    db: impl PgExecutor<'_>,
    user: Uuid,
    before: Option<&Key>,
    fetch: i64,
) -> Result<Vec<ParticipationRow>, ApiError> {
    Ok(sqlx::query_as!(
        ParticipationRow,
        r#"SELECT p.id, p.event_id, p.user_id, u.username, p.instrument_id, i.name AS instrument_name,
                  p.status AS "status: ParticipationStatus", p.created_at, p.updated_at
           FROM participations p
           JOIN users u ON u.id = p.user_id
           JOIN instruments i ON i.id = p.instrument_id
           WHERE p.user_id = $1
             AND ($2::timestamptz IS NULL OR (p.created_at, p.id) < ($2, $3))
           ORDER BY p.created_at DESC, p.id DESC
           LIMIT $4"#,
        user,
        before.map(|b| b.0),
        before.map(|b| b.1),
        fetch,
    )
    .fetch_all(db)
    .await?)
}

/// The event must still be open: not cancelled, not over.
pub fn ensure_open(event: &EventRow) -> Result<(), ApiError> {
    match event.status() {
        EventStatus::Scheduled => Ok(()),
        EventStatus::Cancelled => Err(ApiError::state_conflict(
            ErrorCode::EventCancelled,
            "This event is cancelled.",
        )),
        EventStatus::Finished => Err(ApiError::state_conflict(
            ErrorCode::EventFinished,
            "This event is over.",
        )),
    }
}

/// Checks that `instrument` may take a place at the (locked) event.
async fn check_instrument(
    conn: &mut PgConnection,
    event: Uuid,
    instrument: Uuid,
) -> Result<(), ApiError> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM instruments WHERE id = $1) AS "e!""#,
        instrument
    )
    .fetch_one(&mut *conn)
    .await?;
    if !exists {
        return Err(ApiError::validation(vec![FieldError::new(
            "instrument_id",
            "not_found",
            "no such instrument",
        )]));
    }
    match store::needed(conn, event, instrument).await? {
        Some((quantity, filled)) if filled >= quantity => Err(ApiError::state_conflict(
            ErrorCode::InstrumentFull,
            "Every place for this instrument is taken.",
        )),
        Some(_) => Ok(()),
        None if store::needs_any(conn, event).await? => {
            Err(ApiError::validation(vec![FieldError::new(
                "instrument_id",
                "value_error",
                "this event does not need this instrument; see GET /events/{id}/instruments",
            )]))
        }
        None => Ok(()),
    }
}

async fn instrument_name(conn: &mut PgConnection, id: Uuid) -> Result<String, ApiError> {
    Ok(
        sqlx::query_scalar!("SELECT name FROM instruments WHERE id = $1", id)
            .fetch_one(conn)
            .await?,
    )
}

async fn username(conn: &mut PgConnection, id: Uuid) -> Result<String, ApiError> {
    Ok(
        sqlx::query_scalar!("SELECT username FROM users WHERE id = $1", id)
            .fetch_one(conn)
            .await?,
    )
}

fn event_link(event: Uuid) -> Option<String> {
    Some(format!("/api/v1/events/{event}"))
}

/// Joins `event` with `instrument`; the organiser is told.
pub async fn join(
    db: &PgPool,
    bus: &Bus,
    user: Uuid,
    event_id: Uuid,
    instrument: Uuid,
) -> Result<ParticipationRow, ApiError> {
    let mut tx = db.begin().await?;
    let event = store::lock(&mut tx, event_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Event"))?;
    ensure_open(&event)?;
    if event.creator_id == user {
        return Err(ApiError::state_conflict(
            ErrorCode::OwnEvent,
            "You organise this event; you cannot also join it.",
        ));
    }
    let already = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM participations
                          WHERE event_id = $1 AND user_id = $2 AND status IN ('pending', 'accepted')) AS "e!""#,
        event_id,
        user
    )
    .fetch_one(&mut *tx)
    .await?;
    if already {
        return Err(ApiError::state_conflict(
            ErrorCode::AlreadyParticipating,
            "You already take part in this event.",
        ));
    }
    check_instrument(&mut tx, event_id, instrument).await?;
    if event
        .capacity
        .is_some_and(|cap| event.participants_count >= cap)
    {
        return Err(ApiError::state_conflict(
            ErrorCode::EventFull,
            "This event is full.",
        ));
    }
    let id = sqlx::query_scalar!(
        "INSERT INTO participations (event_id, user_id, instrument_id) VALUES ($1, $2, $3) RETURNING id",
        event_id,
        user,
        instrument
    )
    .fetch_one(&mut *tx)
    .await?;
    store::adjust_participants(&mut tx, event_id, 1).await?;
    store::adjust_filled(&mut tx, event_id, instrument, 1).await?;
    let who = username(&mut tx, user).await?;
    let what = instrument_name(&mut tx, instrument).await?;
    let notes = notifications::create(
        &mut tx,
        &[event.creator_id],
        &Notice {
            kind: Kind::ParticipationCreated,
            title: format!("{who} wants to join {}", event.title),
            body: format!("{who} registered for “{}” with {what}.", event.title),
            link: event_link(event_id),
            event_id: Some(event_id),
        },
    )
    .await?;
    let row = fetch(&mut *tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Participation"))?;
    tx.commit().await?;
    notifications::publish(bus, &notes).await;
    Ok(row)
}

/// Who is asking to change a participation, and what.
pub enum Change {
    /// The participant picks another instrument.
    Instrument(Uuid),
    /// The organiser (or an admin) accepts or declines.
    Status(ParticipationStatus),
}

/// Applies a change by `actor` (`is_admin` lets an admin act as the organiser).
pub async fn change(
    db: &PgPool,
    bus: &Bus,
    actor: Uuid,
    is_admin: bool,
    id: Uuid,
    change: Change,
) -> Result<ParticipationRow, ApiError> {
    let current = fetch(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Participation"))?;
    let mut tx = db.begin().await?;
    let event = store::lock(&mut tx, current.event_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Participation"))?;
    // Re-read under the event's lock: the status may have moved meanwhile.
    let current = fetch(&mut *tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Participation"))?;
    let is_participant = current.user_id == actor;
    let is_organiser = event.creator_id == actor || is_admin;
    if !is_participant && !is_organiser {
        return Err(ApiError::not_found("Participation"));
    }
    let mut notes: Vec<NotificationRow> = Vec::new();
    match change {
        Change::Instrument(instrument) => {
            if !is_participant {
                return Err(ApiError::forbidden(
                    "Only the participant changes the instrument.",
                ));
            }
            ensure_open(&event)?;
            if !current.status.is_active() {
                return Err(transition(current.status, "change instrument"));
            }
            if instrument != current.instrument_id {
                check_instrument(&mut tx, event.id, instrument).await?;
                store::adjust_filled(&mut tx, event.id, current.instrument_id, -1).await?;
                store::adjust_filled(&mut tx, event.id, instrument, 1).await?;
                sqlx::query!(
                    "UPDATE participations SET instrument_id = $2, status = 'pending', updated_at = now()
                     WHERE id = $1",
                    id,
                    instrument
                )
                .execute(&mut *tx)
                .await?;
                let what = instrument_name(&mut tx, instrument).await?;
                notes = notifications::create(
                    &mut tx,
                    &[event.creator_id],
                    &Notice {
                        kind: Kind::ParticipationInstrumentChanged,
                        title: format!("{} changed instrument", current.username),
                        body: format!(
                            "{} will now play {what} at “{}” (was {}).",
                            current.username, event.title, current.instrument_name
                        ),
                        link: event_link(event.id),
                        event_id: Some(event.id),
                    },
                )
                .await?;
            }
        }
        Change::Status(status) => {
            if !is_organiser {
                return Err(ApiError::forbidden(
                    "Only the organiser accepts or declines.",
                ));
            }
            ensure_open(&event)?;
            use ParticipationStatus::*;
            let allowed = matches!(
                (current.status, status),
                (Pending, Accepted) | (Pending, Declined) | (Accepted, Declined)
            );
            if current.status != status {
                if !allowed {
                    return Err(transition(current.status, status_verb(status)));
                }
                sqlx::query!(
                    "UPDATE participations SET status = $2, updated_at = now() WHERE id = $1",
                    id,
                    status as ParticipationStatus
                )
                .execute(&mut *tx)
                .await?;
                if status == Declined {
                    store::adjust_participants(&mut tx, event.id, -1).await?;
                    store::adjust_filled(&mut tx, event.id, current.instrument_id, -1).await?;
                }
                let (kind, verb) = if status == Accepted {
                    (Kind::ParticipationAccepted, "accepted")
                } else {
                    (Kind::ParticipationDeclined, "declined")
                };
                notes = notifications::create(
                    &mut tx,
                    &[current.user_id],
                    &Notice {
                        kind,
                        title: format!("Your participation was {verb}"),
                        body: format!(
                            "The organiser {verb} you for “{}” ({}).",
                            event.title, current.instrument_name
                        ),
                        link: event_link(event.id),
                        event_id: Some(event.id),
                    },
                )
                .await?;
            } else if !matches!(status, Accepted | Declined) {
                return Err(transition(current.status, status_verb(status)));
            }
        }
    }
    let row = fetch(&mut *tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Participation"))?;
    tx.commit().await?;
    notifications::publish(bus, &notes).await;
    Ok(row)
}

/// The participant withdraws; the organiser is told.
pub async fn withdraw(
    db: &PgPool,
    bus: &Bus,
    actor: Uuid,
    id: Uuid,
) -> Result<ParticipationRow, ApiError> {
    let current = fetch(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Participation"))?;
    if current.user_id != actor {
        // Only the participant withdraws; to others it may as well not exist.
        return Err(ApiError::not_found("Participation"));
    }
    let mut tx = db.begin().await?;
    let event = store::lock(&mut tx, current.event_id)
        .await?
        .ok_or_else(|| ApiError::not_found("Participation"))?;
    let current = fetch(&mut *tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Participation"))?;
    if !current.status.is_active() {
        return Err(transition(current.status, "withdraw"));
    }
    if event.status() == EventStatus::Finished {
        return Err(ApiError::state_conflict(
            ErrorCode::EventFinished,
            "This event is over.",
        ));
    }
    sqlx::query!(
        "UPDATE participations SET status = 'withdrawn', updated_at = now() WHERE id = $1",
        id
    )
    .execute(&mut *tx)
    .await?;
    store::adjust_participants(&mut tx, event.id, -1).await?;
    store::adjust_filled(&mut tx, event.id, current.instrument_id, -1).await?;
    let notes = if event.status() == EventStatus::Scheduled {
        notifications::create(
            &mut tx,
            &[event.creator_id],
            &Notice {
                kind: Kind::ParticipationWithdrawn,
                title: format!("{} withdrew", current.username),
                body: format!("{} no longer comes to “{}”.", current.username, event.title),
                link: event_link(event.id),
                event_id: Some(event.id),
            },
        )
        .await?
    } else {
        Vec::new()
    };
    let row = fetch(&mut *tx, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Participation"))?;
    tx.commit().await?;
    notifications::publish(bus, &notes).await;
    Ok(row)
}

fn status_verb(status: ParticipationStatus) -> &'static str {
    match status {
        ParticipationStatus::Pending => "set back to pending",
        ParticipationStatus::Accepted => "accept",
        ParticipationStatus::Declined => "decline",
        ParticipationStatus::Withdrawn => "withdraw (use DELETE)",
    }
}

fn transition(from: ParticipationStatus, what: &str) -> ApiError {
    let from = match from {
        ParticipationStatus::Pending => "pending",
        ParticipationStatus::Accepted => "accepted",
        ParticipationStatus::Declined => "declined",
        ParticipationStatus::Withdrawn => "withdrawn",
    };
    ApiError::state_conflict(
        ErrorCode::InvalidTransition,
        format!("Cannot {what} a participation that is {from}."),
    )
}
