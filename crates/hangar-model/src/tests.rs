use crate::validate::{compile_pattern, pattern_regex};
use crate::*;
use serde_json::{json, Value};

fn messages(op: Operation, v: &Value) -> Vec<String> {
    match validate_input(op, v) {
        Ok(()) => Vec::new(),
        Err(e) => e.fields.into_iter().map(|f| f.message).collect(),
    }
}

fn create_runtime_request() -> Value {
    json!({
        "agentRuntimeName": "my_agent",
        "agentRuntimeArtifact": {
            "codeConfiguration": {
                "code": {"s3": {"bucket": "my-bucket", "prefix": "agents/code.zip", "versionId": "v123"}},
                "runtime": "PYTHON_3_14",
                "entryPoint": ["main.py"]
            }
        },
        "roleArn": "arn:aws:iam::123456789012:role/AgentRole",
        "description": "An agent",
        "clientToken": "0123456789abcdef0123456789abcdef0",
        "networkConfiguration": {"networkMode": "PUBLIC"},
        "protocolConfiguration": {"serverProtocol": "AGUI", "path": "/invocations", "port": 8080},
        "requestHeaderConfiguration": {"requestHeaderAllowlist": ["X-Amzn-Bedrock-AgentCore-Runtime-Custom-Foo", "Authorization"]},
        "authorizerConfiguration": {
            "customJWTAuthorizer": {
                "discoveryUrl": "https://issuer.example.com/.well-known/openid-configuration",
                "allowedClients": ["client-1"],
                "allowedAudience": ["aud"],
                "customClaims": [{
                    "inboundTokenClaimName": "department",
                    "inboundTokenClaimValueType": "STRING_ARRAY",
                    "authorizingClaimMatchValue": {
                        "claimMatchOperator": "CONTAINS_ANY",
                        "claimMatchValue": {"matchValueStringList": ["eng", "ops"]}
                    }
                }]
            }
        },
        "environmentVariables": {"LOG_LEVEL": "debug"},
        "lifecycleConfiguration": {"idleRuntimeSessionTimeout": 900, "maxLifetime": 28800},
        "tags": {"team": "agents"}
    })
}

#[test]
fn all_patterns_compile() {
    let mut n = 0;
    for (id, shape) in SHAPES.iter().enumerate() {
        if let ShapeKind::String {
            pattern: Some(p), ..
        } = shape.kind
        {
            if let Err(e) = compile_pattern(p) {
                panic!("pattern of {} does not compile: {p}: {e}", shape.name);
            }
            assert!(pattern_regex(id).is_some());
            n += 1;
        }
    }
    assert!(n > 40, "only {n} patterns");
}

