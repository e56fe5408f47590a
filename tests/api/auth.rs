//! Registration, login, refresh and logout.

use serde_json::json;

use crate::helpers::{spawn_app, spawn_sibling};

#[tokio::test]
async fn register_answers_the_user_and_a_working_token_pair() {
    let app = spawn_app().await;
    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "Nina_Keys", "email": "Nina@Example.com", "password": "correct horse"}),
        )
        .await;
    let data = resp.ok(201);
    assert_eq!(data["token_type"], "bearer");
    assert_eq!(data["expires_in"], 900);
    assert_eq!(data["user"]["username"], "Nina_Keys");
    assert_eq!(
        data["user"]["email"], "nina@example.com",
        "emails are stored lower-case"
    );
    assert_eq!(data["user"]["role"], "user");
    let token = data["access_token"].as_str().unwrap();
    let me = app.get("/api/v1/users/me", Some(token)).await;
    assert_eq!(me.ok(200)["id"], data["user"]["id"]);
    let stored: Option<String> = sqlx::query_scalar("SELECT password_hash FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(
        stored.unwrap().starts_with("$argon2id$"),
        "passwords are stored as argon2id"
    );
}

#[tokio::test]
async fn duplicate_username_or_email_ignoring_case_is_409() {
    let app = spawn_app().await;
    app.register("miles").await;

    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "MILES", "email": "other@example.com", "password": "long enough"}),
        )
        .await;
    resp.err(409, "username_taken");
    assert_eq!(resp.fields(), vec![("username".into(), "taken".into())]);

    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "miles2", "email": "Miles@EXAMPLE.com", "password": "long enough"}),
        )
        .await;
    resp.err(409, "email_taken");
    assert_eq!(resp.fields(), vec![("email".into(), "taken".into())]);

    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 1, "no half-written account");
}

#[tokio::test]
async fn invalid_fields_are_422_with_one_entry_per_field() {
    let app = spawn_app().await;
    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "x", "email": "not-an-email", "password": "short"}),
        )
        .await;
    resp.err(422, "validation_failed");
    assert_eq!(
        resp.fields(),
        vec![
            ("username".into(), "too_short".into()),
            ("email".into(), "invalid_format".into()),
            ("password".into(), "too_short".into()),
        ]
    );
    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "okname", "email": "ok@example.com", "password": "x".repeat(129)}),
        )
        .await;
    resp.err(422, "validation_failed");
    assert_eq!(resp.fields(), vec![("password".into(), "too_long".into())]);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn login_by_username_or_email_ignoring_case() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    for login in ["nina", "NINA", "nina@example.com", "Nina@Example.COM"] {
        let resp = app.login(login, &nina.password).await;
        let data = resp.ok(200);
        assert_eq!(data["user"]["id"], nina.id.as_str());
        assert!(
            data["refresh_token"]
                .as_str()
                .is_some_and(|t| t.len() >= 43)
        );
        assert!(
            resp.body.get("access_token").is_none(),
            "JSON logins keep tokens in data"
        );
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_login_are_the_same_401() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let wrong = app.login(&nina.email, "not her password").await;
    wrong.err(401, "invalid_credentials");
    let unknown = app.login("nobody@example.com", "whatever password").await;
    unknown.err(401, "invalid_credentials");
    assert_eq!(wrong.body["message"], unknown.body["message"]);

    let missing = app.login("", "").await;
    missing.err(422, "validation_failed");
    assert_eq!(
        missing.fields(),
        vec![
            ("login".into(), "missing".into()),
            ("password".into(), "missing".into())
        ]
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_family() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;

    let first = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": nina.refresh}),
        )
        .await;
    let data = first.ok(200);
    let (access2, refresh2) = (
        data["access_token"].as_str().unwrap().to_owned(),
        data["refresh_token"].as_str().unwrap().to_owned(),
    );
    assert_ne!(refresh2, nina.refresh);
    app.get("/api/v1/users/me", Some(&access2)).await.ok(200);

    // The first token again: a replay. The session (the family) is revoked.
    let replay = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": nina.refresh}),
        )
        .await;
    replay.err(401, "refresh_token_reused");
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh2}),
    )
    .await
    .err(401, "invalid_refresh_token");
    app.get("/api/v1/users/me", Some(&access2))
        .await
        .err(401, "session_revoked");
    app.get("/api/v1/users/me", Some(&nina.access))
        .await
        .err(401, "session_revoked");

    // Other sessions of the same user are untouched.
    let other = app.login("nina", &nina.password).await;
    let token = other.ok(200)["access_token"].as_str().unwrap().to_owned();
    app.get("/api/v1/users/me", Some(&token)).await.ok(200);
}

#[tokio::test]
async fn unknown_refresh_token_is_401() {
    let app = spawn_app().await;
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": "made-up"}),
    )
    .await
    .err(401, "invalid_refresh_token");
    let missing = app.post("/api/v1/auth/refresh", None, json!({})).await;
    missing.err(422, "validation_failed");
    assert_eq!(
        missing.fields(),
        [("refresh_token".into(), "missing".into())]
    );
}

#[tokio::test]
async fn logout_ends_access_and_refresh_tokens_of_that_session_only() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let phone = app.login("nina", &nina.password).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    app.post("/api/v1/auth/logout", nina.token(), json!({}))
        .await
        .ok(200);
    app.get("/api/v1/users/me", nina.token())
        .await
        .err(401, "session_revoked");
    app.post("/api/v1/auth/logout", nina.token(), json!({}))
        .await
        .err(401, "session_revoked");
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": nina.refresh}),
    )
    .await
    .err(401, "invalid_refresh_token");
    app.get("/api/v1/users/me", Some(&phone)).await.ok(200);
}

#[tokio::test]
async fn a_logged_out_token_is_refused_by_another_instance_and_after_a_restart() {
    let mut first = spawn_app().await;
    let second = spawn_sibling(&first).await;
    let nina = first.register("nina").await;
    second.get("/api/v1/users/me", nina.token()).await.ok(200);

    first
        .post("/api/v1/auth/logout", nina.token(), json!({}))
        .await
        .ok(200);
    second
        .get("/api/v1/users/me", nina.token())
        .await
        .err(401, "session_revoked");

    // A fresh process on the same database knows it too.
    first.stop().await;
    let third = spawn_sibling(&second).await;
    third
        .get("/api/v1/users/me", nina.token())
        .await
        .err(401, "session_revoked");
}
