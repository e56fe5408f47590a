//! The REST surface: one module per resource, combined into one OpenAPI service.

pub mod accounts_models;
pub mod answers;
pub mod auth;
pub mod caching;
pub mod catalogue_crud;
pub mod choice;
pub mod constraints;
pub mod conversations;
pub mod costs;
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
pub mod reports;
pub mod responses;
pub mod safety;
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
    /// Blocks, reports and privacy.
    Safety,
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
    safety::SafetyApi,
    reports::ReportsApi,
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
            safety::SafetyApi,
            reports::ReportsApi,
            health::HealthApi,
        ),
        "TuneLink API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(include_str!("openapi_intro.md"))
}

/// The OpenAPI document as pretty JSON (`tunelink openapi`, `/openapi.json`).
pub fn spec_json() -> String {
    let raw = service().spec();
    let Ok(mut doc) = serde_json::from_str::<serde_json::Value>(&raw) else {
        return raw;
    };
    nullable_optionals(&mut doc);
    typed_nullable_refs(&mut doc);
    lint_clean(&mut doc);
    constraints::annotate(&mut doc);
    answers::add(&mut doc);
    serde_json::to_string_pretty(&doc).unwrap_or(raw)
}

/// What OpenAPI 3.0 and its linters (Redocly `recommended`, Spectral `oas`; `.ci/run` runs
/// both) want that poem-openapi does not write: a server (relative: the one serving the
/// document), a license and a contact, the password flow's (empty) scopes, and
/// `security: []` on the operations anyone may call, so that "public" is said rather than
/// forgotten.
fn lint_clean(doc: &mut serde_json::Value) {
    use serde_json::{Value, json};
    doc["servers"] = json!([{"url": "/", "description": "The server that serves this document."}]);
    // The crate's license (Cargo.toml).
    doc["info"]["license"] = json!({
        "name": env!("CARGO_PKG_LICENSE"),
        "url": "https://opensource.org/license/mit",
    });
    doc["info"]["contact"] = json!({"name": "TuneLink", "url": "https://github.com/tunelink"});
    if let Some(flows) = doc["components"]["securitySchemes"]["OAuth2"]["flows"].as_object_mut() {
        for flow in flows.values_mut() {
            if flow.get("scopes").is_none() {
                flow["scopes"] = json!({});
            }
        }
    }
    // The examples of whole answers (`Envelope_…`, `Page_…`) move from the schemas to the
    // answers that use them: JSON Schema readers (Spectral's) take an `id` met twice in the
    // schemas' examples — a page's item and the item's own example — for two schemas with
    // the same identifier. Swagger UI shows the answer's example all the same.
    let mut answers: HashMap<String, Value> = HashMap::new();
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for (name, schema) in schemas.iter_mut() {
            if (name.starts_with("Envelope_") || name.starts_with("Page_"))
                && let Some(example) = schema.as_object_mut().and_then(|s| s.remove("example"))
            {
                answers.insert(format!("#/components/schemas/{name}"), example);
            }
        }
    }
    if let Some(paths) = doc["paths"].as_object_mut() {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                op.entry("security").or_insert_with(|| json!([]));
                for media in op
                    .get_mut("responses")
                    .and_then(Value::as_object_mut)
                    .into_iter()
                    .flat_map(|r| r.values_mut())
                    .filter_map(|r| r.get_mut("content").and_then(Value::as_object_mut))
                    .flat_map(|c| c.values_mut())
                    .filter_map(Value::as_object_mut)
                {
                    let example = media
                        .get("schema")
                        .and_then(|s| s["$ref"].as_str())
                        .and_then(|r| answers.get(r));
                    if let Some(example) = example
                        && !media.contains_key("example")
                        && !media.contains_key("examples")
                    {
                        media.insert("example".into(), example.clone());
                    }
                }
            }
        }
    }
}

/// OpenAPI 3.0 allows `nullable` only beside `type`, and a `null` must still satisfy every
/// `allOf` member: the `{allOf: [$ref], nullable: true}` wrappers of [`nullable_optionals`]
/// get the type of the schema they point to, and a nullable enum is written out with `null`
/// among its values (a `$ref` to the enum would refuse `null`).
fn typed_nullable_refs(doc: &mut serde_json::Value) {
    use serde_json::Value;
    let schemas: HashMap<String, Value> = doc["components"]["schemas"]
        .as_object()
        .map(|schemas| {
            schemas
                .iter()
                .map(|(name, s)| (format!("#/components/schemas/{name}"), s.clone()))
                .collect()
        })
        .unwrap_or_default();
    fn walk(node: &mut Value, schemas: &HashMap<String, Value>) {
        match node {
            Value::Object(map) => {
                let target = match map.get("allOf") {
                    Some(Value::Array(all)) if map.get("nullable") == Some(&Value::Bool(true)) => {
                        let refs: Vec<&str> =
                            all.iter().filter_map(|m| m["$ref"].as_str()).collect();
                        match refs.as_slice() {
                            [only] => schemas.get(*only).cloned(),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if let Some(target) = target {
                    if let Some(Value::Array(values)) = target.get("enum") {
                        let mut values = values.clone();
                        values.push(Value::Null);
                        map.remove("allOf");
                        map.insert("enum".into(), Value::Array(values));
                        if let Some(ty) = target.get("type") {
                            map.insert("type".into(), ty.clone());
                        }
                    } else if let Some(ty) = target.get("type")
                        && !map.contains_key("type")
                    {
                        map.insert("type".into(), ty.clone());
                    }
                }
                map.values_mut().for_each(|v| walk(v, schemas));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, schemas)),
            _ => {}
        }
    }
    walk(doc, &schemas);
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
