//! The REST surface: one module per resource, combined into one OpenAPI service.

pub mod accounts_models;
pub mod auth;
pub mod caching;
pub mod catalogue_crud;
pub mod choice;
pub mod conversations;
pub mod events;
pub mod genres;
pub mod guard;
pub mod health;
pub mod instruments;
pub mod metrics;
pub mod musicians;
pub mod notifications;
pub mod pagination;
pub mod participations;
pub mod registration;
pub mod responses;
pub mod strict;
pub mod timestamp;
pub mod users;

use std::{collections::HashMap, fmt::Write, sync::Arc};

use poem_openapi::{OpenApiService, Tags};

#[derive(Tags)]
pub enum ApiTags {
    /// Accounts: register, log in, refresh, log out.
    Auth,
    /// Profiles and account settings.
    Users,
    /// Instruments and genres.
    Catalogue,
    /// What musicians play and like, and finding them.
    Musicians,
    /// Events and participations.
    Events,
    /// Notifications.
    Notifications,
    /// Conversations and messages.
    Chat,
    /// Liveness and readiness.
    Operations,
}

pub type Apis = (
    auth::AuthApi,
    users::UsersApi,
    musicians::MusiciansApi,
    instruments::InstrumentsApi,
    genres::GenresApi,
    events::EventsApi,
    participations::ParticipationsApi,
    notifications::NotificationsApi,
    conversations::ConversationsApi,
    health::HealthApi,
);

/// The OpenAPI service; building it touches no database.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(
        (
            auth::AuthApi,
            users::UsersApi,
            musicians::MusiciansApi,
            instruments::InstrumentsApi,
            genres::GenresApi,
            events::EventsApi,
            participations::ParticipationsApi,
            notifications::NotificationsApi,
            conversations::ConversationsApi,
            health::HealthApi,
        ),
        "TuneLink API",
        env!("CARGO_PKG_VERSION"),
    )
    .summary("Find musicians, organise jams, talk in real time.")
    .description(include_str!("openapi_intro.md"))
}

/// The OpenAPI document as pretty JSON (`tunelink openapi`, `/openapi.json`).
pub fn spec_json() -> String {
    let raw = service().spec();
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&raw) else {
        return raw;
    };
    nullable_optionals(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or(raw)
}

/// poem-openapi documents an `Option` field as a property that may be absent, but writes
/// `None` as `null` (the envelope's `errors: null`, a profile's `bio: null`) and reads
/// `null` as `None`. OpenAPI 3.0 says so with `nullable`: every optional property of every
/// object schema gets it, so that the document describes what is really sent.
fn nullable_optionals(node: &mut serde_json::Value) {
    use serde_json::{Value, json};
    match node {
        Value::Object(map) => {
            let required: Vec<String> = map
                .get("required")
                .and_then(Value::as_array)
                .map(|r| {
                    r.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if let Some(Value::Object(props)) = map.get_mut("properties") {
                for (name, prop) in props.iter_mut() {
                    if required.contains(name) {
                        continue;
                    }
                    if let Some(reference) = prop.get("$ref").cloned() {
                        // Siblings of `$ref` are ignored in OpenAPI 3.0: wrap it.
                        *prop = json!({"allOf": [{"$ref": reference}], "nullable": true});
                    } else if let Value::Object(p) = prop {
                        p.insert("nullable".into(), Value::Bool(true));
                    }
                }
            }
            map.values_mut().for_each(nullable_optionals);
        }
        Value::Array(items) => items.iter_mut().for_each(nullable_optionals),
        _ => {}
    }
}

/// The OpenAPI document's paths, keyed by the pattern poem-openapi routes them with (its
/// parameters become `:param0`, `:param1`… in order).
pub fn route_names() -> HashMap<String, Arc<str>> {
    let spec: serde_json::Value = serde_json::from_str(&spec_json()).unwrap_or_default();
    let Some(paths) = spec["paths"].as_object() else {
        return HashMap::new();
    };
    paths
        .keys()
        .map(|documented| {
            let mut pattern = String::with_capacity(documented.len());
            let mut index = 0;
            for segment in documented.split('/').skip(1) {
                pattern.push('/');
                if segment.starts_with('{') && segment.ends_with('}') {
                    let _ = write!(pattern, ":param{index}");
                    index += 1;
                } else {
                    pattern.push_str(segment);
                }
            }
            (pattern, Arc::from(documented.as_str()))
        })
        .collect()
}
