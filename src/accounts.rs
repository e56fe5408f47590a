//! Accounts in PostgreSQL: the queries behind registration, login and profiles.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::{
    auth::Role,
    domain::{Email, Username},
    error::{ApiError, ErrorCode, map_unique_violation},
};

/// Unique indexes of `users`, mapped to the answers they deserve.
const UNIQUE: &[(&str, &str, ErrorCode, &str)] = &[
    (
        "users_username_key",
        "username",
        ErrorCode::UsernameTaken,
        "This username is already taken.",
    ),
    (
        "users_email_key",
        "email",
        ErrorCode::EmailTaken,
        "An account already uses this email.",
    ),
];

/// A user as its owner sees it.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub role: Role,
    pub bio: Option<String>,
    pub photo_url: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What login needs to know about an account.
pub struct Credentials {
    pub id: Uuid,
    pub role: Role,
    pub password_hash: Option<String>,
    pub deactivated: bool,
}

pub async fn insert(
    conn: &mut PgConnection,
    username: &Username,
    email: &Email,
    password_hash: &str,
    role: Role,
) -> Result<UserRow, ApiError> {
    sqlx::query_as!(
        UserRow,
        r#"INSERT INTO users (username, email, password_hash, role)
           VALUES ($1, $2, $3, $4)
           RETURNING id, username, email, role AS "role: Role", bio, photo_url, city,
                     latitude, longitude, created_at, updated_at"#,
        username.as_str(),
        email.as_str(),
        password_hash,
        role as Role,
    )
    .fetch_one(conn)
    .await
    .map_err(|err| map_unique_violation(err, UNIQUE))
}

/// Finds an account by username or email, ignoring case.
pub async fn credentials(
    db: impl PgExecutor<'_>,
    login: &str,
) -> Result<Option<Credentials>, ApiError> {
    // PostgreSQL refuses NUL in text; no username or email contains one anyway.
    if login.contains('\0') {
        return Ok(None);
    }
    let row = sqlx::query!(
        r#"SELECT id, role AS "role: Role", password_hash, deactivated_at IS NOT NULL AS "deactivated!"
           FROM users
           WHERE lower(username) = lower($1) OR lower(email) = lower($1)
           LIMIT 1"#,
        login.trim(),
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| Credentials {
        id: r.id,
        role: r.role,
        password_hash: r.password_hash,
        deactivated: r.deactivated,
    }))
}

pub async fn password_hash(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<String>, ApiError> {
    Ok(
        sqlx::query_scalar!("SELECT password_hash FROM users WHERE id = $1", id)
            .fetch_optional(db)
            .await?
            .flatten(),
    )
}

/// An active (not deactivated) account.
pub async fn find_active(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<UserRow>, ApiError> {
    Ok(sqlx::query_as!(
        UserRow,
        r#"SELECT id, username, email, role AS "role: Role", bio, photo_url, city,
                  latitude, longitude, created_at, updated_at
           FROM users WHERE id = $1 AND deactivated_at IS NULL"#,
        id,
    )
    .fetch_optional(db)
    .await?)
}

/// A profile change. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub username: Option<Username>,
    pub bio: Option<Option<String>>,
    pub photo_url: Option<Option<String>>,
    pub city: Option<Option<String>>,
    pub coordinates: Option<Option<(f64, f64)>>,
}

pub async fn update_profile(
    db: impl PgExecutor<'_>,
    id: Uuid,
    change: &ProfileChange,
) -> Result<UserRow, ApiError> {
    let coords = change.coordinates.flatten();
    sqlx::query_as!(
        UserRow,
        r#"UPDATE users SET
             username  = COALESCE($2, username),
             bio       = CASE WHEN $3 THEN $4 ELSE bio END,
             photo_url = CASE WHEN $5 THEN $6 ELSE photo_url END,
             city      = CASE WHEN $7 THEN $8 ELSE city END,
             latitude  = CASE WHEN $9 THEN $10 ELSE latitude END,
             longitude = CASE WHEN $9 THEN $11 ELSE longitude END,
             updated_at = now()
           WHERE id = $1 AND deactivated_at IS NULL
           RETURNING id, username, email, role AS "role: Role", bio, photo_url, city,
                     latitude, longitude, created_at, updated_at"#,
        id,
        change.username.as_ref().map(Username::as_str),
        change.bio.is_some(),
        change.bio.clone().flatten(),
        change.photo_url.is_some(),
        change.photo_url.clone().flatten(),
        change.city.is_some(),
        change.city.clone().flatten(),
        change.coordinates.is_some(),
        coords.map(|c| c.0),
        coords.map(|c| c.1),
    )
    .fetch_optional(db)
    .await
    .map_err(|err| map_unique_violation(err, UNIQUE))?
    .ok_or_else(|| ApiError::not_found("User"))
}

pub async fn set_password(conn: &mut PgConnection, id: Uuid, hash: &str) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
        id,
        hash,
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn deactivate(conn: &mut PgConnection, id: Uuid) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE users SET deactivated_at = COALESCE(deactivated_at, now()), updated_at = now()
         WHERE id = $1",
        id,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Erases personal data: what stays is an anonymous row, so that what others wrote in
/// shared places (conversations, events) keeps a consistent author.
pub async fn erase(conn: &mut PgConnection, id: Uuid) -> Result<(), ApiError> {
    let placeholder = format!("deleted-{}", id.simple());
    sqlx::query!(
        "UPDATE users SET username = $2, email = NULL, password_hash = NULL, bio = NULL,
             photo_url = NULL, city = NULL, latitude = NULL, longitude = NULL,
             deactivated_at = COALESCE(deactivated_at, now()), erased_at = now(),
             updated_at = now()
         WHERE id = $1",
        id,
        placeholder,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes an existing account (by username or email) an administrator; `None` if no such one.
pub async fn promote(db: impl PgExecutor<'_>, login: &str) -> Result<Option<Uuid>, ApiError> {
    Ok(sqlx::query_scalar!(
        "UPDATE users SET role = 'admin', updated_at = now()
         WHERE lower(username) = lower($1) OR lower(email) = lower($1)
         RETURNING id",
        login,
    )
    .fetch_optional(db)
    .await?)
}

/// Sets the role of an active account; `None` if there is no such account.
pub async fn set_role(
    db: impl PgExecutor<'_>,
    id: Uuid,
    role: Role,
) -> Result<Option<(Uuid, String, Role)>, ApiError> {
    let row = sqlx::query!(
        r#"UPDATE users SET role = $2, updated_at = now()
           WHERE id = $1 AND deactivated_at IS NULL
           RETURNING id, username, role AS "role: Role""#,
        id,
        role as Role,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.id, r.username, r.role)))
}
