//! Liveness, readiness and the OpenAPI document.

use serde_json::Value;

use crate::helpers::{redis_url, spawn_app, spawn_with};

#[tokio::test]
async fn healthz_and_readyz_without_redis() {
    let app = spawn_app().await;
    app.get("/healthz", None).await.ok(200);
    let ready = app.get("/readyz", None).await;
    let data = ready.ok(200);
    assert_eq!(data["database"], "ok");
    assert_eq!(data["redis"], "disabled");
}

#[tokio::test]
async fn readyz_reports_redis_when_configured() {
    let app = spawn_with(|s| s.redis_url = Some(tunelink::config::Secret::new(redis_url()))).await;
    // The subscriber connects in the background: start-up does not wait for it.
    let mut redis = Value::Null;
    for _ in 0..100 {
        redis = app.get("/readyz", None).await.ok(200)["redis"].clone();
        if redis == "ok" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(redis, "ok");

    let down =
        spawn_with(|s| s.redis_url = Some(tunelink::config::Secret::new("redis://127.0.0.1:1")))
            .await;
    // Redis down does not fail readiness: the instance serves alone, and says so.
    let resp = down.get("/readyz", None).await;
    assert_eq!(resp.ok(200)["redis"], "down");
    assert_eq!(resp.body["data"]["database"], "ok");
    assert!(
        resp.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("degraded")),
        "{}",
        resp.body
    );
    down.get("/healthz", None).await.ok(200);
}

#[tokio::test]
async fn docs_and_openapi_are_served() {
    let app = spawn_app().await;
    let docs = app.send(app.raw(reqwest::Method::GET, "/docs")).await;
    assert_eq!(docs.status, 200);
    let spec = app
        .send(app.raw(reqwest::Method::GET, "/openapi.json"))
        .await;
    assert_eq!(spec.status, 200);
    assert_eq!(spec.body["openapi"], "3.0.0");
    check_spec(&spec.body);
}

