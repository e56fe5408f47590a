//! Event queries.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{EventRow, EventType, StoredStatus};
use crate::{catalogue::Category, envelope::FieldError, error::ApiError, musicians::escape_like};

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
    sqlx::query!("SELECT id FROM events WHERE id = $1 FOR UPDATE", id)
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

pub struct EventGenre {
    pub event_id: Uuid,
    pub genre_id: Uuid,
    pub name: String,
}

pub async fn genres_of(
    db: impl PgExecutor<'_>,
    events: &[Uuid],
) -> Result<Vec<EventGenre>, ApiError> {
    Ok(sqlx::query_as!(
        EventGenre,
        "SELECT eg.event_id, eg.genre_id, g.name FROM event_genres eg JOIN genres g ON g.id = eg.genre_id
         WHERE eg.event_id = ANY($1) ORDER BY eg.event_id, lower(g.name), g.id",
        events,
    )
    .fetch_all(db)
    .await?)
}

pub struct NeededInstrument {
    pub event_id: Uuid,
    pub instrument_id: Uuid,
    pub name: String,
    pub category: Category,
    pub quantity: i32,
    pub filled: i32,
}

pub async fn instruments_of(
    db: impl PgExecutor<'_>,
    events: &[Uuid],
) -> Result<Vec<NeededInstrument>, ApiError> {
    Ok(sqlx::query_as!(
        NeededInstrument,
        r#"SELECT ei.event_id, ei.instrument_id, i.name, i.category AS "category: Category",
                  ei.quantity, ei.filled
           FROM event_instruments ei JOIN instruments i ON i.id = ei.instrument_id
           WHERE ei.event_id = ANY($1) ORDER BY ei.event_id, lower(i.name), i.id"#,
        events,
    )
    .fetch_all(db)
    .await?)
}

/// Search criteria; all optional, combined with AND.
#[derive(Debug, Default)]
pub struct Search {
    pub text: Option<String>,
    pub kind: Option<EventType>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// `scheduled`, `cancelled` or `finished`; `None` for all.
    pub status: Option<&'static str>,
    pub instrument: Option<Uuid>,
    pub genre: Option<Uuid>,
    /// Point and radius in metres.
    pub near: Option<(f64, f64, f64)>,
    /// Sort by distance (needs `near`) instead of start time.
    pub by_distance: bool,
}

/// Sort key: (distance in metres or 0, start time or the epoch, id).
pub type SearchKey = (f64, DateTime<Utc>, Uuid);

pub struct Found {
    pub row: EventRow,
    pub key: SearchKey,
}

#[derive(sqlx::FromRow)]
struct SearchRow {
    id: Uuid,
    creator_id: Uuid,
    creator_username: String,
    title: String,
    description: Option<String>,
    kind: EventType,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    address: String,
    latitude: f64,
    longitude: f64,
    capacity: Option<i32>,
    image_url: Option<String>,
    status: StoredStatus,
    participants_count: i32,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    distance_m: Option<f64>,
}

