//! Request hardening: body sizes (413) on every kind of body, list sizes, text lengths and
//! search radius (422 naming the field), CORS from the settings, and the socket's `Origin`
//! check.

use reqwest::{Method, multipart};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
use uuid::Uuid;

use crate::{
    helpers::{TestApp, event_body, spawn_app, spawn_with, start_conversation},
    ws::Ws,
};

fn chunked(bytes: Vec<u8>) -> reqwest::Body {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(512).map(|c| Ok(c.to_vec())).collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
}

fn registration(name: &str, padding: usize) -> Value {
    json!({
        "username": name,
        "email": format!("{name}@example.com"),
        "password": format!("password-of-{name}"),
        "padding": "x".repeat(padding),
    })
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_declared_or_chunked_json_or_multipart() {
    let app = spawn_with(|s| s.max_body_bytes = 2048).await;
    let json_path = "/api/v1/auth/register";
    let big = serde_json::to_vec(&registration("nina", 4096)).unwrap();
    let chunked_json = app
        .raw(Method::POST, json_path)
        .header("content-type", "application/json")
        .body(chunked(big));
    app.send(chunked_json).await.err(413, "payload_too_large");

    // The prototype's multipart registration, declared and streamed.
    let form = || {
        multipart::Form::new()
            .text("username", "miles")
            .text("email", "miles@example.com")
            .text("password", "password-of-miles")
    };
    let declared = form().text("padding", "x".repeat(4096));
    app.send(
        app.raw(Method::POST, "/api/v1/users/register")
            .multipart(declared),
    )
    .await
    .err(413, "payload_too_large");
    let streamed = form().part(
        "padding",
        multipart::Part::stream(chunked(vec![b'x'; 4096])),
    );
    app.send(
        app.raw(Method::POST, "/api/v1/users/register")
            .multipart(streamed),
    )
    .await
    .err(413, "payload_too_large");

    // Under the limit, a chunked body is read as usual.
    let small = serde_json::to_vec(&registration("zoe", 10)).unwrap();
    let ok = app
        .raw(Method::POST, json_path)
        .header("content-type", "application/json")
        .body(chunked(small));
    app.send(ok).await.ok(201);
}

/// Asserts a 422 that names `field` (with `kind`).
#[track_caller]
fn names(resp: &crate::helpers::Resp, field: &str, kind: &str) {
    resp.err(422, "validation_failed");
    assert!(
        resp.fields()
            .iter()
            .any(|(f, k)| f == field && (kind.is_empty() || k == kind)),
        "{field}/{kind} not in {}",
        resp.body
    );
}

#[tokio::test]
async fn lists_texts_radius_and_pages_have_bounds_named_in_422s() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let token = nina.token();

    let crowd: Vec<String> = (0..200).map(|_| Uuid::new_v4().to_string()).collect();
    let resp = app
        .post(
            "/api/v1/conversations",
            token,
            json!({"participant_ids": crowd, "title": "Too many"}),
        )
        .await;
    names(&resp, "participant_ids", "too_long");
    let resp = app
        .post(
            "/api/v1/conversations",
            token,
            json!({"participant_ids": [miles.id], "title": "t".repeat(101)}),
        )
        .await;
    names(&resp, "title", "too_long");
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    let resp = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            token,
            json!({"body": "m".repeat(4001)}),
        )
        .await;
    names(&resp, "body", "too_long");

    let mut event = event_body("Jam", 3, 48.85, 2.35);
    event["genre_ids"] = json!((0..11).map(|_| Uuid::new_v4()).collect::<Vec<_>>());
    event["instruments"] = json!(
        (0..51)
            .map(|_| json!({"instrument_id": Uuid::new_v4(), "quantity": 1}))
            .collect::<Vec<_>>()
    );
    event["title"] = json!("t".repeat(121));
    event["description"] = json!("d".repeat(5001));
    let resp = app.post("/api/v1/events", token, event).await;
    for field in ["genre_ids", "instruments", "title", "description"] {
        names(&resp, field, "");
    }

    let resp = app
        .patch("/api/v1/users/me", token, json!({"bio": "b".repeat(1001)}))
        .await;
    names(&resp, "bio", "");

    for path in [
        "/api/v1/events?lat=48.85&lon=2.35&radius_km=501",
        "/api/v1/users?lat=48.85&lon=2.35&radius_km=501",
    ] {
        names(&app.get(path, token).await, "radius_km", "");
    }
    for path in [
        "/api/v1/events?limit=101",
        "/api/v1/notifications?limit=101",
        "/api/v1/conversations?limit=101",
    ] {
        names(&app.get(path, token).await, "limit", "out_of_range");
    }

    let resp = app.login(&"n".repeat(300), "whatever password").await;
    names(&resp, "login", "too_long");
}

