//! One shape for every bad input (issue 14): a missing, null or mistyped field — in a body,
//! a path or a query — is a 422 naming the field as documented, on every operation, and
//! nothing is written; a method a route does not have is a 405 that says which it has.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{catalogue_id, create_event, event_body, spawn_app};

#[tokio::test]
async fn mistyped_missing_and_null_fields_are_422_naming_the_field() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let t = nina.token();

    // Numbers and booleans are not strings (they used to be stored as "true", "12345678").
    let resp = app.patch("/api/v1/users/me", t, json!({"bio": true})).await;
    resp.err(422, "validation_failed");
    assert_eq!(resp.fields(), [("bio".into(), "invalid_type".into())]);
    let me = app.get("/api/v1/users/me", t).await;
    assert!(me.ok(200)["bio"].is_null(), "nothing written");
    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": 12345678, "email": "n2@example.com", "password": "long enough pass"}),
        )
        .await;
    resp.err(422, "validation_failed");
    assert_eq!(resp.fields(), [("username".into(), "invalid_type".into())]);
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"login": "12345678", "password": "long enough pass"}),
        )
        .await;
    assert_eq!(login.status, 401, "no account was created");

    // Missing and null required fields, several at once, each named.
    let resp = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": null, "password": "long enough pass"}),
        )
        .await;
    resp.err(422, "validation_failed");
    let mut fields = resp.fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("email".into(), "missing".into()),
            ("username".into(), "missing".into())
        ]
    );
    for e in resp.body["errors"].as_array().unwrap() {
        let message = e["message"].as_str().unwrap();
        assert!(!message.contains("occurred while parsing"), "{message}");
    }

    // Nested fields are named by their path; formats inside bodies too.
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let mut body = event_body("Jam", 3, 45.76, 4.83);
    body["instruments"] = json!([{"instrument_id": piano, "quantity": "2"}]);
    body["genre_ids"] = json!(["not-a-uuid"]);
    let resp = app.post("/api/v1/events", t, body).await;
    resp.err(422, "validation_failed");
    let mut fields = resp.fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("genre_ids[0]".into(), "invalid_format".into()),
            ("instruments[0].quantity".into(), "invalid_type".into()),
        ]
    );
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(stored, 0, "nothing written");
    // A body that is not an object.
    let resp = app.post("/api/v1/auth/login", None, json!([1, 2])).await;
    resp.err(422, "validation_failed");
    assert_eq!(resp.fields(), [("body".into(), "invalid_type".into())]);
    // Integers are whole numbers.
    let event = create_event(&app, &nina, event_body("Gig", 4, 45.76, 4.83)).await;
    let resp = app
        .put(
            &format!("/api/v1/events/{event}/instruments/{piano}"),
            t,
            json!({"quantity": 1.5}),
        )
        .await;
    resp.err(422, "validation_failed");
    assert_eq!(resp.fields(), [("quantity".into(), "invalid_type".into())]);
}

#[tokio::test]
async fn bad_path_and_query_parameters_are_422_with_their_documented_names() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let t = nina.token();
    for (path, field, kind) in [
        ("/api/v1/users/not-a-uuid", "id", "invalid_format"),
        ("/api/v1/events/1234", "id", "invalid_format"),
        ("/api/v1/events?limit=abc", "limit", "invalid_type"),
        ("/api/v1/events?limit=-1", "limit", "out_of_range"),
        (
            "/api/v1/events?lat=north&lon=2&radius_km=3",
            "lat",
            "invalid_type",
        ),
        ("/api/v1/events?from=yesterday", "from", "invalid_format"),
        (
            "/api/v1/users?instrument_id=nope",
            "instrument_id",
            "invalid_format",
        ),
        ("/api/v1/users/me?erase=maybe", "erase", "invalid_type"),
    ] {
        let method = if path.contains("erase") {
            Method::DELETE
        } else {
            Method::GET
        };
        let resp = app.request(method, path, t, None).await;
        resp.err(422, "validation_failed");
        assert_eq!(resp.fields(), [(field.into(), kind.into())], "{path}");
        let message = resp.body["errors"][0]["message"].as_str().unwrap();
        assert!(
            !message.contains("param0") && !message.contains("occurred"),
            "{message}"
        );
    }
}