/// Finds events, `fetch` at most, after `after`.
///
/// The statement holds only the filters in use (values are always bound parameters), so
/// each combination is one prepared statement whose plan PostgreSQL caches: the hot search
/// (radius + date window) costs no planning, and each filter's condition can use its index
/// (GiST on `location`, btree on `starts_at`, trigram on the text). Every combination is
/// exercised by the integration tests.
pub async fn search(
    db: &PgPool,
    s: &Search,
    after: Option<&SearchKey>,
    fetch: i64,
) -> Result<Vec<Found>, ApiError> {
    let mut q = QueryBuilder::<Postgres>::new("");
    if let Some((lat, lon, _)) = s.near {
        // The origin once per query, not once per row (generic plans do not fold it).
        q.push("WITH o AS MATERIALIZED (SELECT ll_to_earth(")
            .push_bind(lat)
            .push(", ")
            .push_bind(lon)
            .push(") AS p) ");
    }
    q.push(
        "SELECT e.id, e.creator_id, u.username AS creator_username, e.title, e.description,
                e.type AS kind, e.starts_at, e.ends_at, e.address, e.latitude, e.longitude,
                e.capacity, e.image_url, e.status, e.participants_count, e.created_at,
                e.updated_at, e.distance_m
         FROM (SELECT e.*, ",
    );
    if s.near.is_some() {
        q.push("earth_distance(o.p, e.location) AS distance_m FROM events e, o WHERE true");
    } else {
        q.push("NULL::float8 AS distance_m FROM events e WHERE true");
    }
    if let Some(text) = &s.text {
        q.push(" AND (e.title || ' ' || coalesce(e.description, '') || ' ' || e.address) ILIKE ")
            .push_bind(format!("%{}%", escape_like(text)));
    }
    if let Some(kind) = s.kind {
        q.push(" AND e.type = ").push_bind(kind);
    }
    if let Some(from) = s.from {
        q.push(" AND e.starts_at >= ").push_bind(from);
    }
    if let Some(to) = s.to {
        q.push(" AND e.starts_at <= ").push_bind(to);
    }
    match s.status {
        Some("scheduled") => {
            q.push(" AND e.status = 'scheduled' AND e.ends_at > now()");
        }
        Some("finished") => {
            q.push(" AND e.status = 'scheduled' AND e.ends_at <= now()");
        }
        Some("cancelled") => {
            q.push(" AND e.status = 'cancelled'");
        }
        _ => {}
    }
    if let Some(instrument) = s.instrument {
        q.push(" AND EXISTS (SELECT 1 FROM event_instruments ei WHERE ei.event_id = e.id AND ei.instrument_id = ")
            .push_bind(instrument)
            .push(")");
    }
    if let Some(genre) = s.genre {
        q.push(" AND EXISTS (SELECT 1 FROM event_genres eg WHERE eg.event_id = e.id AND eg.genre_id = ")
            .push_bind(genre)
            .push(")");
    }
    if let Some((_, _, radius)) = s.near {
        // The space-time box (see the `events_place_time` index), a second wider than the
        // exact date bounds above so that float rounding can never drop a row.
        let epoch = |t: DateTime<Utc>| t.timestamp_micros() as f64 / 1e6;
        let low = s.from.map_or(-1e12, |t| epoch(t) - 1.0);
        let high = s.to.map_or(1e12, |t| epoch(t) + 1.0);
        q.push(" AND cube(earth_box(o.p, ")
            .push_bind(radius)
            .push("), ")
            .push_bind(low)
            .push("::float8, ")
            .push_bind(high)
            .push("::float8) @> cube(e.location, event_epoch(e.starts_at))")
            .push(" AND earth_distance(o.p, e.location) <= ")
            .push_bind(radius);
    }
    let by_distance = s.by_distance && s.near.is_some();
    if let Some((d, ts, id)) = after {
        if by_distance {
            q.push(" AND (earth_distance(o.p, e.location), e.id) > (")
                .push_bind(*d)
                .push(", ")
                .push_bind(*id)
                .push(")");
        } else {
            q.push(" AND (e.starts_at, e.id) > (")
                .push_bind(*ts)
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
    }
    let order = if by_distance {
        "distance_m, id"
    } else {
        "starts_at, id"
    };
    q.push(" ORDER BY ")
        .push(order)
        .push(" LIMIT ")
        .push_bind(fetch)
        .push(") e JOIN users u ON u.id = e.creator_id ORDER BY e.")
        .push(if by_distance {
            "distance_m, e.id"
        } else {
            "starts_at, e.id"
        });

    let rows: Vec<SearchRow> = q.build_query_as().fetch_all(db).await?;
    Ok(rows
        .into_iter()
        .map(|r| Found {
            key: if by_distance {
                (r.distance_m.unwrap_or_default(), DateTime::UNIX_EPOCH, r.id)
            } else {
                (0.0, r.starts_at, r.id)
            },
            row: EventRow {
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
            },
        })
        .collect())
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
