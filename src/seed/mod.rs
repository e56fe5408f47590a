//! `tunelink seed`: realistic volume for trying things and for benchmarks.
//!
//! Deterministic from `--seed`: the same seed gives the same musicians, events,
//! participations and conversations (dates are relative to the day of the run). Every seeded account has the
//! password [`SEED_PASSWORD`], hashed once: hashing thousands of passwords with argon2 would
//! take minutes for nothing.

use std::time::Instant;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use sqlx::PgPool;
use uuid::Uuid;

mod data;

use self::data::{CITIES, EVENT_TYPES, LEVELS, STREETS};
use crate::{
    auth::PasswordHasher,
    chat::bulk::{ConversationBatch, HistoryMessage},
    domain::Password,
    frames::UserRef,
};

pub const SEED_PASSWORD: &str = "tunelink-seed";
pub const SEED_EMAIL_DOMAIN: &str = "seed.tunelink.test";

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub users: usize,
    pub events: usize,
    pub conversations: usize,
    pub seed: u64,
}

#[derive(Debug, Default)]
pub struct Report {
    pub users: usize,
    pub events: usize,
    pub participations: usize,
    pub conversations: usize,
    pub messages: usize,
}

fn uuid(rng: &mut StdRng) -> Uuid {
    uuid::Builder::from_random_bytes(rng.random()).into_uuid()
}

fn city(rng: &mut StdRng, total_weight: u32) -> &'static (&'static str, f64, f64, u32) {
    let mut pick = rng.random_range(0..total_weight);
    for c in CITIES {
        if pick < c.3 {
            return c;
        }
        pick -= c.3;
    }
    &CITIES[0]
}

struct Users {
    ids: Vec<Uuid>,
}

pub async fn run(pool: &PgPool, opts: Options) -> anyhow::Result<Report> {
    let started = Instant::now();
    let existing: i64 = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM users WHERE email LIKE '%@' || $1"#,
        SEED_EMAIL_DOMAIN
    )
    .fetch_one(pool)
    .await?;
    if existing > 0 {
        bail!("this database is already seeded; point DATABASE_URL at a fresh database");
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let instruments: Vec<Uuid> = sqlx::query_scalar!("SELECT id FROM instruments ORDER BY name")
        .fetch_all(pool)
        .await?;
    let genres: Vec<Uuid> = sqlx::query_scalar!("SELECT id FROM genres ORDER BY name")
        .fetch_all(pool)
        .await?;
    if instruments.is_empty() || genres.is_empty() {
        bail!("the catalogue is empty");
    }
    let password =
        Password::parse("password", SEED_PASSWORD).map_err(|e| anyhow::anyhow!(e.message))?;
    let hash = PasswordHasher::new(1)?
        .hash(&password)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;

    let users = seed_users(pool, &mut rng, opts.users, &hash, &instruments, &genres).await?;
    tracing::info!(users = opts.users, elapsed = ?started.elapsed(), "seeded musicians");
    let participations =
        seed_events(pool, &mut rng, opts.events, &users, &instruments, &genres).await?;
    tracing::info!(events = opts.events, participations, elapsed = ?started.elapsed(), "seeded events");
    let (conversations, messages) = if users.ids.len() >= 2 {
        seed_conversations(pool, &mut rng, opts.conversations, &users).await?
    } else {
        (0, 0)
    };
    // Statistics for the planner, and the visibility map that index-only scans (the event
    // search by cell) rely on, as autovacuum would set them soon after a bulk load.
    sqlx::raw_sql("VACUUM (ANALYZE)").execute(pool).await?;
    Ok(Report {
        users: opts.users,
        events: opts.events,
        participations,
        conversations,
        messages,
    })
}

