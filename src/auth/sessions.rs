//! Sessions and their rotating refresh tokens.
//!
//! A session is one login on one device and one refresh-token family. Every refresh uses up
//! the presented token and issues the next one; presenting a used token again means it was
//! stolen or replayed, so the whole session is revoked.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::Utc;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Role;
use crate::{
    bus::Bus,
    error::{ApiError, ErrorCode},
    hub::publish_revoked,
    limits::{Key, Limit, Limiter},
};

/// Why a session ended, as stored in `sessions.revoked_reason`.
#[derive(Debug, Clone, Copy)]
pub enum RevokeReason {
    Logout,
    PasswordChange,
    Deactivated,
    RefreshTokenReused,
    /// An administrator suspended the account (acting on a report).
    Suspended,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::PasswordChange => "password_change",
            Self::Deactivated => "deactivated",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::Suspended => "suspended",
        }
    }
}

fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn expiry(ttl: Duration) -> chrono::DateTime<Utc> {
    let ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::days(30));
    Utc::now() + ttl
}

/// Opens a session and returns its id with its first refresh token.
pub async fn open(
    conn: &mut PgConnection,
    user_id: Uuid,
    ttl: Duration,
) -> Result<(Uuid, String), ApiError> {
    let session_id = Uuid::new_v4();
    let token = new_refresh_token();
    sqlx::query!(
        "INSERT INTO sessions (id, user_id, expires_at) VALUES ($1, $2, $3)",
        session_id,
        user_id,
        expiry(ttl),
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        hash_token(&token),
        session_id,
    )
    .execute(&mut *conn)
    .await?;
    Ok((session_id, token))
}

/// The outcome of a successful rotation.
pub struct Rotated {
    pub user_id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
    pub refresh_token: String,
}

/// Uses up `token` and issues the next one of its family.
/// The owner's refresh limit is checked once the token is claimed: when refused, the
/// transaction rolls back and the token stays usable.
pub async fn rotate(
    db: &PgPool,
    bus: &Bus,
    limits: &Limiter,
    token: &str,
    ttl: Duration,
) -> Result<Rotated, ApiError> {
    let hash = hash_token(token);
    let mut tx = db.begin().await?;
    // Only one concurrent use can flip `used_at`; any other sees a used token below.
    let claimed = sqlx::query_scalar!(
        "UPDATE refresh_tokens SET used_at = now()
         WHERE token_hash = $1 AND used_at IS NULL
         RETURNING session_id",
        hash,
    )
    .fetch_optional(&mut *tx)
    .await?;

    let Some(session_id) = claimed else {
        let reused = sqlx::query_scalar!(
            "SELECT session_id FROM refresh_tokens WHERE token_hash = $1",
            hash,
        )
        .fetch_optional(&mut *tx)
        .await?;
        return match reused {
            Some(session_id) => {
                revoke(&mut tx, session_id, RevokeReason::RefreshTokenReused).await?;
                tx.commit().await?;
                publish_revoked(bus, &[session_id]).await;
                tracing::warn!(%session_id, "refresh token reused: session revoked");
                Err(ApiError::unauthorized(
                    ErrorCode::RefreshTokenReused,
                    "This refresh token was already used; the session has been revoked. \
                     Please log in again.",
                ))
            }
            None => Err(invalid_refresh()),
        };
    };

    let owner = sqlx::query!(
        r#"SELECT u.id, u.role AS "role: Role"
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.id = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
             AND u.deactivated_at IS NULL"#,
        session_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(invalid_refresh)?;
    limits
        .check(Limit::RefreshAccount, Key::user(owner.id))
        .await?;

    let next = new_refresh_token();
    sqlx::query!(
        "INSERT INTO refresh_tokens (token_hash, session_id) VALUES ($1, $2)",
        hash_token(&next),
        session_id,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "UPDATE sessions SET last_used_at = now(), expires_at = $2 WHERE id = $1",
        session_id,
        expiry(ttl),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Rotated {
        user_id: owner.id,
        role: owner.role,
        session_id,
        refresh_token: next,
    })
}

fn invalid_refresh() -> ApiError {
    ApiError::unauthorized(
        ErrorCode::InvalidRefreshToken,
        "The refresh token is invalid or expired; please log in again.",
    )
}

/// Ends one session: its access and refresh tokens stop working at once.
pub async fn revoke(
    conn: &mut PgConnection,
    session_id: Uuid,
    reason: RevokeReason,
) -> Result<(), ApiError> {
    sqlx::query!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $2
         WHERE id = $1 AND revoked_at IS NULL",
        session_id,
        reason.as_str(),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends every session of a user, except `keep` when given; returns the sessions ended
/// (announce them with `hub::publish_revoked` after commit).
pub async fn revoke_all(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
) -> Result<Vec<Uuid>, ApiError> {
    Ok(sqlx::query_scalar!(
        "UPDATE sessions SET revoked_at = now(), revoked_reason = $3
         WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2
         RETURNING id",
        user_id,
        keep,
        reason.as_str(),
    )
    .fetch_all(conn)
    .await?)
}

/// Which of these sessions are still alive (not revoked, account active).
pub async fn alive_among(
    db: &sqlx::PgPool,
    sessions: &[Uuid],
) -> Result<std::collections::HashSet<Uuid>, ApiError> {
    let alive = sqlx::query_scalar!(
        "SELECT s.id FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ANY($1) AND s.revoked_at IS NULL AND u.deactivated_at IS NULL",
        sessions
    )
    .fetch_all(db)
    .await?;
    Ok(alive.into_iter().collect())
}