#[tokio::test]
async fn a_method_the_route_does_not_have_is_405_with_allow() {
    let app = spawn_app().await;
    for (method, path, allow) in [
        (Method::DELETE, "/api/v1/auth/login", "POST"),
        (Method::PUT, "/api/v1/users/me", "DELETE, GET, PATCH"),
        (
            Method::POST,
            "/api/v1/events/6f1c8f8e-3f0a-4d1e-9c55-3d6b2f1e8a11",
            "GET, PATCH",
        ),
    ] {
        let resp = app.request(method.clone(), path, None, None).await;
        resp.err(405, "method_not_allowed");
        let mut got: Vec<String> = resp.headers["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect();
        got.sort();
        assert_eq!(got.join(", "), allow, "{method} {path}");
    }
}

/// Every instant in every answer is RFC 3339 in UTC with `Z` (REST used to write
/// `+00:00` for profiles, events and participations, and `Z` for chat).
#[tokio::test]
async fn every_timestamp_in_every_answer_ends_with_z() {
    use crate::helpers::{post_message, start_conversation};
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let miles = app.register("miles").await;
    let piano = catalogue_id(&app, "instruments", "Piano").await;
    let event = create_event(&app, &nina, event_body("Jam", 3, 45.76, 4.83)).await;
    app.post(
        &format!("/api/v1/events/{event}/participations"),
        miles.token(),
        json!({"instrument_id": piano}),
    )
    .await
    .ok(201);
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    post_message(&app, &nina, &conv, "hello").await;
    let mut seen = 0;
    for (path, token) in [
        ("/api/v1/users/me".to_owned(), nina.token()),
        (format!("/api/v1/users/{}", miles.id), nina.token()),
        (format!("/api/v1/events/{event}"), nina.token()),
        ("/api/v1/events".to_owned(), nina.token()),
        (format!("/api/v1/events/{event}/participants"), nina.token()),
        ("/api/v1/users/me/participations".to_owned(), miles.token()),
        ("/api/v1/notifications".to_owned(), nina.token()),
        ("/api/v1/conversations".to_owned(), nina.token()),
        (
            format!("/api/v1/conversations/{conv}/messages"),
            nina.token(),
        ),
        (
            format!("/api/v1/conversations/{conv}/participants"),
            nina.token(),
        ),
    ] {
        let resp = app.get(&path, token).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.body);
        let data = resp.ok(200);
        let mut stack = vec![data.clone()];
        while let Some(v) = stack.pop() {
            match v {
                serde_json::Value::Object(m) => stack.extend(m.into_iter().map(|(_, v)| v)),
                serde_json::Value::Array(a) => stack.extend(a),
                serde_json::Value::String(s)
                    if s.parse::<chrono::DateTime<chrono::Utc>>().is_ok() =>
                {
                    assert!(s.ends_with('Z'), "{path}: {s}");
                    seen += 1;
                }
                _ => {}
            }
        }
    }
    assert!(seen >= 20, "only {seen} timestamps seen");
}

