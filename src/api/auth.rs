//! `/auth/…`: register, log in (JSON or OAuth2 password form), refresh, log out.

use poem::web::Data;
use poem_openapi::{
    ApiRequest, ApiResponse, Object, OpenApi,
    payload::{Form, Json},
    types::Example,
};
use serde::Deserialize;

use super::{
    ApiTags,
    accounts_models::{AuthSession, RegisterErrors, RegisterRequest, SessionResponse},
    registration::register,
    responses::Errors,
};
use crate::{
    accounts,
    api::guard::AuthUser,
    auth::{sessions, sessions::RevokeReason},
    domain::{EMAIL_MAX, Password, Validator},
    envelope::{Envelope, FieldError, Nothing},
    error::{ApiError, ErrorCode},
    error_set,
    hub::publish_revoked,
    limits::{ClientIp, Key, Limit},
    state::AppState,
};

/// Log in with a username or an email.
#[derive(Debug, Object)]
#[oai(example)]
pub struct LoginInput {
    /// Username or email, ignoring case.
    pub login: String,
    pub password: String,
}

impl Example for LoginInput {
    fn example() -> Self {
        Self {
            login: "nina@example.com".into(),
            password: "correct horse battery".into(),
        }
    }
}

/// OAuth2 "password" grant (RFC 6749 §4.3), as sent by the prototype and by Swagger UI.
#[derive(Debug, Object, Deserialize)]
pub struct OAuth2PasswordForm {
    /// `password` when present.
    pub grant_type: Option<String>,
    /// The email (or username).
    pub username: String,
    pub password: String,
    /// Ignored.
    pub scope: Option<String>,
    /// Ignored.
    pub client_id: Option<String>,
    /// Ignored.
    pub client_secret: Option<String>,
}

#[derive(Debug, ApiRequest)]
pub enum LoginRequest {
    Json(Json<LoginInput>),
    Form(Form<OAuth2PasswordForm>),
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct RefreshInput {
    pub refresh_token: String,
}

impl Example for RefreshInput {
    fn example() -> Self {
        Self {
            refresh_token: AuthSession::example().refresh_token,
        }
    }
}

/// Login's envelope. OAuth2 clients such as Swagger UI read `access_token` and `token_type`
/// at the top level (RFC 6749 §5.1), so form logins get them there too.
#[derive(Debug, Object)]
#[oai(example)]
pub struct LoginEnvelope {
    #[oai(flatten)]
    pub envelope: Envelope<AuthSession>,
    /// Present for OAuth2 form logins only: the same as `data.access_token`.
    #[oai(skip_serializing_if_is_none)]
    pub access_token: Option<String>,
    /// Present for OAuth2 form logins only: `bearer`.
    #[oai(skip_serializing_if_is_none)]
    pub token_type: Option<String>,
}

impl Example for LoginEnvelope {
    fn example() -> Self {
        Self {
            envelope: Envelope::ok("Logged in.", AuthSession::example()),
            access_token: None,
            token_type: None,
        }
    }
}

#[derive(ApiResponse)]
pub enum LoginResponse {
    /// Logged in.
    #[oai(status = 200)]
    Ok(Json<LoginEnvelope>),
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// The session has ended; its tokens no longer work.
    #[oai(status = 200)]
    Ok(Json<Envelope<Nothing>>),
}

error_set!(LoginErrors: 400, 401, 403, 413, 415, 422, 429, 500, 503);
error_set!(RefreshErrors: 400, 401, 413, 415, 422, 429, 500, 503);
error_set!(LogoutErrors: 401, 500, 503);

pub struct AuthApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Auth")]
impl AuthApi {
    /// Register
    ///
    /// Creates an account and logs it in: answers the user and a token pair. Limited per
    /// client address (`429`).
    #[oai(
        path = "/auth/register",
        method = "post",
        operation_id = "auth_register"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        ip: Data<&ClientIp>,
        body: RegisterRequest,
    ) -> Result<SessionResponse, Errors<RegisterErrors>> {
        Ok(register(&state, **ip, body.into_input()).await?)
    }

