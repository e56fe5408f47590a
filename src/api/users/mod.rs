//! `/users/me…` and `/users/{id}`: profiles, password change, deactivation and erasure.

mod models;

use crate::api::timestamp::Timestamp;
use poem::web::Data;
use poem_openapi::{
    ApiResponse, OpenApi,
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
};
use uuid::Uuid;

pub use self::models::*;
use super::{
    ApiTags,
    accounts_models::{Me, RegisterErrors, RegisterRequest, SessionResponse},
    registration::register,
    responses::Errors,
};
use crate::{
    accounts::{self, ProfileChange},
    api::guard::{AdminUser, AuthUser},
    auth::{Role, sessions, sessions::RevokeReason},
    domain::{Coordinates, Password, ProfileText, Url, Username, Validator, checked},
    envelope::{Envelope, FieldError, Nothing},
    error::ApiError,
    error_set,
    hub::publish_revoked,
    limits::{ClientIp, Key, Limit},
    state::AppState,
};

pub const BIO_MAX: usize = 1000;
pub const CITY_MAX: usize = 100;

#[derive(ApiResponse)]
pub enum RoleResponse {
    /// The role was set; it applies at once to the account's live sessions.
    #[oai(status = 200)]
    Ok(Json<Envelope<RoleView>>),
}

#[derive(ApiResponse)]
pub enum MeResponse {
    /// Your profile.
    #[oai(status = 200)]
    Ok(Json<Envelope<Me>>),
}

#[derive(ApiResponse)]
pub enum PublicProfileResponse {
    /// The musician's public profile.
    #[oai(status = 200)]
    Ok(Json<Envelope<PublicProfile>>),
}

#[derive(ApiResponse)]
pub enum DoneResponse {
    /// Done; `data` is `null`.
    #[oai(status = 200)]
    Ok(Json<Envelope<Nothing>>),
}

error_set!(ReadErrors: 401, 500, 503);
error_set!(LookupErrors: 400, 401, 404, 422, 500, 503);
error_set!(WriteErrors: 400, 401, 404, 409, 413, 415, 422, 500, 503);
error_set!(AdminWriteErrors: 400, 401, 403, 404, 413, 415, 422, 500, 503);
error_set!(PasswordErrors: 400, 401, 413, 415, 422, 429, 500, 503);
error_set!(DeleteErrors: 400, 401, 404, 413, 415, 422, 429, 500, 503);

