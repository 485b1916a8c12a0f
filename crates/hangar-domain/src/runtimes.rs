//! Agent runtimes, their immutable versions and their endpoints.
//!
//! Every change to a runtime's family (its versions and endpoints) also rewrites the runtime
//! record against the revision it read, so concurrent changes to one runtime are serialized by
//! optimistic concurrency: a writer that lost the race re-reads and tries again.

use hangar_model::{control, Timestamp};
use serde_json::{json, Value};
use tracing::Instrument;

use crate::arn::new_resource_id;
use crate::json::{get_str, output, take_string, to_object};
use crate::lifecycle::Lifecycle;
use crate::pagination;
use crate::records::{
    collection, EndpointRecord, RuntimeRecord, RuntimeVersionRecord, Status, TagsRecord,
};
use crate::stored::{self, delete, delete_children, insert, is_race, load, update, Stored};
use crate::{ControlPlane, Error};

pub const DEFAULT_ENDPOINT: &str = "DEFAULT";
/// AgentCore's quota of custom endpoints per runtime.
const MAX_CUSTOM_ENDPOINTS: usize = 10;

fn version_key(runtime_id: &str, version: u32) -> String {
    format!("{runtime_id}/{version}")
}

fn endpoint_key(runtime_id: &str, name: &str) -> String {
    format!("{runtime_id}/{name}")
}

fn parse_version(v: &str) -> Result<u32, Error> {
    v.parse()
        .map_err(|_| Error::invalid_field("agentRuntimeVersion", "Member must be a version number"))
}

fn runtime_not_found(id: &str) -> Error {
    Error::NotFound(format!("AgentRuntime not found: {id}"))
}

fn version_not_found(id: &str, version: u32) -> Error {
    Error::NotFound(format!("Version {version} of AgentRuntime {id} not found"))
}

fn endpoint_not_found(id: &str, name: &str) -> Error {
    Error::NotFound(format!("Endpoint {name} of AgentRuntime {id} not found"))
}

impl ControlPlane {
    async fn load_runtime(&self, id: &str) -> Result<Stored<RuntimeRecord>, Error> {
        load(self.store(), collection::RUNTIME, id)
            .await?
            .ok_or_else(|| runtime_not_found(id))
    }