/// Every limit the server enforces is in the document as a keyword (issue 14: the document
/// had no `minLength`, `maxLength`, `pattern`, `minimum`, `maximum` or `maxItems`, and
/// schemathesis found requests valid by the schema that the server refused): every free
/// text a request carries has a `maxLength`, every number a range, every list a
/// `maxItems`; and the server keeps to what the document says at the edges.
#[tokio::test]
async fn every_limit_is_in_the_document_and_the_server_keeps_to_it() {
    use serde_json::Value;
    let app = spawn_app().await;
    let spec = app.send(app.raw(Method::GET, "/openapi.json")).await.body;
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let resolve = |s: &Value| -> Value {
        match s["$ref"].as_str() {
            Some(r) => schemas[r.trim_start_matches("#/components/schemas/")].clone(),
            None => s.clone(),
        }
    };
    let mut unbounded = Vec::new();
    let mut check = |at: String, s: &Value| {
        let free_text =
            s["type"] == "string" && s.get("enum").is_none() && s.get("format").is_none();
        let bounded = match s["type"].as_str() {
            _ if free_text => s.get("maxLength").is_some(),
            Some("integer" | "number") => s.get("minimum").is_some(),
            Some("array") => s.get("maxItems").is_some(),
            _ => true,
        };
        if !bounded {
            unbounded.push(at);
        }
    };
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "query" && !p["schema"]["type"].is_boolean() {
                    check(format!("{method} {path} ?{}", p["name"]), &p["schema"]);
                }
            }
            let mut bodies: Vec<(String, Value)> = op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(ct, m)| (format!("{method} {path} {ct}"), resolve(&m["schema"])))
                .collect();
            while let Some((at, body)) = bodies.pop() {
                for (name, prop) in body["properties"].as_object().into_iter().flatten() {
                    check(format!("{at} .{name}"), prop);
                    if prop["items"]["$ref"].is_string() {
                        bodies.push((format!("{at} .{name}[]"), resolve(&prop["items"])));
                    }
                }
            }
        }
    }
    assert!(
        unbounded.is_empty(),
        "limits missing from the document: {unbounded:#?}"
    );

    // The edges, as the document states them.
    let register = &schemas["RegisterInput"]["properties"];
    let max = register["username"]["maxLength"].as_u64().unwrap() as usize;
    let longest = "u".repeat(max);
    let body =
        json!({"username": longest, "email": "edge@example.com", "password": "long enough pass"});
    app.post("/api/v1/auth/register", None, body).await.ok(201);
    let body = json!({"username": "u".repeat(max + 1), "email": "edge2@example.com", "password": "long enough pass"});
    let resp = app.post("/api/v1/auth/register", None, body).await;
    resp.err(422, "validation_failed");
    assert_eq!(resp.fields()[0].0, "username");
    let nina = app.register("nina").await;
    let limit = &spec["paths"]["/api/v1/genres"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "limit")
        .unwrap()["schema"];
    let (low, high) = (
        limit["minimum"].as_i64().unwrap(),
        limit["maximum"].as_i64().unwrap(),
    );
    for (value, ok) in [
        (low, true),
        (high, true),
        (low - 1, false),
        (high + 1, false),
    ] {
        let resp = app
            .get(&format!("/api/v1/genres?limit={value}"), nina.token())
            .await;
        if ok {
            resp.ok(200);
        } else {
            resp.err(422, "validation_failed");
            assert_eq!(resp.fields()[0].0, "limit");
        }
    }
}

/// The document's request examples are requests the server takes, once their placeholder
/// ids name stored things: a client developer's first "Try it out" works, and the examples
/// do not go stale (an event example that starts in the past is refused by the server).
#[tokio::test]
async fn the_documents_event_examples_are_requests_the_server_takes() {
    let app = spawn_app().await;
    let spec = app.get("/openapi.json", None).await.body;
    let example = |schema: &str| spec["components"]["schemas"][schema]["example"].clone();
    let organiser = app.register("organiser").await;
    let (genre, instrument) = (
        catalogue_id(&app, "genres", "Jazz").await,
        catalogue_id(&app, "instruments", "Piano").await,
    );
    let mut new = example("NewEvent");
    new["genre_ids"] = json!([genre]);
    new["instruments"][0]["instrument_id"] = json!(instrument);
    let created = app.post("/api/v1/events", organiser.token(), new).await;
    let id = created.ok(201)["id"].as_str().unwrap().to_owned();
    app.patch(
        &format!("/api/v1/events/{id}"),
        organiser.token(),
        example("EventChange"),
    )
    .await
    .ok(200);
    // Exactly one of the participation change's two fields, said in the document.
    let change = &spec["components"]["schemas"]["ParticipationChange"];
    assert_eq!(
        change["oneOf"].as_array().map(Vec::len),
        Some(2),
        "{change}"
    );
}

