//! `GET /metrics`: the metrics registry's families and the numbers read at scrape time
//! (sockets, rate limits, pools); with `METRICS_TOKEN` set, only for
//! `Authorization: Bearer <token>`.

use std::sync::atomic::Ordering;

use poem::{Request, Response, handler, web::Data};
use sha2::{Digest, Sha256};

use crate::{
    error::{ApiError, ErrorCode},
    metrics::Scrape,
    state::AppState,
};

#[handler]
pub fn serve(req: &Request, state: Data<&AppState>) -> Response {
    if let Some(token) = &state.settings.metrics_token {
        let sent = req
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or_default();
        // Compare digests, so that timing tells nothing about the token.
        if Sha256::digest(sent.as_bytes()) != Sha256::digest(token.expose().as_bytes()) {
            return ApiError::unauthorized(
                ErrorCode::Unauthenticated,
                "Send `Authorization: Bearer <METRICS_TOKEN>`.",
            )
            .to_response();
        }
    }
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render(&scrape(&state)))
}

fn scrape(state: &AppState) -> Scrape {
    let hub = state.hub.counters();
    Scrape {
        ws_open: hub.open.load(Ordering::Relaxed),
        ws_frames_out: hub.frames_out.load(Ordering::Relaxed),
        ws_slow_consumers: hub.slow_consumers.load(Ordering::Relaxed),
        rate_limited: state
            .limits
            .rejected()
            .map(|(limit, n)| (limit.name(), n))
            .collect(),
        db_size: state.db.size(),
        db_idle: state.db.num_idle() as u64,
        db_max: state.settings.database_max_connections,
        redis: state.redis.as_ref().map(|r| r.status()),
    }
}
