//! What musicians play (with a level) and like, and finding musicians: the queries.

use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::{
    catalogue::{Category, SkillLevel},
    error::ApiError,
};

/// An instrument a musician plays.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Played {
    pub user_id: Uuid,
    pub instrument_id: Uuid,
    pub name: String,
    pub category: Category,
    pub level: SkillLevel,
}

/// A genre a musician likes.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Liked {
    pub user_id: Uuid,
    pub genre_id: Uuid,
    pub name: String,
}

/// A foreign-key violation on `constraint` means the referenced entry does not exist.
fn missing_ref(err: sqlx::Error, constraint: &str, what: &str) -> ApiError {
    if let sqlx::Error::Database(db) = &err
        && db.is_foreign_key_violation()
        && db.constraint() == Some(constraint)
    {
        return ApiError::not_found(what);
    }
    ApiError::from(err)
}

/// Sets (or changes) the level at which `user` plays `instrument`. Idempotent.
pub async fn set_instrument(
    db: &PgPool,
    user: Uuid,
    instrument: Uuid,
    level: SkillLevel,
) -> Result<Played, ApiError> {
    sqlx::query!(
        "INSERT INTO user_instruments (user_id, instrument_id, level) VALUES ($1, $2, $3)
         ON CONFLICT (user_id, instrument_id)
         DO UPDATE SET level = EXCLUDED.level,
                       updated_at = CASE WHEN user_instruments.level = EXCLUDED.level
                                         THEN user_instruments.updated_at ELSE now() END",
        user,
        instrument,
        level as SkillLevel,
    )
    .execute(db)
    .await
    .map_err(|e| missing_ref(e, "user_instruments_instrument_fkey", "Instrument"))?;
    let mut rows = instruments_of(db, &[user]).await?;
    rows.retain(|p| p.instrument_id == instrument);
    rows.pop().ok_or_else(|| ApiError::not_found("Instrument"))
}

