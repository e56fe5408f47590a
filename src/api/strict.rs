//! Requests checked against the OpenAPI document before any handler parses them.
//!
//! poem-openapi reads a number or a boolean where a string is expected as that string
//! (`{"bio": true}` stored `"true"`), and reports a missing field, a `null` or a bad UUID as
//! a `400` naming a Rust type or `param0`. This middleware walks the document the service
//! publishes — the same one clients generate code from — and checks every path parameter,
//! query parameter and JSON body against it: a value of the wrong type, a missing or `null`
//! required field, a malformed UUID or date-time, each becomes one
//! entry of a `422 validation_failed` naming the field as documented (`instruments[0].quantity`,
//! `id`, `limit`). Nothing reaches a handler, so nothing is written. A method a documented
//! path does not have is a `405` with `Allow`. What the document cannot say (lengths,
//! ranges, cross-field rules) is still checked by the handlers, in the same envelope.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    http::{HeaderValue, Method, StatusCode, header},
};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    envelope::{ErrorCode, FieldError},
    error::ApiError,
};

/// One documented operation.
struct Operation {
    method: Method,
    /// Path segments: `Some(literal)` or `None` for a parameter (named in `path_params`).
    segments: Vec<Option<String>>,
    path_params: Vec<(String, Value)>,
    query_params: Vec<(String, Value)>,
    /// The JSON body's schema, if the operation takes one.
    body: Option<Value>,
    /// Whether the body may be left out (`DELETE /users/me` takes one only to erase).
    body_optional: bool,
}

/// The operations and schemas of the OpenAPI document.
pub struct Contract {
    operations: Vec<Operation>,
    schemas: serde_json::Map<String, Value>,
}

enum Found<'a> {
    Operation(&'a Operation, Vec<&'a str>),
    /// The path is documented, not with this method: the ones it has.
    OtherMethods(Vec<&'a Method>),
    Unknown,
}