#[test]
fn tables_are_consistent() {
    assert_eq!(Operation::ALL.len(), OPERATIONS.len());
    for (i, op) in Operation::ALL.iter().enumerate() {
        assert_eq!(OPERATIONS[i].op, *op);
        assert_eq!(op.def().name, op.name());
        assert_eq!(Operation::from_name(op.name()), Some(*op));
        let svc = op.service();
        for id in [op.def().input, op.def().output].into_iter().flatten() {
            assert_eq!(shape_service(id), svc);
        }
    }
    for (id, s) in SHAPES.iter().enumerate() {
        assert_eq!(shape_by_name(shape_service(id), s.name), Some(id));
        if let ShapeKind::Structure { members, .. } = &s.kind {
            for m in members.iter() {
                assert!(m.shape < SHAPES.len());
                assert_eq!(shape_service(m.shape), shape_service(id));
            }
        }
    }
    let c = shape_by_name(Service::Control, "S3Location").unwrap();
    let d = shape_by_name(Service::Data, "S3Location").unwrap();
    assert_ne!(c, d);
    assert_eq!(shape(c).name, "S3Location");
    assert_eq!(shape_by_name(Service::Control, "NoSuchShape"), None);

    let create = Operation::CreateAgentRuntime.def();
    assert_eq!(
        (create.method, create.uri, create.success_code),
        ("PUT", "/runtimes/", 202)
    );
    assert_eq!(create.service, Service::Control);
    assert!(create.errors.contains(&"ValidationException"));
    let ShapeKind::Structure { members, .. } = &shape(create.input.unwrap()).kind else {
        panic!()
    };
    let token = members.iter().find(|m| m.name == "clientToken").unwrap();
    assert!(token.idempotency_token);
    assert_eq!(token.location, Location::Body);

    let get = Operation::GetAgentRuntime.def();
    let ShapeKind::Structure { members, .. } = &shape(get.input.unwrap()).kind else {
        panic!()
    };
    let id = members.iter().find(|m| m.name == "agentRuntimeId").unwrap();
    assert_eq!(id.location, Location::Uri("agentRuntimeId"));
    assert!(id.required);

    let invoke = Operation::InvokeAgentRuntime.def();
    assert_eq!(invoke.service, Service::Data);
    let ShapeKind::Structure { members, .. } = &shape(invoke.input.unwrap()).kind else {
        panic!()
    };
    let payload = members.iter().find(|m| m.name == "payload").unwrap();
    assert_eq!(payload.location, Location::Payload);
    assert!(members
        .iter()
        .any(|m| matches!(m.location, Location::Header(h) if h == "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id")));
    let ShapeKind::Structure { members, .. } = &shape(invoke.output.unwrap()).kind else {
        panic!()
    };
    assert!(members
        .iter()
        .any(|m| m.name == "statusCode" && m.location == Location::StatusCode));

    let untag = Operation::UntagResource.def();
    let ShapeKind::Structure { members, .. } = &shape(untag.input.unwrap()).kind else {
        panic!()
    };
    let keys = members.iter().find(|m| m.name == "tagKeys").unwrap();
    assert_eq!(keys.location, Location::Query("tagKeys"));
}

#[test]
fn create_agent_runtime_round_trip() {
    let v = create_runtime_request();
    assert_eq!(validate_input(Operation::CreateAgentRuntime, &v), Ok(()));
    let input = Input::from_value(Operation::CreateAgentRuntime, v.clone()).unwrap();
    assert_eq!(input.operation(), Operation::CreateAgentRuntime);
    let Input::CreateAgentRuntime(req) = &input else {
        panic!()
    };
    use control::*;
    assert_eq!(req.agent_runtime_name, "my_agent");
    let AgentRuntimeArtifact::CodeConfiguration(code) = &req.agent_runtime_artifact else {
        panic!("expected codeConfiguration")
    };
    assert_eq!(code.runtime, AgentManagedRuntimeType::Python314);
    assert_eq!(code.runtime.as_str(), "PYTHON_3_14");
    assert_eq!(code.entry_point, vec!["main.py".to_string()]);
    let Code::S3(s3) = &code.code;
    assert_eq!(s3.bucket, "my-bucket");
    assert_eq!(s3.version_id.as_deref(), Some("v123"));
    let proto = req.protocol_configuration.as_ref().unwrap();
    assert_eq!(proto.server_protocol, ServerProtocol::Agui);
    assert_eq!(proto.port, Some(8080));
    let Some(RequestHeaderConfiguration::RequestHeaderAllowlist(allow)) =
        &req.request_header_configuration
    else {
        panic!()
    };
    assert_eq!(allow.len(), 2);
    let Some(AuthorizerConfiguration::CustomJWTAuthorizer(jwt)) = &req.authorizer_configuration
    else {
        panic!()
    };
    let claims = jwt.custom_claims.as_ref().unwrap();
    assert_eq!(
        claims[0].inbound_token_claim_value_type,
        InboundTokenClaimValueType::StringArray
    );
    assert_eq!(
        claims[0].authorizing_claim_match_value.claim_match_operator,
        ClaimMatchOperatorType::ContainsAny
    );
    assert_eq!(
        claims[0].authorizing_claim_match_value.claim_match_value,
        ClaimMatchValueType::MatchValueStringList(vec!["eng".into(), "ops".into()])
    );
    assert_eq!(
        req.network_configuration.as_ref().unwrap().network_mode,
        NetworkMode::Public
    );
    assert_eq!(
        req.environment_variables.as_ref().unwrap()["LOG_LEVEL"],
        "debug"
    );
    assert_eq!(
        req.lifecycle_configuration.as_ref().unwrap().max_lifetime,
        Some(28800)
    );
    assert_eq!(req.capacity_provider_configuration, None);
    // And back: the JSON is reproduced exactly.
    assert_eq!(input.to_value(), v);
    assert_eq!(serde_json::to_value(req).unwrap(), v);
}