/// The document's text patterns read text as the server does, in any script: a title in
/// Japanese or Arabic is valid by the document (a generated client validating a form must
/// not refuse it) and the server takes it; a blank title clears a group's title in both;
/// text that shows nothing is refused by both.
#[tokio::test]
async fn text_patterns_agree_with_the_server_in_any_script() {
    let app = spawn_app().await;
    let spec = app.get("/openapi.json", None).await.body;
    let valid = |schema: &str, field: &str, value: &str| {
        let keywords = &spec["components"]["schemas"][schema]["properties"][field];
        let pattern = keywords["pattern"].as_str().expect("a pattern");
        let check =
            jsonschema::validator_for(&json!({ "type": "string", "pattern": pattern })).unwrap();
        check.is_valid(&json!(value))
    };
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = crate::helpers::start_conversation(&app, &nina, &[&miles], Some("Duo")).await;
    let path = format!("/api/v1/conversations/{conv}");
    for title in ["日本のジャム", "جلسة جاز", "Été"] {
        assert!(valid("ConversationChanges", "title", title), "{title}");
        assert!(valid("NewEvent", "title", title), "{title}");
        let changed = app
            .patch(&path, nina.token(), json!({ "title": title }))
            .await;
        assert_eq!(changed.ok(200)["title"], title);
    }
    for blank in ["", "  ", "\u{200b}"] {
        assert!(valid("ConversationChanges", "title", blank), "{blank:?}");
        let cleared = app
            .patch(&path, nina.token(), json!({ "title": blank }))
            .await;
        assert!(cleared.ok(200)["title"].is_null());
        assert!(!valid("NewEvent", "title", blank), "{blank:?}");
        assert!(!valid("NewMessage", "body", blank), "{blank:?}");
    }
    let sent = app
        .post(
            &format!("{path}/messages"),
            nina.token(),
            json!({ "body": "\u{200b} " }),
        )
        .await;
    assert_eq!(sent.fields()[0].0, "body");
    assert!(valid("NewMessage", "body", "¿Qué?"));

    // One line of text holds no control character and no line break, in both readings.
    for (schema, field, path, bad) in [
        ("ConversationChanges", "title", path.clone(), "Duo\u{0084}"),
        (
            "UpdateProfile",
            "city",
            "/api/v1/users/me".to_owned(),
            "Lyon\nVilleurbanne",
        ),
    ] {
        assert!(!valid(schema, field, bad), "{bad:?}");
        let refused = app.patch(&path, nina.token(), json!({ field: bad })).await;
        assert_eq!(
            refused.fields(),
            [(field.to_owned(), "invalid_format".to_owned())]
        );
    }
    // A required title that shows nothing is missing, as the document's pattern says.
    let mut event = event_body("Jam", 3, 45.76, 4.83);
    event["title"] = json!("\u{200b}");
    assert!(!valid("NewEvent", "title", "\u{200b}"));
    let refused = app.post("/api/v1/events", nina.token(), event).await;
    assert_eq!(
        refused.fields(),
        [("title".to_owned(), "missing".to_owned())]
    );
}

/// A search text is trimmed before it is counted, and bounded as sent, in the document and
/// on the server alike.
#[tokio::test]
async fn search_text_bounds_agree_with_the_document() {
    let app = spawn_app().await;
    let nina = app.register("nina").await;
    let spec = app.get("/openapi.json", None).await.body;
    let q = spec["paths"]["/api/v1/events"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "q")
        .unwrap()["schema"]
        .clone();
    let check = jsonschema::validator_for(&q).unwrap();
    let long = format!(" {} ", "a".repeat(99));
    for (text, ok) in [
        ("  jazz  ", true),
        ("   ", true),
        (" ab ", false),
        (long.as_str(), false),
    ] {
        assert_eq!(check.is_valid(&json!(text)), ok, "{text:?}");
        let path = format!("/api/v1/events?q={}", text.replace(' ', "%20"));
        for path in [path.clone(), path.replace("/events", "/users")] {
            let resp = app.get(&path, nina.token()).await;
            if ok {
                resp.ok(200);
            } else {
                assert_eq!(resp.fields(), [("q".to_owned(), "out_of_range".to_owned())]);
            }
        }
    }
}

