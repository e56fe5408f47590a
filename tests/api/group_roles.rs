//! Group ownership and consent (issue 15, finding 5): the creator owns a group; the owner and
//! the admins the owner names add and remove members; anyone leaves; a member added later
//! reads from when they joined, unless the owner shares the history; frames and REST say who
//! did what.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    helpers::{TestApp, User, all_pages, post_message as send, spawn_app, start_conversation},
    ws::Ws,
};

fn roles(members: &Value) -> Vec<(String, String)> {
    let mut roles: Vec<(String, String)> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    roles.sort();
    roles
}

fn pair(name: &str, role: &str) -> (String, String) {
    (name.to_owned(), role.to_owned())
}

async fn members(app: &TestApp, conv: &str, by: &User) -> Value {
    app.get(
        &format!("/api/v1/conversations/{conv}/participants"),
        by.token(),
    )
    .await
    .ok(200)
    .clone()
}

/// The defect as reported: a member removed the creator and added an outsider, who then
/// read the history from before they joined, over REST and over `resume`.
#[tokio::test]
async fn a_member_can_neither_remove_the_owner_nor_add_an_outsider() {
    let app = spawn_app().await;
    let (nina, miles, eve) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("eve").await,
    );
    let conv = start_conversation(&app, &nina, &[&miles], Some("Band")).await;
    let path = format!("/api/v1/conversations/{conv}/participants");
    assert_eq!(
        roles(&members(&app, &conv, &miles).await),
        [pair("miles", "member"), pair("nina", "owner")]
    );
    app.delete(&format!("{path}/{}", nina.id), miles.token())
        .await
        .err(403, "forbidden");
    app.post(&path, miles.token(), json!({"user_id": eve.id}))
        .await
        .err(403, "forbidden");
    app.patch(
        &format!("{path}/{}", miles.id),
        miles.token(),
        json!({"role": "owner"}),
    )
    .await
    .err(403, "forbidden");
    app.patch(
        &format!("/api/v1/conversations/{conv}"),
        miles.token(),
        json!({"new_members_see_history": true}),
    )
    .await
    .err(403, "forbidden");
    // Nothing changed.
    assert_eq!(
        roles(&members(&app, &conv, &nina).await),
        [pair("miles", "member"), pair("nina", "owner")]
    );
    app.get(&format!("/api/v1/conversations/{conv}"), eve.token())
        .await
        .err(404, "not_found");
}