#[test]
fn update_agent_runtime_with_metadata_and_container() {
    let v = json!({
        "agentRuntimeId": "my_agent-abcdefghij",
        "agentRuntimeArtifact": {"containerConfiguration": {"containerUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/my-agent:latest"}},
        "roleArn": "arn:aws:iam::123456789012:role/AgentRole",
        "networkConfiguration": {"networkMode": "VPC", "networkModeConfig": {"securityGroups": ["sg-0123456789abcdef0"], "subnets": ["subnet-0123456789abcdef0"]}},
        "metadataConfiguration": {"requireMMDSV2": true},
        "protocolConfiguration": {"serverProtocol": "A2A"}
    });
    assert_eq!(validate_input(Operation::UpdateAgentRuntime, &v), Ok(()));
    let Input::UpdateAgentRuntime(req) =
        Input::from_value(Operation::UpdateAgentRuntime, v.clone()).unwrap()
    else {
        panic!()
    };
    assert!(req.metadata_configuration.as_ref().unwrap().require_mmdsv2);
    assert!(matches!(
        req.agent_runtime_artifact,
        control::AgentRuntimeArtifact::ContainerConfiguration(_)
    ));
    assert_eq!(
        req.protocol_configuration.as_ref().unwrap().server_protocol,
        control::ServerProtocol::A2a
    );
    assert_eq!(serde_json::to_value(&req).unwrap(), v);
}

#[test]
fn nulls_are_absent() {
    let mut v = create_runtime_request();
    v["description"] = Value::Null;
    v["tags"] = Value::Null;
    // A union with an extra null member still has exactly one member set.
    v["agentRuntimeArtifact"]["containerConfiguration"] = Value::Null;
    assert_eq!(validate_input(Operation::CreateAgentRuntime, &v), Ok(()));
    let Input::CreateAgentRuntime(req) =
        Input::from_value(Operation::CreateAgentRuntime, v).unwrap()
    else {
        panic!()
    };
    assert_eq!(req.description, None);
    assert_eq!(req.tags, None);
    // Unknown members are ignored.
    let mut v = create_runtime_request();
    v["somethingNew"] = json!({"x": 1});
    assert_eq!(validate_input(Operation::CreateAgentRuntime, &v), Ok(()));
    assert!(Input::from_value(Operation::CreateAgentRuntime, v).is_ok());
}

#[test]
fn output_to_value() {
    let out = Output::GetAgentRuntime(control::GetAgentRuntimeResponse {
        agent_runtime_arn: "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-abcdefghij"
            .into(),
        agent_runtime_name: "a".into(),
        agent_runtime_id: "a-abcdefghij".into(),
        agent_runtime_version: "1".into(),
        created_at: Timestamp::from_unix_millis(1_752_531_400_713),
        last_updated_at: Timestamp::from_unix_millis(1_752_531_400_000),
        role_arn: "arn:aws:iam::123456789012:role/R".into(),
        network_configuration: Some(control::NetworkConfiguration {
            network_mode: control::NetworkMode::Public,
            network_mode_config: None,
        }),
        status: control::AgentRuntimeStatus::Ready,
        lifecycle_configuration: control::LifecycleConfiguration {
            idle_runtime_session_timeout: Some(900),
            max_lifetime: Some(28800),
        },
        ..serde_json::from_value(json!({
            "agentRuntimeArn": "", "agentRuntimeName": "", "agentRuntimeId": "", "agentRuntimeVersion": "",
            "createdAt": 0, "lastUpdatedAt": 0, "roleArn": "", "networkConfiguration": {"networkMode": "VPC"},
            "status": "CREATING", "lifecycleConfiguration": {}
        }))
        .unwrap()
    });
    assert_eq!(out.operation(), Operation::GetAgentRuntime);
    let v = out.to_value();
    assert_eq!(v["createdAt"], "2025-07-14T22:16:40.713Z");
    assert_eq!(v["lastUpdatedAt"], "2025-07-14T22:16:40.000Z");
    assert_eq!(v["status"], "READY");
    assert_eq!(v["networkConfiguration"], json!({"networkMode": "PUBLIC"}));
    assert!(v.get("description").is_none());
    assert_eq!(
        Output::from_value(Operation::GetAgentRuntime, v).unwrap(),
        out
    );

    // Status-code and payload members are part of the object too.
    let out = Output::InvokeAgentRuntime(data::InvokeAgentRuntimeResponse {
        content_type: "application/json".into(),
        status_code: Some(200),
        response: Some(Blob::from("{}")),
        ..Default::default()
    });
    let v = out.to_value();
    assert_eq!(v["statusCode"], 200);
    assert_eq!(v["response"], "e30=");
    assert_eq!(v["contentType"], "application/json");
}

