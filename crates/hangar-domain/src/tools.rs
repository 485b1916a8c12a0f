//! Browsers, code interpreters (custom and built in) and browser profiles.

use hangar_model::{control, Timestamp};
use serde_json::{json, Value};

use crate::arn::{new_resource_id, SYSTEM_BROWSER_ID, SYSTEM_CODE_INTERPRETER_ID};
use crate::json::{get_str, output, take_string, to_object, Object};
use crate::pagination;
use crate::records::{collection, BrowserProfileRecord, ToolKind, ToolRecord, ToolStatus};
use crate::runtimes::{split_page, tags_record};
use crate::stored::{self, delete, delete_children, insert, is_race, load, update};
use crate::{ControlPlane, Error};

/// Whether a listing asked for SYSTEM or CUSTOM resources only.
fn type_filter(requested: Option<Value>) -> Option<bool> {
    match requested.as_ref().and_then(Value::as_str) {
        Some("SYSTEM") => Some(true),
        Some("CUSTOM") => Some(false),
        _ => None,
    }
}

impl ControlPlane {
    fn tool_arn(&self, kind: ToolKind, id: &str) -> String {
        match kind {
            ToolKind::Browser => self.partition().browser_arn(id),
            ToolKind::CodeInterpreter => self.partition().code_interpreter_arn(id),
        }
    }