/// A password set through a form can be typed at the JSON login: a NUL, which every JSON
/// text refuses, is refused in every form too.
#[tokio::test]
async fn a_password_with_nul_is_refused_in_every_form() {
    let app = spawn_app().await;
    let form = reqwest::multipart::Form::new()
        .text("username", "nulpass")
        .text("email", "nulpass@example.com")
        .text("password", "correct\0horse battery");
    let resp = app
        .send(
            app.raw(Method::POST, "/api/v1/auth/register")
                .multipart(form),
        )
        .await;
    resp.err(422, "validation_failed");
    assert_eq!(
        resp.fields(),
        [("password".into(), "invalid_format".into())]
    );
    let urlencoded = app
        .send(
            app.raw(Method::POST, "/api/v1/auth/register")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(
                    "username=nulpass&email=nulpass%40example.com&password=correct%00horse+battery",
                ),
        )
        .await;
    urlencoded.err(422, "validation_failed");
    assert_eq!(
        urlencoded.fields(),
        [("password".into(), "invalid_format".into())]
    );
}

/// Forms answer bad input as JSON does (issue 14): a missing, repeated or unknown field of
/// an urlencoded or multipart form is a 422 naming it, not a 400 with poem's message; the
/// prototype's multipart form, with its `profile_picture`, still registers.
#[tokio::test]
async fn form_bodies_name_the_bad_field() {
    let app = spawn_app().await;
    let multipart = |parts: &[(&str, &str)]| {
        parts
            .iter()
            .fold(reqwest::multipart::Form::new(), |form, (k, v)| {
                form.text(k.to_string(), v.to_string())
            })
    };
    let register = |form: reqwest::multipart::Form| {
        app.send(
            app.raw(Method::POST, "/api/v1/users/register")
                .multipart(form),
        )
    };
    let base = [
        ("username", "formuser"),
        ("password", "correct horse battery"),
    ];
    let missing = register(multipart(&base)).await;
    missing.err(422, "validation_failed");
    assert_eq!(missing.fields(), [("email".into(), "missing".into())]);
    let mut repeated = base.to_vec();
    repeated.extend([
        ("email", "form@example.com"),
        ("password", "another one here"),
    ]);
    let resp = register(multipart(&repeated)).await;
    assert_eq!(resp.fields(), [("password".into(), "invalid_type".into())]);
    let mut unknown = base.to_vec();
    unknown.extend([("email", "form@example.com"), ("nickname", "x")]);
    let resp = register(multipart(&unknown)).await;
    assert_eq!(resp.fields(), [("nickname".into(), "unknown_field".into())]);

    let urlencoded = app
        .send(
            app.raw(Method::POST, "/api/v1/auth/register")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=formuser&password=correct+horse+battery"),
        )
        .await;
    urlencoded.err(422, "validation_failed");
    assert_eq!(urlencoded.fields(), [("email".into(), "missing".into())]);

    let prototype = multipart(&[
        ("username", "formuser"),
        ("email", "form@example.com"),
        ("password", "correct horse battery"),
    ])
    .part(
        "profile_picture",
        reqwest::multipart::Part::bytes(vec![0xff, 0xd8, 0xff, 0xe0]).file_name("me.jpg"),
    );
    register(prototype).await.ok(201);
}

/// A text's length is counted as sent, surrounding white space included, as the document's
/// `maxLength` counts it; the white space the server trims is allowed by the document too.
#[tokio::test]
async fn lengths_are_counted_as_sent() {
    let app = spawn_app().await;
    let spec = app.get("/openapi.json", None).await.body;
    let register = &spec["components"]["schemas"]["RegisterInput"]["properties"];
    let valid = |field: &str, value: &str| {
        jsonschema::validator_for(&register[field])
            .unwrap()
            .is_valid(&json!(value))
    };
    assert!(valid("username", " spaced_out "));
    assert!(valid("email", " spaced@example.com "));
    let spaced = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": " spaced_out ", "email": " spaced@example.com ", "password": "long enough pass"}),
        )
        .await;
    assert_eq!(spaced.ok(201)["user"]["username"], "spaced_out");

    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = crate::helpers::start_conversation(&app, &nina, &[&miles], None).await;
    let max = spec["components"]["schemas"]["NewMessage"]["properties"]["body"]["maxLength"]
        .as_u64()
        .unwrap() as usize;
    let padded = format!("if{}", " ".repeat(max));
    let resp = app
        .post(
            &format!("/api/v1/conversations/{conv}/messages"),
            nina.token(),
            json!({ "body": padded }),
        )
        .await;
    assert_eq!(resp.fields(), [("body".into(), "too_long".into())]);
}