#[test]
fn event_stream_union() {
    let ev = data::CodeInterpreterStreamOutput::Result(data::CodeInterpreterResult {
        content: vec![],
        is_error: Some(false),
        structured_content: None,
    });
    assert_eq!(
        serde_json::to_value(&ev).unwrap(),
        json!({"result": {"content": [], "isError": false}})
    );
    let err: data::CodeInterpreterStreamOutput = serde_json::from_value(
        json!({"validationException": {"message": "bad", "reason": "CannotParse"}}),
    )
    .unwrap();
    let data::CodeInterpreterStreamOutput::ValidationException(e) = err else {
        panic!()
    };
    assert_eq!(e.reason, data::ValidationExceptionReason::CannotParse);
}

#[test]
fn unions_reject_zero_or_two_members() {
    let two = json!({"codeConfiguration": {}, "containerConfiguration": {}});
    assert!(serde_json::from_value::<control::AgentRuntimeArtifact>(two).is_err());
    assert!(serde_json::from_value::<control::AgentRuntimeArtifact>(json!({})).is_err());
    assert!(serde_json::from_value::<control::AgentRuntimeArtifact>(json!({"other": {}})).is_err());
}

#[test]
fn timestamps() {
    let t = Timestamp::from_unix_millis(1_752_531_400_713);
    assert_eq!(t.to_string(), "2025-07-14T22:16:40.713Z");
    assert_eq!(
        serde_json::to_value(t).unwrap(),
        json!("2025-07-14T22:16:40.713Z")
    );
    assert_eq!(
        serde_json::from_value::<Timestamp>(json!("2025-07-14T22:16:40.713Z")).unwrap(),
        t
    );
    assert_eq!(
        serde_json::from_value::<Timestamp>(json!("2025-07-15T00:16:40.713+02:00")).unwrap(),
        t
    );
    assert_eq!(
        serde_json::from_value::<Timestamp>(json!(1752531400.713)).unwrap(),
        t
    );
    assert_eq!(
        serde_json::from_value::<Timestamp>(json!(1752531400)).unwrap(),
        Timestamp::from_unix_millis(1_752_531_400_000)
    );
    assert_eq!(t.unix_millis(), 1_752_531_400_713);
    assert!(serde_json::from_value::<Timestamp>(json!("yesterday")).is_err());
    let now = Timestamp::now();
    assert_eq!(Timestamp::parse(&now.to_string()), Some(now));
    assert!(Timestamp::from_unix_millis(0) < now);
}

#[test]
fn blobs() {
    let b = Blob::from("hello");
    assert_eq!(serde_json::to_value(&b).unwrap(), json!("aGVsbG8="));
    assert_eq!(
        serde_json::from_value::<Blob>(json!("aGVsbG8=")).unwrap(),
        b
    );
    assert_eq!(serde_json::from_value::<Blob>(json!("aGVsbG8")).unwrap(), b);
    assert_eq!(
        serde_json::from_value::<Blob>(json!([104, 105])).unwrap(),
        Blob::from("hi")
    );
    assert!(serde_json::from_value::<Blob>(json!("not base64!")).is_err());
}

