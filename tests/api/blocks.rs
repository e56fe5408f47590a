//! A block in a group (issue 15, "their messages to you are not delivered"): what the
//! blocked person writes, edits or deletes while the block stands never reaches the one who
//! blocked them — live, on `resume` or over REST — while the others see everything, what was
//! said before stays, and the event numbers stay whole for everyone.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::{post_message as send, spawn_app, start_conversation},
    ws::Ws,
};

const CONVERSATION: &[&str] = &[
    "message.created",
    "message.edited",
    "message.deleted",
    "message.withheld",
];

fn summary(frames: &[Value]) -> Vec<(String, i64, Option<String>)> {
    frames
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_owned(),
                f["seq"].as_i64().unwrap(),
                f["message"]["body"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_blocked_members_messages_are_withheld_from_the_blocker_only() {
    let app = spawn_app().await;
    let (nina, miles, zoe) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("zoe").await,
    );
    let group = start_conversation(&app, &nina, &[&miles, &zoe], Some("Band")).await;
    send(&app, &miles, &group, "before the block").await;
    app.put(
        &format!("/api/v1/users/me/blocks/{}", miles.id),
        nina.token(),
        json!({}),
    )
    .await
    .ok(201);

    let mut nina_ws = Ws::connect(&app, &nina.access).await;
    let mut zoe_ws = Ws::connect(&app, &zoe.access).await;
    let mut miles_ws = Ws::connect(&app, &miles.access).await;
    for ws in [&mut nina_ws, &mut zoe_ws, &mut miles_ws] {
        ws.next_of(&["pong"]).await.expect("live");
    }
    // A message over REST, one over the socket, an edit, nina's own message, a deletion.
    let rest = send(&app, &miles, &group, "hello band").await;
    miles_ws
        .send_message("m1", &group, "socket hello", None)
        .await;
    miles_ws.next_of(&["ack"]).await.expect("ack");
    let id = rest["id"].as_str().unwrap();
    app.patch(
        &format!("/api/v1/messages/{id}"),
        miles.token(),
        json!({"body": "hello band (edited)"}),
    )
    .await
    .ok(200);
    send(&app, &nina, &group, "nina here").await;
    app.delete(&format!("/api/v1/messages/{id}"), miles.token())
        .await
        .ok(200);

    let wait = Duration::from_millis(500);
    let seen_by_zoe = summary(&zoe_ws.drain(CONVERSATION, wait).await);
    let seen_by_nina = summary(&nina_ws.drain(CONVERSATION, wait).await);
    assert_eq!(seen_by_zoe.len(), 5, "{seen_by_zoe:?}");
    let numbers = |s: &[(String, i64, Option<String>)]| s.iter().map(|f| f.1).collect::<Vec<_>>();
    assert_eq!(
        numbers(&seen_by_nina),
        numbers(&seen_by_zoe),
        "the same numbers, no hole"
    );
    let kinds: Vec<&str> = seen_by_nina.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message.withheld",
            "message.withheld",
            "message.withheld",
            "message.created",
            "message.withheld"
        ],
        "{seen_by_nina:?}"
    );
    assert_eq!(seen_by_nina[3].2.as_deref(), Some("nina here"));
    assert_eq!(
        seen_by_zoe[0].2.as_deref(),
        Some("hello band"),
        "others see everything"
    );

    // On resume, from the start: what miles said before the block stays, nothing after.
    let mut phone = Ws::connect_quiet(&app, &nina.access).await;
    phone
        .send(json!({"type": "resume", "conversations": {group.clone(): 0}}))
        .await;
    let mut replayed = Vec::new();
    while let Some(f) = phone.next().await {
        if f["type"] == "resumed" {
            break;
        }
        replayed.push(f);
    }
    let text = serde_json::to_string(&replayed).unwrap();
    assert!(!text.contains("hello"), "replayed: {text}");
    assert!(text.contains("before the block"), "{text}");
    assert!(text.contains("nina here"), "{text}");
    let numbers: Vec<i64> = replayed.iter().filter_map(|f| f["seq"].as_i64()).collect();
    assert_eq!(
        numbers,
        (1..=numbers.len() as i64).collect::<Vec<_>>(),
        "no hole"
    );

    // REST: left out of the history, the last message and the unread count; not readable.
    let history = app
        .get(
            &format!("/api/v1/conversations/{group}/messages"),
            nina.token(),
        )
        .await;
    let bodies: Vec<Value> = history.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(bodies, [json!("nina here"), json!("before the block")]);
    let socket_id = send(&app, &miles, &group, "one more").await["id"].clone();
    let listed = app.get("/api/v1/conversations", nina.token()).await;
    let mine = &listed.ok(200)["items"][0];
    assert_eq!(mine["unread_count"], 0, "{mine}");
    assert_eq!(mine["last_message"]["body"], "nina here", "{mine}");
    app.get(
        &format!("/api/v1/messages/{}", socket_id.as_str().unwrap()),
        nina.token(),
    )
    .await
    .err(404, "not_found");
    let zoe_list = app.get("/api/v1/conversations", zoe.token()).await;
    assert_eq!(
        zoe_list.ok(200)["items"][0]["last_message"]["body"],
        "one more"
    );

    // Lifting the block shows them again.
    app.delete(
        &format!("/api/v1/users/me/blocks/{}", miles.id),
        nina.token(),
    )
    .await
    .ok(200);
    let history = app
        .get(
            &format!("/api/v1/conversations/{group}/messages"),
            nina.token(),
        )
        .await;
    assert_eq!(history.ok(200)["items"].as_array().unwrap().len(), 5);
}