#[tokio::test]
async fn a_new_member_reads_from_when_they_joined_unless_the_owner_shares_history() {
    let app = spawn_app().await;
    let (nina, miles, eve, zoe) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("eve").await,
        app.register("zoe").await,
    );
    let conv = start_conversation(&app, &nina, &[&miles], Some("Band")).await;
    let secret = send(&app, &nina, &conv, "before eve").await;
    let path = format!("/api/v1/conversations/{conv}/participants");
    app.post(&path, nina.token(), json!({"user_id": eve.id}))
        .await
        .ok(200);
    send(&app, &miles, &conv, "after eve").await;

    let history = all_pages(
        &app,
        &format!("/api/v1/conversations/{conv}/messages"),
        eve.token(),
    )
    .await;
    let bodies: Vec<&str> = history
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["after eve"]);
    app.get(
        &format!("/api/v1/messages/{}", secret["id"].as_str().unwrap()),
        eve.token(),
    )
    .await
    .err(404, "not_found");
    let listed = app
        .get(&format!("/api/v1/conversations/{conv}"), eve.token())
        .await;
    let listed = listed.ok(200);
    assert_eq!(listed["last_message"]["body"], "after eve");
    assert_eq!(listed["unread_count"], 1, "{listed}");
    assert_eq!(listed["my_role"], "member");

    // Resuming from the start replays nothing from before she joined.
    let mut ws = Ws::connect_quiet(&app, &eve.access).await;
    ws.send(json!({"type": "resume", "conversations": {conv.clone(): 0}}))
        .await;
    let mut bodies = Vec::new();
    while let Some(f) = ws.next().await {
        if f["type"] == "resumed" {
            break;
        }
        if f["type"] == "message.created" {
            bodies.push(f["message"]["body"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(bodies, ["after eve"]);

    // The owner shares the history: the next member reads everything.
    let changed = app
        .patch(
            &format!("/api/v1/conversations/{conv}"),
            nina.token(),
            json!({"new_members_see_history": true}),
        )
        .await;
    assert_eq!(changed.ok(200)["new_members_see_history"], true);
    assert_eq!(changed.body["data"]["title"], "Band", "title untouched");
    app.post(&path, nina.token(), json!({"user_id": zoe.id}))
        .await
        .ok(200);
    let history = all_pages(
        &app,
        &format!("/api/v1/conversations/{conv}/messages"),
        zoe.token(),
    )
    .await;
    assert_eq!(history.len(), 2);
}

#[tokio::test]
async fn the_owner_names_admins_who_manage_members_and_ownership_is_handed_on() {
    let app = spawn_app().await;
    let (nina, miles, eve, zoe) = (
        app.register("nina").await,
        app.register("miles").await,
        app.register("eve").await,
        app.register("zoe").await,
    );
    let conv = start_conversation(&app, &nina, &[&miles, &eve], Some("Band")).await;
    let path = format!("/api/v1/conversations/{conv}/participants");
    let mut eve_ws = Ws::connect(&app, &eve.access).await;

    let promoted = app
        .patch(
            &format!("{path}/{}", miles.id),
            nina.token(),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(
        roles(promoted.ok(200)),
        [
            pair("eve", "member"),
            pair("miles", "admin"),
            pair("nina", "owner")
        ]
    );
    let frame = eve_ws
        .next_of(&["member.role_changed"])
        .await
        .expect("role change pushed");
    assert_eq!(
        (&frame["user_id"], &frame["role"], &frame["by"]),
        (&json!(miles.id), &json!("admin"), &json!(nina.id))
    );
    // An admin adds and removes members, but not the owner.
    app.post(&path, miles.token(), json!({"user_id": zoe.id}))
        .await
        .ok(200);
    app.delete(&format!("{path}/{}", zoe.id), miles.token())
        .await
        .ok(200);
    app.delete(&format!("{path}/{}", nina.id), miles.token())
        .await
        .err(403, "forbidden");
    // Roles are the owner's, and a bad role is named.
    app.patch(
        &format!("{path}/{}", eve.id),
        miles.token(),
        json!({"role": "admin"}),
    )
    .await
    .err(403, "forbidden");
    let bad = app
        .patch(
            &format!("{path}/{}", eve.id),
            nina.token(),
            json!({"role": "king"}),
        )
        .await;
    bad.err(422, "validation_failed");
    assert_eq!(bad.fields()[0].0, "role");
    app.patch(
        &format!("{path}/{}", nina.id),
        nina.token(),
        json!({"role": "member"}),
    )
    .await
    .err(409, "conflict");

    // The owner leaves: the admin becomes the owner, and everyone is told.
    app.delete(&format!("{path}/{}", nina.id), nina.token())
        .await
        .ok(200);
    let frame = eve_ws
        .next_of(&["member.role_changed"])
        .await
        .expect("ownership handed on");
    assert_eq!(
        (&frame["user_id"], &frame["role"], &frame["by"]),
        (&json!(miles.id), &json!("owner"), &json!(nina.id))
    );
    assert_eq!(
        roles(&members(&app, &conv, &eve).await),
        [pair("eve", "member"), pair("miles", "owner")]
    );
    // Handing on by hand: the previous owner becomes an admin.
    let handed = app
        .patch(
            &format!("{path}/{}", eve.id),
            miles.token(),
            json!({"role": "owner"}),
        )
        .await;
    assert_eq!(
        roles(handed.ok(200)),
        [pair("eve", "owner"), pair("miles", "admin")]
    );
    let owners: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM conversation_members
         WHERE conversation_id = $1::uuid AND role = 'owner' AND left_at IS NULL",
    )
    .bind(&conv)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(owners, 1);
    let _ = eve_ws.drain(&[], Duration::from_millis(10)).await;
}

#[tokio::test]
async fn direct_conversations_have_no_roles() {
    let app = spawn_app().await;
    let (nina, miles) = (app.register("nina").await, app.register("miles").await);
    let conv = start_conversation(&app, &nina, &[&miles], None).await;
    assert_eq!(
        roles(&members(&app, &conv, &nina).await),
        [pair("miles", "member"), pair("nina", "member")]
    );
    app.patch(
        &format!("/api/v1/conversations/{conv}/participants/{}", miles.id),
        nina.token(),
        json!({"role": "admin"}),
    )
    .await
    .err(409, "conflict");
}
