//! The socket adapter's periodic upkeep against PostgreSQL (every 30 s): connections
//! whose session was revoked while the bus message saying so was lost are closed, and this
//! instance's presence heartbeat is refreshed (its counts rewritten after an outage).

use std::time::Duration;

use sqlx::PgPool;

use crate::{auth::sessions, hub::Hub};

const EVERY: Duration = Duration::from_secs(30);

/// Runs rounds until the hub shuts down.
pub fn start(hub: Hub, db: PgPool) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut healthy = true;
        loop {
            tokio::select! {
                () = hub.shutting_down() => return,
                _ = every.tick() => healthy = round(&hub, &db, !healthy).await,
            }
        }
    });
}

/// One round: closes revoked sessions and refreshes the presence heartbeat, rewriting
/// this instance's counts when `repair` (the previous round failed) or when a count was
/// missed since. `false` when the database could not be reached; the next round repairs.
pub async fn round(hub: &Hub, db: &PgPool, repair: bool) -> bool {
    close_revoked(hub, db).await;
    let repair = hub.take_presence_missed() || repair;
    let sockets = hub.sockets_per_user();
    match super::presence::heartbeat(db, hub.instance(), &sockets, repair).await {
        Ok(rewritten) => {
            if rewritten {
                // Other instances route frames by these rows: while they were wrong,
                // frames for this instance's users may have gone elsewhere.
                hub.resync_all();
            }
            true
        }
        Err(err) => {
            tracing::warn!(error = %err, "presence heartbeat failed; will repair counts");
            false
        }
    }
}

/// Closes the connections whose session is no longer alive (linear in the sockets).
async fn close_revoked(hub: &Hub, db: &PgPool) {
    let open = hub.sessions();
    if open.is_empty() {
        return;
    }
    match sessions::alive_among(db, &open).await {
        Ok(alive) => {
            let dead: Vec<_> = open.into_iter().filter(|s| !alive.contains(s)).collect();
            if !dead.is_empty() {
                hub.revoke(&dead);
            }
        }
        Err(err) => tracing::warn!(error = %err, "session check failed"),
    }
}
