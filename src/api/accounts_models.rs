//! The account shapes both `/auth/…` and `/users/…` answer or accept: your own account,
//! the session (token pair) that registering, logging in and refreshing answer, and the
//! registration request (`POST /auth/register` and the prototype's `POST /users/register`).

use crate::api::timestamp::Timestamp;
use chrono::{DateTime, Utc};
use poem_openapi::{
    ApiRequest, ApiResponse, Multipart, Object,
    payload::{Form, Json},
    types::Example,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::{accounts::UserRow, auth::Role, envelope::Envelope, error_set};

/// Your own account, as only you see it.
#[derive(Debug, Object)]
#[oai(example)]
pub struct Me {
    pub id: Uuid,
    pub username: String,
    pub email: Option<String>,
    pub role: Role,
    pub bio: Option<String>,
    pub photo_url: Option<String>,
    pub city: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl From<UserRow> for Me {
    fn from(u: UserRow) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            role: u.role,
            bio: u.bio,
            photo_url: u.photo_url,
            city: u.city,
            latitude: u.latitude,
            longitude: u.longitude,
            created_at: Timestamp(u.created_at),
            updated_at: Timestamp(u.updated_at),
        }
    }
}

impl Example for Me {
    fn example() -> Self {
        let at = DateTime::parse_from_rfc3339("2026-11-21T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        Self {
            id: Uuid::from_u128(0x0190_9c1e_7a4b_7c3d_9e2f_1a2b_3c4d_5e6f),
            username: "nina_keys".into(),
            email: Some("nina@example.com".into()),
            role: Role::User,
            bio: Some("Jazz pianist, looking for a rhythm section.".into()),
            photo_url: Some("https://cdn.example.com/u/nina.jpg".into()),
            city: Some("Lyon".into()),
            latitude: Some(45.764),
            longitude: Some(4.8357),
            created_at: Timestamp(at),
            updated_at: Timestamp(at),
        }
    }
}

/// A token pair and the account it belongs to.
#[derive(Debug, Object)]
#[oai(example)]
pub struct AuthSession {
    /// Send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single use: `POST /auth/refresh` answers a new pair.
    pub refresh_token: String,
    pub user: Me,
}

impl Example for AuthSession {
    fn example() -> Self {
        Self {
            access_token: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIuLi4ifQ.c2lnbmF0dXJl".into(),
            token_type: "bearer".into(),
            expires_in: 900,
            refresh_token: "q8m1b0rJc2n6X4yZb0lqk3Yv1uJk8o2dS7nS9Qp2cH4".into(),
            user: Me::example(),
        }
    }
}

#[derive(ApiResponse)]
pub enum SessionResponse {
    /// The account was created; you are logged in.
    #[oai(status = 201)]
    Created(Json<Envelope<AuthSession>>),
    /// A new token pair.
    #[oai(status = 200)]
    Ok(Json<Envelope<AuthSession>>),
}

/// A new account.
#[derive(Debug, Object, Deserialize)]
#[oai(example)]
pub struct RegisterInput {
    /// 3–32 characters: letters, digits, `_`, `.`, `-`; unique ignoring case.
    pub username: String,
    /// A valid address; unique ignoring case.
    pub email: String,
    /// 8–128 characters.
    pub password: String,
}

impl Example for RegisterInput {
    fn example() -> Self {
        Self {
            username: "nina_keys".into(),
            email: "nina@example.com".into(),
            password: "correct horse battery".into(),
        }
    }
}

/// The same fields, as `multipart/form-data` (the prototype's form); no other part.
#[derive(Debug, Multipart)]
#[oai(deny_unknown_fields)]
pub struct RegisterMultipart {
    pub username: String,
    pub email: String,
    pub password: String,
    /// The prototype's profile picture: accepted, so that its form keeps working, and not
    /// stored (photos are uploaded to `/api/v1/media` once that exists; until then
    /// `photo_url`).
    pub profile_picture: Option<poem_openapi::types::multipart::Upload>,
}

/// A new account, as JSON, an urlencoded form or a multipart form.
#[derive(Debug, ApiRequest)]
pub enum RegisterRequest {
    Json(Json<RegisterInput>),
    Form(Form<RegisterInput>),
    Multipart(RegisterMultipart),
}

impl RegisterRequest {
    pub fn into_input(self) -> RegisterInput {
        match self {
            Self::Json(b) => b.0,
            Self::Form(b) => b.0,
            Self::Multipart(m) => RegisterInput {
                username: m.username,
                email: m.email,
                password: m.password,
            },
        }
    }
}

error_set!(RegisterErrors: 400, 409, 413, 415, 422, 429, 500, 503);
