//! Each operation's answers, exactly: the success statuses it can return (response types
//! shared between operations gave 17 of them a `200`/`201` pair, such as "201 Created" for
//! `GET /events/{id}`), and for every error answer an example of its own status and about
//! its own operation (a `404` of `GET /events/{id}` says the event was not found, a `409` of
//! the registration that the username is taken), where the document showed one `422`
//! example under every status.

use serde_json::{Value, json};

fn envelope(code: u16, error_code: &str, message: String, errors: Value) -> Value {
    json!({
        "status": "error",
        "code": code,
        "error_code": error_code,
        "message": message,
        "errors": errors,
        "data": null,
    })
}

/// What a path's last named resource is called: `/events/{id}/participants` → "Event".
fn resource(path: &str) -> &'static str {
    let named: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .collect();
    let last_with_id = path
        .split('/')
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[1].starts_with('{'))
        .map(|w| w[0])
        .next_back()
        .or(named.last().copied());
    match last_with_id.unwrap_or_default() {
        "events" => "Event",
        "conversations" => "Conversation",
        "messages" => "Message",
        "participations" => "Participation",
        "participants" => "Member",
        "notifications" => "Notification",
        "genres" => "Genre",
        "instruments" => "Instrument",
        "reports" => "Report",
        "blocks" | "users" => "User",
        _ => "Resource",
    }
}

/// The first input a `422` can name: a required body field, else a query or path parameter.
fn first_field(op: &Value, schemas: &Value) -> (String, &'static str, String) {
    let body = op["requestBody"]["content"]
        .as_object()
        .and_then(|c| c.values().next())
        .map(|m| &m["schema"]);
    let body = body.map(|s| match s["$ref"].as_str() {
        Some(r) => &schemas[r.trim_start_matches("#/components/schemas/")],
        None => s,
    });
    if let Some(name) = body.and_then(|b| b["required"].as_array()?.first()?.as_str()) {
        return (name.into(), "missing", format!("{name} is required"));
    }
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    if params.iter().any(|p| p["name"] == "limit") {
        let max = crate::api::pagination::MAX_LIMIT;
        let text = format!("limit must be between 1 and {max}");
        return ("limit".into(), "out_of_range", text);
    }
    if let Some(p) = params.iter().find(|p| p["in"] == "path") {
        let name = p["name"].as_str().unwrap_or("id").to_owned();
        let text = format!("{name} must be a UUID, like 6f1c8f8e-3f0a-4d1e-9c55-3d6b2f1e8a11");
        return (name, "invalid_format", text);
    }
    let name = body
        .and_then(|b| b["properties"].as_object()?.keys().next().cloned())
        .unwrap_or_else(|| "body".into());
    let text = format!("{name} must be a string");
    (name, "invalid_type", text)
}

fn example(status: u16, id: &str, path: &str, op: &Value, schemas: &Value) -> Option<Value> {
    let none = Value::Null;
    Some(match status {
        400 => envelope(
            400,
            "malformed_request",
            "The request could not be read: the body is not valid JSON.".into(),
            none,
        ),
        401 if id == "auth_login" => envelope(
            401,
            "invalid_credentials",
            "Wrong login or password.".into(),
            none,
        ),
        401 if id == "auth_refresh" => envelope(
            401,
            "invalid_refresh_token",
            "The refresh token is not valid; log in again.".into(),
            none,
        ),
        401 => envelope(
            401,
            "unauthenticated",
            "Send an access token: Authorization: Bearer <token>.".into(),
            none,
        ),
        403 => envelope(
            403,
            "forbidden",
            format!(
                "You may not do this to this {}.",
                resource(path).to_lowercase()
            ),
            none,
        ),
        404 => envelope(
            404,
            "not_found",
            format!("{} not found.", resource(path)),
            none,
        ),
        409 => {
            let (code, text) = match id {
                i if i.ends_with("register") => {
                    ("username_taken", "This username is already taken.")
                }
                "genres_create" | "genres_update" | "instruments_create" | "instruments_update" => {
                    ("name_taken", "This name is already taken.")
                }
                "genres_delete" | "instruments_delete" => {
                    ("in_use", "Still used by musicians or events; it stays.")
                }
                "events_join" => (
                    "already_participating",
                    "You already take part in this event.",
                ),
                _ => (
                    "conflict",
                    "This conflicts with the current state; reload it.",
                ),
            };
            envelope(409, code, text.into(), none)
        }
        413 => envelope(
            413,
            "payload_too_large",
            "The body is larger than this server accepts.".into(),
            none,
        ),
        415 => envelope(
            415,
            "unsupported_media_type",
            "Send the body as application/json.".into(),
            none,
        ),
        422 => {
            let (field, kind, text) = first_field(op, schemas);
            let errors = json!([{ "field": field, "message": text, "type": kind }]);
            envelope(
                422,
                "validation_failed",
                "The request has invalid fields.".into(),
                errors,
            )
        }
        500 => envelope(
            500,
            "internal_error",
            "Something went wrong on our side; it has been logged.".into(),
            none,
        ),
        503 => envelope(
            503,
            "service_unavailable",
            "The service is busy or starting; retry shortly.".into(),
            none,
        ),
        _ => return None,
    })
}

/// Operations that answer `201` when they create and `200` when what was asked already
/// exists (a direct conversation, a retried message, an open report, a block).
const CREATE_OR_FIND: &[&str] = &[
    "conversations_create",
    "conversations_send",
    "reports_create",
    "blocks_put",
];

/// Operations that only create.
const CREATE: &[&str] = &[
    "auth_register",
    "users_register",
    "events_create",
    "genres_create",
    "instruments_create",
];

/// Drops the success statuses an operation cannot return: `201` from those that never
/// create, `200` from those that always do.
fn exact_successes(op: &mut Value) {
    let id = op["operationId"].as_str().unwrap_or_default().to_owned();
    if CREATE_OR_FIND.contains(&id.as_str()) {
        return;
    }
    if let Some(responses) = op["responses"].as_object_mut()
        && responses.contains_key("200")
        && responses.contains_key("201")
    {
        responses.remove(if CREATE.contains(&id.as_str()) {
            "200"
        } else {
            "201"
        });
    }
}

/// Exact success statuses, and an example of its own for every error answer.
pub fn add(doc: &mut Value) {
    let schemas = doc["components"]["schemas"].clone();
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|i| i.values_mut())
        {
            exact_successes(op);
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            let view = op.clone();
            for (status, answer) in op["responses"]
                .as_object_mut()
                .into_iter()
                .flat_map(|r| r.iter_mut())
            {
                let Ok(code) = status.parse::<u16>() else {
                    continue;
                };
                if code < 400 {
                    continue;
                }
                for media in answer["content"]
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|c| c.values_mut())
                    .filter_map(Value::as_object_mut)
                {
                    let own = media.contains_key("example")
                        || media.contains_key("examples")
                        || media
                            .get("schema")
                            .is_some_and(|s| s.get("example").is_some());
                    if !own && let Some(e) = example(code, &id, path, &view, &schemas) {
                        media.insert("example".into(), e);
                    }
                }
            }
        }
    }
}
