//! Presence: who among the people you talk with is online, and when others were last seen.
//!
//! Counts of open sockets per user and per instance live in PostgreSQL, so a user online on
//! any instance is online. Each instance refreshes a heartbeat; counts of an instance that
//! stopped (crashed) are ignored after [`STALE_AFTER`] and purged. Going offline is
//! announced only after [`OFFLINE_DELAY`] without a new connection, and announcements
//! alternate (`users.online_announced`): a client reconnecting in a loop announces nothing.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::frames::ServerFrame;
use crate::{
    chat,
    error::ApiError,
    safety::presence::{Side, presence_contacts},
    state::AppState,
};

pub const OFFLINE_DELAY: Duration = Duration::from_secs(5);
const STALE_AFTER_SECS: f64 = 90.0;
/// Most contacts whose presence is sent when a socket opens.
const SNAPSHOT_LIMIT: i64 = 500;

pub async fn register_instance(db: &PgPool, instance: Uuid) -> Result<(), ApiError> {
    sqlx::query!(
        "INSERT INTO instances (id) VALUES ($1) ON CONFLICT DO NOTHING",
        instance
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Refreshes this instance's heartbeat and purges instances that stopped refreshing;
/// `true` when this instance's counts were rewritten.
///
/// `sockets` is what this instance really holds (connections per user). When `repair` is
/// set (the previous round failed: the database was unreachable), or when this instance
/// had itself been purged as stale during a long outage, its presence rows are rewritten
/// from it: counts missed while the database was away heal within one round.
/// Removes this instance and its presence rows (at shutdown).
pub async fn unregister_instance(db: &PgPool, instance: Uuid) -> Result<(), ApiError> {
    sqlx::query!("DELETE FROM instances WHERE id = $1", instance)
        .execute(db)
        .await?;
    Ok(())
}

pub async fn heartbeat(
    db: &PgPool,
    instance: Uuid,
    sockets: &[(Uuid, i32)],
    repair: bool,
) -> Result<bool, ApiError> {
    // `xmax = 0` on the returned row: it was inserted, not updated (we had been purged).
    let purged: bool = sqlx::query_scalar(
        "INSERT INTO instances (id) VALUES ($1)
         ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()
         RETURNING xmax = 0",
    )
    .bind(instance)
    .fetch_one(db)
    .await?;
    let rewritten = repair || purged;
    if rewritten {
        rewrite_counts(db, instance, sockets).await?;
    }
    sqlx::query!(
        "DELETE FROM instances WHERE heartbeat_at < now() - make_interval(secs => $1)",
        STALE_AFTER_SECS
    )
    .execute(db)
    .await?;
    Ok(rewritten)
}

/// Sets this instance's presence rows to exactly `sockets`.
async fn rewrite_counts(
    db: &PgPool,
    instance: Uuid,
    sockets: &[(Uuid, i32)],
) -> Result<(), ApiError> {
    let (users, counts): (Vec<Uuid>, Vec<i32>) = sockets.iter().copied().unzip();
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM presence WHERE instance_id = $1 AND NOT (user_id = ANY($2))")
        .bind(instance)
        .bind(&users)
        .execute(&mut *tx)
        .await?;
    // Accounts erased meanwhile are skipped (their sockets are being closed).
    sqlx::query(
        "INSERT INTO presence (user_id, instance_id, connections)
         SELECT t.u, $1, t.n FROM unnest($2::uuid[], $3::int4[]) AS t(u, n)
         WHERE EXISTS (SELECT 1 FROM users WHERE id = t.u)
         ON CONFLICT (user_id, instance_id) DO UPDATE SET connections = EXCLUDED.connections",
    )
    .bind(instance)
    .bind(&users)
    .bind(&counts)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        users = users.len(),
        "presence counts rewritten after an outage"
    );
    Ok(())
}

async fn online_count(db: &PgPool, user: Uuid) -> Result<i64, ApiError> {
    Ok(sqlx::query_scalar!(
        r#"SELECT coalesce(sum(p.connections), 0)::bigint AS "n!" FROM presence p
           JOIN instances i ON i.id = p.instance_id
           WHERE p.user_id = $1 AND i.heartbeat_at > now() - make_interval(secs => $2)"#,
        user,
        STALE_AFTER_SECS
    )
    .fetch_one(db)
    .await?)
}

/// A socket opened: count it, tell contacts if the user just came online, and answer the
/// contacts' presence to this socket.
///
/// `None` when the user would have more than `max` sockets open on every instance together
/// (0 = no limit): the socket is uncounted and must be refused. Counting first and checking
/// after means concurrent openings can only both be refused, never both let through.
pub async fn connected(
    state: &AppState,
    user: Uuid,
    max: u32,
) -> Result<Option<Vec<ServerFrame>>, ApiError> {
    let instance = state.hub.instance();
    sqlx::query!(
        "INSERT INTO presence (user_id, instance_id, connections) VALUES ($1, $2, 1)
         ON CONFLICT (user_id, instance_id) DO UPDATE SET connections = presence.connections + 1",
        user,
        instance
    )
    .execute(&state.db)
    .await?;
    if max > 0 && online_count(&state.db, user).await? > i64::from(max) {
        uncount(state, user).await?;
        return Ok(None);
    }
    // Under load (messages queueing, or sockets queueing for the database in a
    // connection storm) the announcement and the contacts' snapshot are shed before
    // messages (nothing recorded as announced, so nothing goes wrong later): clients read
    // presence again when they next connect.
    if state.sends.shedding() || state.socket_db_busy() {
        return Ok(Some(Vec::new()));
    }
    let audience = presence_contacts(&state.db, user, Side::Audience, SNAPSHOT_LIMIT).await?;
    let people = presence_contacts(&state.db, user, Side::Visible, SNAPSHOT_LIMIT).await?;
    let newly_online = sqlx::query!(
        "UPDATE users SET online_announced = true WHERE id = $1 AND NOT online_announced",
        user
    )
    .execute(&state.db)
    .await?
    .rows_affected()
        > 0;
    if newly_online {
        let frame = ServerFrame::Presence {
            user_id: user,
            status: "online".into(),
            last_seen_at: None,
        };
        chat::deliver(&state.bus, audience, frame).await;
    }
    let rows = sqlx::query!(
        r#"SELECT u.id, u.last_seen_at,
                  EXISTS (SELECT 1 FROM presence p JOIN instances i ON i.id = p.instance_id
                          WHERE p.user_id = u.id
                            AND i.heartbeat_at > now() - make_interval(secs => $2)) AS "online!"
           FROM users u WHERE u.id = ANY($1)"#,
        &people,
        STALE_AFTER_SECS
    )
    .fetch_all(&state.db)
    .await?;
    Ok(Some(
        rows.into_iter()
            .map(|r| ServerFrame::Presence {
                user_id: r.id,
                status: if r.online { "online" } else { "offline" }.into(),
                last_seen_at: if r.online { None } else { r.last_seen_at },
            })
            .collect(),
    ))
}

/// Takes one socket off this instance's count.
async fn uncount(state: &AppState, user: Uuid) -> Result<(), ApiError> {
    let instance = state.hub.instance();
    // Decrement first (concurrent closes serialise on the row), then drop empty rows.
    sqlx::query!(
        "UPDATE presence SET connections = connections - 1 WHERE user_id = $1 AND instance_id = $2",
        user,
        instance
    )
    .execute(&state.db)
    .await?;
    sqlx::query!(
        "DELETE FROM presence WHERE user_id = $1 AND instance_id = $2 AND connections <= 0",
        user,
        instance
    )
    .execute(&state.db)
    .await?;
    Ok(())
}

/// A socket closed: uncount it; after a short delay, if none of the user's sockets is
/// open anywhere, record the time and tell contacts.
pub async fn disconnected(state: AppState, user: Uuid) {
    let uncounted = state.with_socket_db(uncount(&state, user)).await;
    if let Err(err) = uncounted {
        tracing::warn!(error = %err, "presence update failed");
        state.hub.presence_missed();
        return;
    }
    if state.hub.is_shutting_down() {
        // The process is going away: no later moment to announce it.
        announce_offline(&state, user).await;
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep(OFFLINE_DELAY).await;
        announce_offline(&state, user).await;
    });
}

/// If none of the user's sockets is open anywhere, records the time and tells contacts.
async fn announce_offline(state: &AppState, user: Uuid) {
    {
        let went_offline = state
            .with_socket_db(async {
                if online_count(&state.db, user).await? > 0 {
                    return Ok::<_, ApiError>(None);
                }
                let seen: Option<DateTime<Utc>> = sqlx::query_scalar!(
                    r#"UPDATE users SET last_seen_at = now(), online_announced = false
                   WHERE id = $1 AND online_announced RETURNING last_seen_at AS "t!""#,
                    user
                )
                .fetch_optional(&state.db)
                .await?;
                match seen {
                    Some(seen) => Ok(Some((
                        seen,
                        presence_contacts(&state.db, user, Side::Audience, SNAPSHOT_LIMIT).await?,
                    ))),
                    None => Ok(None),
                }
            })
            .await;
        if let Ok(Some((seen, people))) = went_offline {
            let frame = ServerFrame::Presence {
                user_id: user,
                status: "offline".into(),
                last_seen_at: Some(seen),
            };
            chat::deliver(&state.bus, people, frame).await;
        }
    }
}