pub async fn remove_instrument(
    db: impl PgExecutor<'_>,
    user: Uuid,
    instrument: Uuid,
) -> Result<bool, ApiError> {
    let done = sqlx::query!(
        "DELETE FROM user_instruments WHERE user_id = $1 AND instrument_id = $2",
        user,
        instrument,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Adds a liked genre; `true` if it was new. Idempotent.
pub async fn add_genre(db: impl PgExecutor<'_>, user: Uuid, genre: Uuid) -> Result<bool, ApiError> {
    let done = sqlx::query!(
        "INSERT INTO user_genres (user_id, genre_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        user,
        genre,
    )
    .execute(db)
    .await
    .map_err(|e| missing_ref(e, "user_genres_genre_fkey", "Genre"))?;
    Ok(done.rows_affected() > 0)
}

pub async fn remove_genre(
    db: impl PgExecutor<'_>,
    user: Uuid,
    genre: Uuid,
) -> Result<bool, ApiError> {
    let done = sqlx::query!(
        "DELETE FROM user_genres WHERE user_id = $1 AND genre_id = $2",
        user,
        genre,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Instruments of several musicians at once, sorted by name.
pub async fn instruments_of(
    db: impl PgExecutor<'_>,
    users: &[Uuid],
) -> Result<Vec<Played>, ApiError> {
    Ok(sqlx::query_as!(
        Played,
        r#"SELECT ui.user_id, ui.instrument_id, i.name, i.category AS "category: Category",
                  ui.level AS "level: SkillLevel"
           FROM user_instruments ui JOIN instruments i ON i.id = ui.instrument_id
           WHERE ui.user_id = ANY($1)
           ORDER BY ui.user_id, lower(i.name), i.id"#,
        users,
    )
    .fetch_all(db)
    .await?)
}

/// An active musician's public profile, with their instruments and genres.
#[derive(Debug)]
pub struct Profile {
    pub id: Uuid,
    pub username: String,
    pub bio: Option<String>,
    pub photo_url: Option<String>,
    pub city: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub instruments: Vec<Played>,
    pub genres: Vec<Liked>,
}

/// An active musician's public profile, in one round trip (instruments and genres
/// aggregated in SQL, sorted by name as [`instruments_of`] and [`genres_of`] sort them).
pub async fn profile(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Profile>, ApiError> {
    let row = sqlx::query!(
        r#"SELECT u.id, u.username, u.bio, u.photo_url, u.city, u.created_at,
                  COALESCE((
                      SELECT json_agg(json_build_object(
                                 'user_id', ui.user_id, 'instrument_id', ui.instrument_id,
                                 'name', i.name, 'category', i.category, 'level', ui.level)
                             ORDER BY lower(i.name), i.id)
                      FROM user_instruments ui JOIN instruments i ON i.id = ui.instrument_id
                      WHERE ui.user_id = u.id), '[]') AS "instruments!: sqlx::types::Json<Vec<Played>>",
                  COALESCE((
                      SELECT json_agg(json_build_object(
                                 'user_id', ug.user_id, 'genre_id', ug.genre_id, 'name', g.name)
                             ORDER BY lower(g.name), g.id)
                      FROM user_genres ug JOIN genres g ON g.id = ug.genre_id
                      WHERE ug.user_id = u.id), '[]') AS "genres!: sqlx::types::Json<Vec<Liked>>"
           FROM users u WHERE u.id = $1 AND u.deactivated_at IS NULL"#,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Profile {
        id: r.id,
        username: r.username,
        bio: r.bio,
        photo_url: r.photo_url,
        city: r.city,
        created_at: r.created_at,
        instruments: r.instruments.0,
        genres: r.genres.0,
    }))
}

/// Liked genres of several musicians at once, sorted by name.
pub async fn genres_of(db: impl PgExecutor<'_>, users: &[Uuid]) -> Result<Vec<Liked>, ApiError> {
    Ok(sqlx::query_as!(
        Liked,
        "SELECT ug.user_id, ug.genre_id, g.name
         FROM user_genres ug JOIN genres g ON g.id = ug.genre_id
         WHERE ug.user_id = ANY($1)
         ORDER BY ug.user_id, lower(g.name), g.id",
        users,
    )
    .fetch_all(db)
    .await?)
}

/// What to look for. Every filter is optional; they combine with AND.
#[derive(Debug, Default)]
pub struct Search {
    /// Matched anywhere in the username or the city, ignoring case.
    pub text: Option<String>,
    pub instrument: Option<Uuid>,
    pub min_level: Option<SkillLevel>,
    pub genre: Option<Uuid>,
    /// A point and a radius in metres; results are then sorted by distance. Distances are
    /// to each musician's `area` (their point rounded to 0.01°), never their exact point,
    /// and a radius under [`MIN_RADIUS_M`] counts as that.
    pub near: Option<(f64, f64, f64)>,
}

/// The smallest radius a musician search uses: with the rounded areas, no query locates a
/// person better than their area's cell (see the `users_area` migration).
pub const MIN_RADIUS_M: f64 = 1000.0;

/// The sort key of a result: (distance in metres, or 0) then (lower-case name, or "") then id.
pub type SearchKey = (f64, String, Uuid);

#[derive(Debug)]
pub struct Found {
    pub id: Uuid,
    pub username: String,
    pub bio: Option<String>,
    pub photo_url: Option<String>,
    pub city: Option<String>,
    pub distance_m: Option<f64>,
    pub key_num: f64,
    pub key_text: String,
}

/// Finds active musicians, `fetch` at most, after `after`, for `viewer` (who never finds
/// someone on the other side of a block).
///
/// One static statement serves every combination of filters; it runs with
/// `plan_cache_mode = force_custom_plan` so that PostgreSQL plans each call with its actual
/// values and picks the matching index (trigram, GiST on `area`, instrument level)
/// instead of a generic plan that could only scan.
pub async fn search(
    db: &PgPool,
    viewer: Uuid,
    filter: &Search,
    after: Option<&SearchKey>,
    fetch: i64,
) -> Result<Vec<Found>, ApiError> {
    let pattern = filter
        .text
        .as_deref()
        .map(|t| format!("%{}%", escape_like(t)));
    let (lat, lon, radius) = match filter.near {
        Some((lat, lon, r)) => (Some(lat), Some(lon), Some(r.max(MIN_RADIUS_M))),
        None => (None, None, None),
    };
    let mut tx = db.begin().await?;
    force_custom_plans(&mut tx).await?;
    let rows = sqlx::query_as!(
        Found,
        r#"SELECT id AS "id!", username AS "username!", bio, photo_url, city, distance_m,
                  key_num AS "key_num!", key_text AS "key_text!"
           FROM (
             SELECT u.id, u.username, u.bio, u.photo_url, u.city, d.distance_m,
                    COALESCE(d.distance_m, 0) AS key_num,
                    CASE WHEN $4::float8 IS NULL THEN lower(u.username) ELSE '' END AS key_text
             FROM users u
             CROSS JOIN LATERAL (
               SELECT CASE WHEN $4::float8 IS NULL THEN NULL
                      ELSE earth_distance(ll_to_earth($4, $5), u.area)
                      END AS distance_m
             ) d
             WHERE u.deactivated_at IS NULL
               AND NOT EXISTS (
                     SELECT 1 FROM blocks b
                     WHERE (b.blocker_id = $12 AND b.blocked_id = u.id)
                        OR (b.blocker_id = u.id AND b.blocked_id = $12))
               AND ($1::text IS NULL OR (u.username || ' ' || coalesce(u.city, '')) ILIKE $1)
               AND ($2::uuid IS NULL OR EXISTS (
                     SELECT 1 FROM user_instruments ui
                     WHERE ui.user_id = u.id AND ui.instrument_id = $2
                       AND ui.level >= COALESCE($3::skill_level, 'beginner')))
               AND ($7::uuid IS NULL OR EXISTS (
                     SELECT 1 FROM user_genres ug WHERE ug.user_id = u.id AND ug.genre_id = $7))
               AND ($4::float8 IS NULL OR (
                     u.area IS NOT NULL
                     AND earth_box(ll_to_earth($4, $5), $6) @> u.area
                     AND earth_distance(ll_to_earth($4, $5), u.area) <= $6))
           ) found
           WHERE $8::float8 IS NULL OR (key_num, key_text, id) > ($8, $9, $10)
           ORDER BY key_num, key_text, id
           LIMIT $11"#,
        pattern,
        filter.instrument,
        filter.min_level as Option<SkillLevel>,
        lat,
        lon,
        radius,
        filter.genre,
        after.map(|a| a.0),
        after.map(|a| a.1.clone()),
        after.map(|a| a.2),
        fetch,
        viewer,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// Plans the next statements of this transaction with their actual parameter values.
pub async fn force_custom_plans(conn: &mut PgConnection) -> Result<(), ApiError> {
    sqlx::query!("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(conn)
        .await?;
    Ok(())
}

/// Escapes `%`, `_` and `\` so that user text is matched literally by LIKE.
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