#[test]
fn enums() {
    use control::ServerProtocol;
    assert_eq!("HTTP".parse::<ServerProtocol>(), Ok(ServerProtocol::Http));
    assert!("http".parse::<ServerProtocol>().is_err());
    assert_eq!(ServerProtocol::ALL.len(), 4);
    assert_eq!(ServerProtocol::Mcp.to_string(), "MCP");
    assert_eq!(
        serde_json::to_value(data::ContentBlockType::ResourceLink).unwrap(),
        json!("resource_link")
    );
}

// ---- validation messages -------------------------------------------------------------------

#[test]
fn missing_required() {
    let msgs = messages(Operation::CreateAgentRuntime, &json!({}));
    assert_eq!(
        msgs,
        vec![
            "Value null at 'agentRuntimeArtifact' failed to satisfy constraint: Member must not be null",
            "Value null at 'agentRuntimeName' failed to satisfy constraint: Member must not be null",
            "Value null at 'roleArn' failed to satisfy constraint: Member must not be null",
        ]
    );
    let e = validate_input(Operation::CreateAgentRuntime, &Value::Null).unwrap_err();
    assert_eq!(e.fields.len(), 3);
    assert_eq!(e.fields[0].name, "agentRuntimeArtifact");
    assert!(e.message().starts_with(
        "3 validation errors detected: Value null at 'agentRuntimeArtifact' failed to satisfy constraint: Member must not be null; Value null at 'agentRuntimeName'"
    ));
}

#[test]
fn pattern_single_error_message() {
    let mut v = create_runtime_request();
    v["agentRuntimeName"] = json!("a-b");
    let e = validate_input(Operation::CreateAgentRuntime, &v).unwrap_err();
    assert_eq!(
        e.message(),
        "1 validation error detected: Value 'a-b' at 'agentRuntimeName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][a-zA-Z0-9_]{0,47}"
    );
    assert_eq!(
        e.fields,
        vec![FieldViolation {
            name: "agentRuntimeName".into(),
            message: "Value 'a-b' at 'agentRuntimeName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][a-zA-Z0-9_]{0,47}".into()
        }]
    );
}

#[test]
fn patterns_are_anchored() {
    let id = shape_by_name(Service::Control, "AgentRuntimeName").unwrap();
    assert!(validate_shape(id, &json!("abc"), "n").is_empty());
    // `abc` matches as a prefix and `-abc` as a suffix: both must still fail.
    assert_eq!(validate_shape(id, &json!("abc-"), "n").len(), 1);
    assert_eq!(validate_shape(id, &json!("-abc"), "n").len(), 1);
    // 48 chars max via the {0,47} repetition.
    let long = format!("a{}", "b".repeat(47));
    assert!(validate_shape(id, &json!(long), "n").is_empty());
    assert_eq!(validate_shape(id, &json!(format!("{long}b")), "n").len(), 1);
    // Alternations are grouped before anchoring.
    let arn = shape_by_name(Service::Control, "BrowserId").unwrap();
    assert!(validate_shape(arn, &json!("aws.browser.v1"), "b").is_empty());
    assert_eq!(validate_shape(arn, &json!("aws.browser.v1x"), "b").len(), 1);
    assert_eq!(validate_shape(arn, &json!("xaws.browser.v1"), "b").len(), 1);
}

#[test]
fn java_classes_are_ascii() {
    // `\s` in Java is ASCII whitespace only.
    let id = shape_by_name(Service::Control, "PlatformVersion").unwrap();
    assert!(validate_shape(id, &json!("v1"), "p").is_empty());
    assert_eq!(validate_shape(id, &json!("v 1"), "p").len(), 1);
    assert!(validate_shape(id, &json!("v\u{a0}1"), "p").is_empty());
}

