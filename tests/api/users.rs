//! Profiles, password change, deactivation and erasure.

use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn profile_update_changes_only_what_is_sent_and_null_clears() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let resp = app
        .patch(
            "/api/v1/users/me",
            nina.token(),
            json!({"bio": "Jazz pianist", "city": "Lyon", "latitude": 45.76, "longitude": 4.84,
                   "photo_url": "https://cdn.example.com/nina.jpg"}),
        )
        .await;
    let me = resp.ok(200);
    assert_eq!(me["bio"], "Jazz pianist");
    assert_eq!(me["latitude"], 45.76);

    let resp = app
        .patch(
            "/api/v1/users/me",
            nina.token(),
            json!({"city": null, "username": "NinaK"}),
        )
        .await;
    let me = resp.ok(200);
    assert!(me["city"].is_null());
    assert_eq!(me["bio"], "Jazz pianist", "absent fields are left alone");
    assert_eq!(me["username"], "NinaK");
    assert_eq!(me["photo_url"], "https://cdn.example.com/nina.jpg");

    let resp = app
        .patch(
            "/api/v1/users/me",
            nina.token(),
            json!({"latitude": null, "longitude": null}),
        )
        .await;
    assert!(resp.ok(200)["latitude"].is_null());
}

#[tokio::test]
async fn profile_update_reports_every_bad_field_and_writes_nothing() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    app.register("miles").await;
    let resp = app
        .patch(
            "/api/v1/users/me",
            nina.token(),
            json!({"bio": "b".repeat(1001), "photo_url": "ftp://x", "latitude": 95.0, "longitude": 0.0, "username": "a b"}),
        )
        .await;
    resp.err(422, "validation_failed");
    let fields: Vec<String> = resp.fields().into_iter().map(|f| f.0).collect();
    assert_eq!(fields, ["username", "bio", "photo_url", "latitude"]);

    let resp = app
        .patch("/api/v1/users/me", nina.token(), json!({"latitude": 45.0}))
        .await;
    resp.err(422, "validation_failed");
    assert_eq!(resp.fields(), vec![("longitude".into(), "missing".into())]);

    app.patch(
        "/api/v1/users/me",
        nina.token(),
        json!({"username": "MILES"}),
    )
    .await
    .err(409, "username_taken");
    app.patch(
        "/api/v1/users/me",
        nina.token(),
        json!({"bio": ["not", "text"]}),
    )
    .await
    .err(422, "validation_failed");

    let me = app.get("/api/v1/users/me", nina.token()).await;
    let me = me.ok(200);
    assert_eq!(me["username"], "nina");
    assert!(me["bio"].is_null());
}

#[tokio::test]
async fn public_profiles_never_show_the_email() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let miles = app.register("miles").await;
    let resp = app
        .get(&format!("/api/v1/users/{}", nina.id), miles.token())
        .await;
    let profile = resp.ok(200);
    assert_eq!(profile["username"], "nina");
    assert!(profile.get("email").is_none(), "{profile}");

    app.get(
        &format!("/api/v1/users/{}", uuid::Uuid::new_v4()),
        miles.token(),
    )
    .await
    .err(404, "not_found");
    let bad = app.get("/api/v1/users/not-a-uuid", miles.token()).await;
    bad.err(422, "validation_failed");
    assert_eq!(bad.fields(), [("id".into(), "invalid_format".into())]);
    app.get(&format!("/api/v1/users/{}", nina.id), None)
        .await
        .err(401, "unauthenticated");
}

#[tokio::test]
async fn password_change_needs_the_current_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let phone = app.login("nina", &nina.password).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let wrong = app
        .put(
            "/api/v1/users/me/password",
            nina.token(),
            json!({"current_password": "nope nope", "new_password": "brand new secret"}),
        )
        .await;
    wrong.err(422, "validation_failed");
    assert_eq!(
        wrong.fields(),
        vec![("current_password".into(), "invalid".into())]
    );
    let short = app
        .put(
            "/api/v1/users/me/password",
            nina.token(),
            json!({"current_password": nina.password, "new_password": "short"}),
        )
        .await;
    short.err(422, "validation_failed");
    assert_eq!(
        short.fields(),
        vec![("new_password".into(), "too_short".into())]
    );
    app.get("/api/v1/users/me", Some(&phone)).await.ok(200);

    app.put(
        "/api/v1/users/me/password",
        nina.token(),
        json!({"current_password": nina.password, "new_password": "brand new secret"}),
    )
    .await
    .ok(200);
    app.get("/api/v1/users/me", nina.token()).await.ok(200);
    app.get("/api/v1/users/me", Some(&phone))
        .await
        .err(401, "session_revoked");
    app.login("nina", &nina.password)
        .await
        .err(401, "invalid_credentials");
    app.login("nina", "brand new secret").await.ok(200);
}

#[tokio::test]
async fn deactivation_ends_sessions_and_hides_the_account() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let miles = app.register("miles").await;
    app.delete("/api/v1/users/me", nina.token()).await.ok(200);

    app.get("/api/v1/users/me", nina.token())
        .await
        .err(401, "session_revoked");
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": nina.refresh}),
    )
    .await
    .err(401, "invalid_refresh_token");
    app.login("nina", &nina.password)
        .await
        .err(403, "account_deactivated");
    app.login("nina", "a wrong password")
        .await
        .err(401, "invalid_credentials");
    app.get(&format!("/api/v1/users/{}", nina.id), miles.token())
        .await
        .err(404, "not_found");
    // The name stays reserved while the account exists.
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"username": "nina", "email": "new@example.com", "password": "long enough"}),
    )
    .await
    .err(409, "username_taken");
}

#[tokio::test]
async fn erasure_removes_personal_data_and_frees_the_names() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    app.patch(
        "/api/v1/users/me",
        nina.token(),
        json!({"bio": "hello", "city": "Lyon"}),
    )
    .await
    .ok(200);
    app.delete("/api/v1/users/me?erase=maybe", nina.token())
        .await
        .err(422, "validation_failed");
    // Erasing takes the password (issue 15): not without it, not with a wrong one.
    let refused = app
        .delete("/api/v1/users/me?erase=true", nina.token())
        .await;
    refused.err(422, "validation_failed");
    assert_eq!(refused.fields()[0].0, "password");
    let wrong = app
        .send(
            app.raw(reqwest::Method::DELETE, "/api/v1/users/me?erase=true")
                .bearer_auth(nina.token().unwrap())
                .json(&json!({"password": "not my password"})),
        )
        .await;
    wrong.err(422, "validation_failed");
    assert_eq!(wrong.fields()[0].0, "password");
    app.get("/api/v1/users/me", nina.token()).await.ok(200);
    app.send(
        app.raw(reqwest::Method::DELETE, "/api/v1/users/me?erase=true")
            .bearer_auth(nina.token().unwrap())
            .json(&json!({"password": nina.password})),
    )
    .await
    .ok(200);

    let row: (String, Option<String>, Option<String>, Option<String>, bool) = sqlx::query_as(
        "SELECT username, email, password_hash, bio, erased_at IS NOT NULL FROM users WHERE id = $1::uuid",
    )
    .bind(&nina.id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(row.0.starts_with("deleted-"));
    assert_eq!((row.1, row.2, row.3, row.4), (None, None, None, true));

    app.login(&nina.email, &nina.password)
        .await
        .err(401, "invalid_credentials");
    app.register("nina").await;
}