async fn seed_users(
    pool: &PgPool,
    rng: &mut StdRng,
    count: usize,
    hash: &str,
    instruments: &[Uuid],
    genres: &[Uuid],
) -> anyhow::Result<Users> {
    let total_weight: u32 = CITIES.iter().map(|c| c.3).sum();
    let mut all = Vec::with_capacity(count);
    for chunk_start in (0..count).step_by(5000) {
        let n = (count - chunk_start).min(5000);
        let (mut ids, mut names, mut emails, mut cities, mut lats, mut lons) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        let (mut ui_user, mut ui_instr, mut ui_level) = (vec![], vec![], vec![]);
        let (mut ug_user, mut ug_genre) = (vec![], vec![]);
        for i in chunk_start..chunk_start + n {
            let id = uuid(rng);
            let c = city(rng, total_weight);
            ids.push(id);
            names.push(format!("musician{i:06}"));
            emails.push(format!("musician{i:06}@{SEED_EMAIL_DOMAIN}"));
            cities.push(c.0.to_owned());
            lats.push(c.1 + rng.random_range(-0.15..0.15));
            lons.push(c.2 + rng.random_range(-0.2..0.2));
            let played = rng.random_range(1..=3);
            for instrument in instruments.choose_multiple(rng, played) {
                ui_user.push(id);
                ui_instr.push(*instrument);
                ui_level.push((*LEVELS.choose(rng).unwrap_or(&"beginner")).to_owned());
            }
            let liked = rng.random_range(1..=4);
            for genre in genres.choose_multiple(rng, liked) {
                ug_user.push(id);
                ug_genre.push(*genre);
            }
        }
        let mut tx = pool.begin().await?;
        sqlx::query!(
            "INSERT INTO users (id, username, email, password_hash, city, latitude, longitude)
             SELECT id, username, email, $4, city, lat, lon
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $5::text[], $6::float8[], $7::float8[])
                  AS t(id, username, email, city, lat, lon)",
            &ids,
            &names,
            &emails,
            hash,
            &cities,
            &lats,
            &lons,
        )
        .execute(&mut *tx)
        .await
        .context("inserting musicians")?;
        sqlx::query!(
            "INSERT INTO user_instruments (user_id, instrument_id, level)
             SELECT u, i, l::skill_level FROM UNNEST($1::uuid[], $2::uuid[], $3::text[]) AS t(u, i, l)",
            &ui_user,
            &ui_instr,
            &ui_level,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "INSERT INTO user_genres (user_id, genre_id) SELECT * FROM UNNEST($1::uuid[], $2::uuid[])",
            &ug_user,
            &ug_genre,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        all.extend(ids);
    }
    Ok(Users { ids: all })
}

#[derive(Default)]
struct EventBatch {
    ids: Vec<Uuid>,
    creators: Vec<Uuid>,
    titles: Vec<String>,
    kinds: Vec<String>,
    starts: Vec<DateTime<Utc>>,
    ends: Vec<DateTime<Utc>>,
    addresses: Vec<String>,
    lats: Vec<f64>,
    lons: Vec<f64>,
    capacities: Vec<Option<i32>>,
    counts: Vec<i32>,
    eg_event: Vec<Uuid>,
    eg_genre: Vec<Uuid>,
    ei_event: Vec<Uuid>,
    ei_instr: Vec<Uuid>,
    ei_qty: Vec<i32>,
    ei_filled: Vec<i32>,
    p_id: Vec<Uuid>,
    p_event: Vec<Uuid>,
    p_user: Vec<Uuid>,
    p_instr: Vec<Uuid>,
    p_status: Vec<String>,
}

async fn seed_events(
    pool: &PgPool,
    rng: &mut StdRng,
    count: usize,
    users: &Users,
    instruments: &[Uuid],
    genres: &[Uuid],
) -> anyhow::Result<usize> {
    if users.ids.len() < 2 {
        bail!("seeding events needs at least 2 musicians");
    }
    let total_weight: u32 = CITIES.iter().map(|c| c.3).sum();
    let day0 = Utc::now()
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc())
        .unwrap_or_else(Utc::now);
    let mut participations = 0;
    for chunk_start in (0..count).step_by(10_000) {
        let n = (count - chunk_start).min(10_000);
        let mut b = EventBatch::default();
        for _ in 0..n {
            let id = uuid(rng);
            let creator = *users.ids.choose(rng).unwrap_or(&users.ids[0]);
            let c = city(rng, total_weight);
            let kind = *EVENT_TYPES.choose(rng).unwrap_or(&"jam");
            let start = day0
                + Duration::days(rng.random_range(-30..180))
                + Duration::hours(rng.random_range(10..22))
                + Duration::minutes(15 * rng.random_range(0..4));
            let capacity = rng.random_bool(0.6).then(|| rng.random_range(3..60));
            b.ids.push(id);
            b.creators.push(creator);
            b.titles
                .push(format!("{} à {}", kind.replace('_', " "), c.0));
            b.kinds.push(kind.to_owned());
            b.starts.push(start);
            b.ends.push(start + Duration::hours(rng.random_range(2..6)));
            b.addresses.push(format!(
                "{} {}, {}",
                rng.random_range(1..200),
                STREETS.choose(rng).unwrap_or(&STREETS[0]),
                c.0
            ));
            b.lats.push(c.1 + rng.random_range(-0.25..0.25));
            b.lons.push(c.2 + rng.random_range(-0.3..0.3));
            b.capacities.push(capacity);
            let tagged = rng.random_range(1..=2);
            for genre in genres.choose_multiple(rng, tagged) {
                b.eg_event.push(id);
                b.eg_genre.push(*genre);
            }
            // Half the events need specific instruments; the others are open to any.
            let needed: Vec<(Uuid, i32)> = if rng.random_bool(0.5) {
                let kinds = rng.random_range(1..=4);
                let picked: Vec<Uuid> = instruments.choose_multiple(rng, kinds).copied().collect();
                picked
                    .into_iter()
                    .map(|i| (i, rng.random_range(1..=3)))
                    .collect()
            } else {
                Vec::new()
            };
            let mut filled = vec![0; needed.len()];
            let mut joined = 0;
            if rng.random_bool(0.3) {
                let wanted = rng.random_range(1..=5).min(capacity.unwrap_or(i32::MAX));
                let mut seen = vec![creator];
                for _ in 0..wanted {
                    let user = *users.ids.choose(rng).unwrap_or(&creator);
                    if seen.contains(&user) {
                        continue;
                    }
                    let instrument = if needed.is_empty() {
                        *instruments.choose(rng).unwrap_or(&instruments[0])
                    } else {
                        match (0..needed.len()).find(|&k| filled[k] < needed[k].1) {
                            Some(k) => {
                                filled[k] += 1;
                                needed[k].0
                            }
                            None => break,
                        }
                    };
                    seen.push(user);
                    joined += 1;
                    b.p_id.push(uuid(rng));
                    b.p_event.push(id);
                    b.p_user.push(user);
                    b.p_instr.push(instrument);
                    b.p_status.push(
                        if rng.random_bool(0.5) {
                            "accepted"
                        } else {
                            "pending"
                        }
                        .to_owned(),
                    );
                }
            }
            for (k, (instrument, quantity)) in needed.into_iter().enumerate() {
                b.ei_event.push(id);
                b.ei_instr.push(instrument);
                b.ei_qty.push(quantity);
                b.ei_filled.push(filled[k]);
            }
            b.counts.push(joined);
        }
        participations += b.p_id.len();
        insert_events(pool, &b).await?;
    }
    Ok(participations)
}

