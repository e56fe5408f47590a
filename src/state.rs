//! The application state shared by every handler: a cheap-to-clone handle.

use std::{
    ops::Deref,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use sqlx::PgPool;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{
    auth::{PasswordHasher, SessionCache, TokenKeys},
    bus::Bus,
    catalogue::CatalogueCache,
    chat::Sender,
    config::Settings,
    error::ApiError,
    hub::Hub,
    limits::{Gate, Limiter, Slots},
    metrics::Metrics,
};

/// The least time socket work waits for its turn at the database.
const SOCKET_DB_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub db: PgPool,
    /// Pooled Redis connections; `None` when `REDIS_URL` is not set (a single instance).
    pub redis: Option<deadpool_redis::Pool>,
    pub passwords: PasswordHasher,
    pub tokens: TokenKeys,
    /// Sessions checked recently, dropped by revocations (`auth/cache.rs`).
    pub sessions: SessionCache,
    /// Fan-out between instances (Redis) or within this one.
    pub bus: Bus,
    pub catalogue: Arc<CatalogueCache>,
    /// This process's WebSocket connections.
    pub hub: Hub,
    /// The message writer: every send, from REST or the socket, is stored through it.
    pub sends: Sender,
    /// Socket work that needs the database queues here, not in the pool: thousands of
    /// sockets may ask at once (a reconnect storm), and a pool with thousands of waiters
    /// timing out collapses, while this queue is fair and cheap. It holds three quarters of
    /// the pool's connections, so that requests over HTTP still find some.
    socket_db: Arc<Semaphore>,
    /// Its size, and how much socket work is waiting for a turn.
    socket_db_turns: usize,
    socket_db_waiting: AtomicUsize,
    /// Rate limits, shared across instances through Redis when it is configured.
    pub limits: Limiter,
    /// Searches running at once: a few per user, half the pool in all.
    pub searches: Gate,
    /// Sockets waiting for their `auth` frame, per client address.
    pub unauthenticated: Arc<Slots>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    pub fn new(
        settings: Settings,
        db: PgPool,
        redis: Option<deadpool_redis::Pool>,
        metrics: Metrics,
    ) -> anyhow::Result<Self> {
        let passwords = PasswordHasher::new(settings.password_hash_concurrency)?;
        let tokens = TokenKeys::new(settings.jwt_secret.expose(), settings.access_token_ttl);
        let bus = match (&settings.redis_url, &redis) {
            (Some(url), Some(pool)) => Bus::redis(url.expose(), pool.clone(), db.clone())?,
            _ => Bus::local(),
        };
        let catalogue = CatalogueCache::start(&bus);
        let sessions = SessionCache::start(&bus);
        let metrics = Arc::new(metrics);
        let hub = Hub::start(&bus, metrics.clone());
        crate::notifications::serve_batches(&bus, db.clone(), hub.clone());
        let sends = Sender::start(&db, bus.clone(), metrics.clone(), settings.sends);
        let limits = Limiter::new(
            settings.rate_limits.clone(),
            redis.clone(),
            settings.rate_limit_redis_prefix.clone(),
        );
        let socket_db_turns = (settings.database_max_connections as usize * 3 / 4).max(1);
        let socket_db = Arc::new(Semaphore::new(socket_db_turns));
        let searches = Gate::new(
            (settings.database_max_connections as usize / 2).max(1),
            settings.rate_limits.max_searches_per_user,
        );
        let unauthenticated = Slots::new(settings.connections.max_unauthenticated_per_address);
        Ok(Self(Arc::new(Inner {
            settings,
            db,
            redis,
            passwords,
            tokens,
            sessions,
            bus,
            catalogue,
            hub,
            sends,
            socket_db,
            socket_db_turns,
            socket_db_waiting: Default::default(),
            limits,
            searches,
            unauthenticated,
            metrics,
        })))
    }

    /// Runs socket work that uses the database once it is its turn (never hold a turn
    /// while writing to a socket).
    pub async fn with_socket_db<T>(
        &self,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let _turn = self.socket_db_turn().await?;
        work.await
    }

    /// Whether socket work is queueing for the database (at least as much waiting as
    /// there are turns): a connection storm. Presence announcements are shed then, before
    /// anything that must be stored.
    pub fn socket_db_busy(&self) -> bool {
        self.socket_db_waiting.load(Ordering::Relaxed) >= self.socket_db_turns
    }

    /// A turn to use the database for socket work.
    async fn socket_db_turn(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        // Sockets wait their turn a little longer than requests wait for a connection: the
        // queue is fair, and a refused socket only comes back to queue again.
        let wait = self.settings.database_acquire_timeout.max(SOCKET_DB_WAIT);
        let turn = {
            // Counted while waiting, even if the wait is abandoned (the socket closed).
            let _waiting = Waiting::new(&self.socket_db_waiting);
            tokio::time::timeout(wait, self.socket_db.clone().acquire_owned()).await
        };
        match turn {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::unavailable(
                "The database is busy; please retry shortly.",
            )),
        }
    }
}

/// One more waiter until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
