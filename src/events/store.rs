//! Event queries.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::{EventRow, EventType, StoredStatus};
use crate::{catalogue::Category, envelope::FieldError, error::ApiError};

/// Fields of a new event, validated.
#[derive(Debug, Clone)]
pub struct EventFields {
    pub title: String,
    pub description: Option<String>,
    pub kind: EventType,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub address: String,
    pub latitude: f64,
    pub longitude: f64,
    pub capacity: Option<i32>,
    pub image_url: Option<String>,
}

pub async fn insert(
    conn: &mut PgConnection,
    creator: Uuid,
    f: &EventFields,
) -> Result<Uuid, ApiError> {
    Ok(sqlx::query_scalar!(
        "INSERT INTO events (creator_id, title, description, type, starts_at, ends_at, address,
                             latitude, longitude, capacity, image_url)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         RETURNING id",
        creator,
        f.title,
        f.description,
        f.kind as EventType,
        f.starts_at,
        f.ends_at,
        f.address,
        f.latitude,
        f.longitude,
        f.capacity,
        f.image_url,
    )
    .fetch_one(conn)
    .await?)
}

pub async fn update(conn: &mut PgConnection, id: Uuid, f: &EventFields) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE events SET title = $2, description = $3, type = $4, starts_at = $5, ends_at = $6,
                address = $7, latitude = $8, longitude = $9, capacity = $10, image_url = $11,
                updated_at = now()
         WHERE id = $1",
        id,
        f.title,
        f.description,
        f.kind as EventType,
        f.starts_at,
        f.ends_at,
        f.address,
        f.latitude,
        f.longitude,
        f.capacity,
        f.image_url,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether the event exists, and whether it is cancelled.
pub async fn status_of(db: impl sqlx::PgExecutor<'_>, id: Uuid) -> Result<Option<bool>, ApiError> {
    Ok(sqlx::query_scalar!(
        "SELECT status = 'cancelled' AS \"cancelled!\" FROM events WHERE id = $1",
        id
    )
    .fetch_optional(db)
    .await?)
}

pub async fn cancel(conn: &mut PgConnection, id: Uuid) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE events SET status = 'cancelled', cancelled_at = now(), updated_at = now() WHERE id = $1",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Replaces an event's genres; an unknown genre is a 422 on `genre_ids`.
pub async fn set_genres(
    conn: &mut PgConnection,
    event: Uuid,
    genres: &[Uuid],
) -> Result<(), ApiError> {
    sqlx::query!("DELETE FROM event_genres WHERE event_id = $1", event)
        .execute(&mut *conn)
        .await?;
    sqlx::query!(
        "INSERT INTO event_genres (event_id, genre_id) SELECT $1, g FROM UNNEST($2::uuid[]) g
         ON CONFLICT DO NOTHING",
        event,
        genres,
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        unknown_ref(
            e,
            "event_genres_genre_fkey",
            "genre_ids",
            "a genre does not exist",
        )
    })?;
    Ok(())
}

/// Sets how many of an instrument the event needs; `filled` counts who already plays it.
pub async fn set_instrument(
    conn: &mut PgConnection,
    event: Uuid,
    instrument: Uuid,
    quantity: i32,
) -> Result<(), ApiError> {
    sqlx::query!(
        "INSERT INTO event_instruments (event_id, instrument_id, quantity, filled)
         SELECT $1, $2, $3, count(*)::int FROM participations
         WHERE event_id = $1 AND instrument_id = $2 AND status IN ('pending', 'accepted')
         ON CONFLICT (event_id, instrument_id) DO UPDATE SET quantity = EXCLUDED.quantity",
        event,
        instrument,
        quantity,
    )
    .execute(conn)
    .await
    .map_err(|e| {
        if let sqlx::Error::Database(db) = &e
            && db.is_foreign_key_violation()
        {
            return ApiError::not_found("Instrument");
        }
        ApiError::from(e)
    })?;
    Ok(())
}

/// `(quantity, filled)` of one needed instrument.
pub async fn needed(
    conn: &mut PgConnection,
    event: Uuid,
    instrument: Uuid,
) -> Result<Option<(i32, i32)>, ApiError> {
    let row = sqlx::query!(
        "SELECT quantity, filled FROM event_instruments WHERE event_id = $1 AND instrument_id = $2",
        event,
        instrument,
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.quantity, r.filled)))
}

