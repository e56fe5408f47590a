//! The limits the handlers enforce, written into the OpenAPI document as JSON Schema keywords
//! (`minLength`, `maxLength`, `pattern`, `minimum`, `maximum`, `minItems`, `maxItems`,
//! `enum`), so that generated clients can check a form before sending it and fuzzers
//! generate requests the server accepts.
//!
//! The numbers are the handlers' own constants. Where the server trims text or refuses text
//! that shows nothing (white space, invisible characters), the pattern asks for one
//! character that is neither, in any script (a title in Japanese is valid), and where a
//! blank text clears a field, the pattern says so. Whatever the document calls valid, the
//! server accepts (`scripts/schemathesis.sh` checks it). URLs and e-mail addresses are
//! written more strictly than the server reads them (`https` with a lower-case dotted host;
//! a plain dot-atom address): a client that keeps to the document is never refused. Rules the document cannot
//! express — between two fields, or on the state of the data — stay in the descriptions and
//! are listed, with their reason, in `scripts/schemathesis_hooks.py`.

use serde_json::{Value, json};

use crate::{
    api::{
        catalogue_crud, events::fields as event_fields, genres, musicians, notifications, users,
    },
    chat::store as chat,
    domain::{
        EMAIL_MAX, MAX_QUERY_CHARS, PASSWORD_MAX, PASSWORD_MIN, USERNAME_MAX, USERNAME_MIN, Url,
    },
    events::manage::MAX_INSTRUMENTS,
};

// Character classes, written with `\uXXXX` escapes only, so that every reader of the
// document (ECMA-262, Python's `re`, Rust) reads the same set.

/// White space as the server trims it (Rust's `char::is_whitespace`).
macro_rules! ws {
    () => {
        "\\u0009-\\u000d\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
    };
}
/// Characters that show nothing (`domain::is_blank`'s invisible ones, in the Basic
/// Multilingual Plane: a pattern without the `u` flag cannot name the others).
macro_rules! invisible {
    () => {
        "\\u00ad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u180b-\\u180f\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u206f\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0"
    };
}
/// Control characters (Rust's `char::is_control`).
macro_rules! control {
    () => {
        "\\u0000-\\u001f\\u007f-\\u009f"
    };
}
/// Control characters but the line feed.
macro_rules! control_but_lf {
    () => {
        "\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f"
    };
}

/// No NUL anywhere (the strict layer refuses it in every text).
const NO_NUL: &str = "^[^\\u0000]*$";
/// Shows something: at least one character that is neither white space nor invisible (in
/// any script), and no NUL.
const VISIBLE: &str = concat!(
    "^[^\\u0000]*[^\\u0000",
    ws!(),
    invisible!(),
    "][^\\u0000]*$"
);
/// Not only white space, and no NUL (passwords, logins).
const NOT_BLANK: &str = concat!("^[^\\u0000]*[^\\u0000", ws!(), "][^\\u0000]*$");
/// One line of text that shows something, without control characters (names, titles).
const LINE: &str = concat!(
    "^[^",
    control!(),
    "\\u2028\\u2029]*[^",
    control!(),
    ws!(),
    invisible!(),
    "][^",
    control!(),
    "\\u2028\\u2029]*$"
);
/// One line that shows nothing (spaces and invisible characters, no control character):
/// where a text may be cleared, the server takes it as `null`.
const BLANK: &str = concat!(
    "^[\\u0020\\u00a0\\u1680\\u2000-\\u200a\\u202f\\u205f\\u3000",
    invisible!(),
    "]*$"
);
/// Only white space: where a URL may be cleared, the server takes it as `null`.
const SPACES: &str = concat!("^[", ws!(), "]*$");
/// Free text that may span lines, has no other control character and shows something.
const VISIBLE_PROSE: &str = concat!(
    "^[^",
    control_but_lf!(),
    "]*[^",
    control!(),
    ws!(),
    invisible!(),
    "][^",
    control_but_lf!(),
    "]*$"
);
/// Free text that may span lines but has no other control character.
const PROSE: &str = concat!("^[^", control_but_lf!(), "]*$");
/// An absolute `https` URL (the server also takes `http`).
const HTTPS_URL: &str =
    "^https://[a-z0-9]+(-[a-z0-9]+)*(\\.[a-z0-9]+(-[a-z0-9]+)*)+(/[A-Za-z0-9._~%/-]*)?$";