    /// Log in
    ///
    /// JSON `{login, password}` (login = username or email), or the OAuth2 password form
    /// (`username`, `password`) used by the prototype and by Swagger UI's "Authorize".
    /// Attempts are limited per client address and per submitted login, whether that
    /// account exists or not (`429`).
    #[oai(path = "/auth/login", method = "post", operation_id = "auth_login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        ip: Data<&ClientIp>,
        body: LoginRequest,
    ) -> Result<LoginResponse, Errors<LoginErrors>> {
        state.limits.check(Limit::LoginIp, Key::ip(ip.0.0)).await?;
        let (login, password, oauth2) = match body {
            LoginRequest::Json(b) => (b.0.login, b.0.password, false),
            LoginRequest::Form(f) => {
                if let Some(grant) = f.0.grant_type.as_deref()
                    && grant != "password"
                {
                    return Err(ApiError::field(
                        "grant_type",
                        "value_error",
                        "only the `password` grant is supported here",
                    )
                    .into());
                }
                (f.0.username, f.0.password, true)
            }
        };
        let login_field = if oauth2 { "username" } else { "login" };
        let mut v = Validator::new();
        if login.trim().is_empty() {
            v.push(FieldError::new(login_field, "missing", "login is required"));
        } else if login.chars().count() > EMAIL_MAX {
            // No username or email is that long: refuse before any lookup or hashing.
            v.push(FieldError::new(
                login_field,
                "too_long",
                format!("login must be at most {EMAIL_MAX} characters"),
            ));
        }
        if password.is_empty() {
            v.push(FieldError::new(
                "password",
                "missing",
                "password is required",
            ));
        }
        v.finish()?;
        let session = login_with_password(&state, &login, &password).await?;
        let top = oauth2.then(|| session.access_token.clone());
        Ok(LoginResponse::Ok(Json(LoginEnvelope {
            envelope: Envelope::ok("Logged in.", session),
            token_type: top.as_ref().map(|_| "bearer".to_owned()),
            access_token: top,
        })))
    }

    /// Refresh
    ///
    /// Uses up a refresh token and answers a new pair. A token used twice revokes its whole
    /// session (`refresh_token_reused`). Limited per client address and per account
    /// (`429`; the token stays usable).
    #[oai(path = "/auth/refresh", method = "post", operation_id = "auth_refresh")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        ip: Data<&ClientIp>,
        body: Json<RefreshInput>,
    ) -> Result<SessionResponse, Errors<RefreshErrors>> {
        state
            .limits
            .check(Limit::RefreshIp, Key::ip(ip.0.0))
            .await?;
        let rotated = sessions::rotate(
            &state.db,
            &state.bus,
            &state.limits,
            body.0.refresh_token.trim(),
            state.settings.refresh_token_ttl,
        )
        .await?;
        let user = accounts::find_active(&state.db, rotated.user_id)
            .await?
            .ok_or_else(|| {
                ApiError::unauthorized(ErrorCode::InvalidRefreshToken, "The account is gone.")
            })?;
        let (access_token, expires_in) =
            state
                .tokens
                .issue(rotated.user_id, rotated.role, rotated.session_id)?;
        Ok(SessionResponse::Ok(Json(Envelope::ok(
            "Tokens refreshed.",
            AuthSession {
                access_token,
                token_type: "bearer".into(),
                expires_in,
                refresh_token: rotated.refresh_token,
                user: user.into(),
            },
        ))))
    }

    /// Log out
    ///
    /// Ends this session: its access and refresh tokens stop working at once, everywhere.
    #[oai(path = "/auth/logout", method = "post", operation_id = "auth_logout")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
    ) -> Result<LogoutResponse, Errors<LogoutErrors>> {
        let mut conn = state.db.acquire().await?;
        sessions::revoke(&mut conn, auth.0.session_id, RevokeReason::Logout).await?;
        publish_revoked(&state.bus, &[auth.0.session_id]).await;
        Ok(LogoutResponse::Ok(Json(Envelope::ok(
            "Logged out.",
            Nothing,
        ))))
    }
}

/// Checks a login and a password and opens a session.
///
/// An unknown login costs a dummy hash check, so that timing does not tell which accounts
/// exist; a deactivated account is told so only once its password was right.
async fn login_with_password(
    state: &AppState,
    login: &str,
    password: &str,
) -> Result<AuthSession, ApiError> {
    let wrong = || {
        ApiError::unauthorized(
            ErrorCode::InvalidCredentials,
            "Incorrect login or password.",
        )
    };
    let Some(password) = Password::for_login(password) else {
        return Err(wrong());
    };
    let account = accounts::credentials(&state.db, login).await?;
    // Guesses are counted per account, whichever of its username or email is typed (and
    // per typed name when no account has it), before the password is checked.
    let key = account
        .as_ref()
        .map_or_else(|| Key::name(login), |a| Key::user(a.id));
    state.limits.check(Limit::LoginName, key).await?;
    let hash = account.as_ref().and_then(|a| a.password_hash.as_deref());
    if !state.passwords.verify(&password, hash).await? {
        return Err(wrong());
    }
    let account = account.ok_or_else(wrong)?;
    if account.deactivated {
        return Err(ApiError::new(
            poem::http::StatusCode::FORBIDDEN,
            ErrorCode::AccountDeactivated,
            "This account is deactivated.",
        ));
    }
    let mut tx = state.db.begin().await?;
    let (session_id, refresh_token) =
        sessions::open(&mut tx, account.id, state.settings.refresh_token_ttl).await?;
    let user = accounts::find_active(&mut *tx, account.id)
        .await?
        .ok_or_else(wrong)?;
    let (access_token, expires_in) = state.tokens.issue(account.id, account.role, session_id)?;
    tx.commit().await?;
    Ok(AuthSession {
        access_token,
        token_type: "bearer".into(),
        expires_in,
        refresh_token,
        user: user.into(),
    })
}
