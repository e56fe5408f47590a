//! Command line: `tunelink` (serve), `tunelink openapi`, `tunelink create-admin`.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::{
    accounts,
    auth::{PasswordHasher, Role},
    config::Settings,
    db,
    domain::{Email, Password, Username, Validator, checked},
    startup::{Application, shutdown_signal},
    telemetry,
};

#[derive(Parser)]
#[command(name = "tunelink", version, about = "TuneLink server")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Print the OpenAPI document (JSON) without starting the server or touching a database.
    Openapi,
    /// Create the database if needed, apply migrations, and exit.
    Migrate,
    /// Fill the database with realistic volume, deterministically from `--seed`.
    Seed {
        #[arg(long, default_value_t = 5_000)]
        users: usize,
        #[arg(long, default_value_t = 100_000)]
        events: usize,
        #[arg(long, default_value_t = 2_000)]
        conversations: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Write users with open sessions and access tokens, in conversations, for the load
    /// tool (`tunelink-load --fixture`): a JSON file holding live tokens, keep it private.
    /// The first user is an administrator (the chaos mode's announcements).
    LoadFixture {
        #[arg(long, default_value_t = 1_000)]
        users: usize,
        /// Members per conversation (2: direct conversations; 0: none).
        #[arg(long, default_value_t = 50)]
        group_size: usize,
        /// Lifetime of the tokens and their sessions, in seconds.
        #[arg(long, default_value_t = 7_200)]
        token_ttl_secs: u64,
        #[arg(long, default_value = "fixture.json")]
        out: std::path::PathBuf,
    },
    /// Create an administrator, or promote an existing account (matched by username or email).
    CreateAdmin {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Used only when the account is created.
        #[arg(long, env = "TUNELINK_ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

pub fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        println!("{}", crate::api::spec_json());
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let settings = Settings::from_env()?;
        telemetry::init(settings.log_format);
        match cli.command {
            None | Some(Command::Serve) => serve(settings).await,
            Some(Command::Seed {
                users,
                events,
                conversations,
                seed,
            }) => {
                let pool = db::connect_and_migrate(&settings).await?;
                let started = std::time::Instant::now();
                let report = crate::seed::run(
                    &pool,
                    crate::seed::Options {
                        users,
                        events,
                        conversations,
                        seed,
                    },
                )
                .await?;
                println!(
                    "seeded {} musicians, {} events, {} participations, {} conversations with {} \
                     messages in {:.1?} (password of every seeded account: {})",
                    report.users,
                    report.events,
                    report.participations,
                    report.conversations,
                    report.messages,
                    started.elapsed(),
                    crate::seed::SEED_PASSWORD
                );
                Ok(())
            }
            Some(Command::LoadFixture {
                users,
                group_size,
                token_ttl_secs,
                out,
            }) => {
                let pool = db::connect_and_migrate(&settings).await?;
                let started = std::time::Instant::now();
                let fixture = crate::load_fixture::create(
                    &pool,
                    settings.jwt_secret.expose(),
                    crate::load_fixture::Options {
                        users,
                        group_size,
                        token_ttl: std::time::Duration::from_secs(token_ttl_secs),
                    },
                )
                .await?;
                std::fs::write(&out, serde_json::to_vec(&fixture)?)
                    .with_context(|| format!("writing {}", out.display()))?;
                println!(
                    "{} users with sessions and {} conversations written to {} in {:.1?} \
                     (password of every account: {}; administrator: {})",
                    fixture.users.len(),
                    fixture.conversations.len(),
                    out.display(),
                    started.elapsed(),
                    fixture.password,
                    fixture
                        .admin
                        .map_or("none", |a| fixture.users[a].username.as_str()),
                );
                Ok(())
            }
            Some(Command::Migrate) => {
                db::connect_and_migrate(&settings).await?;
                println!("database is up to date");
                Ok(())
            }
            Some(Command::CreateAdmin {
                username,
                email,
                password,
            }) => create_admin(settings, &username, &email, &password).await,
            Some(Command::Openapi) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(env = ?settings.app_env, redis = settings.redis_url.is_some(), "starting");
    let app = Application::build(settings).await?;
    app.run_until(shutdown_signal()).await
}

async fn create_admin(
    settings: Settings,
    username: &str,
    email: &str,
    password: &str,
) -> anyhow::Result<()> {
    let pool = db::connect_and_migrate(&settings).await?;
    let fail = |e: crate::error::ApiError| anyhow::anyhow!("{}", describe(&e));
    for login in [username, email] {
        if let Some(id) = accounts::promote(&pool, login).await.map_err(fail)? {
            println!("promoted existing account {id} ({login}) to admin");
            return Ok(());
        }
    }
    let mut v = Validator::new();
    let username = v.check(Username::parse("username", username));
    let email = v.check(Email::parse("email", email));
    let password = v.check(Password::parse("password", password));
    v.finish().map_err(fail)?;
    let (username, email, password) = (
        checked(username).map_err(fail)?,
        checked(email).map_err(fail)?,
        checked(password).map_err(fail)?,
    );
    let hasher = PasswordHasher::new(1)?;
    let hash = hasher.hash(&password).await.map_err(fail)?;
    let mut conn = pool.acquire().await.context("no database connection")?;
    let user = accounts::insert(&mut conn, &username, &email, &hash, Role::Admin)
        .await
        .map_err(fail)?;
    println!("created admin {} ({})", user.id, user.username);
    Ok(())
}

fn describe(err: &crate::error::ApiError) -> String {
    if err.fields.is_empty() {
        err.message.clone()
    } else {
        err.fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    }
}