pub struct UsersApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Users")]
impl UsersApi {
    /// Register (prototype path)
    ///
    /// Same as `POST /auth/register`, kept for the first mobile prototype. Accepts JSON,
    /// `multipart/form-data` or `application/x-www-form-urlencoded`.
    #[oai(
        path = "/users/register",
        method = "post",
        operation_id = "users_register"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        ip: Data<&ClientIp>,
        body: RegisterRequest,
    ) -> Result<SessionResponse, Errors<RegisterErrors>> {
        Ok(register(&state, **ip, body.into_input()).await?)
    }

    /// My profile
    ///
    /// My account: profile, email and role. Exact coordinates are shown to me only.
    #[oai(path = "/users/me", method = "get", operation_id = "users_me_get")]
    async fn me(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
    ) -> Result<MeResponse, Errors<ReadErrors>> {
        let user = accounts::find_active(&state.db, auth.0.id)
            .await?
            .ok_or_else(|| ApiError::not_found("User"))?;
        Ok(MeResponse::Ok(Json(Envelope::ok(
            "Your profile.",
            user.into(),
        ))))
    }

    /// Update my profile
    ///
    /// Changes what is sent and leaves the rest; `null` clears a field. Every bad field is
    /// reported at once and nothing is written then.
    #[oai(path = "/users/me", method = "patch", operation_id = "users_me_update")]
    async fn update_me(
        &self,
        state: Data<&AppState>,
        auth: AuthUser,
        body: Json<UpdateProfile>,
    ) -> Result<MeResponse, Errors<WriteErrors>> {
        let change = parse_profile_change(body.0)?;
        let user = accounts::update_profile(&state.db, auth.0.id, &change).await?;
        Ok(MeResponse::Ok(Json(Envelope::ok(
            "Profile updated.",
            user.into(),
        ))))
    }

    /// Deactivate or erase my account
    ///
    /// Deactivates the account and ends every session. With `erase=true` and your password
    /// in the body (`{"password": "…"}`), personal data (username, email, password, bio,
    /// photo, place) is also erased for good; what you wrote in shared places stays, under
    /// an anonymous name. Erasure attempts are limited like password changes (`429`).
    #[oai(
        path = "/users/me",
        method = "delete",
        operation_id = "users_me_delete"
    )]
    async fn delete_me(
        &self,
        state: Data<&AppState>,
        ip: Data<&ClientIp>,
        auth: AuthUser,
        /// Erase personal data instead of only deactivating; takes `password` in the body.
        #[oai(default)]
        erase: Query<bool>,
        body: Json<Option<EraseAccount>>,
    ) -> Result<DoneResponse, Errors<DeleteErrors>> {
        if erase.0 {
            let password = body.0.map(|b| b.password).unwrap_or_default();
            check_password(&state, ip.0, auth.0.id, "password", &password).await?;
        }
        end_account(&state, auth.0.id, erase.0).await?;
        let message = if erase.0 {
            "Account deactivated and personal data erased."
        } else {
            "Account deactivated."
        };
        Ok(DoneResponse::Ok(Json(Envelope::ok(message, Nothing))))
    }

    /// Change my password
    ///
    /// Requires the current password. Every other session ends; this one stays. Attempts
    /// are limited per client address and per account (`429`).
    #[oai(
        path = "/users/me/password",
        method = "put",
        operation_id = "users_me_password"
    )]
    async fn change_password(
        &self,
        state: Data<&AppState>,
        ip: Data<&ClientIp>,
        auth: AuthUser,
        body: Json<ChangePassword>,
    ) -> Result<DoneResponse, Errors<PasswordErrors>> {
        let mut v = Validator::new();
        let new = v.check(Password::parse("new_password", &body.new_password));
        v.finish()?;
        let new = checked(new)?;
        check_password(
            &state,
            ip.0,
            auth.0.id,
            "current_password",
            &body.current_password,
        )
        .await?;
        let hash = state.passwords.hash(&new).await?;
        let mut tx = state.db.begin().await?;
        accounts::set_password(&mut tx, auth.0.id, &hash).await?;
        let ended = sessions::revoke_all(
            &mut tx,
            auth.0.id,
            Some(auth.0.session_id),
            RevokeReason::PasswordChange,
        )
        .await?;
        tx.commit().await?;
        publish_revoked(&state.bus, &ended).await;
        Ok(DoneResponse::Ok(Json(Envelope::ok(
            "Password changed; your other sessions have ended.",
            Nothing,
        ))))
    }

    /// A musician's public profile
    ///
    /// A musician's public profile: no email, no exact place (the city only), with what they
    /// play and like. Deactivated accounts answer 404.
    #[oai(path = "/users/:id", method = "get", operation_id = "users_get")]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: AuthUser,
        id: Path<Uuid>,
    ) -> Result<PublicProfileResponse, Errors<LookupErrors>> {
        // One round trip: the profile with its instruments and genres.
        let u = crate::musicians::profile(&state.db, id.0)
            .await?
            .ok_or_else(|| ApiError::not_found("User"))?;
        Ok(PublicProfileResponse::Ok(Json(Envelope::ok(
            "Profile.",
            PublicProfile {
                id: u.id,
                username: u.username,
                bio: u.bio,
                photo_url: u.photo_url,
                city: u.city,
                created_at: Timestamp(u.created_at),
                instruments: u.instruments.into_iter().map(Into::into).collect(),
                genres: u.genres.into_iter().map(Into::into).collect(),
            },
        ))))
    }

    /// Set an account's role (admin)
    ///
    /// Promotes or demotes an account. Administrators cannot demote themselves, so that
    /// there is always one left.
    #[oai(
        path = "/users/:id/role",
        method = "put",
        operation_id = "users_set_role"
    )]
    async fn set_role(
        &self,
        state: Data<&AppState>,
        admin: AdminUser,
        id: Path<Uuid>,
        body: Json<SetRole>,
    ) -> Result<RoleResponse, Errors<AdminWriteErrors>> {
        let role = body
            .0
            .role
            .parse("role")
            .map_err(|e| ApiError::validation(vec![e]))?;
        if id.0 == admin.0.id && role != Role::Admin {
            return Err(ApiError::field(
                "role",
                "value_error",
                "administrators cannot demote themselves",
            )
            .into());
        }
        let (id, username, role) = accounts::set_role(&state.db, id.0, role)
            .await?
            .ok_or_else(|| ApiError::not_found("User"))?;
        // Their sessions' cached role goes on every instance: the change applies at once.
        crate::auth::cache::publish_changed(&state.bus, &[id]).await;
        tracing::info!(admin = %admin.0.id, user = %id, ?role, "role changed");
        Ok(RoleResponse::Ok(Json(Envelope::ok(
            "Role updated.",
            RoleView { id, username, role },
        ))))
    }
}