    async fn load_version(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<Stored<RuntimeVersionRecord>>, Error> {
        load(
            self.store(),
            collection::RUNTIME_VERSION,
            &version_key(id, version),
        )
        .await
    }

    /// The version record a runtime's configuration is read from: `version`, or the latest.
    pub async fn runtime_version(
        &self,
        id: &str,
        version: Option<u32>,
    ) -> Result<RuntimeVersionRecord, Error> {
        let version = match version {
            Some(v) => v,
            None => self.load_runtime(id).await?.doc.latest_version,
        };
        Ok(self
            .load_version(id, version)
            .await?
            .ok_or_else(|| version_not_found(id, version))?
            .doc)
    }

    /// One page of a listing, and the token for the next.
    async fn page<T: serde::de::DeserializeOwned>(
        &self,
        collection: &str,
        parent: Option<&str>,
        listing: &str,
        max_results: Option<i32>,
        next_token: Option<&str>,
    ) -> Result<(Vec<Stored<T>>, Option<String>), Error> {
        let limit = pagination::page_size(max_results);
        let after = pagination::decode(listing, next_token)?;
        let page = stored::list::<T>(self.store(), collection, parent, after, limit + 1).await?;
        Ok(split_page(page, limit, listing))
    }

    async fn endpoints_of(&self, runtime_id: &str) -> Result<Vec<Stored<EndpointRecord>>, Error> {
        // Bounded by the endpoint quota, so one page holds them all.
        stored::list(
            self.store(),
            collection::ENDPOINT,
            Some(runtime_id),
            None,
            MAX_CUSTOM_ENDPOINTS + 2,
        )
        .await
    }

    pub(crate) async fn create_agent_runtime(
        &self,
        request: control::CreateAgentRuntimeRequest,
    ) -> Result<control::CreateAgentRuntimeResponse, Error> {
        let mut config = to_object(&request);
        let claim = claim_or_replay!(self, "CreateAgentRuntime", "", &config);
        config.remove("clientToken");
        let name = take_string(&mut config, "agentRuntimeName").unwrap_or_default();
        let tags = config.remove("tags");
        Lifecycle::from_config(&config)?;

        let now = Timestamp::now();
        let id = new_resource_id(&name);
        let p = self.partition();
        let runtime = RuntimeRecord {
            id: id.clone(),
            name: name.clone(),
            arn: p.runtime_arn(&id),
            workload_identity_arn: p.workload_identity_arn(&id),
            latest_version: 1,
            status: Status::Creating,
            failure_reason: None,
            description: get_str(&config, "description").map(str::to_owned),
            created_at: now,
            last_updated_at: now,
        };
        let version = RuntimeVersionRecord {
            runtime_id: id.clone(),
            runtime_name: name.clone(),
            runtime_arn: runtime.arn.clone(),
            version: 1,
            status: Status::Creating,
            failure_reason: None,
            created_at: now,
            last_updated_at: now,
            config,
        };
        let default_endpoint = EndpointRecord {
            runtime_id: id.clone(),
            name: DEFAULT_ENDPOINT.into(),
            id: new_resource_id(DEFAULT_ENDPOINT),
            arn: p.endpoint_arn(&id, DEFAULT_ENDPOINT),
            runtime_arn: runtime.arn.clone(),
            status: Status::Creating,
            live_version: None,
            target_version: 1,
            description: None,
            failure_reason: None,
            created_at: now,
            last_updated_at: now,
        };
        let mut runtime = runtime;
        let mut version = version;
        let mut default_endpoint = default_endpoint;
        let immediate = self.provisioner().immediate_outcome(&version);
        if let Some(outcome) = &immediate {
            settle_new_version(
                &mut runtime,
                &mut version,
                &mut default_endpoint,
                outcome,
                now,
            );
        }
        let response: control::CreateAgentRuntimeResponse = output(json!({
            "agentRuntimeArn": runtime.arn,
            "agentRuntimeId": id,
            "agentRuntimeVersion": "1",
            "createdAt": now,
            "status": Status::Creating,
            "workloadIdentityDetails": {"workloadIdentityArn": runtime.workload_identity_arn},
        }))?;

        let mut writes = vec![
            insert(collection::RUNTIME, &id, None, Some(&name), &runtime),
            insert(
                collection::RUNTIME_VERSION,
                &version_key(&id, 1),
                Some(&id),
                None,
                &version,
            ),
            insert(
                collection::ENDPOINT,
                &endpoint_key(&id, DEFAULT_ENDPOINT),
                Some(&id),
                None,
                &default_endpoint,
            ),
        ];
        if let Some(tags) = tags_record(tags) {
            writes.push(insert(
                collection::TAGS,
                &runtime.arn,
                Some(&id),
                None,
                &tags,
            ));
        }
        let answer = self
            .commit_once(claim, writes, response, |e| match e {
                hangar_store::StoreError::NameTaken { .. } => Some(Error::Conflict(format!(
                    "An agent runtime named {name} already exists"
                ))),
                _ => None,
            })
            .await?;
        if immediate.is_none() {
            self.spawn_provisioning(version);
        }
        Ok(answer)
    }

    pub(crate) async fn update_agent_runtime(
        &self,
        request: control::UpdateAgentRuntimeRequest,
    ) -> Result<control::UpdateAgentRuntimeResponse, Error> {
        let mut config = to_object(&request);
        let id = take_string(&mut config, "agentRuntimeId").unwrap_or_default();
        let claim = claim_or_replay!(self, "UpdateAgentRuntime", &id, &config);
        config.remove("clientToken");
        Lifecycle::from_config(&config)?;

        loop {
            let current = self.load_runtime(&id).await?;
            let mut runtime = current.doc;
            let now = Timestamp::now();
            let number = runtime.latest_version + 1;
            runtime.latest_version = number;
            runtime.status = Status::Updating;
            runtime.failure_reason = None;
            runtime.description = get_str(&config, "description").map(str::to_owned);
            runtime.last_updated_at = now;
            let version = RuntimeVersionRecord {
                runtime_id: id.clone(),
                runtime_name: runtime.name.clone(),
                runtime_arn: runtime.arn.clone(),
                version: number,
                status: Status::Updating,
                failure_reason: None,
                created_at: now,
                last_updated_at: now,
                config: config.clone(),
            };
            let default_key = endpoint_key(&id, DEFAULT_ENDPOINT);
            let Some(default) =
                load::<EndpointRecord>(self.store(), collection::ENDPOINT, &default_key).await?
            else {
                // Deleted between the two reads: say so, as a fresh read of the runtime does.
                self.load_runtime(&id).await?;
                return Err(Error::Internal(format!(
                    "runtime {id} has no DEFAULT endpoint"
                )));
            };
            let mut default_endpoint = default.doc;
            default_endpoint.target_version = number;
            default_endpoint.status = Status::Updating;
            default_endpoint.failure_reason = None;
            default_endpoint.last_updated_at = now;
            let mut version = version;
            let immediate = self.provisioner().immediate_outcome(&version);
            if let Some(outcome) = &immediate {
                settle_new_version(
                    &mut runtime,
                    &mut version,
                    &mut default_endpoint,
                    outcome,
                    now,
                );
            }

            let response: control::UpdateAgentRuntimeResponse = output(json!({
                "agentRuntimeArn": runtime.arn,
                "agentRuntimeId": id,
                "agentRuntimeVersion": number.to_string(),
                "createdAt": runtime.created_at,
                "lastUpdatedAt": now,
                "status": Status::Updating,
                "workloadIdentityDetails": {"workloadIdentityArn": runtime.workload_identity_arn},
            }))?;
            let writes = vec![
                update(collection::RUNTIME, &id, current.revision, &runtime),
                insert(
                    collection::RUNTIME_VERSION,
                    &version_key(&id, number),
                    Some(&id),
                    None,
                    &version,
                ),
                update(
                    collection::ENDPOINT,
                    &default_key,
                    default.revision,
                    &default_endpoint,
                ),
            ];
            match self.commit_retryable(&claim, writes, response).await? {
                Some(answer) => {
                    if immediate.is_none() {
                        self.spawn_provisioning(version);
                    }
                    return Ok(answer);
                }
                None => continue,
            }
        }
    }

    pub(crate) async fn get_agent_runtime(
        &self,
        request: control::GetAgentRuntimeRequest,
    ) -> Result<control::GetAgentRuntimeResponse, Error> {
        let id = request.agent_runtime_id;
        let runtime = self.load_runtime(&id).await?.doc;
        let number = match request.agent_runtime_version.as_deref() {
            Some(v) => parse_version(v)?,
            None => runtime.latest_version,
        };
        let version = self
            .load_version(&id, number)
            .await?
            .ok_or_else(|| version_not_found(&id, number))?
            .doc;
        let lifecycle = Lifecycle::from_config(&version.config)
            .map(Lifecycle::to_json)
            .unwrap_or(Value::Null);
        let mut answer = version.config;
        answer.insert("lifecycleConfiguration".into(), lifecycle);
        answer.insert("agentRuntimeArn".into(), json!(runtime.arn));
        answer.insert("agentRuntimeId".into(), json!(id));
        answer.insert("agentRuntimeName".into(), json!(runtime.name));
        answer.insert("agentRuntimeVersion".into(), json!(number.to_string()));
        answer.insert("createdAt".into(), json!(runtime.created_at));
        answer.insert("lastUpdatedAt".into(), json!(version.last_updated_at));
        answer.insert("status".into(), json!(version.status));
        if let Some(reason) = version.failure_reason {
            answer.insert("failureReason".into(), json!(reason));
        }
        answer.insert(
            "workloadIdentityDetails".into(),
            json!({"workloadIdentityArn": runtime.workload_identity_arn}),
        );
        output(Value::Object(answer))
    }

    pub(crate) async fn delete_agent_runtime(
        &self,
        request: control::DeleteAgentRuntimeRequest,
    ) -> Result<control::DeleteAgentRuntimeResponse, Error> {
        let request = to_object(&request);
        let id = get_str(&request, "agentRuntimeId")
            .unwrap_or_default()
            .to_owned();
        let claim = claim_or_replay!(self, "DeleteAgentRuntime", &id, &request);
        let version = get_str(&request, "agentRuntimeVersion")
            .map(parse_version)
            .transpose()?;
        loop {
            let current = self.load_runtime(&id).await?;
            let (writes, response) = match version {
                None => {
                    let response: control::DeleteAgentRuntimeResponse = output(json!({
                        "agentRuntimeId": id,
                        "status": Status::Deleting,
                    }))?;
                    let writes = vec![
                        delete(collection::RUNTIME, &id, Some(current.revision)),
                        delete_children(collection::RUNTIME_VERSION, &id),
                        delete_children(collection::ENDPOINT, &id),
                        delete_children(collection::TAGS, &id),
                    ];
                    (writes, response)
                }
                Some(number) => {
                    let Some(target) = self.load_version(&id, number).await? else {
                        return Err(version_not_found(&id, number));
                    };
                    if let Some(user) = self.endpoints_of(&id).await?.into_iter().find(|e| {
                        e.doc.target_version == number || e.doc.live_version == Some(number)
                    }) {
                        return Err(Error::Conflict(format!(
                            "Version {number} of AgentRuntime {id} is in use by endpoint {}",
                            user.doc.name
                        )));
                    }
                    let mut runtime = current.doc;
                    runtime.last_updated_at = Timestamp::now();
                    let response: control::DeleteAgentRuntimeResponse = output(json!({
                        "agentRuntimeId": id,
                        "agentRuntimeVersion": number.to_string(),
                        "status": Status::Deleting,
                    }))?;
                    let writes = vec![
                        update(collection::RUNTIME, &id, current.revision, &runtime),
                        delete(
                            collection::RUNTIME_VERSION,
                            &version_key(&id, number),
                            Some(target.revision),
                        ),
                    ];
                    (writes, response)
                }
            };
            if let Some(answer) = self.commit_retryable(&claim, writes, response).await? {
                return Ok(answer);
            }
        }
    }

    pub(crate) async fn list_agent_runtimes(
        &self,
        request: control::ListAgentRuntimesRequest,
    ) -> Result<control::ListAgentRuntimesResponse, Error> {
        let (items, next) = self
            .page::<RuntimeRecord>(
                collection::RUNTIME,
                None,
                "runtimes",
                request.max_results,
                request.next_token.as_deref(),
            )
            .await?;
        let items: Vec<Value> = items
            .into_iter()
            .map(|r| {
                let r = r.doc;
                json!({
                    "agentRuntimeArn": r.arn,
                    "agentRuntimeId": r.id,
                    "agentRuntimeName": r.name,
                    "agentRuntimeVersion": r.latest_version.to_string(),
                    "description": r.description.unwrap_or_default(),
                    "lastUpdatedAt": r.last_updated_at,
                    "status": r.status,
                })
            })
            .collect();
        output(json!({"agentRuntimes": items, "nextToken": next}))
    }

    pub(crate) async fn list_agent_runtime_versions(
        &self,
        request: control::ListAgentRuntimeVersionsRequest,
    ) -> Result<control::ListAgentRuntimeVersionsResponse, Error> {
        let id = request.agent_runtime_id;
        self.load_runtime(&id).await?;
        let listing = format!("versions/{id}");
        let (items, next) = self
            .page::<RuntimeVersionRecord>(
                collection::RUNTIME_VERSION,
                Some(&id),
                &listing,
                request.max_results,
                request.next_token.as_deref(),
            )
            .await?;
        let items: Vec<Value> = items
            .into_iter()
            .map(|v| {
                let v = v.doc;
                json!({
                    "agentRuntimeArn": v.runtime_arn,
                    "agentRuntimeId": v.runtime_id,
                    "agentRuntimeName": v.runtime_name,
                    "agentRuntimeVersion": v.version.to_string(),
                    "description": get_str(&v.config, "description").unwrap_or_default(),
                    "lastUpdatedAt": v.last_updated_at,
                    "status": v.status,
                })
            })
            .collect();
        output(json!({"agentRuntimes": items, "nextToken": next}))
    }

    // ----- endpoints -----

    pub(crate) async fn create_agent_runtime_endpoint(
        &self,
        request: control::CreateAgentRuntimeEndpointRequest,
    ) -> Result<control::CreateAgentRuntimeEndpointResponse, Error> {
        let mut request = to_object(&request);
        let id = take_string(&mut request, "agentRuntimeId").unwrap_or_default();
        let claim = claim_or_replay!(self, "CreateAgentRuntimeEndpoint", &id, &request);
        let name = get_str(&request, "name").unwrap_or_default().to_owned();
        if name == DEFAULT_ENDPOINT {
            return Err(Error::Conflict(
                "The DEFAULT endpoint is created with the runtime and cannot be created".into(),
            ));
        }
        let requested = get_str(&request, "agentRuntimeVersion")
            .map(parse_version)
            .transpose()?;
        loop {
            let current = self.load_runtime(&id).await?;
            let mut runtime = current.doc;
            let target = requested.unwrap_or(runtime.latest_version);
            if self.load_version(&id, target).await?.is_none() {
                return Err(version_not_found(&id, target));
            }
            let endpoints = self.endpoints_of(&id).await?;
            if endpoints.iter().any(|e| e.doc.name == name) {
                if let Some(answer) = self.answered_meanwhile(&claim).await? {
                    return Ok(answer);
                }
                return Err(Error::Conflict(format!(
                    "An endpoint named {name} already exists for AgentRuntime {id}"
                )));
            }
            if endpoints.len() > MAX_CUSTOM_ENDPOINTS {
                return Err(Error::QuotaExceeded(format!(
                    "AgentRuntime {id} already has {MAX_CUSTOM_ENDPOINTS} custom endpoints"
                )));
            }
            let now = Timestamp::now();
            runtime.last_updated_at = now;
            let endpoint = EndpointRecord {
                runtime_id: id.clone(),
                name: name.clone(),
                id: new_resource_id(&name),
                arn: self.partition().endpoint_arn(&id, &name),
                runtime_arn: runtime.arn.clone(),
                status: Status::Creating,
                live_version: None,
                target_version: target,
                description: get_str(&request, "description").map(str::to_owned),
                failure_reason: None,
                created_at: now,
                last_updated_at: now,
            };
            let response: control::CreateAgentRuntimeEndpointResponse = output(json!({
                "agentRuntimeArn": runtime.arn,
                "agentRuntimeEndpointArn": endpoint.arn,
                "agentRuntimeId": id,
                "createdAt": now,
                "endpointName": name,
                "status": Status::Creating,
                "targetVersion": target.to_string(),
            }))?;
            let mut writes = vec![
                update(collection::RUNTIME, &id, current.revision, &runtime),
                insert(
                    collection::ENDPOINT,
                    &endpoint_key(&id, &name),
                    Some(&id),
                    None,
                    &endpoint,
                ),
            ];
            if let Some(tags) = tags_record(request.get("tags").cloned()) {
                writes.push(insert(
                    collection::TAGS,
                    &endpoint.arn,
                    Some(&id),
                    None,
                    &tags,
                ));
            }
            if let Some(answer) = self.commit_retryable(&claim, writes, response).await? {
                self.spawn_endpoint_settling(id, name);
                return Ok(answer);
            }
        }
    }

    pub(crate) async fn update_agent_runtime_endpoint(
        &self,
        request: control::UpdateAgentRuntimeEndpointRequest,
    ) -> Result<control::UpdateAgentRuntimeEndpointResponse, Error> {
        let mut request = to_object(&request);
        let id = take_string(&mut request, "agentRuntimeId").unwrap_or_default();
        let name = take_string(&mut request, "endpointName").unwrap_or_default();
        let claim = claim_or_replay!(
            self,
            "UpdateAgentRuntimeEndpoint",
            &endpoint_key(&id, &name),
            &request
        );
        if name == DEFAULT_ENDPOINT {
            return Err(Error::Conflict(
                "The DEFAULT endpoint always follows the latest version and cannot be updated"
                    .into(),
            ));
        }
        let requested = get_str(&request, "agentRuntimeVersion")
            .map(parse_version)
            .transpose()?;
        loop {
            let current = self.load_runtime(&id).await?;
            let mut runtime = current.doc;
            let key = endpoint_key(&id, &name);
            let Some(existing) =
                load::<EndpointRecord>(self.store(), collection::ENDPOINT, &key).await?
            else {
                return Err(endpoint_not_found(&id, &name));
            };
            let mut endpoint = existing.doc;
            let target = requested.unwrap_or(endpoint.target_version);
            if self.load_version(&id, target).await?.is_none() {
                return Err(version_not_found(&id, target));
            }
            let now = Timestamp::now();
            runtime.last_updated_at = now;
            endpoint.target_version = target;
            endpoint.status = Status::Updating;
            endpoint.failure_reason = None;
            if let Some(description) = get_str(&request, "description") {
                endpoint.description = Some(description.to_owned());
            }
            endpoint.last_updated_at = now;
            let response: control::UpdateAgentRuntimeEndpointResponse = output(json!({
                "agentRuntimeArn": runtime.arn,
                "agentRuntimeEndpointArn": endpoint.arn,
                "createdAt": endpoint.created_at,
                "lastUpdatedAt": now,
                "liveVersion": endpoint.live_version.map(|v| v.to_string()),
                "status": Status::Updating,
                "targetVersion": target.to_string(),
            }))?;
            let writes = vec![
                update(collection::RUNTIME, &id, current.revision, &runtime),
                update(collection::ENDPOINT, &key, existing.revision, &endpoint),
            ];
            if let Some(answer) = self.commit_retryable(&claim, writes, response).await? {
                self.spawn_endpoint_settling(id, name);
                return Ok(answer);
            }
        }
    }

    pub(crate) async fn get_agent_runtime_endpoint(
        &self,
        request: control::GetAgentRuntimeEndpointRequest,
    ) -> Result<control::GetAgentRuntimeEndpointResponse, Error> {
        let id = request.agent_runtime_id;
        let name = request.endpoint_name;
        let endpoint = load::<EndpointRecord>(
            self.store(),
            collection::ENDPOINT,
            &endpoint_key(&id, &name),
        )
        .await?
        .ok_or_else(|| endpoint_not_found(&id, &name))?
        .doc;
        output(endpoint_json(endpoint))
    }

    pub(crate) async fn delete_agent_runtime_endpoint(
        &self,
        request: control::DeleteAgentRuntimeEndpointRequest,
    ) -> Result<control::DeleteAgentRuntimeEndpointResponse, Error> {
        let request = to_object(&request);
        let id = get_str(&request, "agentRuntimeId")
            .unwrap_or_default()
            .to_owned();
        let name = get_str(&request, "endpointName")
            .unwrap_or_default()
            .to_owned();
        let key = endpoint_key(&id, &name);
        let claim = claim_or_replay!(self, "DeleteAgentRuntimeEndpoint", &key, &request);
        if name == DEFAULT_ENDPOINT {
            return Err(Error::Conflict(
                "The DEFAULT endpoint cannot be deleted; it is deleted with its runtime".into(),
            ));
        }
        loop {
            let current = self.load_runtime(&id).await?;
            let Some(existing) =
                load::<EndpointRecord>(self.store(), collection::ENDPOINT, &key).await?
            else {
                return Err(endpoint_not_found(&id, &name));
            };
            let mut runtime = current.doc;
            runtime.last_updated_at = Timestamp::now();
            let response: control::DeleteAgentRuntimeEndpointResponse = output(json!({
                "agentRuntimeId": id,
                "endpointName": name,
                "status": Status::Deleting,
            }))?;
            let writes = vec![
                update(collection::RUNTIME, &id, current.revision, &runtime),
                delete(collection::ENDPOINT, &key, Some(existing.revision)),
                delete(collection::TAGS, &existing.doc.arn, None),
            ];
            if let Some(answer) = self.commit_retryable(&claim, writes, response).await? {
                return Ok(answer);
            }
        }
    }

    pub(crate) async fn list_agent_runtime_endpoints(
        &self,
        request: control::ListAgentRuntimeEndpointsRequest,
    ) -> Result<control::ListAgentRuntimeEndpointsResponse, Error> {
        let id = request.agent_runtime_id;
        self.load_runtime(&id).await?;
        let listing = format!("endpoints/{id}");
        let (items, next) = self
            .page::<EndpointRecord>(
                collection::ENDPOINT,
                Some(&id),
                &listing,
                request.max_results,
                request.next_token.as_deref(),
            )
            .await?;
        let items: Vec<Value> = items.into_iter().map(|e| endpoint_json(e.doc)).collect();
        output(json!({"runtimeEndpoints": items, "nextToken": next}))
    }

    // ----- provisioning and settling -----

    /// Runs the provisioner for a pending version in the background and records the outcome.
    pub(crate) fn spawn_provisioning(&self, version: RuntimeVersionRecord) {
        let this = self.clone();
        let span = tracing::info_span!("provision", runtime_id = %version.runtime_id, version = version.version);
        tokio::spawn(
            async move {
                let outcome = this.provisioner().prepare_runtime_version(&version).await;
                let result = this
                    .complete_version(
                        &version.runtime_id,
                        version.version,
                        outcome.map_err(|r| r.0),
                    )
                    .await;
                if let Err(e) = result {
                    tracing::error!(error = %e, "could not record the provisioning outcome");
                }
            }
            .instrument(span),
        );
    }

    /// Moves a pending version to READY or *_FAILED, and with it the runtime (when it is the
    /// latest version) and every endpoint moving to it.
    async fn complete_version(
        &self,
        id: &str,
        number: u32,
        outcome: Result<(), String>,
    ) -> Result<(), Error> {
        loop {
            let Some(current) =
                load::<RuntimeRecord>(self.store(), collection::RUNTIME, id).await?
            else {
                return Ok(()); // deleted meanwhile
            };
            let Some(stored_version) = self.load_version(id, number).await? else {
                return Ok(());
            };
            let mut version = stored_version.doc;
            if !version.status.is_pending() {
                return Ok(());
            }
            let now = Timestamp::now();
            let ok = outcome.is_ok();
            let reason = outcome.as_ref().err().cloned();
            if let Some(reason) = &reason {
                tracing::info!(reason, "runtime version failed to provision");
            }
            version.status = version.status.settled(ok);
            version.failure_reason = reason.clone();
            version.last_updated_at = now;
            let mut runtime = current.doc;
            if runtime.latest_version == number {
                runtime.status = version.status;
                runtime.failure_reason = reason.clone();
            }
            let mut writes = vec![
                update(collection::RUNTIME, id, current.revision, &runtime),
                update(
                    collection::RUNTIME_VERSION,
                    &version_key(id, number),
                    stored_version.revision,
                    &version,
                ),
            ];
            for endpoint in self.endpoints_of(id).await? {
                if endpoint.doc.target_version == number && endpoint.doc.status.is_pending() {
                    let settled = settle_endpoint(endpoint.doc, ok, reason.clone(), now);
                    writes.push(update(
                        collection::ENDPOINT,
                        &endpoint_key(id, &settled.name),
                        endpoint.revision,
                        &settled,
                    ));
                }
            }
            match self.store().commit(writes).await {
                Ok(_) => return Ok(()),
                Err(e) if is_race(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn spawn_endpoint_settling(&self, runtime_id: String, name: String) {
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.settle_endpoint_if_ready(&runtime_id, &name).await {
                tracing::error!(runtime_id, endpoint = name, error = %e, "could not settle endpoint");
            }
        });
    }

    /// Settles a pending endpoint whose target version has already been provisioned. (One whose
    /// target is still pending is settled by `complete_version`: both rewrite the runtime
    /// record, so whichever commits second sees the other's work.)
    pub(crate) async fn settle_endpoint_if_ready(&self, id: &str, name: &str) -> Result<(), Error> {
        loop {
            let Some(current) =
                load::<RuntimeRecord>(self.store(), collection::RUNTIME, id).await?
            else {
                return Ok(());
            };
            let key = endpoint_key(id, name);
            let Some(endpoint) =
                load::<EndpointRecord>(self.store(), collection::ENDPOINT, &key).await?
            else {
                return Ok(());
            };
            if !endpoint.doc.status.is_pending() {
                return Ok(());
            }
            let Some(target) = self.load_version(id, endpoint.doc.target_version).await? else {
                return Ok(());
            };
            if target.doc.status.is_pending() {
                return Ok(());
            }
            let now = Timestamp::now();
            let ok = target.doc.status == Status::Ready;
            let settled = settle_endpoint(endpoint.doc, ok, target.doc.failure_reason, now);
            let mut runtime = current.doc;
            runtime.last_updated_at = now;
            let writes = vec![
                update(collection::RUNTIME, id, current.revision, &runtime),
                update(collection::ENDPOINT, &key, endpoint.revision, &settled),
            ];
            match self.store().commit(writes).await {
                Ok(_) => return Ok(()),
                Err(e) if is_race(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// After a restart: resume provisioning of versions a crash left pending, and settle
    /// endpoints whose target is ready.
    pub(crate) async fn recover_runtimes(&self) -> Result<(), Error> {
        let mut after = None;
        loop {
            let page =
                stored::list::<RuntimeRecord>(self.store(), collection::RUNTIME, None, after, 100)
                    .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = Some(last.seq);
            for runtime in page {
                let id = runtime.doc.id;
                let mut version_after = None;
                loop {
                    let versions = stored::list::<RuntimeVersionRecord>(
                        self.store(),
                        collection::RUNTIME_VERSION,
                        Some(&id),
                        version_after,
                        100,
                    )
                    .await?;
                    let Some(last) = versions.last() else { break };
                    version_after = Some(last.seq);
                    for v in versions {
                        if v.doc.status.is_pending() {
                            tracing::info!(runtime_id = %id, version = v.doc.version, "resuming provisioning");
                            self.spawn_provisioning(v.doc);
                        }
                    }
                }
                for endpoint in self.endpoints_of(&id).await? {
                    if endpoint.doc.status.is_pending() {
                        self.spawn_endpoint_settling(id.clone(), endpoint.doc.name);
                    }
                }
            }
        }
    }
}

/// Records an outcome known before the first commit: the new version, the runtime (whose
/// latest it is) and the DEFAULT endpoint (which targets it) settle together.
fn settle_new_version(
    runtime: &mut RuntimeRecord,
    version: &mut RuntimeVersionRecord,
    default_endpoint: &mut EndpointRecord,
    outcome: &Result<(), crate::FailureReason>,
    now: Timestamp,
) {
    let ok = outcome.is_ok();
    let reason = outcome.as_ref().err().map(|r| r.0.clone());
    version.status = version.status.settled(ok);
    version.failure_reason = reason.clone();
    runtime.status = version.status;
    runtime.failure_reason = reason.clone();
    *default_endpoint = settle_endpoint(default_endpoint.clone(), ok, reason, now);
}

fn settle_endpoint(
    mut endpoint: EndpointRecord,
    ok: bool,
    reason: Option<String>,
    now: Timestamp,
) -> EndpointRecord {
    endpoint.status = endpoint.status.settled(ok);
    if ok {
        endpoint.live_version = Some(endpoint.target_version);
        endpoint.failure_reason = None;
    } else {
        // The endpoint keeps serving its previous live version.
        endpoint.failure_reason = reason;
    }
    endpoint.last_updated_at = now;
    endpoint
}

fn endpoint_json(e: EndpointRecord) -> Value {
    json!({
        "agentRuntimeArn": e.runtime_arn,
        "agentRuntimeEndpointArn": e.arn,
        "createdAt": e.created_at,
        "description": e.description,
        "failureReason": e.failure_reason,
        "id": e.id,
        "lastUpdatedAt": e.last_updated_at,
        "liveVersion": e.live_version.map(|v| v.to_string()),
        "name": e.name,
        "status": e.status,
        "targetVersion": e.target_version.to_string(),
    })
}

/// Splits `limit + 1` fetched records into the page and the token for the next one.
pub(crate) fn split_page<T>(
    mut page: Vec<Stored<T>>,
    limit: usize,
    listing: &str,
) -> (Vec<Stored<T>>, Option<String>) {
    if page.len() > limit {
        page.truncate(limit);
        let last = page.last().map(|r| r.seq).unwrap_or_default();
        (page, Some(pagination::encode(listing, last)))
    } else {
        (page, None)
    }
}

pub(crate) fn tags_record(tags: Option<Value>) -> Option<TagsRecord> {
    let tags: std::collections::BTreeMap<String, String> = serde_json::from_value(tags?).ok()?;
    (!tags.is_empty()).then_some(TagsRecord { tags })
}

impl ControlPlane {
    /// The runtime id an invocation names: its id, or its ARN in this partition.
    pub fn runtime_id_from_ref(
        &self,
        runtime: &str,
        account_id: Option<&str>,
    ) -> Result<String, Error> {
        let not_found = || runtime_not_found(runtime);
        if account_id.is_some_and(|a| a != self.partition().account_id) {
            return Err(not_found());
        }
        if runtime.starts_with("arn:") {
            match self.partition().parse_taggable(runtime) {
                Some(crate::arn::TaggableResource::Runtime(id)) => Ok(id),
                _ => Err(not_found()),
            }
        } else {
            Ok(runtime.to_owned())
        }
    }

    /// What an invocation of `runtime` through endpoint `qualifier` (DEFAULT when absent) runs:
    /// the endpoint and the version live on it.
    pub async fn invocation_target(
        &self,
        runtime_id: &str,
        qualifier: Option<&str>,
    ) -> Result<(EndpointRecord, RuntimeVersionRecord), Error> {
        let name = qualifier.unwrap_or(DEFAULT_ENDPOINT);
        let runtime = self.load_runtime(runtime_id).await?.doc;
        let endpoint = load::<EndpointRecord>(
            self.store(),
            collection::ENDPOINT,
            &endpoint_key(runtime_id, name),
        )
        .await?
        .ok_or_else(|| endpoint_not_found(runtime_id, name))?
        .doc;
        let Some(live) = endpoint.live_version else {
            return Err(
                match (endpoint.status, endpoint.failure_reason.as_deref()) {
                    (status, Some(reason)) if !status.is_pending() => {
                        Error::RuntimeClient(format!(
                    "Endpoint {name} of AgentRuntime {} has no version ready to serve: {reason}",
                    runtime.id
                ))
                    }
                    _ => Error::RetryableConflict(format!(
                        "Endpoint {name} of AgentRuntime {} is still being prepared; retry shortly",
                        runtime.id
                    )),
                },
            );
        };
        let version = self
            .load_version(runtime_id, live)
            .await?
            .ok_or_else(|| version_not_found(runtime_id, live))?
            .doc;
        Ok((endpoint, version))
    }
}