impl Contract {
    /// Reads the document `api::spec_json` produces.
    pub fn from_spec(spec: &str) -> Self {
        let doc: Value = serde_json::from_str(spec).unwrap_or_default();
        let mut operations = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                    continue;
                };
                let mut path_params = Vec::new();
                let mut query_params = Vec::new();
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let entry = (
                        p["name"].as_str().unwrap_or_default().to_owned(),
                        p["schema"].clone(),
                    );
                    match p["in"].as_str() {
                        Some("path") => path_params.push(entry),
                        Some("query") => query_params.push(entry),
                        _ => {}
                    }
                }
                let segments = path
                    .split('/')
                    .skip(1)
                    .map(|s| (!s.starts_with('{')).then(|| s.to_owned()))
                    .collect();
                // Path parameters in the order they appear in the path.
                let order: Vec<&str> = path
                    .split('/')
                    .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                    .collect();
                path_params.sort_by_key(|(name, _)| order.iter().position(|o| o == name));
                let body = op["requestBody"]["content"]
                    .as_object()
                    .and_then(|c| c.iter().find(|(t, _)| t.starts_with("application/json")))
                    .map(|(_, media)| media["schema"].clone());
                let body_optional = op["requestBody"]["required"] != Value::Bool(true);
                operations.push(Operation {
                    method,
                    segments,
                    path_params,
                    query_params,
                    body_optional,
                    body,
                });
            }
        }
        let schemas = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        Self {
            operations,
            schemas,
        }
    }

    /// The operation for a method and path: of those whose path matches, the one with the
    /// most literal segments (`/users/me` before `/users/{id}`), as the router does.
    fn find<'a>(&'a self, method: &Method, path: &'a str) -> Found<'a> {
        let parts: Vec<&str> = path.split('/').skip(1).collect();
        let mut others = Vec::new();
        let mut best: Option<&Operation> = None;
        let literals = |op: &Operation| op.segments.iter().filter(|s| s.is_some()).count();
        for op in &self.operations {
            if op.segments.len() != parts.len()
                || !op
                    .segments
                    .iter()
                    .zip(&parts)
                    .all(|(s, p)| s.as_deref().is_none_or(|lit| lit == *p))
            {
                continue;
            }
            if op.method == method {
                if best.is_none_or(|b| literals(op) > literals(b)) {
                    best = Some(op);
                }
            } else {
                others.push(&op.method);
            }
        }
        match best {
            Some(op) => {
                let values = op
                    .segments
                    .iter()
                    .zip(&parts)
                    .filter(|(s, _)| s.is_none())
                    .map(|(_, p)| *p)
                    .collect();
                Found::Operation(op, values)
            }
            None if others.is_empty() => Found::Unknown,
            None => Found::OtherMethods(others),
        }
    }

    /// Follows `$ref` and a lone `allOf` to the schema itself; `nullable` from the wrapper.
    fn resolve<'a>(&'a self, mut schema: &'a Value) -> (&'a Value, bool) {
        let mut nullable = schema["nullable"].as_bool().unwrap_or(false);
        for _ in 0..8 {
            if let Some(name) = schema["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
            {
                match self.schemas.get(name) {
                    Some(s) => schema = s,
                    None => break,
                }
            } else if let Some([inner]) = schema["allOf"].as_array().map(Vec::as_slice) {
                schema = inner;
            } else {
                break;
            }
            nullable |= schema["nullable"].as_bool().unwrap_or(false);
        }
        (schema, nullable)
    }

    /// Checks a JSON value against a schema, adding one error per bad field.
    fn check_json(&self, schema: &Value, value: &Value, field: &str, errors: &mut Vec<FieldError>) {
        let (schema, nullable) = self.resolve(schema);
        let name = if field.is_empty() { "body" } else { field };
        if value.is_null() {
            if !nullable {
                errors.push(FieldError::new(
                    name,
                    "missing",
                    format!("{name} must not be null"),
                ));
            }
            return;
        }
        let mismatch =
            |what: &str| FieldError::new(name, "invalid_type", format!("{name} must be {what}"));
        match schema["type"].as_str() {
            Some("string") => match value.as_str() {
                Some(text) => {
                    if let Some(e) = self.check_text(schema, text, name) {
                        errors.push(e);
                    }
                }
                None => errors.push(mismatch("a string")),
            },
            Some("integer") => {
                if value.as_i64().is_none() && value.as_u64().is_none() {
                    errors.push(mismatch("a whole number"));
                } else if let Some(e) = integer_range(schema, value.as_i64(), name) {
                    errors.push(e);
                }
            }
            Some("number") if !value.is_number() => errors.push(mismatch("a number")),
            Some("boolean") if !value.is_boolean() => errors.push(mismatch("true or false")),
            Some("array") => match value.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        self.check_json(&schema["items"], item, &format!("{name}[{i}]"), errors);
                    }
                }
                None => errors.push(mismatch("an array")),
            },
            Some("object") => match value.as_object() {
                Some(object) => {
                    let prefix = if field.is_empty() {
                        String::new()
                    } else {
                        format!("{field}.")
                    };
                    for required in schema["required"].as_array().into_iter().flatten() {
                        let Some(key) = required.as_str() else {
                            continue;
                        };
                        if object.get(key).is_none_or(Value::is_null) {
                            let key = format!("{prefix}{key}");
                            errors.push(FieldError::new(
                                &key,
                                "missing",
                                format!("{key} is required"),
                            ));
                        }
                    }
                    for (key, prop) in schema["properties"].as_object().into_iter().flatten() {
                        match object.get(key) {
                            Some(v) if !v.is_null() || !schema_requires(schema, key) => {
                                self.check_json(prop, v, &format!("{prefix}{key}"), errors);
                            }
                            _ => {}
                        }
                    }
                }
                None => errors.push(mismatch("a JSON object")),
            },
            _ => {}
        }
    }

    /// A string's format.
    fn check_text(&self, schema: &Value, text: &str, name: &str) -> Option<FieldError> {
        // PostgreSQL stores no NUL in text: refused here, named, before any handler runs.
        // Credentials excepted: a login or password that cannot match answers 401 like any
        // other wrong one, telling nothing about its form.
        let credential = name == "login" || name.ends_with("password");
        if text.contains('\0') && !credential {
            return Some(FieldError::new(
                name,
                "invalid_characters",
                format!("{name} must not contain NUL (\\u0000) characters"),
            ));
        }
        // Enums are left to the handlers (`api::choice::Choice`), which report a value
        // outside one together with every other bad field of the request.
        if schema.get("enum").is_some() {
            return None;
        }
        match schema["format"].as_str() {
            Some("uuid") if Uuid::parse_str(text).is_err() => Some(FieldError::new(
                name,
                "invalid_format",
                format!("{name} must be a UUID, like 6f1c8f8e-3f0a-4d1e-9c55-3d6b2f1e8a11"),
            )),
            Some("date-time") if text.parse::<DateTime<Utc>>().is_err() => Some(FieldError::new(
                name,
                "invalid_format",
                format!("{name} must be an RFC 3339 date-time, like 2026-12-24T20:00:00Z"),
            )),
            _ => None,
        }
    }

    /// A path or query value, as text, against its schema.
    fn check_param(&self, schema: &Value, raw: &str, name: &str) -> Option<FieldError> {
        let (schema, _) = self.resolve(schema);
        let mismatch = |what: &str| {
            Some(FieldError::new(
                name,
                "invalid_type",
                format!("{name} must be {what}"),
            ))
        };
        match schema["type"].as_str() {
            Some("string") => self.check_text(schema, raw, name),
            Some("integer") => match raw.parse::<i64>() {
                Ok(n) => integer_range(schema, Some(n), name),
                Err(_) if raw.parse::<u64>().is_ok() => integer_range(schema, None, name),
                Err(_) => mismatch("a whole number"),
            },
            Some("number") => match raw.parse::<f64>() {
                Ok(n) if n.is_finite() => None,
                _ => mismatch("a number"),
            },
            Some("boolean") if raw != "true" && raw != "false" => mismatch("true or false"),
            _ => None,
        }
    }

    /// Everything wrong with a request's path, query and JSON body.
    async fn check(
        &self,
        op: &Operation,
        values: &[&str],
        req: &mut Request,
    ) -> Result<Vec<FieldError>, ApiError> {
        let mut errors = Vec::new();
        for ((name, schema), raw) in op.path_params.iter().zip(values) {
            let raw = percent_decode(raw);
            errors.extend(self.check_param(schema, &raw, name));
        }
        if !op.query_params.is_empty() {
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_str(req.uri().query().unwrap_or_default())
                    .unwrap_or_default();
            for (name, schema) in &op.query_params {
                if let Some((_, raw)) = pairs.iter().find(|(k, _)| k == name) {
                    errors.extend(self.check_param(schema, raw, name));
                }
            }
        }
        // A request that leaves an optional body out sends no `Content-Type` either: read
        // it as an empty JSON body (none), not as an unsupported media type.
        let empty = req
            .header(header::CONTENT_LENGTH)
            .is_none_or(|l| l.trim() == "0")
            && req.header(header::TRANSFER_ENCODING).is_none();
        if op.body.is_some()
            && op.body_optional
            && empty
            && req.header(header::CONTENT_TYPE).is_none()
        {
            req.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            return Ok(errors);
        }
        let json = req
            .header(header::CONTENT_TYPE)
            .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/json"));
        if let (Some(schema), true) = (&op.body, json) {
            let bytes = req.take_body().into_bytes().await.map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::MalformedRequest,
                    "The body could not be read.",
                )
            })?;
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(value) => self.check_json(schema, &value, "", &mut errors),
                Err(e) => {
                    let mut err = ApiError::new(
                        StatusCode::BAD_REQUEST,
                        ErrorCode::MalformedRequest,
                        "The body is not valid JSON.",
                    );
                    err.fields = vec![FieldError::new(
                        "body",
                        "invalid_json",
                        format!("the body is not valid JSON: {e}"),
                    )];
                    return Err(err);
                }
            }
            req.set_body(bytes);
        }
        Ok(errors)
    }
}

