//! Guards: taking an [`AuthUser`] or [`AdminUser`] argument IS the authentication (and role)
//! check. Both read `Authorization: Bearer <access token>`.

use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};
use uuid::Uuid;

use super::Role;
use crate::{
    error::{ApiError, ErrorCode},
    state::AppState,
};

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: Uuid,
    pub role: Role,
    pub session_id: Uuid,
}

/// Any signed-in user. Swagger UI's "Authorize" button logs in through the OAuth2 password
/// flow of `POST /api/v1/auth/login`.
#[derive(SecurityScheme)]
#[oai(
    ty = "oauth2",
    rename = "OAuth2",
    flows(password(token_url = "/api/v1/auth/login")),
    checker = "check_user"
)]
pub struct AuthUser(pub CurrentUser);

/// A signed-in administrator; anyone else gets 403.
#[derive(SecurityScheme)]
#[oai(
    ty = "oauth2",
    rename = "OAuth2",
    flows(password(token_url = "/api/v1/auth/login")),
    checker = "check_admin"
)]
pub struct AdminUser(pub CurrentUser);

fn state(req: &Request) -> poem::Result<&AppState> {
    req.data::<AppState>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not attached")).into())
}

async fn check_user(req: &Request, bearer: Bearer) -> poem::Result<CurrentUser> {
    Ok(authenticate(state(req)?, &bearer.token).await?)
}

async fn check_admin(req: &Request, bearer: Bearer) -> poem::Result<CurrentUser> {
    let user = authenticate(state(req)?, &bearer.token).await?;
    if user.role != Role::Admin {
        return Err(ApiError::forbidden("This action is reserved to administrators.").into());
    }
    Ok(user)
}

/// Verifies an access token and that its session is still alive and its account active.
///
/// The role is read from the database, not the token, so that a demotion applies at once.
pub async fn authenticate(state: &AppState, token: &str) -> Result<CurrentUser, ApiError> {
    let claims = state.tokens.verify(token)?;
    let row = sqlx::query!(
        r#"SELECT u.role AS "role: Role"
           FROM sessions s JOIN users u ON u.id = s.user_id
           WHERE s.id = $1 AND s.user_id = $2
             AND s.revoked_at IS NULL AND u.deactivated_at IS NULL"#,
        claims.sid,
        claims.sub,
    )
    .fetch_optional(&state.db)
    .await?;
    match row {
        Some(row) => Ok(CurrentUser {
            id: claims.sub,
            role: row.role,
            session_id: claims.sid,
        }),
        None => Err(ApiError::unauthorized(
            ErrorCode::SessionRevoked,
            "This session has ended; please log in again.",
        )),
    }
}