async fn insert_events(pool: &PgPool, b: &EventBatch) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "INSERT INTO events (id, creator_id, title, type, starts_at, ends_at, address, latitude,
                             longitude, capacity, participants_count)
         SELECT id, creator, title, kind::event_type, s, e, address, lat, lon, cap, n
         FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[],
                     $6::timestamptz[], $7::text[], $8::float8[], $9::float8[], $10::int4[], $11::int4[])
              AS t(id, creator, title, kind, s, e, address, lat, lon, cap, n)",
        &b.ids,
        &b.creators,
        &b.titles,
        &b.kinds,
        &b.starts,
        &b.ends,
        &b.addresses,
        &b.lats,
        &b.lons,
        &b.capacities as &[Option<i32>],
        &b.counts,
    )
    .execute(&mut *tx)
    .await
    .context("inserting events")?;
    sqlx::query!(
        "INSERT INTO event_genres (event_id, genre_id) SELECT * FROM UNNEST($1::uuid[], $2::uuid[])",
        &b.eg_event,
        &b.eg_genre,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO event_instruments (event_id, instrument_id, quantity, filled)
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::int4[], $4::int4[])",
        &b.ei_event,
        &b.ei_instr,
        &b.ei_qty,
        &b.ei_filled,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO participations (id, event_id, user_id, instrument_id, status)
         SELECT id, e, u, i, s::participation_status
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[]) AS t(id, e, u, i, s)",
        &b.p_id,
        &b.p_event,
        &b.p_user,
        &b.p_instr,
        &b.p_status,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Conversations between seeded musicians: direct ones and groups, with a few messages
/// each, written with their event log so that sockets can resume from them.
/// Returns (conversations, messages) written; pairs drawn twice make one direct conversation.
async fn seed_conversations(
    pool: &PgPool,
    rng: &mut StdRng,
    count: usize,
    users: &Users,
) -> anyhow::Result<(usize, usize)> {
    let name = |u: &Uuid| -> String {
        let i = users.ids.iter().position(|x| x == u).unwrap_or_default();
        format!("musician{i:06}")
    };
    let now = Utc::now();
    let (mut messages, mut conversations) = (0, 0);
    for chunk_start in (0..count).step_by(500) {
        let n = (count - chunk_start).min(500);
        let mut batch = ConversationBatch::default();
        for _ in 0..n {
            let id = uuid(rng);
            let size = if rng.random_bool(0.7) {
                2
            } else {
                rng.random_range(3..=8)
            };
            let members: Vec<UserRef> = users
                .ids
                .choose_multiple(rng, size)
                .map(|u| UserRef {
                    id: *u,
                    username: name(u),
                })
                .collect();
            if size == 2 && batch.has_direct(members[0].id, members[1].id) {
                continue;
            }
            let title = (size > 2).then(|| format!("Band #{}", chunk_start + batch.len()));
            let created = now - Duration::days(rng.random_range(1..60));
            let count = rng.random_range(0..=20);
            let history: Vec<HistoryMessage> = (1..=count)
                .map(|seq| {
                    let author = members
                        .choose(rng)
                        .cloned()
                        .unwrap_or_else(|| members[0].clone());
                    HistoryMessage {
                        id: uuid(rng),
                        author,
                        body: format!("Message {seq} about the next rehearsal"),
                        at: created + Duration::minutes(seq * 7),
                    }
                })
                .collect();
            messages += history.len();
            batch.add(id, title, &members, created, &history)?;
        }
        conversations += batch.len();
        batch.insert(pool).await?;
    }
    Ok((conversations, messages))
}