/// Checks every field of a profile change, reporting all bad fields at once.
fn parse_profile_change(body: UpdateProfile) -> Result<ProfileChange, ApiError> {
    /// `None`: leave alone; `Some(None)`: clear; a bad value is recorded by the validator.
    fn text(
        v: &mut Validator,
        value: MaybeUndefined<String>,
        parse: impl Fn(&str) -> Result<Option<String>, FieldError>,
    ) -> Option<Option<String>> {
        match value {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(s) => v.check(parse(&s)),
        }
    }

    let mut v = Validator::new();
    let username = body
        .username
        .and_then(|u| v.check(Username::parse("username", &u)));
    let bio = text(&mut v, body.bio, |s| ProfileText::parse("bio", s, BIO_MAX));
    let photo_url = text(&mut v, body.photo_url, |s| Url::parse("photo_url", s));
    let city = text(&mut v, body.city, |s| {
        ProfileText::line("city", s, CITY_MAX)
    });
    let coordinates = match (body.latitude, body.longitude) {
        (MaybeUndefined::Undefined, MaybeUndefined::Undefined) => None,
        (MaybeUndefined::Null, MaybeUndefined::Null) => Some(None),
        (lat, lon) => match Coordinates::parse(
            "latitude",
            "longitude",
            lat.value().copied(),
            lon.value().copied(),
        ) {
            Ok(Some(c)) => Some(Some((c.latitude, c.longitude))),
            Ok(None) => None,
            Err(errors) => {
                errors.into_iter().for_each(|e| v.push(e));
                None
            }
        },
    };
    v.finish()?;
    Ok(ProfileChange {
        username,
        bio,
        photo_url,
        city,
        coordinates,
    })
}

/// Checks `user`'s current password (`field` names it when wrong), counting the attempt per
/// client address and per account.
async fn check_password(
    state: &AppState,
    ip: &ClientIp,
    user: Uuid,
    field: &str,
    raw: &str,
) -> Result<(), ApiError> {
    state.limits.check(Limit::PasswordIp, Key::ip(ip.0)).await?;
    state
        .limits
        .check(Limit::PasswordAccount, Key::user(user))
        .await?;
    let current = Password::for_login(raw);
    let stored = accounts::password_hash(&state.db, user).await?;
    let ok = match &current {
        Some(current) => state.passwords.verify(current, stored.as_deref()).await?,
        None => false,
    };
    if !ok {
        return Err(ApiError::validation(vec![FieldError::new(
            field,
            "invalid",
            format!("the {} is incorrect", field.replace('_', " ")),
        )]));
    }
    Ok(())
}

/// Deactivates `user` (and erases their personal data when `erase`), ending every session.
async fn end_account(state: &AppState, user: Uuid, erase: bool) -> Result<(), ApiError> {
    let mut tx = state.db.begin().await?;
    accounts::deactivate(&mut tx, user).await?;
    if erase {
        accounts::erase(&mut tx, user).await?;
    }
    let ended = sessions::revoke_all(&mut tx, user, None, RevokeReason::Deactivated).await?;
    tx.commit().await?;
    publish_revoked(&state.bus, &ended).await;
    Ok(())
}