/// Active participations playing `instrument` at the event.
pub async fn playing(
    conn: &mut PgConnection,
    event: Uuid,
    instrument: Uuid,
) -> Result<i32, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*)::int AS "n!" FROM participations
           WHERE event_id = $1 AND instrument_id = $2 AND status IN ('pending', 'accepted')"#,
        event,
        instrument
    )
    .fetch_one(conn)
    .await?)
}

/// How many different instruments the event lists.
pub async fn needed_count(conn: &mut PgConnection, event: Uuid) -> Result<i64, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM event_instruments WHERE event_id = $1"#,
        event
    )
    .fetch_one(conn)
    .await?)
}

pub async fn needs_any(conn: &mut PgConnection, event: Uuid) -> Result<bool, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM event_instruments WHERE event_id = $1) AS "any!""#,
        event
    )
    .fetch_one(conn)
    .await?)
}

pub async fn remove_instrument(
    conn: &mut PgConnection,
    event: Uuid,
    instrument: Uuid,
) -> Result<bool, ApiError> {
    let done = sqlx::query!(
        "DELETE FROM event_instruments WHERE event_id = $1 AND instrument_id = $2",
        event,
        instrument
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Moves `filled` of a needed instrument by `delta` (no-op if the event does not list it).
pub async fn adjust_filled(
    conn: &mut PgConnection,
    event: Uuid,
    instrument: Uuid,
    delta: i32,
) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE event_instruments SET filled = filled + $3 WHERE event_id = $1 AND instrument_id = $2",
        event,
        instrument,
        delta,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn adjust_participants(
    conn: &mut PgConnection,
    event: Uuid,
    delta: i32,
) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE events SET participants_count = participants_count + $2 WHERE id = $1",
        event,
        delta,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Locks the event's row for the rest of the transaction: every change to its participants
/// goes through this lock, so counts and capacity checks cannot race.
pub async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Option<EventRow>, ApiError> {
    sqlx::query!("SELECT id FROM events WHERE id = $1 FOR NO KEY UPDATE", id)
        .fetch_optional(&mut *conn)
        .await?;
    fetch(&mut *conn, id, None).await
}

pub async fn fetch(
    db: impl PgExecutor<'_>,
    id: Uuid,
    origin: Option<(f64, f64)>,
) -> Result<Option<EventRow>, ApiError> {
    let (lat, lon) = origin.unzip();
    Ok(sqlx::query_as!(
        EventRow,
        r#"SELECT e.id, e.creator_id, u.username AS creator_username, e.title, e.description,
                  e.type AS "kind: EventType", e.starts_at, e.ends_at, e.address, e.latitude,
                  e.longitude, e.capacity, e.image_url, e.status AS "status: StoredStatus",
                  e.participants_count, e.created_at, e.updated_at,
                  CASE WHEN $2::float8 IS NULL THEN NULL
                       ELSE earth_distance(ll_to_earth($2, $3), e.location)
                  END AS distance_m
           FROM events e JOIN users u ON u.id = e.creator_id
           WHERE e.id = $1"#,
        id,
        lat,
        lon,
    )
    .fetch_optional(db)
    .await?)
}

/// One event with its genres and needed instruments, in one round trip (aggregated in SQL,
/// sorted by name).
pub async fn fetch_detailed(
    db: impl PgExecutor<'_>,
    id: Uuid,
    origin: Option<(f64, f64)>,
) -> Result<Option<(EventRow, Vec<EventGenre>, Vec<NeededInstrument>)>, ApiError> {
    let (lat, lon) = origin.unzip();
    let row = sqlx::query!(
        r#"SELECT e.id, e.creator_id, u.username AS creator_username, e.title, e.description,
                  e.type AS "kind: EventType", e.starts_at, e.ends_at, e.address, e.latitude,
                  e.longitude, e.capacity, e.image_url, e.status AS "status: StoredStatus",
                  e.participants_count, e.created_at, e.updated_at,
                  CASE WHEN $2::float8 IS NULL THEN NULL
                       ELSE earth_distance(ll_to_earth($2, $3), e.location)
                  END AS distance_m,
                  COALESCE((
                      SELECT json_agg(json_build_object(
                                 'event_id', eg.event_id, 'genre_id', eg.genre_id, 'name', g.name)
                             ORDER BY lower(g.name), g.id)
                      FROM event_genres eg JOIN genres g ON g.id = eg.genre_id
                      WHERE eg.event_id = e.id), '[]') AS "genres!: sqlx::types::Json<Vec<EventGenre>>",
                  COALESCE((
                      SELECT json_agg(json_build_object(
                                 'event_id', ei.event_id, 'instrument_id', ei.instrument_id,
                                 'name', i.name, 'category', i.category,
                                 'quantity', ei.quantity, 'filled', ei.filled)
                             ORDER BY lower(i.name), i.id)
                      FROM event_instruments ei JOIN instruments i ON i.id = ei.instrument_id
                      WHERE ei.event_id = e.id), '[]') AS "needed!: sqlx::types::Json<Vec<NeededInstrument>>"
           FROM events e JOIN users u ON u.id = e.creator_id
           WHERE e.id = $1"#,
        id,
        lat,
        lon,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let event = EventRow {
            id: r.id,
            creator_id: r.creator_id,
            creator_username: r.creator_username,
            title: r.title,
            description: r.description,
            kind: r.kind,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            address: r.address,
            latitude: r.latitude,
            longitude: r.longitude,
            capacity: r.capacity,
            image_url: r.image_url,
            status: r.status,
            participants_count: r.participants_count,
            created_at: r.created_at,
            updated_at: r.updated_at,
            distance_m: r.distance_m,
        };
        (event, r.genres.0, r.needed.0)
    }))
}

