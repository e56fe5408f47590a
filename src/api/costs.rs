//! What expensive requests cost their sender: searches are counted in rate and in
//! concurrency (see `limits::Gate`), and writes that fan out to other people (renames,
//! edits, deletions, membership and role changes, event and participation changes) are
//! counted per user and per conversation or event changed, so that no account can flood
//! others' devices or starve the database (README, "Rate limits").

use uuid::Uuid;

use crate::{
    error::ApiError,
    limits::{Key, Limit, Pass},
    state::AppState,
};

/// Lets a search by `user` run, or refuses it (429 over the user's rate or concurrency,
/// 503 `overloaded` when searches fill their share of the database). Hold the pass while
/// the search runs.
pub async fn search(state: &AppState, user: Uuid) -> Result<Pass<'_>, ApiError> {
    state.limits.check(Limit::Searches, Key::user(user)).await?;
    state.searches.enter(user).await
}

/// Counts a write by `user` that others will hear of, on `target` (a conversation, an event
/// or a participation).
pub async fn fan_out(state: &AppState, user: Uuid, target: Uuid) -> Result<(), ApiError> {
    state.limits.check(Limit::Changes, Key::user(user)).await?;
    state
        .limits
        .check(Limit::ChangesTarget, Key::target(target))
        .await
}
