//! Who is calling: an access token checked against its session (the REST guards in
//! `api/guard.rs` and the socket both ask here).

use sqlx::PgPool;
use uuid::Uuid;

use super::{Role, SessionCache, TokenKeys};
use crate::error::{ApiError, ErrorCode};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
}

/// Verifies an access token and that its session is still alive and its account active.
///
/// The role is read from the database, not the token, so that a demotion applies at once.
/// A session checked within the last [`super::cache::TTL`] is not read again, unless
/// the cache cannot be trusted (see `cache.rs`).
pub async fn authenticate(
    tokens: &TokenKeys,
    db: &PgPool,
    cache: &SessionCache,
    token: &str,
) -> Result<CurrentUser, ApiError> {
    let claims = tokens.verify(token)?;
    if let Some(role) = cache.get(claims.sid, claims.sub) {
        return Ok(CurrentUser {
            id: claims.sub,
            role,
            session_id: claims.sid,
        });
    }
    let epoch = cache.epoch();
    let row = sqlx::query!(
        r#"SELECT u.role AS "role: Role"
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.id = $1 AND s.user_id = $2
             AND s.revoked_at IS NULL AND u.deactivated_at IS NULL"#,
        claims.sid,
        claims.sub,
    )
    .fetch_optional(db)
    .await?;
    match row {
        Some(row) => {
            cache.put(epoch, claims.sid, claims.sub, row.role);
            Ok(CurrentUser {
                id: claims.sub,
                role: row.role,
                session_id: claims.sid,
            })
        }
        None => Err(ApiError::unauthorized(
            ErrorCode::SessionRevoked,
            "This session has ended; please log in again.",
        )),
    }
}
