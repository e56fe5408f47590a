//! The protocol documents in `protocol/` match the code: every example validates against
//! the JSON Schema and round-trips through the Rust frame types, every frame type has an
//! example, and (in `ws.rs`) every frame a test client receives validates too.

use std::{path::Path, sync::OnceLock};

use serde_json::Value;
use tunelink::frames::{ClientFrame, ServerFrame};

fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/schema.json");
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    })
}

fn validator(def: &str) -> jsonschema::Validator {
    let mut root = schema().clone();
    root["$ref"] = Value::String(format!("#/definitions/{def}"));
    jsonschema::validator_for(&root).unwrap()
}

pub fn server_validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| validator("ServerFrame"))
}

/// Panics with the schema's complaint when `frame` is not a valid server frame.
pub fn assert_server_frame(frame: &Value) {
    let errors: Vec<String> = server_validator()
        .iter_errors(frame)
        .map(|e| e.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "frame breaks protocol/schema.json: {frame}\n{errors:?}"
    );
}

fn examples(side: &str) -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("protocol/examples")
        .join(side);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Frame types the schema lists for one side (`client.` or `server.`).
fn schema_types(prefix: &str) -> Vec<String> {
    let mut types: Vec<String> = schema()["definitions"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|k| k.strip_prefix(prefix).map(str::to_owned))
        .collect();
    types.sort();
    types
}

#[test]
fn every_client_example_is_valid_and_parses() {
    let v = validator("ClientFrame");
    let examples = examples("client");
    for (name, frame) in &examples {
        assert!(
            v.is_valid(frame),
            "{name}: {:?}",
            v.iter_errors(frame)
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        );
        assert_eq!(frame["type"], name.as_str());
        let parsed: ClientFrame =
            serde_json::from_value(frame.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let _ = parsed;
    }
    let names: Vec<String> = examples.into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        schema_types("client."),
        "one example per client frame type"
    );
}

#[test]
fn every_server_example_is_valid_and_round_trips() {
    let examples = examples("server");
    for (name, frame) in &examples {
        assert_server_frame(frame);
        assert_eq!(frame["type"], name.as_str());
        let parsed: ServerFrame =
            serde_json::from_value(frame.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(&back, frame, "{name}: the server would write it exactly so");
    }
    let names: Vec<String> = examples.into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        schema_types("server."),
        "one example per server frame type"
    );
}

/// Each example passes its own frame's definition and no other one (every frame a distinct
/// payload: draft-07 readers ignored the siblings of a `$ref`, which made the three message
/// frames one), and a copy with an unknown field or without its `type` is refused
/// (`scripts/protocol-check.sh` also drops each required field, with ajv in strict mode).
#[test]
fn every_example_is_its_own_frame_and_broken_copies_are_refused() {
    for side in ["client", "server"] {
        let types = schema_types(&format!("{side}."));
        let validators: Vec<(String, jsonschema::Validator)> = types
            .iter()
            .map(|t| (t.clone(), validator(&format!("{side}.{t}"))))
            .collect();
        for (name, example) in examples(side) {
            for (t, v) in &validators {
                assert_eq!(
                    v.is_valid(&example),
                    *t == name,
                    "{side}/{name}.json against {side}.{t}"
                );
            }
            let own = &validators.iter().find(|(t, _)| *t == name).unwrap().1;
            let mut extra = example.clone();
            extra["not_in_the_protocol"] = Value::Bool(true);
            assert!(
                !own.is_valid(&extra),
                "{side}/{name}.json with an unknown field"
            );
            let mut untyped = example.clone();
            untyped.as_object_mut().unwrap().remove("type");
            assert!(!own.is_valid(&untyped), "{side}/{name}.json without `type`");
        }
    }
}

#[test]
fn the_schema_refuses_what_the_server_never_sends() {
    for bad in [
        serde_json::json!({"type": "ready", "protocol": 2}),
        serde_json::json!({"type": "message.created", "conversation_id": "x"}),
        serde_json::json!({"type": "pong", "extra": true}),
        serde_json::json!({"type": "unknown"}),
    ] {
        assert!(!server_validator().is_valid(&bad), "{bad}");
    }
}

#[test]
fn the_asyncapi_document_lists_every_frame() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("protocol/asyncapi.yaml");
    let doc = std::fs::read_to_string(path).unwrap();
    assert!(doc.contains("asyncapi: 3.0.0"));
    // The socket's security is declared (a bearer token on the upgrade), on its server.
    assert!(doc.contains("securitySchemes:") && doc.contains("scheme: bearer"));
    assert!(doc.contains("    security:\n      - $ref: '#/components/securitySchemes/bearer'"));
    for side in ["client", "server"] {
        for t in schema_types(&format!("{side}.")) {
            let payload = format!("$ref: 'schema.json#/definitions/{side}.{t}'");
            assert!(
                doc.contains(&payload),
                "asyncapi.yaml lacks {side}.{t}: run protocol/generate_asyncapi.py"
            );
        }
    }
}

/// The parser the fuzz target exercises (`fuzz/`, run by hand): the protocol's examples and
/// the fuzz seeds (valid, malformed, hostile) are answered without a panic; what parses
/// survives a round trip; exactly the valid inputs parse.
#[test]
fn the_fuzz_seeds_and_examples_go_through_the_frame_parser() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let documented: Vec<String> = examples("client").into_iter().map(|(n, _)| n).collect();
    let mut seen = 0;
    for dir in ["protocol/examples/client", "fuzz/seeds/client_frame"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let valid = documented.contains(&stem) || stem == "resume_max";
            seen += 1;
            match ClientFrame::parse(&text) {
                Ok(frame) => {
                    assert!(valid, "{} parsed: {frame:?}", path.display());
                    let again = serde_json::to_string(&frame).unwrap();
                    assert_eq!(ClientFrame::parse(&again).unwrap(), frame, "{stem}");
                }
                Err(err) => assert!(!valid, "{}: {err}", path.display()),
            }
        }
    }
    assert!(seen > 2 * documented.len(), "{seen} inputs");
}
