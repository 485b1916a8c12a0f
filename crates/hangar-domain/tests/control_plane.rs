//! The domain's rules, driven through `ControlPlane::execute` on a real (in-memory SQLite)
//! store, as the wire layer drives it.

use std::sync::Arc;
use std::time::Duration;

use hangar_domain::{AcceptingProvisioner, ControlPlane, Error, Partition, RequestContext};
use hangar_model::{Input, Operation, Output};
use hangar_store::SqliteStore;
use serde_json::{json, Value};

async fn control_plane() -> ControlPlane {
    let store = SqliteStore::open_in_memory().expect("in-memory store");
    let cp = ControlPlane::new(
        Arc::new(store),
        Partition {
            region: "us-east-1".into(),
            account_id: "123456789012".into(),
        },
        Arc::new(AcceptingProvisioner),
    );
    cp.start().await.expect("start");
    cp
}

async fn call(cp: &ControlPlane, op: Operation, input: Value) -> Result<Value, Error> {
    let ctx = RequestContext {
        request_id: "test".into(),
        access_key_id: None,
    };
    let input = Input::from_value(op, input).expect("well-formed input");
    let output: Output = cp.execute(&ctx, input).await?;
    Ok(output.to_value())
}

fn runtime_request(name: &str, image_tag: &str) -> Value {
    json!({
        "agentRuntimeName": name,
        "agentRuntimeArtifact": {"containerConfiguration": {
            "containerUri": format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/agent:{image_tag}")}},
        "roleArn": "arn:aws:iam::123456789012:role/agent",
        "networkConfiguration": {"networkMode": "PUBLIC"},
    })
}

async fn create_runtime(cp: &ControlPlane, name: &str) -> String {
    let out = call(
        cp,
        Operation::CreateAgentRuntime,
        runtime_request(name, "v1"),
    )
    .await
    .unwrap();
    assert_eq!(out["status"], "CREATING");
    assert_eq!(out["agentRuntimeVersion"], "1");
    out["agentRuntimeId"].as_str().unwrap().to_owned()
}

/// Provisioning runs in the background; poll until it has reported.
async fn wait_for(cp: &ControlPlane, op: Operation, input: Value, status: &str) -> Value {
    for _ in 0..200 {
        let out = call(cp, op, input.clone()).await.unwrap();
        if out["status"] == status {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{op:?} {input} never reached {status}");
}

#[tokio::test]
async fn create_becomes_ready_with_a_default_endpoint_following_the_latest_version() {
    let cp = control_plane().await;
    let id = create_runtime(&cp, "agent").await;
    wait_for(
        &cp,
        Operation::GetAgentRuntime,
        json!({"agentRuntimeId": id}),
        "READY",
    )
    .await;
    let default = json!({"agentRuntimeId": id, "endpointName": "DEFAULT"});
    let ep = wait_for(
        &cp,
        Operation::GetAgentRuntimeEndpoint,
        default.clone(),
        "READY",
    )
    .await;
    assert_eq!(ep["liveVersion"], "1");

    let mut update = runtime_request("agent", "v2");
    update.as_object_mut().unwrap().remove("agentRuntimeName");
    update["agentRuntimeId"] = json!(id);
    let out = call(&cp, Operation::UpdateAgentRuntime, update)
        .await
        .unwrap();
    assert_eq!(out["agentRuntimeVersion"], "2");
    assert_eq!(out["status"], "UPDATING");
    let ep = wait_for(&cp, Operation::GetAgentRuntimeEndpoint, default, "READY").await;
    assert_eq!(ep["liveVersion"], "2");
    assert_eq!(ep["targetVersion"], "2");

    // Versions are immutable: version 1 keeps its own configuration.
    let v1 = call(
        &cp,
        Operation::GetAgentRuntime,
        json!({"agentRuntimeId": id, "agentRuntimeVersion": "1"}),
    )
    .await
    .unwrap();
    assert!(
        v1["agentRuntimeArtifact"]["containerConfiguration"]["containerUri"]
            .as_str()
            .unwrap()
            .ends_with(":v1")
    );
    let latest = call(
        &cp,
        Operation::GetAgentRuntime,
        json!({"agentRuntimeId": id}),
    )
    .await
    .unwrap();
    assert_eq!(latest["agentRuntimeVersion"], "2");
    assert_eq!(
        latest["lifecycleConfiguration"],
        json!({"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800})
    );
}

#[tokio::test]
async fn names_are_unique_and_default_endpoint_is_protected() {
    let cp = control_plane().await;
    let id = create_runtime(&cp, "unique").await;
    let again = call(
        &cp,
        Operation::CreateAgentRuntime,
        runtime_request("unique", "v1"),
    )
    .await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    let delete_default = call(
        &cp,
        Operation::DeleteAgentRuntimeEndpoint,
        json!({"agentRuntimeId": id, "endpointName": "DEFAULT"}),
    )
    .await;
    assert!(matches!(delete_default, Err(Error::Conflict(_))));
}

#[tokio::test]
async fn versions_in_use_cannot_be_deleted() {
    let cp = control_plane().await;
    let id = create_runtime(&cp, "pinned").await;
    let mut update = runtime_request("x", "v2");
    update.as_object_mut().unwrap().remove("agentRuntimeName");
    update["agentRuntimeId"] = json!(id);
    call(&cp, Operation::UpdateAgentRuntime, update.clone())
        .await
        .unwrap();
    call(&cp, Operation::UpdateAgentRuntime, update)
        .await
        .unwrap();
    call(
        &cp,
        Operation::CreateAgentRuntimeEndpoint,
        json!({"agentRuntimeId": id, "name": "prod", "agentRuntimeVersion": "1"}),
    )
    .await
    .unwrap();
    let prod = json!({"agentRuntimeId": id, "endpointName": "prod"});
    let ep = wait_for(&cp, Operation::GetAgentRuntimeEndpoint, prod, "READY").await;
    assert_eq!(ep["liveVersion"], "1");

    let del = |v: &str| {
        call(
            &cp,
            Operation::DeleteAgentRuntime,
            json!({"agentRuntimeId": id, "agentRuntimeVersion": v}),
        )
    };
    assert!(
        matches!(del("1").await, Err(Error::Conflict(_))),
        "pinned by prod"
    );
    assert!(
        matches!(del("3").await, Err(Error::Conflict(_))),
        "DEFAULT targets latest"
    );
    assert_eq!(del("2").await.unwrap()["status"], "DELETING");
    assert!(matches!(del("2").await, Err(Error::NotFound(_))));
    let unknown = call(
        &cp,
        Operation::CreateAgentRuntimeEndpoint,
        json!({"agentRuntimeId": id, "name": "staging", "agentRuntimeVersion": "9"}),
    )
    .await;
    assert!(matches!(unknown, Err(Error::NotFound(_))));

    // Deleting the runtime removes it with its endpoints.
    call(
        &cp,
        Operation::DeleteAgentRuntime,
        json!({"agentRuntimeId": id}),
    )
    .await
    .unwrap();
    let gone = call(
        &cp,
        Operation::GetAgentRuntime,
        json!({"agentRuntimeId": id}),
    )
    .await;
    assert!(matches!(gone, Err(Error::NotFound(_))));
}

#[tokio::test]
async fn client_tokens_replay_or_refuse() {
    let cp = control_plane().await;
    let token = "a".repeat(36);
    let mut first = runtime_request("idem", "v1");
    first["clientToken"] = json!(token);
    let a = call(&cp, Operation::CreateAgentRuntime, first.clone())
        .await
        .unwrap();
    let b = call(&cp, Operation::CreateAgentRuntime, first.clone())
        .await
        .unwrap();
    assert_eq!(a, b);
    let mut different = runtime_request("idem2", "v1");
    different["clientToken"] = json!(token);
    match call(&cp, Operation::CreateAgentRuntime, different).await {
        Err(Error::Validation { reason, .. }) => {
            assert_eq!(reason.as_str(), "IdempotentParameterMismatchException")
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
    let list = call(
        &cp,
        Operation::ListAgentRuntimes,
        json!({"maxResults": 100}),
    )
    .await
    .unwrap();
    assert_eq!(list["agentRuntimes"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn client_tokens_expire_after_their_lifetime() {
    let cp = control_plane().await;
    let token = "b".repeat(36);
    let mut first = runtime_request("expiring", "v1");
    first["clientToken"] = json!(token);
    call(&cp, Operation::CreateAgentRuntime, first.clone())
        .await
        .unwrap();
    // Within the lifetime the token is remembered: a different request with it is refused.
    assert_eq!(
        cp.expire_client_tokens(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    let mut different = runtime_request("expiring2", "v1");
    different["clientToken"] = json!(token);
    assert!(matches!(
        call(&cp, Operation::CreateAgentRuntime, different.clone()).await,
        Err(Error::Validation { .. })
    ));
    // Past it the token is forgotten, and the same token is a fresh request.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        cp.expire_client_tokens(Duration::from_millis(10))
            .await
            .unwrap(),
        1
    );
    call(&cp, Operation::CreateAgentRuntime, different)
        .await
        .unwrap();
}

#[tokio::test]
async fn paging_returns_every_item_once_under_concurrent_writes() {
    let cp = control_plane().await;
    let mut survivors = Vec::new();
    for i in 0..25 {
        survivors.push(create_runtime(&cp, &format!("page{i}")).await);
    }
    let writer = {
        let cp = cp.clone();
        tokio::spawn(async move {
            for i in 0..20 {
                let id = create_runtime(&cp, &format!("churn{i}")).await;
                call(
                    &cp,
                    Operation::DeleteAgentRuntime,
                    json!({"agentRuntimeId": id}),
                )
                .await
                .unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({"maxResults": 3});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let page = call(&cp, Operation::ListAgentRuntimes, req).await.unwrap();
        for item in page["agentRuntimes"].as_array().unwrap() {
            seen.push(item["agentRuntimeId"].as_str().unwrap().to_owned());
        }
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
    for id in &survivors {
        assert_eq!(
            seen.iter().filter(|s| *s == id).count(),
            1,
            "{id} seen once"
        );
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "no item twice");
}

#[tokio::test]
async fn system_tools_exist_and_cannot_be_deleted() {
    let cp = control_plane().await;
    let system = call(&cp, Operation::ListBrowsers, json!({"type": "SYSTEM"}))
        .await
        .unwrap();
    let items = system["browserSummaries"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0]["browserArn"],
        "arn:aws:bedrock-agentcore:us-east-1:aws:browser/aws.browser.v1"
    );
    let custom = call(&cp, Operation::ListBrowsers, json!({"type": "CUSTOM"}))
        .await
        .unwrap();
    assert!(custom["browserSummaries"].as_array().unwrap().is_empty());
    let del = call(
        &cp,
        Operation::DeleteCodeInterpreter,
        json!({"codeInterpreterId": "aws.codeinterpreter.v1"}),
    )
    .await;
    assert!(matches!(del, Err(Error::AccessDenied(_))));
}

#[tokio::test]
async fn tags_follow_their_resource() {
    let cp = control_plane().await;
    let mut req = runtime_request("tagged", "v1");
    req["tags"] = json!({"team": "a"});
    let out = call(&cp, Operation::CreateAgentRuntime, req).await.unwrap();
    let arn = out["agentRuntimeArn"].as_str().unwrap().to_owned();
    let id = out["agentRuntimeId"].as_str().unwrap().to_owned();
    call(
        &cp,
        Operation::TagResource,
        json!({"resourceArn": arn, "tags": {"env": "dev"}}),
    )
    .await
    .unwrap();
    call(
        &cp,
        Operation::UntagResource,
        json!({"resourceArn": arn, "tagKeys": ["team"]}),
    )
    .await
    .unwrap();
    let tags = call(
        &cp,
        Operation::ListTagsForResource,
        json!({"resourceArn": arn}),
    )
    .await
    .unwrap();
    assert_eq!(tags["tags"], json!({"env": "dev"}));
    let too_many: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let over = call(
        &cp,
        Operation::TagResource,
        json!({"resourceArn": arn, "tags": too_many}),
    )
    .await;
    assert!(matches!(over, Err(Error::Validation { .. })));
    call(
        &cp,
        Operation::DeleteAgentRuntime,
        json!({"agentRuntimeId": id}),
    )
    .await
    .unwrap();
    let gone = call(
        &cp,
        Operation::ListTagsForResource,
        json!({"resourceArn": arn}),
    )
    .await;
    assert!(matches!(gone, Err(Error::NotFound(_))));
}