/// A link in a notification: an API path or an `https` URL.
const LINK: &str = "^(/api/v1(/[A-Za-z0-9._~%-]+)*|https://[a-z0-9]+(-[a-z0-9]+)*(\\.[a-z0-9]+(-[a-z0-9]+)*)+(/[A-Za-z0-9._~%/-]*)?)$";
/// A dot-atom address with a dotted domain (white space around it is trimmed), within RFC 5321's lengths (64 before the `@`,
/// 63 per label): RFC 5322 allows more; this much is certain.
const EMAIL: &str = concat!(
    "^[",
    ws!(),
    "]*[A-Za-z0-9_%+-]{1,20}(\\.[A-Za-z0-9_%+-]{1,20}){0,2}@[A-Za-z0-9]{1,15}(-[A-Za-z0-9]{1,15}){0,2}(\\.[A-Za-z0-9]{1,15}(-[A-Za-z0-9]{1,15}){0,2}){1,3}[",
    ws!(),
    "]*$"
);
/// Three or more of these (`USERNAME_MIN`), with white space around them that the server
/// trims.
const USERNAME: &str = concat!(
    "^[",
    ws!(),
    "]*[A-Za-z0-9][A-Za-z0-9_.-]{2,}[",
    ws!(),
    "]*$"
);
const _: () = assert!(
    USERNAME_MIN == 3,
    "USERNAME's pattern counts three characters"
);
/// A search text: blank (no filter), or at least three characters between its white space
/// (`MIN_QUERY_CHARS`: the server trims before counting).
const SEARCH: &str = concat!(
    "^[",
    ws!(),
    "]*([^\\u0000",
    ws!(),
    "][^\\u0000]+[^\\u0000",
    ws!(),
    "])?[",
    ws!(),
    "]*$"
);

fn text(pattern: &str, min: usize, max: usize) -> Value {
    let mut v = json!({ "pattern": pattern, "maxLength": max });
    if min > 0 {
        v["minLength"] = json!(min);
    }
    v
}

/// A value that may also be `blank`, which clears the field (the server stores `null`).
fn clearable(blank: &str, pattern: &str, max: usize) -> Value {
    text(&format!("{blank}|{pattern}"), 0, max)
}

/// Keywords for a query parameter of an operation.
fn query(operation: &str, name: &str) -> Option<Value> {
    let radius_max = if operation == "musicians_search" {
        musicians::MAX_RADIUS_KM
    } else {
        event_fields::MAX_RADIUS_KM
    };
    Some(match name {
        "limit" => json!({ "minimum": 1, "maximum": crate::api::pagination::MAX_LIMIT }),
        "lat" => json!({ "minimum": -90, "maximum": 90 }),
        "lon" => json!({ "minimum": -180, "maximum": 180 }),
        "radius_km" => json!({ "exclusiveMinimum": true, "minimum": 0, "maximum": radius_max }),
        "q" => text(SEARCH, 0, MAX_QUERY_CHARS),
        "after" | "before" => json!({ "minimum": 0 }),
        "status" if operation == "reports_list" => json!({ "enum": ["open", "resolved", "all"] }),
        "cursor" => text(NO_NUL, 0, 512),
        _ => return None,
    })
}