fn schema_requires(schema: &Value, key: &str) -> bool {
    schema["required"]
        .as_array()
        .is_some_and(|r| r.iter().any(|k| k.as_str() == Some(key)))
}

/// The range an integer's `format` allows (and `minimum`/`maximum` when documented).
fn integer_range(schema: &Value, value: Option<i64>, name: &str) -> Option<FieldError> {
    let (low, high) = match schema["format"].as_str() {
        Some("int32") => (i64::from(i32::MIN), i64::from(i32::MAX)),
        Some("uint32") => (0, i64::from(u32::MAX)),
        Some("uint64") => (0, i64::MAX),
        _ => (i64::MIN, i64::MAX),
    };
    let low = schema["minimum"].as_i64().unwrap_or(low).max(low);
    let high = schema["maximum"].as_i64().unwrap_or(high).min(high);
    match value {
        Some(v) if (low..=high).contains(&v) => None,
        _ => Some(FieldError::new(
            name,
            "out_of_range",
            format!("{name} must be a whole number from {low} to {high}"),
        )),
    }
}

fn percent_decode(raw: &str) -> String {
    serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={}", raw.replace('+', "%2B")))
        .ok()
        .and_then(|mut v| v.pop())
        .map_or_else(|| raw.to_owned(), |(_, v)| v)
}

/// The middleware (see the module's documentation).
pub struct Strict(pub Arc<Contract>);

impl<E: Endpoint> Middleware<E> for Strict {
    type Output = StrictEndpoint<E>;

    fn transform(&self, inner: E) -> StrictEndpoint<E> {
        StrictEndpoint {
            inner,
            contract: self.0.clone(),
        }
    }
}

pub struct StrictEndpoint<E> {
    inner: E,
    contract: Arc<Contract>,
}

impl<E: Endpoint> Endpoint for StrictEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Response> {
        let method = if req.method() == Method::HEAD {
            Method::GET
        } else {
            req.method().clone()
        };
        if method == Method::OPTIONS {
            return self.inner.call(req).await.map(IntoResponse::into_response);
        }
        let path = req.original_uri().path().to_owned();
        match self.contract.find(&method, &path) {
            Found::Operation(op, values) => {
                match self.contract.check(op, &values, &mut req).await {
                    Ok(errors) if errors.is_empty() => {}
                    Ok(errors) => return Ok(ApiError::validation(errors).to_response()),
                    Err(err) => return Ok(err.to_response()),
                }
            }
            Found::OtherMethods(methods) => {
                let mut allowed: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
                allowed.sort_unstable();
                allowed.dedup();
                let mut resp = ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorCode::MethodNotAllowed,
                    format!("This route allows {}.", allowed.join(", ")),
                )
                .to_response();
                if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                    resp.headers_mut().insert(header::ALLOW, value);
                }
                return Ok(resp);
            }
            Found::Unknown => {}
        }
        self.inner.call(req).await.map(IntoResponse::into_response)
    }
}

/// The contract of this build's document, for `startup::routes`.
pub fn contract(spec: &str) -> Arc<Contract> {
    Arc::new(Contract::from_spec(spec))
}
