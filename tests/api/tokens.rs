//! Access tokens: missing, expired, tampered, foreign.

use chrono::Utc;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn tokens_carry_user_role_session_expiry_issue_time_and_id() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let claims = claims_of(&nina.access);
    assert_eq!(claims["sub"], nina.id.as_str());
    assert_eq!(claims["role"], "user");
    for key in ["sid", "jti", "iat", "exp"] {
        assert!(!claims[key].is_null(), "missing {key}: {claims}");
    }
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
}

#[tokio::test]
async fn expired_tampered_and_foreign_tokens_are_401() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let mut claims = claims_of(&nina.access);

    let now = Utc::now().timestamp();
    claims["iat"] = json!(now - 1000);
    claims["exp"] = json!(now - 10);
    let expired = sign(&claims, "hetic");
    app.get("/api/v1/users/me", Some(&expired))
        .await
        .err(401, "token_expired");

    // Same claims, made an admin, signed with another key.
    claims["exp"] = json!(now + 600);
    claims["role"] = json!("admin");
    let foreign = sign(&claims, "not-the-server-secret");
    app.get("/api/v1/users/me", Some(&foreign))
        .await
        .err(401, "invalid_token");

    // Payload swapped under the real signature.
    let parts: Vec<&str> = nina.access.split('.').collect();
    use base64::Engine;
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).unwrap());
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    app.get("/api/v1/users/me", Some(&tampered))
        .await
        .err(401, "invalid_token");

    app.get("/api/v1/users/me", Some("not.a.jwt"))
        .await
        .err(401, "invalid_token");
    app.get("/api/v1/users/me", None)
        .await
        .err(401, "unauthenticated");
    let basic = app
        .send(
            app.raw(reqwest::Method::GET, "/api/v1/users/me")
                .basic_auth("nina", Some("x")),
        )
        .await;
    basic.err(401, "unauthenticated");
}

#[tokio::test]
async fn a_valid_token_for_a_session_that_never_existed_is_refused() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let mut claims = claims_of(&nina.access);
    claims["sid"] = json!(uuid::Uuid::new_v4());
    let token = sign(&claims, "hetic");
    app.get("/api/v1/users/me", Some(&token))
        .await
        .err(401, "session_revoked");
}