    /// The built-in `aws.browser.v1` and `aws.codeinterpreter.v1` exist from the start.
    pub(crate) async fn ensure_system_tools(&self) -> Result<(), Error> {
        let builtins = [
            (
                ToolKind::Browser,
                SYSTEM_BROWSER_ID,
                "Amazon Bedrock AgentCore Browser",
                "AWS built-in browser for secure web interaction",
                "PUBLIC",
            ),
            (
                ToolKind::CodeInterpreter,
                SYSTEM_CODE_INTERPRETER_ID,
                "Amazon Bedrock AgentCore Code Interpreter",
                "AWS built-in code interpreter for secure code execution",
                "SANDBOX",
            ),
        ];
        for (kind, id, name, description, network_mode) in builtins {
            if load::<ToolRecord>(self.store(), kind.collection(), id)
                .await?
                .is_some()
            {
                continue;
            }
            let now = Timestamp::now();
            let mut config = Object::new();
            config.insert("description".into(), json!(description));
            config.insert(
                "networkConfiguration".into(),
                json!({"networkMode": network_mode}),
            );
            let record = ToolRecord {
                kind,
                id: id.into(),
                name: name.into(),
                arn: self.tool_arn(kind, id),
                system: true,
                status: ToolStatus::Ready,
                failure_reason: None,
                created_at: now,
                last_updated_at: now,
                config,
            };
            match self
                .store()
                .commit(vec![insert(kind.collection(), id, None, None, &record)])
                .await
            {
                Ok(_) | Err(hangar_store::StoreError::KeyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn create_tool(&self, kind: ToolKind, mut config: Object) -> Result<Value, Error> {
        let operation = match kind {
            ToolKind::Browser => "CreateBrowser",
            ToolKind::CodeInterpreter => "CreateCodeInterpreter",
        };
        let claim = claim_or_replay!(self, operation, "", &config);
        config.remove("clientToken");
        let name = take_string(&mut config, "name").unwrap_or_default();
        let tags = config.remove("tags");
        let id = new_resource_id(&name);
        let now = Timestamp::now();
        let record = ToolRecord {
            kind,
            id: id.clone(),
            name: name.clone(),
            arn: self.tool_arn(kind, &id),
            system: false,
            status: ToolStatus::Creating,
            failure_reason: None,
            created_at: now,
            last_updated_at: now,
            config,
        };
        let (id_member, arn_member) = id_members(kind);
        let response = json!({
            id_member: id,
            arn_member: record.arn,
            "createdAt": now,
            "status": ToolStatus::Creating,
        });
        let mut writes = vec![insert(kind.collection(), &id, None, Some(&name), &record)];
        if let Some(tags) = tags_record(tags) {
            writes.push(insert(
                collection::TAGS,
                &record.arn,
                Some(&id),
                None,
                &tags,
            ));
        }
        let answer = self
            .commit_once(claim, writes, response, |e| match e {
                hangar_store::StoreError::NameTaken { .. } => Some(Error::Conflict(format!(
                    "A {} named {name} already exists",
                    kind.noun()
                ))),
                _ => None,
            })
            .await?;
        self.spawn_tool_provisioning(record);
        Ok(answer)
    }

    fn spawn_tool_provisioning(&self, tool: ToolRecord) {
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = this.provisioner().prepare_tool(tool.kind, &tool).await;
            loop {
                let current = match load::<ToolRecord>(
                    this.store(),
                    tool.kind.collection(),
                    &tool.id,
                )
                .await
                {
                    Ok(Some(current)) => current,
                    Ok(None) => return,
                    Err(e) => {
                        tracing::error!(id = tool.id, error = %e, "could not record provisioning outcome");
                        return;
                    }
                };
                let mut record = current.doc;
                if record.status != ToolStatus::Creating {
                    return;
                }
                match &outcome {
                    Ok(()) => record.status = ToolStatus::Ready,
                    Err(reason) => {
                        record.status = ToolStatus::CreateFailed;
                        record.failure_reason = Some(reason.0.clone());
                    }
                }
                record.last_updated_at = Timestamp::now();
                let write = update(tool.kind.collection(), &tool.id, current.revision, &record);
                match this.store().commit(vec![write]).await {
                    Ok(_) => return,
                    Err(e) if is_race(&e) => continue,
                    Err(e) => {
                        tracing::error!(id = tool.id, error = %e, "could not record provisioning outcome");
                        return;
                    }
                }
            }
        });
    }

    /// A custom or built-in browser or code interpreter.
    pub async fn tool(&self, kind: ToolKind, id: &str) -> Result<ToolRecord, Error> {
        load::<ToolRecord>(self.store(), kind.collection(), id)
            .await?
            .map(|s| s.doc)
            .ok_or_else(|| Error::NotFound(format!("{} not found: {id}", capitalized(kind))))
    }

    async fn get_tool(&self, kind: ToolKind, id: &str) -> Result<Value, Error> {
        let tool = self.tool(kind, id).await?;
        let (id_member, arn_member) = id_members(kind);
        let mut answer = tool.config;
        answer.insert(id_member.into(), json!(tool.id));
        answer.insert(arn_member.into(), json!(tool.arn));
        answer.insert("name".into(), json!(tool.name));
        answer.insert("status".into(), json!(tool.status));
        answer.insert("createdAt".into(), json!(tool.created_at));
        answer.insert("lastUpdatedAt".into(), json!(tool.last_updated_at));
        if let Some(reason) = tool.failure_reason {
            answer.insert("failureReason".into(), json!(reason));
        }
        Ok(Value::Object(answer))
    }

    async fn list_tools(&self, kind: ToolKind, request: Object) -> Result<Value, Error> {
        let system = type_filter(request.get("type").cloned());
        let listing = format!("{}/{:?}", kind.collection(), system);
        let limit = pagination::page_size(
            request
                .get("maxResults")
                .and_then(Value::as_i64)
                .map(|n| n as i32),
        );
        let after = pagination::decode(&listing, get_str(&request, "nextToken"))?;
        let matching = stored::filtered_page(
            self.store(),
            kind.collection(),
            after,
            limit,
            |t: &ToolRecord| system.is_none_or(|s| t.system == s),
        )
        .await?;
        let (items, next) = split_page(matching, limit, &listing);
        let (id_member, arn_member) = id_members(kind);
        let items: Vec<Value> = items
            .into_iter()
            .map(|t| {
                let t = t.doc;
                json!({
                    id_member: t.id,
                    arn_member: t.arn,
                    "name": t.name,
                    "description": t.config.get("description"),
                    "status": t.status,
                    "createdAt": t.created_at,
                    "lastUpdatedAt": t.last_updated_at,
                })
            })
            .collect();
        let list_member = match kind {
            ToolKind::Browser => "browserSummaries",
            ToolKind::CodeInterpreter => "codeInterpreterSummaries",
        };
        Ok(json!({list_member: items, "nextToken": next}))
    }

    async fn delete_tool(&self, kind: ToolKind, request: Object) -> Result<Value, Error> {
        let (id_member, _) = id_members(kind);
        let id = get_str(&request, id_member).unwrap_or_default().to_owned();
        let operation = match kind {
            ToolKind::Browser => "DeleteBrowser",
            ToolKind::CodeInterpreter => "DeleteCodeInterpreter",
        };
        let claim = claim_or_replay!(self, operation, &id, &request);
        loop {
            let current = load::<ToolRecord>(self.store(), kind.collection(), &id)
                .await?
                .ok_or_else(|| Error::NotFound(format!("{} not found: {id}", capitalized(kind))))?;
            if current.doc.system {
                return Err(Error::AccessDenied(format!(
                    "{id} is an AWS-owned {} and cannot be deleted",
                    kind.noun()
                )));
            }
            let response = json!({
                id_member: id,
                "status": ToolStatus::Deleting,
                "lastUpdatedAt": Timestamp::now(),
            });
            let writes = vec![
                delete(kind.collection(), &id, Some(current.revision)),
                delete_children(collection::TAGS, &id),
            ];
            if let Some(answer) = self.commit_retryable(&claim, writes, response).await? {
                return Ok(answer);
            }
        }
    }

    pub(crate) async fn create_browser(
        &self,
        request: control::CreateBrowserRequest,
    ) -> Result<control::CreateBrowserResponse, Error> {
        output(
            self.create_tool(ToolKind::Browser, to_object(&request))
                .await?,
        )
    }

    pub(crate) async fn get_browser(
        &self,
        request: control::GetBrowserRequest,
    ) -> Result<control::GetBrowserResponse, Error> {
        output(
            self.get_tool(ToolKind::Browser, &request.browser_id)
                .await?,
        )
    }

    pub(crate) async fn list_browsers(
        &self,
        request: control::ListBrowsersRequest,
    ) -> Result<control::ListBrowsersResponse, Error> {
        output(
            self.list_tools(ToolKind::Browser, to_object(&request))
                .await?,
        )
    }

    pub(crate) async fn delete_browser(
        &self,
        request: control::DeleteBrowserRequest,
    ) -> Result<control::DeleteBrowserResponse, Error> {
        output(
            self.delete_tool(ToolKind::Browser, to_object(&request))
                .await?,
        )
    }

    pub(crate) async fn create_code_interpreter(
        &self,
        request: control::CreateCodeInterpreterRequest,
    ) -> Result<control::CreateCodeInterpreterResponse, Error> {
        output(
            self.create_tool(ToolKind::CodeInterpreter, to_object(&request))
                .await?,
        )
    }

    pub(crate) async fn get_code_interpreter(
        &self,
        request: control::GetCodeInterpreterRequest,
    ) -> Result<control::GetCodeInterpreterResponse, Error> {
        output(
            self.get_tool(ToolKind::CodeInterpreter, &request.code_interpreter_id)
                .await?,
        )
    }

    pub(crate) async fn list_code_interpreters(
        &self,
        request: control::ListCodeInterpretersRequest,
    ) -> Result<control::ListCodeInterpretersResponse, Error> {
        output(
            self.list_tools(ToolKind::CodeInterpreter, to_object(&request))
                .await?,
        )
    }

    pub(crate) async fn delete_code_interpreter(
        &self,
        request: control::DeleteCodeInterpreterRequest,
    ) -> Result<control::DeleteCodeInterpreterResponse, Error> {
        output(
            self.delete_tool(ToolKind::CodeInterpreter, to_object(&request))
                .await?,
        )
    }

    // ----- browser profiles -----

    pub(crate) async fn create_browser_profile(
        &self,
        request: control::CreateBrowserProfileRequest,
    ) -> Result<control::CreateBrowserProfileResponse, Error> {
        let mut request = to_object(&request);
        let claim = claim_or_replay!(self, "CreateBrowserProfile", "", &request);
        let name = take_string(&mut request, "name").unwrap_or_default();
        let id = new_resource_id(&name);
        let now = Timestamp::now();
        let record = BrowserProfileRecord {
            id: id.clone(),
            name: name.clone(),
            arn: self.partition().browser_profile_arn(&id),
            description: get_str(&request, "description").map(str::to_owned),
            created_at: now,
            last_updated_at: now,
            last_saved_at: None,
            last_saved_browser_id: None,
            last_saved_browser_session_id: None,
            saved_state: None,
        };
        // Profiles are plain records: they are READY as soon as they exist.
        let response: control::CreateBrowserProfileResponse = output(json!({
            "createdAt": now,
            "profileArn": record.arn,
            "profileId": id,
            "status": "READY",
        }))?;
        let mut writes = vec![insert(
            collection::BROWSER_PROFILE,
            &id,
            None,
            Some(&name),
            &record,
        )];
        if let Some(tags) = tags_record(request.remove("tags")) {
            writes.push(insert(
                collection::TAGS,
                &record.arn,
                Some(&id),
                None,
                &tags,
            ));
        }
        self.commit_once(claim, writes, response, |e| match e {
            hangar_store::StoreError::NameTaken { .. } => Some(Error::Conflict(format!(
                "A browser profile named {name} already exists"
            ))),
            _ => None,
        })
        .await
    }

    pub async fn browser_profile(&self, id: &str) -> Result<BrowserProfileRecord, Error> {
        load::<BrowserProfileRecord>(self.store(), collection::BROWSER_PROFILE, id)
            .await?
            .map(|s| s.doc)
            .ok_or_else(|| Error::NotFound(format!("Browser profile not found: {id}")))
    }

    /// Records a SaveBrowserSessionProfile: the captured state replaces the profile's whole
    /// previous state (a save overwrites, it does not merge). Returns the save time.
    pub async fn save_browser_profile(
        &self,
        id: &str,
        browser_id: &str,
        session_id: &str,
        state: Value,
    ) -> Result<Timestamp, Error> {
        loop {
            let current =
                load::<BrowserProfileRecord>(self.store(), collection::BROWSER_PROFILE, id)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("Browser profile not found: {id}")))?;
            let now = Timestamp::now();
            let mut doc = current.doc;
            doc.last_saved_at = Some(now);
            doc.last_updated_at = now;
            doc.last_saved_browser_id = Some(browser_id.to_owned());
            doc.last_saved_browser_session_id = Some(session_id.to_owned());
            doc.saved_state = Some(state.clone());
            let write = update(collection::BROWSER_PROFILE, id, current.revision, &doc);
            match self.store().commit(vec![write]).await {
                Ok(_) => return Ok(now),
                // A concurrent save or delete: read again.
                Err(hangar_store::StoreError::RevisionMismatch { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(crate) async fn get_browser_profile(
        &self,
        request: control::GetBrowserProfileRequest,
    ) -> Result<control::GetBrowserProfileResponse, Error> {
        output(profile_json(
            self.browser_profile(&request.profile_id).await?,
        ))
    }

    pub(crate) async fn list_browser_profiles(
        &self,
        request: control::ListBrowserProfilesRequest,
    ) -> Result<control::ListBrowserProfilesResponse, Error> {
        let request = to_object(&request);
        let name = get_str(&request, "name").map(str::to_owned);
        let listing = format!("profiles/{}", name.as_deref().unwrap_or(""));
        let limit = pagination::page_size(
            request
                .get("maxResults")
                .and_then(Value::as_i64)
                .map(|n| n as i32),
        );
        let after = pagination::decode(&listing, get_str(&request, "nextToken"))?;
        let matching = stored::filtered_page(
            self.store(),
            collection::BROWSER_PROFILE,
            after,
            limit,
            |p: &BrowserProfileRecord| name.as_ref().is_none_or(|n| &p.name == n),
        )
        .await?;
        let (items, next) = split_page(matching, limit, &listing);
        let items: Vec<Value> = items.into_iter().map(|p| profile_json(p.doc)).collect();
        output(json!({"profileSummaries": items, "nextToken": next}))
    }

    pub(crate) async fn delete_browser_profile(
        &self,
        request: control::DeleteBrowserProfileRequest,
    ) -> Result<control::DeleteBrowserProfileResponse, Error> {
        let request = to_object(&request);
        let id = get_str(&request, "profileId")
            .unwrap_or_default()
            .to_owned();
        let claim = claim_or_replay!(self, "DeleteBrowserProfile", &id, &request);
        loop {
            let current =
                load::<BrowserProfileRecord>(self.store(), collection::BROWSER_PROFILE, &id)
                    .await?
                    .ok_or_else(|| Error::NotFound(format!("Browser profile not found: {id}")))?;
            // DeleteBrowserProfile answers 200: the profile is gone when it returns.
            let response: control::DeleteBrowserProfileResponse = output(json!({
                "profileId": id,
                "profileArn": current.doc.arn,
                "status": "DELETED",
                "lastUpdatedAt": Timestamp::now(),
                "lastSavedAt": current.doc.last_saved_at,
            }))?;
            let writes = vec![
                delete(collection::BROWSER_PROFILE, &id, Some(current.revision)),
                delete_children(collection::TAGS, &id),
            ];
            if let Some(answer) = self.commit_retryable(&claim, writes, response).await? {
                return Ok(answer);
            }
        }
    }
}

fn id_members(kind: ToolKind) -> (&'static str, &'static str) {
    match kind {
        ToolKind::Browser => ("browserId", "browserArn"),
        ToolKind::CodeInterpreter => ("codeInterpreterId", "codeInterpreterArn"),
    }
}

fn capitalized(kind: ToolKind) -> &'static str {
    match kind {
        ToolKind::Browser => "Browser",
        ToolKind::CodeInterpreter => "Code interpreter",
    }
}

fn profile_json(p: BrowserProfileRecord) -> Value {
    json!({
        "profileId": p.id,
        "profileArn": p.arn,
        "name": p.name,
        "description": p.description,
        "status": "READY",
        "createdAt": p.created_at,
        "lastUpdatedAt": p.last_updated_at,
        "lastSavedAt": p.last_saved_at,
        "lastSavedBrowserId": p.last_saved_browser_id,
        "lastSavedBrowserSessionId": p.last_saved_browser_session_id,
    })
}
