//! The application state shared by every handler: a cheap-to-clone handle.

use std::{ops::Deref, sync::Arc};

use sqlx::PgPool;

use crate::{
    auth::{PasswordHasher, TokenKeys},
    bus::Bus,
    catalogue::CatalogueCache,
    config::Settings,
    limits::Limiter,
    metrics::Metrics,
    realtime::hub::Hub,
};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub db: PgPool,
    /// Pooled Redis connections; `None` when `REDIS_URL` is not set (a single instance).
    pub redis: Option<deadpool_redis::Pool>,
    pub passwords: PasswordHasher,
    pub tokens: TokenKeys,
    /// Fan-out between instances (Redis) or within this one.
    pub bus: Bus,
    pub catalogue: Arc<CatalogueCache>,
    /// This process's WebSocket connections.
    pub hub: Hub,
    /// Rate limits, shared across instances through Redis when it is configured.
    pub limits: Limiter,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(
        settings: Settings,
        db: PgPool,
        redis: Option<deadpool_redis::Pool>,
    ) -> anyhow::Result<Self> {
        let passwords = PasswordHasher::new(settings.password_hash_concurrency)?;
        let tokens = TokenKeys::new(settings.jwt_secret.expose(), settings.access_token_ttl);
        let bus = match (&settings.redis_url, &redis) {
            (Some(url), Some(pool)) => Bus::redis(url.expose(), pool.clone())?,
            _ => Bus::local(),
        };
        let catalogue = CatalogueCache::start(&bus);
        let metrics = Arc::new(Metrics::default());
        let hub = Hub::start(&bus, db.clone(), metrics.clone());
        let limits = Limiter::new(
            settings.rate_limits.clone(),
            redis.clone(),
            settings.rate_limit_redis_prefix.clone(),
        );
        Ok(Self(Arc::new(Inner {
            settings,
            db,
            redis,
            passwords,
            tokens,
            bus,
            catalogue,
            hub,
            limits,
            metrics,
        })))
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