#[tokio::test]
async fn the_socket_refuses_overlong_refs() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let mut ws = Ws::connect(&app, &nina.access).await;
    ws.send(json!({"type": "ping", "ref": "r".repeat(129)}))
        .await;
    let refused = ws.next_of(&["error"]).await.unwrap();
    assert_eq!(refused["code"], "invalid_frame");
    assert!(refused["ref"].is_null(), "an overlong ref is not echoed");
}

const APP_ORIGIN: &str = "https://app.example.com";

async fn with_origins() -> TestApp {
    spawn_with(|s| s.allowed_origins = vec![APP_ORIGIN.into()]).await
}

#[tokio::test]
async fn cors_follows_the_allowed_origins() {
    let app = with_origins().await;
    let preflight = app
        .send(
            app.raw(Method::OPTIONS, "/api/v1/auth/login")
                .header("origin", APP_ORIGIN)
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "content-type"),
        )
        .await;
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.headers["access-control-allow-origin"], APP_ORIGIN);

    let allowed = app
        .send(
            app.raw(Method::GET, "/api/v1/instruments")
                .header("origin", APP_ORIGIN),
        )
        .await;
    allowed.ok(200);
    assert_eq!(allowed.headers["access-control-allow-origin"], APP_ORIGIN);
    let exposed = allowed.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id") && exposed.contains("retry-after"));

    let foreign = app
        .send(
            app.raw(Method::GET, "/api/v1/instruments")
                .header("origin", "https://evil.example.com"),
        )
        .await;
    foreign.err(403, "forbidden");

    // The mobile app (no Origin) and Swagger UI (same origin) are not concerned.
    let native = app.get("/api/v1/instruments", None).await;
    native.ok(200);
    assert!(!native.headers.contains_key("access-control-allow-origin"));
    let own = app
        .send(
            app.raw(Method::GET, "/api/v1/instruments")
                .header("origin", &app.base),
        )
        .await;
    own.ok(200);
}

#[tokio::test]
async fn without_allowed_origins_there_is_no_cors() {
    let app = spawn_app().await;
    let resp = app
        .send(
            app.raw(Method::GET, "/api/v1/instruments")
                .header("origin", "https://elsewhere.example.com"),
        )
        .await;
    resp.ok(200);
    assert!(!resp.headers.contains_key("access-control-allow-origin"));
}

/// Opens `/ws` with an `Origin` header: the upgrade's status, and the first frame if any.
async fn open_with_origin(app: &TestApp, token: &str, origin: Option<&str>) -> (u16, Value) {
    use futures_util::StreamExt;
    let url = format!("{}/ws", app.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, resp)) => {
            let first = match socket.next().await {
                Some(Ok(tungstenite::Message::Text(t))) => serde_json::from_str(&t).unwrap(),
                other => panic!("no first frame: {other:?}"),
            };
            (resp.status().as_u16(), first)
        }
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            (resp.status().as_u16(), body)
        }
        Err(err) => panic!("{err}"),
    }
}

