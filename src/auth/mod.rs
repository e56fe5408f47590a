//! Authentication: password hashing, access tokens, sessions with rotating refresh tokens,
//! and the guards that handlers take as arguments.

pub mod cache;
mod guard;
mod password;
pub mod sessions;
mod tokens;

pub use cache::SessionCache;
pub use guard::{CurrentUser, authenticate};
pub use password::PasswordHasher;
pub use tokens::{Claims, TokenKeys};

use poem_openapi::Enum;

/// What an account may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Enum, sqlx::Type, serde::Serialize, serde::Deserialize,
)]
#[sqlx(type_name = "user_role", rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
#[oai(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}
