//! The calls of the first prototype's mobile front end keep working.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn oauth2_password_form_login_answers_top_level_bearer_token() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let resp = app
        .send(app.raw(Method::POST, "/api/v1/auth/login").form(&[
            ("grant_type", "password"),
            ("username", nina.email.as_str()),
            ("password", nina.password.as_str()),
        ]))
        .await;
    let data = resp.ok(200).clone();
    assert_eq!(resp.body["token_type"], "bearer");
    assert_eq!(resp.body["access_token"], data["access_token"]);
    let token = resp.body["access_token"].as_str().unwrap();
    app.get("/api/v1/users/me", Some(token)).await.ok(200);

    let bad = app
        .send(
            app.raw(Method::POST, "/api/v1/auth/login")
                .form(&[("username", nina.email.as_str()), ("password", "wrong one")]),
        )
        .await;
    bad.err(401, "invalid_credentials");
    let grant = app
        .send(app.raw(Method::POST, "/api/v1/auth/login").form(&[
            ("grant_type", "client_credentials"),
            ("username", nina.email.as_str()),
            ("password", nina.password.as_str()),
        ]))
        .await;
    grant.err(422, "validation_failed");
    assert_eq!(grant.fields()[0].0, "grant_type");
}

#[tokio::test]
async fn users_register_accepts_json_multipart_and_urlencoded() {
    let app = spawn_app().await;
    let json_resp = app
        .post("/api/v1/users/register", None, json!({"username": "json_user", "email": "json@example.com", "password": "long enough"}))
        .await;
    assert_eq!(json_resp.ok(201)["user"]["username"], "json_user");

    let form = reqwest::multipart::Form::new()
        .text("username", "multi_user")
        .text("email", "multi@example.com")
        .text("password", "long enough");
    let multi = app
        .send(
            app.raw(Method::POST, "/api/v1/users/register")
                .multipart(form),
        )
        .await;
    assert_eq!(multi.ok(201)["user"]["username"], "multi_user");

    let urlenc = app
        .send(app.raw(Method::POST, "/api/v1/users/register").form(&[
            ("username", "form_user"),
            ("email", "form@example.com"),
            ("password", "long enough"),
        ]))
        .await;
    assert_eq!(urlenc.ok(201)["user"]["username"], "form_user");

    let form = reqwest::multipart::Form::new()
        .text("username", "bad")
        .text("email", "nope")
        .text("password", "short");
    let invalid = app
        .send(
            app.raw(Method::POST, "/api/v1/users/register")
                .multipart(form),
        )
        .await;
    invalid.err(422, "validation_failed");
    assert_eq!(invalid.fields().len(), 2);
}