#[tokio::test]
async fn the_socket_checks_the_origin_against_the_allow_list() {
    let app = with_origins().await;
    let nina = app.register("nina").await;
    let (status, body) =
        open_with_origin(&app, &nina.access, Some("https://evil.example.com")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error_code"], "forbidden");
    for origin in [Some(APP_ORIGIN), None] {
        let (status, ready) = open_with_origin(&app, &nina.access, origin).await;
        assert_eq!((status, ready["type"].as_str()), (101, Some("ready")));
    }
    // Without a list, any origin may open a socket.
    let open = spawn_app().await;
    let miles = open.register("miles").await;
    let (status, _) =
        open_with_origin(&open, &miles.access, Some("https://evil.example.com")).await;
    assert_eq!(status, 101);
}

/// A cursor as the server gave it, with every timestamp inside replaced by `date`.
fn with_date(cursor: &str, date: &str) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    fn swap(v: &mut Value, date: &str) {
        match v {
            Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
                *s = date.to_owned();
            }
            Value::Array(items) => items.iter_mut().for_each(|i| swap(i, date)),
            Value::Object(map) => map.values_mut().for_each(|i| swap(i, date)),
            _ => {}
        }
    }
    let mut key: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(cursor).unwrap()).unwrap();
    let before = key.clone();
    swap(&mut key, date);
    assert_ne!(key, before, "the cursor {before} carries a timestamp");
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&key).unwrap())
}

/// PostgreSQL stores timestamps from 4713 BC to 294276 AD; chrono reads more. A date
/// outside, in a filter or in a cursor, is a 422 naming the field, never a 500.
#[tokio::test]
async fn timestamps_out_of_range_are_422_naming_the_field_in_filters_and_cursors() {
    let app = spawn_app().await;
    let boss = app.register("boss").await;
    let nina = app.register("nina").await;
    let miles = app.register("miles").await;
    crate::helpers::make_admin(&app, &boss).await;
    for (i, lat) in [45.76, 45.77].iter().enumerate() {
        crate::helpers::create_event(
            &app,
            &boss,
            event_body(&format!("Jam {i}"), 3 + i as i64, *lat, 4.83),
        )
        .await;
    }
    start_conversation(&app, &boss, &[&nina], None).await;
    start_conversation(&app, &boss, &[&miles], None).await;
    for title in ["One", "Two"] {
        app.post(
            "/api/v1/notifications",
            boss.token(),
            json!({"all": true, "title": title, "body": "News."}),
        )
        .await
        .ok(201);
    }
    // Far in the future: chrono reads it, nothing can be planned then.
    let mut far = event_body("Far", 3, 45.76, 4.83);
    far["starts_at"] = json!("+20000-01-01T20:00:00Z");
    far["ends_at"] = json!("+20000-01-01T23:00:00Z");
    let resp = app.post("/api/v1/events", boss.token(), far).await;
    resp.err(422, "validation_failed");
    let fields: Vec<String> = resp.fields().into_iter().map(|f| f.0).collect();
    assert_eq!(fields, ["starts_at", "ends_at"], "{}", resp.body);
    for bad in ["-4713-01-01T00:00:00Z", "-0100-01-01T00:00:00Z"] {
        for field in ["from", "to"] {
            let resp = app
                .get(&format!("/api/v1/events?{field}={bad}"), boss.token())
                .await;
            resp.err(422, "validation_failed");
            assert_eq!(resp.fields()[0].0, field, "{bad}: {}", resp.body);
        }
        for list in [
            "/api/v1/events",
            "/api/v1/conversations",
            "/api/v1/notifications",
        ] {
            let first = app.get(&format!("{list}?limit=1"), boss.token()).await;
            let cursor = first.ok(200)["next_cursor"]
                .as_str()
                .unwrap_or_else(|| panic!("{list} has a second page"))
                .to_owned();
            let forged = with_date(&cursor, bad);
            let resp = app
                .get(&format!("{list}?limit=1&cursor={forged}"), boss.token())
                .await;
            resp.err(422, "validation_failed");
            assert_eq!(resp.fields()[0].0, "cursor", "{list}: {}", resp.body);
        }
    }
}