#[test]
fn length_constraints() {
    let mut v = create_runtime_request();
    v["roleArn"] = json!("");
    v["agentRuntimeArtifact"]["codeConfiguration"]["entryPoint"] = json!(["a.py", "b.py", "c.py"]);
    v["agentRuntimeArtifact"]["codeConfiguration"]["code"]["s3"]["prefix"] =
        json!("p".repeat(1025));
    let msgs = messages(Operation::CreateAgentRuntime, &v);
    let prefix_echo: String = "p".repeat(256) + "...";
    assert_eq!(
        msgs,
        vec![
            format!("Value '{prefix_echo}' at 'agentRuntimeArtifact.codeConfiguration.code.s3.prefix' failed to satisfy constraint: Member must have length less than or equal to 1024"),
            "Value '[a.py, b.py, c.py]' at 'agentRuntimeArtifact.codeConfiguration.entryPoint' failed to satisfy constraint: Member must have length less than or equal to 2".to_string(),
            "Value '' at 'roleArn' failed to satisfy constraint: Member must have length greater than or equal to 1".to_string(),
            "Value '' at 'roleArn' failed to satisfy constraint: Member must satisfy regular expression pattern: arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+".to_string(),
        ]
    );
    // Lengths count characters, not bytes.
    let id = shape_by_name(Service::Control, "S3LocationPrefixString").unwrap();
    assert!(validate_shape(id, &json!("é".repeat(1024)), "p").is_empty());
    // Blobs count bytes.
    let v = json!({"agentRuntimeArn": "arn", "payload": "aGVsbG8="});
    assert!(messages(Operation::InvokeAgentRuntime, &v).is_empty());
}

#[test]
fn sensitive_values_are_not_echoed() {
    let mut v = create_runtime_request();
    v["description"] = json!("");
    v["environmentVariables"] = json!({"": "secret-value", "OK": "x".repeat(5001)});
    let msgs = messages(Operation::CreateAgentRuntime, &v);
    assert_eq!(
        msgs,
        vec![
            "Value at 'description' failed to satisfy constraint: Member must have length greater than or equal to 1",
            "Value at 'environmentVariables' failed to satisfy constraint: Map keys must satisfy constraint: [Member must have length greater than or equal to 1]",
            "Value at 'environmentVariables[OK]' failed to satisfy constraint: Member must have length less than or equal to 5000",
        ]
    );
    assert!(msgs.iter().all(|m| !m.contains("secret")));
}

#[test]
fn map_keys_and_values() {
    let mut v = create_runtime_request();
    v["tags"] = json!({"ok": "fine", "bad#key": "v", "k": "bad#value"});
    let msgs = messages(Operation::CreateAgentRuntime, &v);
    assert_eq!(
        msgs,
        vec![
            "Value 'bad#key' at 'tags' failed to satisfy constraint: Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z0-9\\s._:/=+@-]*]",
            "Value 'bad#value' at 'tags[k]' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9\\s._:/=+@-]*",
        ]
    );
}

#[test]
fn enum_range_and_type() {
    let mut v = create_runtime_request();
    v["protocolConfiguration"] = json!({"serverProtocol": "GRPC", "port": 80});
    v["agentRuntimeArtifact"]["codeConfiguration"]["runtime"] = json!(3);
    v["lifecycleConfiguration"] =
        json!({"idleRuntimeSessionTimeout": 1_209_601, "maxLifetime": "long"});
    v["networkConfiguration"] = json!("PUBLIC");
    let msgs = messages(Operation::CreateAgentRuntime, &v);
    assert_eq!(
        msgs,
        vec![
            "Value '3' at 'agentRuntimeArtifact.codeConfiguration.runtime' failed to satisfy constraint: Member must be of type string",
            "Value '1209601' at 'lifecycleConfiguration.idleRuntimeSessionTimeout' failed to satisfy constraint: Member must have value less than or equal to 1209600",
            "Value 'long' at 'lifecycleConfiguration.maxLifetime' failed to satisfy constraint: Member must be of type integer",
            "Value 'PUBLIC' at 'networkConfiguration' failed to satisfy constraint: Member must be of type structure",
            "Value '80' at 'protocolConfiguration.port' failed to satisfy constraint: Member must have value greater than or equal to 8000",
            "Value 'GRPC' at 'protocolConfiguration.serverProtocol' failed to satisfy constraint: Member must satisfy enum value set: [MCP, HTTP, A2A, AGUI]",
        ]
    );
}