/// The genres and needed instruments of several events, in one round trip.
pub async fn details_of(
    db: impl PgExecutor<'_>,
    events: &[Uuid],
) -> Result<(Vec<EventGenre>, Vec<NeededInstrument>), ApiError> {
    let row = sqlx::query!(
        r#"SELECT
             COALESCE((
                 SELECT json_agg(json_build_object(
                            'event_id', eg.event_id, 'genre_id', eg.genre_id, 'name', g.name)
                        ORDER BY eg.event_id, lower(g.name), g.id)
                 FROM event_genres eg JOIN genres g ON g.id = eg.genre_id
                 WHERE eg.event_id = ANY($1)), '[]') AS "genres!: sqlx::types::Json<Vec<EventGenre>>",
             COALESCE((
                 SELECT json_agg(json_build_object(
                            'event_id', ei.event_id, 'instrument_id', ei.instrument_id,
                            'name', i.name, 'category', i.category,
                            'quantity', ei.quantity, 'filled', ei.filled)
                        ORDER BY ei.event_id, lower(i.name), i.id)
                 FROM event_instruments ei JOIN instruments i ON i.id = ei.instrument_id
                 WHERE ei.event_id = ANY($1)), '[]') AS "needed!: sqlx::types::Json<Vec<NeededInstrument>>""#,
        events,
    )
    .fetch_one(db)
    .await?;
    Ok((row.genres.0, row.needed.0))
}

/// Users with an active participation in the event.
pub async fn active_participants(
    conn: &mut PgConnection,
    event: Uuid,
) -> Result<Vec<Uuid>, ApiError> {
    Ok(sqlx::query_scalar!(
        "SELECT user_id FROM participations WHERE event_id = $1 AND status IN ('pending', 'accepted')",
        event
    )
    .fetch_all(conn)
    .await?)
}

#[derive(Debug, serde::Deserialize)]
pub struct EventGenre {
    pub event_id: Uuid,
    pub genre_id: Uuid,
    pub name: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct NeededInstrument {
    pub event_id: Uuid,
    pub instrument_id: Uuid,
    pub name: String,
    pub category: Category,
    pub quantity: i32,
    pub filled: i32,
}

/// A foreign-key violation on `constraint` is a bad reference in the request body.
fn unknown_ref(err: sqlx::Error, constraint: &str, field: &str, message: &str) -> ApiError {
    if let sqlx::Error::Database(db) = &err
        && db.is_foreign_key_violation()
        && db.constraint() == Some(constraint)
    {
        return ApiError::validation(vec![FieldError::new(field, "not_found", message)]);
    }
    ApiError::from(err)
}

pub use super::search::{Found, Search, SearchKey, search};
