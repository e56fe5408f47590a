//! Registering an account: what `POST /auth/register` and the prototype's
//! `POST /users/register` both do.

use poem_openapi::payload::Json;

use super::accounts_models::{AuthSession, RegisterInput, SessionResponse};
use crate::{
    accounts,
    auth::{Role, sessions},
    domain::{Email, Password, Username, Validator, checked},
    envelope::Envelope,
    error::ApiError,
    limits::{ClientIp, Key, Limit},
    state::AppState,
};

/// Creates an account and its first session.
pub async fn register(
    state: &AppState,
    ip: ClientIp,
    input: RegisterInput,
) -> Result<SessionResponse, ApiError> {
    state.limits.check(Limit::RegisterIp, Key::ip(ip.0)).await?;
    let mut v = Validator::new();
    let username = v.check(Username::parse("username", &input.username));
    let email = v.check(Email::parse("email", &input.email));
    let password = v.check(Password::parse("password", &input.password));
    v.finish()?;
    let (username, email, password) = (checked(username)?, checked(email)?, checked(password)?);

    let hash = state.passwords.hash(&password).await?;
    let mut tx = state.db.begin().await?;
    let user = accounts::insert(&mut tx, &username, &email, &hash, Role::User).await?;
    let (session_id, refresh_token) =
        sessions::open(&mut tx, user.id, state.settings.refresh_token_ttl).await?;
    let (access_token, expires_in) = state.tokens.issue(user.id, user.role, session_id)?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, "account registered");
    Ok(SessionResponse::Created(Json(Envelope::created(
        "Account created.",
        AuthSession {
            access_token,
            token_type: "bearer".into(),
            expires_in,
            refresh_token,
            user: user.into(),
        },
    ))))
}