/// Every operation has an id, a tag, and documents its errors in the envelope.
pub fn check_spec(spec: &Value) {
    let paths = spec["paths"].as_object().unwrap();
    for required in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/users/register",
        "/api/v1/users/me",
        "/api/v1/users/me/password",
        "/api/v1/users/{id}",
        "/api/v1/users",
        "/api/v1/users/me/instruments",
        "/api/v1/users/me/instruments/{instrument_id}",
        "/api/v1/users/me/genres",
        "/api/v1/users/me/genres/{genre_id}",
        "/api/v1/instruments",
        "/api/v1/instruments/{id}",
        "/api/v1/genres",
        "/api/v1/genres/{id}",
        "/api/v1/events",
        "/api/v1/events/{id}",
        "/api/v1/events/{id}/cancel",
        "/api/v1/events/{id}/instruments",
        "/api/v1/events/{id}/instruments/{instrument_id}",
        "/api/v1/events/{id}/participants",
        "/api/v1/events/{id}/participations",
        "/api/v1/users/me/participations",
        "/api/v1/participations/{id}",
        "/api/v1/notifications",
        "/api/v1/notifications/unread-count",
        "/api/v1/notifications/{id}",
        "/api/v1/notifications/{id}/read",
        "/api/v1/notifications/read-all",
        "/api/v1/conversations",
        "/api/v1/conversations/{id}",
        "/api/v1/conversations/{id}/participants",
        "/api/v1/conversations/{id}/participants/{user_id}",
        "/api/v1/conversations/{id}/messages",
        "/api/v1/conversations/{id}/read",
        "/api/v1/messages/{id}",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(required), "missing {required}");
    }
    // What the OpenAPI linters (scripts/openapi-lint.sh) would refuse, checked here too.
    assert!(
        spec["servers"].as_array().is_some_and(|s| !s.is_empty()),
        "servers"
    );
    assert!(
        spec["info"].get("summary").is_none(),
        "info.summary is OAS 3.1 only"
    );
    fn nullable_without_type(node: &Value, at: &str) {
        match node {
            Value::Object(map) => {
                if map.get("nullable") == Some(&Value::Bool(true)) {
                    assert!(map.contains_key("type"), "nullable without type at {at}");
                }
                for (k, v) in map {
                    nullable_without_type(v, &format!("{at}/{k}"));
                }
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| nullable_without_type(v, &format!("{at}/{i}"))),
            _ => {}
        }
    }
    nullable_without_type(spec, "");
    let mut operations = 0;
    let mut missing_422 = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let name = format!("{method} {path}");
            assert!(op["operationId"].is_string(), "{name}: operationId");
            assert!(op["security"].is_array(), "{name}: security declared");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{name}: tags"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.contains_key("500"), "{name}: 500 documented");
            for (status, resp) in responses {
                if status == "304" {
                    let headers = resp["headers"].as_object().unwrap();
                    assert!(
                        headers.keys().any(|h| h.eq_ignore_ascii_case("etag")),
                        "{name}: 304 carries the ETag"
                    );
                    continue;
                }
                if status == "503" {
                    assert!(
                        resp["headers"]["Retry-After"]["required"] == true,
                        "{name}: 503 documents Retry-After"
                    );
                }
                let schema = &resp["content"]["application/json; charset=utf-8"]["schema"];
                // 429 wraps the envelope in `allOf` to carry an example of its own.
                let schema = schema["$ref"]
                    .as_str()
                    .map_or(&schema["allOf"][0]["$ref"], |_| &schema["$ref"]);
                let schema = schema
                    .as_str()
                    .unwrap_or_else(|| panic!("{name} {status}: JSON schema"));
                if status.starts_with('2') {
                    assert!(schema.contains("Envelope"), "{name} {status}: {schema}");
                } else {
                    assert_eq!(
                        schema, "#/components/schemas/ErrorEnvelope",
                        "{name} {status}"
                    );
                }
            }
            if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                assert!(responses.contains_key("401"), "{name}: secured but no 401");
            }
            if op["requestBody"].is_object() {
                assert!(
                    responses.contains_key("400"),
                    "{name}: has a body but no 400"
                );
            }
            // The strict input layer answers 422 for any typed input that does not parse.
            let typed_inputs = op["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["in"] == "path" || p["in"] == "query"))
                || op["requestBody"].is_object();
            if typed_inputs && !responses.contains_key("422") {
                missing_422.push(name.clone());
            }
        }
    }
    assert!(
        missing_422.is_empty(),
        "typed inputs but no 422: {missing_422:?}"
    );
    assert!(operations >= 13, "{operations} operations");
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    assert!(
        !schemas["ErrorEnvelope"]["example"].is_null(),
        "ErrorEnvelope has an example"
    );
    // Each operation's answers exactly (issue 14): a `200`/`201` pair only where an
    // operation creates or finds, and every error answer has an example of its own status.
    let mut pairs = Vec::new();
    let mut wrong_examples = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            if responses.contains_key("200") && responses.contains_key("201") {
                pairs.push(op["operationId"].as_str().unwrap().to_owned());
            }
            for (status, resp) in responses.iter().filter(|(s, _)| s.as_str() >= "400") {
                for media in resp["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|m| m.1)
                {
                    let example = if media["example"].is_null() {
                        &media["schema"]["example"]
                    } else {
                        &media["example"]
                    };
                    if example["code"].as_u64().map(|c| c.to_string()).as_deref()
                        != Some(status.as_str())
                    {
                        wrong_examples.push(format!("{method} {path} {status}"));
                    }
                }
            }
        }
    }
    pairs.sort();
    assert_eq!(
        pairs,
        [
            "blocks_put",
            "conversations_create",
            "conversations_send",
            "reports_create"
        ],
        "operations documenting both 200 and 201"
    );
    assert!(
        wrong_examples.is_empty(),
        "error answers without an example of their status: {wrong_examples:?}"
    );
    // A whole answer's example sits on the answer (see `api::lint_clean`).
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            for (status, resp) in op["responses"].as_object().unwrap() {
                let media = &resp["content"]["application/json; charset=utf-8"];
                if status.starts_with('2')
                    && media["schema"]["$ref"]
                        .as_str()
                        .is_some_and(|r| r.contains("/Envelope_"))
                {
                    assert!(
                        media["example"].is_object(),
                        "{method} {path} {status} has an example"
                    );
                }
            }
        }
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["OAuth2"]["flows"]["password"]["tokenUrl"],
        "/api/v1/auth/login"
    );
}
