//! Guards: taking an [`AuthUser`] or [`AdminUser`] argument IS the authentication (and role)
//! check. Both read `Authorization: Bearer <access token>`, checked by the auth service.

use poem::Request;
use poem_openapi::{SecurityScheme, auth::Bearer};

use crate::{
    auth::{CurrentUser, Role, authenticate},
    error::ApiError,
    state::AppState,
};

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
    Ok({
        let state = state(req)?;
        authenticate(&state.tokens, &state.db, &state.sessions, &bearer.token)
    }
    .await?)
}

async fn check_admin(req: &Request, bearer: Bearer) -> poem::Result<CurrentUser> {
    let user = {
        let state = state(req)?;
        authenticate(&state.tokens, &state.db, &state.sessions, &bearer.token)
    }
    .await?;
    if user.role != Role::Admin {
        return Err(ApiError::forbidden("This action is reserved to administrators.").into());
    }
    Ok(user)
}
