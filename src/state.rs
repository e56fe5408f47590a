//! The application state shared by every handler: a cheap-to-clone handle.

use std::{ops::Deref, sync::Arc};

use sqlx::PgPool;

use crate::{
    auth::{PasswordHasher, TokenKeys},
    config::Settings,
};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub db: PgPool,
    /// `None` when `REDIS_URL` is not set: a single instance.
    pub redis: Option<deadpool_redis::Pool>,
    pub passwords: PasswordHasher,
    pub tokens: TokenKeys,
}

impl AppState {
    pub fn new(
        settings: Settings,
        db: PgPool,
        redis: Option<deadpool_redis::Pool>,
    ) -> anyhow::Result<Self> {
        let passwords = PasswordHasher::new(settings.password_hash_concurrency)?;
        let tokens = TokenKeys::new(settings.jwt_secret.expose(), settings.access_token_ttl);
        Ok(Self(Arc::new(Inner {
            settings,
            db,
            redis,
            passwords,
            tokens,
        })))
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
