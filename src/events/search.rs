//! Event search: radius, dates, type, instrument, genre and text, combined; one prepared
//! statement per combination of filters in use.

use chrono::{DateTime, Duration, Utc};
use sqlx::{PgPool, Postgres, QueryBuilder};
use uuid::Uuid;

use super::{EventRow, EventType, MAX_DURATION_DAYS, StoredStatus};
use crate::{error::ApiError, musicians::escape_like};

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

/// The event columns every search answers, `e` being `events` and `u` its creator.
const COLUMNS: &str = "e.id, e.creator_id, u.username AS creator_username, e.title, e.description,
     e.type AS kind, e.starts_at, e.ends_at, e.address, e.latitude, e.longitude,
     e.capacity, e.image_url, e.status, e.participants_count, e.created_at, e.updated_at";

/// Finds events, `fetch` at most, after `after`.
///
/// The statement holds only the filters in use (values are always bound parameters), so
/// each combination is one prepared statement whose plan PostgreSQL caches: the hot search
/// (radius + date window) costs no planning, and each filter's condition can use its index
/// (GiST on `location`, btree on `starts_at`, trigram on the text). Every combination is
/// exercised by the integration tests.
///
/// Around a point in start-time order, with no text, instrument or genre filter, the few
/// grid cells that cover the circle are read instead (see [`cells_around`]).
pub async fn search(
    db: &PgPool,
    s: &Search,
    after: Option<&SearchKey>,
    fetch: i64,
) -> Result<Vec<Found>, ApiError> {
    let by_distance = s.by_distance && s.near.is_some();
    let plain = s.text.is_none() && s.instrument.is_none() && s.genre.is_none();
    if let (Some(near), false, true) = (s.near, by_distance, plain)
        && let Some(cells) = cells_around(near.0, near.1, near.2)
    {
        return by_cell(db, s, near, &cells, after, fetch).await;
    }
    let mut q = QueryBuilder::<Postgres>::new("");
    if let Some((lat, lon, _)) = s.near {
        // The origin once per query, not once per row (generic plans do not fold it).
        q.push("WITH o AS MATERIALIZED (SELECT ll_to_earth(")
            .push_bind(lat)
            .push(", ")
            .push_bind(lon)
            .push(") AS p) ");
    }
    q.push("SELECT ")
        .push(COLUMNS)
        .push(", e.distance_m FROM (SELECT e.*, ");
    if s.near.is_some() {
        q.push("earth_distance(o.p, e.location) AS distance_m FROM events e, o WHERE true");
    } else {
        q.push("NULL::float8 AS distance_m FROM events e WHERE true");
    }
    push_filters(&mut q, s);
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
    if let Some((d, ts, id)) = after {
        if by_distance {
            q.push(" AND (earth_distance(o.p, e.location), e.id) > (")
                .push_bind(*d)
                .push(", ")
                .push_bind(*id)
                .push(")");
        } else {
            push_after_start(&mut q, *ts, *id);
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
    found(q, db, by_distance).await
}

/// The conditions of the filters in use other than the place, on `events e`.
fn push_filters(q: &mut QueryBuilder<Postgres>, s: &Search) {
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
            // The start bound follows from the end bound (the table's duration constraint)
            // and lets an index in start order skip the past.
            q.push(" AND e.status = 'scheduled' AND e.ends_at > now() AND e.starts_at > now() - ")
                .push_bind(Duration::days(MAX_DURATION_DAYS));
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
}

fn push_after_start(q: &mut QueryBuilder<Postgres>, ts: DateTime<Utc>, id: Uuid) {
    q.push(" AND (e.starts_at, e.id) > (")
        .push_bind(ts)
        .push(", ")
        .push_bind(id)
        .push(")");
}

/// Around a point in start-time order, through the `events_by_cell` index: each cell gives
/// its first `fetch` events within the radius in start order (read from the index alone),
/// and the page is the first `fetch` of those. A dense city then costs a few short index
/// ranges and one heap read per answered event, whatever the number of events around.
async fn by_cell(
    db: &PgPool,
    s: &Search,
    (lat, lon, radius): (f64, f64, f64),
    cells: &[i32],
    after: Option<&SearchKey>,
    fetch: i64,
) -> Result<Vec<Found>, ApiError> {
    let mut q = QueryBuilder::<Postgres>::new("WITH o AS MATERIALIZED (SELECT ll_to_earth(");
    q.push_bind(lat)
        .push(", ")
        .push_bind(lon)
        .push(") AS p) SELECT ")
        .push(COLUMNS)
        .push(", c.distance_m FROM (SELECT c.* FROM unnest(")
        .push_bind(cells.to_vec())
        .push(
            "::int4[]) AS k(cell), o, LATERAL (
               SELECT e.id, e.starts_at, earth_distance(o.p, e.location) AS distance_m
               FROM events e WHERE e.cell = k.cell AND earth_distance(o.p, e.location) <= ",
        )
        .push_bind(radius);
    push_filters(&mut q, s);
    if let Some((_, ts, id)) = after {
        push_after_start(&mut q, *ts, *id);
    }
    q.push(" ORDER BY e.starts_at, e.id LIMIT ")
        .push_bind(fetch)
        .push(") c ORDER BY c.starts_at, c.id LIMIT ")
        .push_bind(fetch)
        .push(
            ") c JOIN events e ON e.id = c.id JOIN users u ON u.id = e.creator_id
             ORDER BY c.starts_at, c.id",
        );
    found(q, db, false).await
}

/// Cells per degree of the `events.cell` grid (see its migration).
const CELLS_PER_DEGREE: f64 = 2.0;
/// Past this many cells, one scan of the space-time GiST index costs less.
const MAX_CELLS: usize = 64;
/// The sphere of earthdistance's `earth()`, in metres.
const EARTH_RADIUS_M: f64 = 6_378_168.0;

fn cell_row(lat: f64) -> i32 {
    ((lat + 90.0) * CELLS_PER_DEGREE).floor() as i32
}

fn cell_column(lon: f64) -> i32 {
    ((lon + 180.0) * CELLS_PER_DEGREE).floor() as i32
}

/// The cells of `events.cell` that can hold a point within `radius` metres of (lat, lon),
/// or `None` when there are more than [`MAX_CELLS`]. The circle's extent is widened by a
/// millionth of a degree so that rounding can never leave out a cell.
pub(crate) fn cells_around(lat: f64, lon: f64, radius: f64) -> Option<Vec<i32>> {
    const MARGIN: f64 = 1e-6;
    let angle = radius / EARTH_RADIUS_M;
    let dlat = angle.to_degrees() + MARGIN;
    let (south, north) = ((lat - dlat).max(-90.0), (lat + dlat).min(90.0));
    // Longitudes the circle spans: all of them when it reaches a pole.
    let mut spans = Vec::with_capacity(2);
    let polar = lat.abs().to_radians() + angle >= std::f64::consts::FRAC_PI_2;
    let dlon = if polar {
        f64::INFINITY
    } else {
        (angle.sin() / lat.to_radians().cos())
            .min(1.0)
            .asin()
            .to_degrees()
            + MARGIN
    };
    let (west, east) = (lon - dlon, lon + dlon);
    if east - west >= 360.0 {
        spans.push((-180.0, 180.0));
    } else if west < -180.0 {
        spans.extend([(west + 360.0, 180.0), (-180.0, east)]);
    } else if east > 180.0 {
        spans.extend([(west, 180.0), (-180.0, east - 360.0)]);
    } else {
        spans.push((west, east));
    }
    let rows = cell_row(south)..=cell_row(north);
    let columns: Vec<i32> = spans
        .into_iter()
        .flat_map(|(w, e)| cell_column(w)..=cell_column(e))
        .collect();
    if rows.clone().count() * columns.len() > MAX_CELLS {
        return None;
    }
    Some(
        rows.flat_map(|r| columns.iter().map(move |c| r * 1000 + c))
            .collect(),
    )
}

async fn found(
    mut q: QueryBuilder<Postgres>,
    db: &PgPool,
    by_distance: bool,
) -> Result<Vec<Found>, ApiError> {
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
