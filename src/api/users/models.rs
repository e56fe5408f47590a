//! The shapes of profiles and account changes in requests and answers, with their examples.

use crate::api::timestamp::Timestamp;
use poem_openapi::{
    Object,
    types::{Example, MaybeUndefined},
};
use uuid::Uuid;

use crate::{
    api::{
        accounts_models::Me,
        choice::Choice,
        musicians::{LikedGenre, PlayedInstrument},
    },
    auth::Role,
};

/// Another musician's public profile: never the email, nor exact coordinates.
#[derive(Debug, Object)]
#[oai(example)]
pub struct PublicProfile {
    pub id: Uuid,
    pub username: String,
    pub bio: Option<String>,
    pub photo_url: Option<String>,
    pub city: Option<String>,
    pub created_at: Timestamp,
    /// What they play, with their level, by name.
    pub instruments: Vec<PlayedInstrument>,
    /// Genres they like, by name.
    pub genres: Vec<LikedGenre>,
}

impl Example for PublicProfile {
    fn example() -> Self {
        let me = Me::example();
        Self {
            id: me.id,
            username: me.username,
            bio: me.bio,
            photo_url: me.photo_url,
            city: me.city,
            created_at: me.created_at,
            instruments: vec![PlayedInstrument::example()],
            genres: vec![LikedGenre::example()],
        }
    }
}

/// Fields to change; absent fields stay as they are, `null` clears a field.
#[derive(Debug, Object)]
#[oai(example)]
pub struct UpdateProfile {
    /// 3–32 characters: letters, digits, `_`, `.`, `-`; unique ignoring case.
    pub username: Option<String>,
    /// At most 1,000 characters.
    pub bio: MaybeUndefined<String>,
    /// An absolute http(s) URL.
    pub photo_url: MaybeUndefined<String>,
    /// At most 100 characters.
    pub city: MaybeUndefined<String>,
    /// Degrees, −90 to 90; sent together with `longitude`.
    pub latitude: MaybeUndefined<f64>,
    /// Degrees, −180 to 180; sent together with `latitude`.
    pub longitude: MaybeUndefined<f64>,
}

impl Example for UpdateProfile {
    fn example() -> Self {
        Self {
            username: None,
            bio: MaybeUndefined::Value("Bassist, funk and soul.".into()),
            photo_url: MaybeUndefined::Undefined,
            city: MaybeUndefined::Value("Nantes".into()),
            latitude: MaybeUndefined::Value(47.2184),
            longitude: MaybeUndefined::Value(-1.5536),
        }
    }
}

/// A password change.
#[derive(Debug, Object)]
#[oai(example)]
pub struct ChangePassword {
    pub current_password: String,
    /// 8–128 characters.
    pub new_password: String,
}

impl Example for ChangePassword {
    fn example() -> Self {
        Self {
            current_password: "old correct horse".into(),
            new_password: "new battery staple".into(),
        }
    }
}

/// A new role for an account.
#[derive(Debug, Object)]
#[oai(example)]
pub struct SetRole {
    pub role: Choice<Role>,
}

impl Example for SetRole {
    fn example() -> Self {
        Self {
            role: Choice(Ok(Role::Admin)),
        }
    }
}

/// An account's role after a change.
#[derive(Debug, Object)]
#[oai(example)]
pub struct RoleView {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
}

impl Example for RoleView {
    fn example() -> Self {
        let me = Me::example();
        Self {
            id: me.id,
            username: me.username,
            role: Role::Admin,
        }
    }
}

/// Erasing an account (`DELETE /users/me?erase=true`): your password, to be sure it is you.
#[derive(Debug, Object)]
#[oai(example)]
pub struct EraseAccount {
    pub password: String,
}

impl Example for EraseAccount {
    fn example() -> Self {
        Self {
            password: "correct horse battery staple".into(),
        }
    }
}
