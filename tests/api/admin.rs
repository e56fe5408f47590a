//! Admin-only routes: the role is a type in the handler, checked against the database.

use serde_json::json;

use crate::helpers::{make_admin, spawn_app};

#[tokio::test]
async fn only_admins_set_roles_and_changes_apply_at_once() {
    let app = spawn_app().await;
    let boss = app.register("boss").await;
    let nina = app.register("nina").await;
    let path = format!("/api/v1/users/{}/role", nina.id);

    app.put(&path, nina.token(), json!({"role": "admin"}))
        .await
        .err(403, "forbidden");
    app.put(&path, None, json!({"role": "admin"}))
        .await
        .err(401, "unauthenticated");

    make_admin(&app, &boss).await;
    let resp = app.put(&path, boss.token(), json!({"role": "admin"})).await;
    assert_eq!(resp.ok(200)["role"], "admin");
    // Nina's existing token now passes the admin check, without logging in again.
    let boss_path = format!("/api/v1/users/{}/role", boss.id);
    app.put(&boss_path, nina.token(), json!({"role": "admin"}))
        .await
        .ok(200);

    let bad = app
        .put(&path, boss.token(), json!({"role": "emperor"}))
        .await;
    bad.err(422, "validation_failed");
    assert_eq!(bad.fields(), [("role".into(), "invalid".into())]);
    app.put(&boss_path, boss.token(), json!({"role": "user"}))
        .await
        .err(422, "validation_failed");
    app.put(
        &format!("/api/v1/users/{}/role", uuid::Uuid::new_v4()),
        boss.token(),
        json!({"role": "user"}),
    )
    .await
    .err(404, "not_found");
    app.put(&path, boss.token(), json!({"role": "user"}))
        .await
        .ok(200);
    app.put(&boss_path, nina.token(), json!({"role": "user"}))
        .await
        .err(403, "forbidden");
}