/// Keywords for a property of a request body's schema.
fn property(schema: &str, name: &str) -> Option<Value> {
    Some(match (schema, name) {
        ("RegisterInput", "username") | ("UpdateProfile", "username") => {
            text(USERNAME, 0, USERNAME_MAX)
        }
        ("RegisterInput", "email") => text(EMAIL, 0, EMAIL_MAX),
        ("RegisterInput", "password")
        | ("ChangePassword", "new_password")
        | ("OAuth2PasswordForm", "password") => text(NOT_BLANK, PASSWORD_MIN, PASSWORD_MAX),
        ("LoginInput", "login") | ("OAuth2PasswordForm", "username") => {
            text(NOT_BLANK, 1, EMAIL_MAX)
        }
        ("LoginInput", "password")
        | ("ChangePassword", "current_password")
        | ("EraseAccount", "password") => json!({ "minLength": 1, "maxLength": PASSWORD_MAX }),
        // Read by OAuth2 tools, not by the server: bounded all the same.
        ("OAuth2PasswordForm", "grant_type") => json!({ "enum": ["password", null] }),
        ("OAuth2PasswordForm", "client_id" | "client_secret" | "scope") => text(NO_NUL, 0, 1024),
        ("RefreshInput", "refresh_token") => text(NO_NUL, 1, 4096),
        ("UpdateProfile", "bio") => text(PROSE, 0, users::BIO_MAX),
        ("UpdateProfile", "city") => clearable(BLANK, LINE, users::CITY_MAX),
        ("UpdateProfile", "latitude") | ("NewEvent" | "EventChange", "latitude") => {
            json!({ "minimum": -90, "maximum": 90 })
        }
        ("UpdateProfile", "longitude") | ("NewEvent" | "EventChange", "longitude") => {
            json!({ "minimum": -180, "maximum": 180 })
        }
        ("UpdateProfile", "photo_url")
        | ("NewEvent" | "EventChange", "image_url")
        | ("NewInstrument" | "InstrumentChange", "icon_url") => {
            clearable(SPACES, HTTPS_URL, Url::MAX)
        }
        ("NewConversation", "participant_ids") => {
            json!({ "minItems": 1, "maxItems": chat::MAX_MEMBERS - 1 })
        }
        ("NewConversation" | "ConversationChanges", "title") => {
            clearable(BLANK, LINE, chat::TITLE_MAX)
        }
        ("NewMessage" | "EditMessage", "body") => text(VISIBLE, 1, chat::BODY_MAX),
        ("NewMessage", "client_msg_id") => text(NO_NUL, 0, chat::CLIENT_MSG_ID_MAX),
        // Members answer for themselves (`accepted`, `declined`); withdrawing is a DELETE.
        ("ParticipationChange", "status") => json!({ "enum": ["accepted", "declined", null] }),
        ("MarkRead", "seq") => json!({ "minimum": 0 }),
        ("NewEvent" | "EventChange", "title") => text(LINE, 1, event_fields::TITLE_MAX),
        ("NewEvent" | "EventChange", "description") => {
            text(PROSE, 0, event_fields::DESCRIPTION_MAX)
        }
        ("NewEvent" | "EventChange", "address") => text(LINE, 1, event_fields::ADDRESS_MAX),
        ("NewEvent" | "EventChange", "capacity") => {
            json!({ "minimum": 1, "maximum": event_fields::MAX_CAPACITY })
        }
        ("NewEvent" | "EventChange", "genre_ids") => {
            json!({ "maxItems": event_fields::MAX_GENRES })
        }
        ("NewEvent", "instruments") => json!({ "maxItems": MAX_INSTRUMENTS }),
        ("NeededInput" | "Quantity", "quantity") => {
            json!({ "minimum": 1, "maximum": event_fields::MAX_QUANTITY })
        }
        ("NewGenre" | "GenreChange" | "NewInstrument" | "InstrumentChange", "name") => {
            text(LINE, 1, catalogue_crud::NAME_MAX)
        }
        ("NewGenre" | "GenreChange", "description") => text(PROSE, 0, genres::DESCRIPTION_MAX),
        ("Announcement", "title") => text(LINE, 1, notifications::TITLE_MAX),
        ("Announcement", "body") => text(VISIBLE_PROSE, 1, notifications::BODY_MAX),
        ("Announcement", "link") => clearable(SPACES, LINK, Url::MAX),
        ("NewReport", "reason") => text(VISIBLE, 1, crate::moderation::REASON_MAX),
        ("Resolution", "note") => text(VISIBLE, 1, crate::moderation::NOTE_MAX),
        _ => return None,
    })
}

/// Rules between the fields of one body that OAS 3.0 can write.
fn between(schema: &str) -> Option<Value> {
    match schema {
        // Exactly one of the two; `null` counts as absent.
        "ParticipationChange" => Some(json!({ "oneOf": [
            {
                "required": ["instrument_id"],
                "properties": { "instrument_id": { "type": "string", "format": "uuid" } },
            },
            {
                "required": ["status"],
                "properties": { "status": { "type": "string", "enum": ["accepted", "declined"] } },
            },
        ] })),
        _ => None,
    }
}

fn merge(target: &mut Value, keywords: Value) {
    if let (Some(target), Value::Object(keywords)) = (target.as_object_mut(), keywords) {
        // `allOf` wrappers (nullable references) carry no keyword of their own to merge into.
        if target.contains_key("allOf") {
            return;
        }
        target.extend(keywords);
    }
}

/// Writes every limit into `doc` (the document `api::spec_json` produces).
pub fn annotate(doc: &mut Value) {
    if let Some(paths) = doc["paths"].as_object_mut() {
        for op in paths
            .values_mut()
            .filter_map(Value::as_object_mut)
            .flat_map(|item| item.values_mut())
        {
            let id = op["operationId"].as_str().unwrap_or_default().to_owned();
            for param in op
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
            {
                let name = param["name"].as_str().unwrap_or_default().to_owned();
                if let Some(k) = query(&id, &name) {
                    merge(&mut param["schema"], k);
                }
            }
            // The registration's form bodies are written inline, not as `RegisterInput`;
            // a multipart form has these three parts and no other.
            if id.ends_with("register") {
                for body in op["requestBody"]["content"]
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|c| c.values_mut())
                {
                    if body["schema"]["properties"].is_object() {
                        body["schema"]["additionalProperties"] = Value::Bool(false);
                    }
                    for (name, prop) in body["schema"]
                        .get_mut("properties")
                        .and_then(Value::as_object_mut)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(k) = property("RegisterInput", name) {
                            merge(prop, k);
                        }
                    }
                }
            }
        }
    }
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for (schema, body) in schemas.iter_mut() {
            if let Some(k) = between(schema) {
                merge(body, k);
            }
            for (name, prop) in body
                .get_mut("properties")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flatten()
            {
                if let Some(k) = property(schema, name) {
                    merge(prop, k);
                }
            }
        }
    }
}