#[test]
fn wrong_types() {
    let v = json!({
        "agentRuntimeId": "my_agent-abcdefghij",
        "maxResults": 1.5,
        "nextToken": ["x"],
    });
    let msgs = messages(Operation::ListAgentRuntimeVersions, &v);
    assert_eq!(
        msgs,
        vec![
            "Value '1.5' at 'maxResults' failed to satisfy constraint: Member must be of type integer",
            "Value '[x]' at 'nextToken' failed to satisfy constraint: Member must be of type string",
        ]
    );
    let v = json!({"resourceArn": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/a-abcdefghij", "tagKeys": "k"});
    assert_eq!(
        messages(Operation::UntagResource, &v),
        vec!["Value 'k' at 'tagKeys' failed to satisfy constraint: Member must be of type list"]
    );
}

#[test]
fn union_with_two_members_and_nested_paths() {
    let mut v = create_runtime_request();
    v["agentRuntimeArtifact"]["containerConfiguration"] = json!({"containerUri": "nope"});
    v["authorizerConfiguration"]["customJWTAuthorizer"]["customClaims"][0]
        ["authorizingClaimMatchValue"]["claimMatchValue"] = json!({});
    let msgs = messages(Operation::CreateAgentRuntime, &v);
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    assert!(msgs[0].starts_with("Value '{codeConfiguration={code={s3={bucket=my-bucket, prefix=agents/code.zip, versionId=v123}}, entryPoint=[main.py], runtime=PYTHON_3_14}, containerConfiguration={containerUri=nope}}' at 'agentRuntimeArtifact' failed to satisfy constraint: Member must have exactly one of its members set: [codeConfiguration, containerConfiguration]"), "{}", msgs[0]);
    assert!(msgs[1].starts_with("Value 'nope' at 'agentRuntimeArtifact.containerConfiguration.containerUri' failed to satisfy constraint: Member must satisfy regular expression pattern: "), "{}", msgs[1]);
    assert_eq!(
        msgs[2],
        "Value '{}' at 'authorizerConfiguration.customJWTAuthorizer.customClaims[0].authorizingClaimMatchValue.claimMatchValue' failed to satisfy constraint: Member must have exactly one of its members set: [matchValueString, matchValueStringList]"
    );
}

#[test]
fn list_item_paths() {
    let mut v = create_runtime_request();
    v["agentRuntimeArtifact"]["codeConfiguration"]["entryPoint"] = json!(["main.py", ""]);
    v["requestHeaderConfiguration"]["requestHeaderAllowlist"] = json!(["ok", "1bad", null]);
    let msgs = messages(Operation::CreateAgentRuntime, &v);
    assert_eq!(
        msgs,
        vec![
            "Value '' at 'agentRuntimeArtifact.codeConfiguration.entryPoint[1]' failed to satisfy constraint: Member must have length greater than or equal to 1",
            "Value '1bad' at 'requestHeaderConfiguration.requestHeaderAllowlist[1]' failed to satisfy constraint: Member must satisfy regular expression pattern: [A-Za-z][A-Za-z0-9_-]{0,255}",
            "Value null at 'requestHeaderConfiguration.requestHeaderAllowlist[2]' failed to satisfy constraint: Member must not be null",
        ]
    );
}

#[test]
fn validate_shape_with_prefix() {
    let id = shape_by_name(Service::Control, "ProtocolConfiguration").unwrap();
    let v = validate_shape(id, &json!({}), "protocolConfiguration");
    assert_eq!(v[0].name, "protocolConfiguration.serverProtocol");
    assert!(validate_shape(id, &Value::Null, "x").is_empty());
}

#[test]
fn every_operation_accepts_its_minimal_input() {
    // Every op's validator runs without panicking on `{}` and reports only missing members.
    for op in Operation::ALL {
        if let Err(e) = validate_input(*op, &json!({})) {
            for f in e.fields {
                assert!(
                    f.message.ends_with("Member must not be null"),
                    "{op}: {}",
                    f.message
                );
            }
        }
    }
}
