//! `tunelink load-fixture`: users with open sessions and access tokens, in conversations,
//! ready for the load tool (`tunelink-load`).
//!
//! Logging thousands of users in through the API would spend minutes in argon2 for nothing
//! the load tool measures. The fast path skips only argon2 and the HTTP round trips, nothing
//! the server checks: the accounts are real rows with a real argon2 hash of
//! [`LOAD_PASSWORD`] (hashed once, so they can also log in through the API, as the login
//! burst benchmark does); each gets a real session row; its access token is signed with this
//! server's `JWT_SECRET` exactly as the login endpoint signs one, and is checked like any
//! other (signature, expiry, session not revoked). The conversations are written as the chat
//! writes them (members, `conversation.created` as event 1). The first user is an
//! administrator (`role = 'admin'`, `"admin": 0` in the file): the load tool's chaos mode
//! sends announcements with it.

use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    auth::{PasswordHasher, Role, TokenKeys},
    chat::bulk::ConversationBatch,
    domain::Password,
    frames::UserRef,
};

pub const LOAD_PASSWORD: &str = "tunelink-load";
pub const LOAD_EMAIL_DOMAIN: &str = "load.tunelink.test";
const CHUNK: usize = 5_000;

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub users: usize,
    /// Members per conversation: 2 makes direct conversations, more makes groups, 0 none.
    /// Users `k*size .. (k+1)*size` form conversation `k`; a last incomplete group is left
    /// out of conversations.
    pub group_size: usize,
    /// Lifetime of the access tokens (and of their sessions).
    pub token_ttl: Duration,
}

/// What the load tool reads (`tunelink-load --fixture`).
#[derive(Debug, Serialize)]
pub struct Fixture {
    /// Tag of this fixture's usernames (`load<run>_000042`): fixtures never collide.
    pub run: String,
    /// Every fixture account's password.
    pub password: String,
    pub users: Vec<User>,
    pub conversations: Vec<Conversation>,
    /// Index in `users` of the administrator (the first user; none without users).
    pub admin: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub token: String,
}

#[derive(Debug, Serialize)]
pub struct Conversation {
    pub id: Uuid,
    /// Indexes into `users`.
    pub members: Vec<usize>,
}

pub async fn create(pool: &PgPool, secret: &str, opts: Options) -> anyhow::Result<Fixture> {
    if opts.group_size == 1 {
        bail!("a conversation needs at least 2 members (or 0 for no conversations)");
    }
    let keys = TokenKeys::new(secret, opts.token_ttl);
    let run = Uuid::new_v4().simple().to_string()[..8].to_owned();
    let password =
        Password::parse("password", LOAD_PASSWORD).map_err(|e| anyhow::anyhow!(e.message))?;
    let hash = PasswordHasher::new(1)?
        .hash(&password)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let expires = Utc::now() + chrono::Duration::from_std(opts.token_ttl)?;

    let mut users = Vec::with_capacity(opts.users);
    for start in (0..opts.users).step_by(CHUNK) {
        let n = (opts.users - start).min(CHUNK);
        let (mut ids, mut names, mut emails, mut sessions) = (vec![], vec![], vec![], vec![]);
        for i in start..start + n {
            let (id, session) = (Uuid::new_v4(), Uuid::new_v4());
            let username = format!("load{run}_{i:06}");
            emails.push(format!("{username}@{LOAD_EMAIL_DOMAIN}"));
            let role = if i == 0 { Role::Admin } else { Role::User };
            let (token, _) = keys
                .issue(id, role, session)
                .map_err(|e| anyhow::anyhow!(e.message))?;
            users.push(User {
                id,
                username: username.clone(),
                token,
            });
            ids.push(id);
            names.push(username);
            sessions.push(session);
        }
        let mut tx = pool.begin().await?;
        sqlx::query!(
            "INSERT INTO users (id, username, email, password_hash)
             SELECT id, username, email, $4
             FROM UNNEST($1::uuid[], $2::text[], $3::text[]) AS t(id, username, email)",
            &ids,
            &names,
            &emails,
            hash,
        )
        .execute(&mut *tx)
        .await
        .context("inserting load users")?;
        sqlx::query!(
            "INSERT INTO sessions (id, user_id, expires_at)
             SELECT id, user_id, $3 FROM UNNEST($1::uuid[], $2::uuid[]) AS t(id, user_id)",
            &sessions,
            &ids,
            expires,
        )
        .execute(&mut *tx)
        .await
        .context("opening load sessions")?;
        if start == 0 {
            sqlx::query("UPDATE users SET role = 'admin' WHERE id = $1")
                .bind(ids[0])
                .execute(&mut *tx)
                .await
                .context("making the first load user an administrator")?;
        }
        tx.commit().await?;
    }

    let mut conversations = vec![];
    if opts.group_size >= 2 {
        let now = Utc::now();
        let groups = opts.users / opts.group_size;
        for start in (0..groups).step_by(500) {
            let mut batch = ConversationBatch::default();
            for k in start..(start + 500).min(groups) {
                let id = Uuid::new_v4();
                let members: Vec<usize> =
                    (k * opts.group_size..(k + 1) * opts.group_size).collect();
                let refs: Vec<UserRef> = members
                    .iter()
                    .map(|&i| UserRef {
                        id: users[i].id,
                        username: users[i].username.clone(),
                    })
                    .collect();
                let title = (opts.group_size > 2).then(|| format!("Load band {k}"));
                batch.add(id, title, &refs, now, &[])?;
                conversations.push(Conversation { id, members });
            }
            batch.insert(pool).await?;
        }
    }
    sqlx::query!("ANALYZE users, sessions, conversations, conversation_members")
        .execute(pool)
        .await?;
    Ok(Fixture {
        run,
        password: LOAD_PASSWORD.to_owned(),
        admin: (!users.is_empty()).then_some(0),
        users,
        conversations,
    })
}
