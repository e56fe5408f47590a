//! Organising an event: create, change, cancel, and the instruments it needs. The rules
//! (locks, capacity and places already taken, who may do what) and the notifications they
//! send, for any caller: REST today, the socket or the CLI tomorrow.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{EventRow, participations::ensure_open, store, store::EventFields};
use crate::{
    auth::{CurrentUser, Role},
    bus::Bus,
    envelope::FieldError,
    error::{ApiError, ErrorCode},
    notifications::{self, Kind, Notice},
};

/// Most different instruments an event may need.
pub const MAX_INSTRUMENTS: usize = 50;

/// Creates an event with its genres and needed instruments (`(instrument, quantity)`);
/// an unknown instrument is reported against `instruments[i].instrument_id`.
pub async fn create(
    db: &PgPool,
    creator: Uuid,
    fields: &EventFields,
    genres: &[Uuid],
    needed: &[(Uuid, i32)],
) -> Result<Uuid, ApiError> {
    let mut tx = db.begin().await?;
    let id = store::insert(&mut tx, creator, fields).await?;
    store::set_genres(&mut tx, id, genres).await?;
    for (i, (instrument, quantity)) in needed.iter().enumerate() {
        store::set_instrument(&mut tx, id, *instrument, *quantity)
            .await
            .map_err(|e| {
                if e.code == ErrorCode::NotFound {
                    ApiError::validation(vec![FieldError::new(
                        format!("instruments[{i}].instrument_id"),
                        "not_found",
                        "no such instrument",
                    )])
                } else {
                    e
                }
            })?;
    }
    tx.commit().await?;
    Ok(id)
}

/// The change to make, decided by the caller from the event as it stands (locked): its
/// new fields and, when given, its genres.
pub type Change = (EventFields, Option<Vec<Uuid>>);

/// Changes an event (its creator or an admin). Moving it in time or space notifies every
/// participant.
pub async fn update(
    db: &PgPool,
    bus: &Bus,
    user: &CurrentUser,
    id: Uuid,
    change: impl FnOnce(&EventRow) -> Result<Change, ApiError>,
) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let event = lock_as_organiser(&mut tx, user, id).await?;
    let (fields, genres) = change(&event)?;
    if let Some(cap) = fields.capacity
        && cap < event.participants_count
    {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            format!(
                "{} musicians already take part: capacity cannot go below that.",
                event.participants_count
            ),
        ));
    }
    store::update(&mut tx, event.id, &fields).await?;
    if let Some(genres) = genres {
        store::set_genres(&mut tx, event.id, &genres).await?;
    }
    let moved = fields.starts_at != event.starts_at
        || fields.ends_at != event.ends_at
        || fields.address != event.address
        || fields.latitude != event.latitude
        || fields.longitude != event.longitude;
    let notes = if moved {
        let participants = store::active_participants(&mut tx, event.id).await?;
        let notice = Notice {
            kind: Kind::EventUpdated,
            title: format!("“{}” has changed", fields.title),
            body: format!(
                "Now from {} to {} at {}.",
                fields.starts_at.format("%Y-%m-%d %H:%M UTC"),
                fields.ends_at.format("%Y-%m-%d %H:%M UTC"),
                fields.address
            ),
            link: Some(format!("/api/v1/events/{}", event.id)),
            event_id: Some(event.id),
        };
        notifications::create(&mut tx, &participants, &notice).await?
    } else {
        Vec::new()
    };
    tx.commit().await?;
    notifications::publish(bus, &notes).await;
    Ok(())
}

/// Cancels an event (its creator or an admin); every participant is notified.
pub async fn cancel(db: &PgPool, bus: &Bus, user: &CurrentUser, id: Uuid) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let event = lock_as_organiser(&mut tx, user, id).await?;
    store::cancel(&mut tx, event.id).await?;
    let participants = store::active_participants(&mut tx, event.id).await?;
    let notice = Notice {
        kind: Kind::EventCancelled,
        title: format!("“{}” is cancelled", event.title),
        body: format!(
            "The event planned on {} at {} will not take place.",
            event.starts_at.format("%Y-%m-%d %H:%M UTC"),
            event.address
        ),
        link: Some(format!("/api/v1/events/{}", event.id)),
        event_id: Some(event.id),
    };
    let notes = notifications::create(&mut tx, &participants, &notice).await?;
    tx.commit().await?;
    notifications::publish(bus, &notes).await;
    Ok(())
}

/// Sets how many of an instrument the event needs; never below the places taken with it.
pub async fn set_instrument(
    db: &PgPool,
    user: &CurrentUser,
    id: Uuid,
    instrument: Uuid,
    quantity: i32,
) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let event = lock_as_organiser(&mut tx, user, id).await?;
    if store::needed(&mut tx, event.id, instrument)
        .await?
        .is_none()
        && store::needed_count(&mut tx, event.id).await? >= MAX_INSTRUMENTS as i64
    {
        return Err(ApiError::field(
            "instrument_id",
            "too_long",
            format!("an event needs at most {MAX_INSTRUMENTS} different instruments"),
        ));
    }
    let playing = store::playing(&mut tx, event.id, instrument).await?;
    if quantity < playing {
        return Err(ApiError::state_conflict(
            ErrorCode::Conflict,
            format!(
                "{playing} participants already play this instrument; quantity cannot be lower."
            ),
        ));
    }
    store::set_instrument(&mut tx, event.id, instrument, quantity).await?;
    tx.commit().await?;
    Ok(())
}

/// Stops needing an instrument; refused while participants play it.
pub async fn remove_instrument(
    db: &PgPool,
    user: &CurrentUser,
    id: Uuid,
    instrument: Uuid,
) -> Result<(), ApiError> {
    let mut tx = db.begin().await?;
    let event = lock_as_organiser(&mut tx, user, id).await?;
    match store::needed(&mut tx, event.id, instrument).await? {
        None => return Err(ApiError::not_found("Needed instrument")),
        Some((_, filled)) if filled > 0 => {
            return Err(ApiError::state_conflict(
                ErrorCode::InUse,
                "Participants play this instrument; it cannot be removed.",
            ));
        }
        Some(_) => {}
    }
    store::remove_instrument(&mut tx, event.id, instrument).await?;
    tx.commit().await?;
    Ok(())
}

/// Locks an open event for a change by its creator (or an admin).
async fn lock_as_organiser(
    conn: &mut PgConnection,
    user: &CurrentUser,
    id: Uuid,
) -> Result<EventRow, ApiError> {
    let event = store::lock(conn, id)
        .await?
        .ok_or_else(|| ApiError::not_found("Event"))?;
    if event.creator_id != user.id && user.role != Role::Admin {
        return Err(ApiError::forbidden("Only the event's creator can do this."));
    }
    ensure_open(&event)?;
    Ok(event)
}
