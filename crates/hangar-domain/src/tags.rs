//! TagResource, UntagResource and ListTagsForResource on every ARN Hangar issues.

use hangar_model::control;
use hangar_store::Write;
use serde_json::json;

use crate::arn::TaggableResource;
use crate::json::output;
use crate::records::{collection, TagsRecord};
use crate::stored::{insert, is_race, load, to_doc, update};
use crate::{ControlPlane, Error};

/// AgentCore's limit of tags per resource (`TagsMap` max).
const MAX_TAGS: usize = 50;

/// The record that owns an ARN's tags: rewriting it against its revision in the same commit
/// means tags cannot be written for a resource that is being deleted concurrently.
struct Owner {
    collection: &'static str,
    key: String,
    revision: i64,
    doc: serde_json::Value,
    /// The id whose deletion removes the tags (the runtime for endpoints).
    family: String,
}

impl ControlPlane {
    async fn tag_owner(&self, arn: &str) -> Result<Owner, Error> {
        let not_found = || Error::NotFound(format!("Resource not found: {arn}"));
        let resource = self.partition().parse_taggable(arn).ok_or_else(not_found)?;
        let (collection, key, family) = match resource {
            TaggableResource::Runtime(id) => (collection::RUNTIME, id.clone(), id),
            TaggableResource::Endpoint { runtime_id, name } => {
                let endpoint_key = format!("{runtime_id}/{name}");
                if self
                    .store()
                    .get(collection::ENDPOINT, &endpoint_key)
                    .await?
                    .is_none()
                {
                    return Err(not_found());
                }
                // The endpoint lives and dies with its runtime record's revision.
                (collection::RUNTIME, runtime_id.clone(), runtime_id)
            }
            TaggableResource::Browser(id) => (collection::BROWSER, id.clone(), id),
            TaggableResource::CodeInterpreter(id) => (collection::CODE_INTERPRETER, id.clone(), id),
            TaggableResource::BrowserProfile(id) => (collection::BROWSER_PROFILE, id.clone(), id),
        };
        let record = self
            .store()
            .get(collection, &key)
            .await?
            .ok_or_else(not_found)?;
        Ok(Owner {
            collection,
            key,
            revision: record.revision,
            doc: record.doc,
            family,
        })
    }

    /// Applies `change` to an ARN's tags, atomically with a check that the resource still exists.
    async fn change_tags(
        &self,
        arn: &str,
        change: impl Fn(&mut TagsRecord) -> Result<(), Error>,
    ) -> Result<(), Error> {
        loop {
            let owner = self.tag_owner(arn).await?;
            let existing = load::<TagsRecord>(self.store(), collection::TAGS, arn).await?;
            let (mut tags, revision) = match existing {
                Some(s) => (s.doc, Some(s.revision)),
                None => (TagsRecord::default(), None),
            };
            change(&mut tags)?;
            let tags_write = match revision {
                Some(revision) => update(collection::TAGS, arn, revision, &tags),
                None => insert(collection::TAGS, arn, Some(&owner.family), None, &tags),
            };
            let writes = vec![
                Write::Update {
                    collection: owner.collection.to_owned(),
                    key: owner.key.clone(),
                    expected_revision: Some(owner.revision),
                    doc: owner.doc,
                },
                tags_write,
            ];
            match self.store().commit(writes).await {
                Ok(_) => return Ok(()),
                Err(e)
                    if is_race(&e) || matches!(e, hangar_store::StoreError::KeyExists { .. }) =>
                {
                    continue
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(crate) async fn tag_resource(
        &self,
        request: control::TagResourceRequest,
    ) -> Result<control::TagResourceResponse, Error> {
        let new_tags = request.tags;
        self.change_tags(&request.resource_arn, |record| {
            for (k, v) in &new_tags {
                record.tags.insert(k.clone(), v.clone());
            }
            if record.tags.len() > MAX_TAGS {
                return Err(Error::invalid_field(
                    "tags",
                    &format!("A resource can have at most {MAX_TAGS} tags"),
                ));
            }
            Ok(())
        })
        .await?;
        output(json!({}))
    }

    pub(crate) async fn untag_resource(
        &self,
        request: control::UntagResourceRequest,
    ) -> Result<control::UntagResourceResponse, Error> {
        let keys = request.tag_keys;
        self.change_tags(&request.resource_arn, |record| {
            for k in &keys {
                record.tags.remove(k);
            }
            Ok(())
        })
        .await?;
        output(json!({}))
    }

    pub(crate) async fn list_tags_for_resource(
        &self,
        request: control::ListTagsForResourceRequest,
    ) -> Result<control::ListTagsForResourceResponse, Error> {
        let arn = request.resource_arn;
        self.tag_owner(&arn).await?;
        let tags = load::<TagsRecord>(self.store(), collection::TAGS, &arn)
            .await?
            .map(|s| s.doc)
            .unwrap_or_default();
        output(json!({"tags": to_doc(&tags.tags)}))
    }
}
