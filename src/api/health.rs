//! `/healthz` (the process is alive) and `/readyz` (it can serve: the database answers).
//!
//! Redis is reported but does not decide readiness: without it an instance still serves
//! its own clients (single-instance mode, see `bus.rs`), and failing readiness on every
//! instance at once because Redis is down would turn a degraded service into an outage.

use std::time::Duration;

use poem::web::Data;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, payload::Json, types::Example};

use super::{ApiTags, responses::Errors};
use crate::{bus::RedisLink, envelope::Envelope, error::ApiError, error_set, state::AppState};

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Check {
    Ok,
    /// Unreachable. For Redis: this instance serves alone (live updates reach its own
    /// sockets only) until Redis is back.
    Down,
    /// Not configured (Redis without `REDIS_URL`).
    Disabled,
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct Readiness {
    pub database: Check,
    pub redis: Check,
}

impl Example for Readiness {
    fn example() -> Self {
        Self {
            database: Check::Ok,
            redis: Check::Disabled,
        }
    }
}

#[derive(Debug, Object)]
#[oai(example)]
pub struct Liveness {
    /// The server's version.
    pub version: String,
}

impl Example for Liveness {
    fn example() -> Self {
        Self {
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

#[derive(ApiResponse)]
pub enum LiveResponse {
    /// The process is alive.
    #[oai(status = 200)]
    Ok(Json<Envelope<Liveness>>),
}

#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Ready to serve: the database answers (Redis may be `down`: degraded, single-instance).
    #[oai(status = 200)]
    Ok(Json<Envelope<Readiness>>),
}

error_set!(LiveErrors: 500);
error_set!(ReadyErrors: 500, 503);

pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Operations")]
impl HealthApi {
    /// Liveness
    ///
    /// Alive: the process answers. Touches no database; use `/readyz` for readiness.
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> Result<LiveResponse, Errors<LiveErrors>> {
        Ok(LiveResponse::Ok(Json(Envelope::ok(
            "alive",
            Liveness::example(),
        ))))
    }

    /// Readiness
    ///
    /// 200 when PostgreSQL answers within 2 s, 503 otherwise. `redis` tells whether this
    /// instance is linked to the others through Redis (`ok`), serving alone because Redis
    /// is unreachable (`down`: still ready, degraded), or configured without it (`disabled`).
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&AppState>) -> Result<ReadyResponse, Errors<ReadyErrors>> {
        let database = check(async {
            sqlx::query_scalar!("SELECT 1 AS \"one!\"")
                .fetch_one(&state.db)
                .await
                .is_ok()
        })
        .await;
        let redis = match (&state.redis, state.bus.redis_link()) {
            (None, _) | (_, RedisLink::Disabled) => Check::Disabled,
            // Subscribed, and answering right now.
            (Some(pool), RedisLink::Up) => {
                check(async {
                    match pool.get().await {
                        Ok(mut conn) => redis_ping(&mut conn).await,
                        Err(_) => false,
                    }
                })
                .await
            }
            (Some(_), RedisLink::Down) => Check::Down,
        };
        let ready = Readiness { database, redis };
        if ready.database == Check::Down {
            return Err(ApiError::unavailable(format!(
                "Not ready: database {:?}, redis {:?}.",
                ready.database, ready.redis
            ))
            .into());
        }
        let message = if ready.redis == Check::Down {
            "ready (degraded: Redis is unreachable, this instance serves alone)"
        } else {
            "ready"
        };
        Ok(ReadyResponse::Ok(Json(Envelope::ok(message, ready))))
    }
}

async fn check(probe: impl Future<Output = bool>) -> Check {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(true) => Check::Ok,
        _ => Check::Down,
    }
}

async fn redis_ping(conn: &mut deadpool_redis::Connection) -> bool {
    deadpool_redis::redis::cmd("PING")
        .query_async::<String>(conn)
        .await
        .is_ok()
}

/// `GET /`: where the documentation is (not an API operation; a pointer for people and
/// tools that start at the root). Other methods: 405 with `Allow: GET`.
pub fn root(method: &poem::http::Method) -> poem::Response {
    use poem::{IntoResponse, http::Method};
    if method != Method::GET && method != Method::HEAD {
        let mut resp = ApiError::new(
            poem::http::StatusCode::METHOD_NOT_ALLOWED,
            crate::envelope::ErrorCode::MethodNotAllowed,
            "This route allows GET.",
        )
        .to_response();
        resp.headers_mut().insert(
            poem::http::header::ALLOW,
            poem::http::HeaderValue::from_static("GET"),
        );
        return resp;
    }
    poem::web::Json(serde_json::json!({
        "status": "success",
        "code": 200,
        "message": "TuneLink API: the documentation is at /docs, the OpenAPI document at /openapi.json.",
        "data": {
            "name": "TuneLink API",
            "version": env!("CARGO_PKG_VERSION"),
            "docs": "/docs",
            "openapi": "/openapi.json",
            "api": "/api/v1",
            "socket": "/ws",
        },
        "errors": null,
    }))
    .into_response()
}
