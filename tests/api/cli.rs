//! The `tunelink` binary: `openapi`, `create-admin`, production checks, graceful shutdown.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::helpers::{postgres_base, spawn_app};

fn tunelink() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tunelink"));
    // Nothing from the developer's shell or `.env` may leak into these runs.
    for var in [
        "APP_ENV",
        "JWT_SECRET",
        "REDIS_URL",
        "BIND_ADDR",
        "DATABASE_URL",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.current_dir(std::env::temp_dir());
    cmd
}

#[test]
fn openapi_prints_the_document_without_a_database() {
    let out = tunelink()
        .arg("openapi")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spec: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    crate::health::check_spec(&spec);
}

#[test]
fn production_refuses_weak_jwt_secrets() {
    for secret in ["hetic", "", "too-short"] {
        let out = tunelink()
            .env("APP_ENV", "production")
            .env("JWT_SECRET", secret)
            .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
            .output()
            .unwrap();
        assert!(!out.status.success(), "started with JWT_SECRET={secret:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("JWT_SECRET"), "{stderr}");
    }
    let out = tunelink().env("APP_ENV", "production").output().unwrap();
    assert!(
        !out.status.success(),
        "started in production with no secret"
    );
}

#[tokio::test]
async fn create_admin_creates_or_promotes() {
    let app = spawn_app().await;
    let url = format!("{}/{}", postgres_base(), app.database);
    let out = tunelink()
        .args([
            "create-admin",
            "--username",
            "root",
            "--email",
            "root@example.com",
            "--password",
            "admin password",
        ])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let login = app.login("root", "admin password").await;
    assert_eq!(login.ok(200)["user"]["role"], "admin");

    let nina = app.register("nina").await;
    let out = tunelink()
        .args([
            "create-admin",
            "--username",
            "nina",
            "--email",
            "nina@example.com",
            "--password",
            "ignored pass",
        ])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("promoted"));
    assert_eq!(
        app.get("/api/v1/users/me", nina.token()).await.ok(200)["role"],
        "admin"
    );

    let out = tunelink()
        .args([
            "create-admin",
            "--username",
            "x",
            "--email",
            "bad",
            "--password",
            "short",
        ])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("username") && stderr.contains("email") && stderr.contains("password"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let app = spawn_app().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = tunelink()
        .env(
            "DATABASE_URL",
            format!("{}/{}", postgres_base(), app.database),
        )
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/healthz"))
            .send()
            .await
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "server never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit status {status:?}");
    // Logs written to a pipe are plain text, and the start says where the docs are and
    // what the migrations did.
    let output = child.wait_with_output().unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !logs.contains('\x1b'),
        "ANSI escapes in redirected logs: {logs}"
    );
    assert!(
        logs.contains(&format!("http://127.0.0.1:{port}/docs")),
        "{logs}"
    );
    assert!(logs.contains("migrations"), "{logs}");
}

#[tokio::test]
async fn seed_is_deterministic_and_consistent() {
    let first = spawn_app().await;
    let second = spawn_app().await;
    for app in [&first, &second] {
        let out = tunelink()
            .args([
                "seed",
                "--users",
                "60",
                "--events",
                "300",
                "--conversations",
                "40",
                "--seed",
                "7",
            ])
            .env(
                "DATABASE_URL",
                format!("{}/{}", postgres_base(), app.database),
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let fingerprint = "SELECT md5(string_agg(e.id::text || e.title || e.starts_at::text || e.participants_count, ',' ORDER BY e.id))
                       || md5((SELECT string_agg(p.id::text || p.user_id::text || p.status::text, ',' ORDER BY p.id) FROM participations p))
                       FROM events e";
    let a: String = sqlx::query_scalar(fingerprint)
        .fetch_one(&first.db)
        .await
        .unwrap();
    let b: String = sqlx::query_scalar(fingerprint)
        .fetch_one(&second.db)
        .await
        .unwrap();
    assert_eq!(a, b, "same seed, same data");

    // Counters agree with the rows they count.
    let drift: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events e WHERE participants_count <>
           (SELECT count(*) FROM participations p WHERE p.event_id = e.id AND p.status IN ('pending', 'accepted'))",
    )
    .fetch_one(&first.db)
    .await
    .unwrap();
    assert_eq!(drift, 0);
    // Conversations come with their event log: the last event number of each is its
    // highest logged event, and messages are numbered without gaps.
    let inconsistent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM conversations c WHERE c.last_event_seq <> (SELECT max(seq) FROM conversation_events e WHERE e.conversation_id = c.id)
            OR c.last_message_seq <> (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)",
    )
    .fetch_one(&first.db)
    .await
    .unwrap();
    assert_eq!(inconsistent, 0);
    // A seeded musician can log in with the documented password and sees their chats.
    let login = first.login("musician000001", "tunelink-seed").await;
    let token = login.ok(200)["access_token"].as_str().unwrap().to_owned();
    first
        .get("/api/v1/conversations", Some(&token))
        .await
        .ok(200);
    // Seeding twice is refused.
    let again = tunelink()
        .args(["seed", "--users", "1", "--events", "1"])
        .env(
            "DATABASE_URL",
            format!("{}/{}", postgres_base(), first.database),
        )
        .output()
        .unwrap();
    assert!(!again.status.success());
}
