//! `clientToken` idempotency: the same token with the same request gets the same answer and
//! changes nothing; the same token with a different request is a ValidationException
//! (`IdempotentParameterMismatchException`).
//!
//! The token's record is written in the same transaction as the change it guards, so a retry
//! after a crash sees either both or neither.
//!
//! Tokens are remembered for a limited time ([`expire`], called periodically by the server):
//! boto3 and the AWS CLI fill a fresh token into every Create/Update/Delete call, so records
//! that were kept forever would grow the store with every mutation. AWS documents tokens as
//! valid for at least 24 hours (e.g. EC2); the server's default is that.

use hangar_store::{Store, StoreError, Write};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

use hangar_model::Timestamp;

use crate::records::{collection, IdempotencyRecord};
use crate::stored::{insert, load};
use crate::Error;

/// The right to answer a token for the first time.
pub(crate) struct Claim {
    key: String,
    fingerprint: String,
}

pub(crate) enum Check<T> {
    /// The token was answered before: this is the answer.
    Replay(T),
    /// First use of the token (or no token): go ahead, and record the answer with the claim.
    Fresh(Option<Claim>),
}

/// `scope` distinguishes tokens per target resource for Update/Delete operations.
pub(crate) async fn check<T: DeserializeOwned>(
    store: &dyn Store,
    operation: &str,
    scope: &str,
    token: Option<&str>,
    request: &impl Serialize,
) -> Result<Check<T>, Error> {
    let Some(token) = token else {
        return Ok(Check::Fresh(None));
    };
    let key = format!("{operation}:{scope}:{token}");
    let fingerprint = fingerprint(request);
    match load::<IdempotencyRecord>(store, collection::IDEMPOTENCY, &key).await? {
        Some(previous) if previous.doc.fingerprint == fingerprint => {
            let answer = serde_json::from_value(previous.doc.response)
                .map_err(|e| Error::Internal(format!("corrupt idempotency record: {e}")))?;
            Ok(Check::Replay(answer))
        }
        Some(_) => Err(Error::idempotency_mismatch()),
        None => Ok(Check::Fresh(Some(Claim { key, fingerprint }))),
    }
}

impl Claim {
    pub fn write(&self, response: &impl Serialize) -> Write {
        insert(
            collection::IDEMPOTENCY,
            &self.key,
            None,
            None,
            &IdempotencyRecord {
                fingerprint: self.fingerprint.clone(),
                response: serde_json::to_value(response).expect("responses serialize"),
                recorded_at: Some(Timestamp::now()),
            },
        )
    }
}

impl Claim {
    /// The answer of a concurrent request with the same token, if one has committed since the
    /// check: a retry that finds the resource it would create already there asks this first.
    pub async fn answered<T: DeserializeOwned>(
        &self,
        store: &dyn Store,
    ) -> Result<Option<T>, Error> {
        match load::<IdempotencyRecord>(store, collection::IDEMPOTENCY, &self.key).await? {
            None => Ok(None),
            Some(_) => self.winner(store).await.map(Some),
        }
    }

    /// The answer of the concurrent request with the same token that committed first.
    pub async fn winner<T: DeserializeOwned>(&self, store: &dyn Store) -> Result<T, Error> {
        match load::<IdempotencyRecord>(store, collection::IDEMPOTENCY, &self.key).await? {
            Some(r) if r.doc.fingerprint == self.fingerprint => {
                serde_json::from_value(r.doc.response)
                    .map_err(|e| Error::Internal(format!("corrupt idempotency record: {e}")))
            }
            Some(_) => Err(Error::idempotency_mismatch()),
            None => Err(Error::Internal("idempotency record vanished".into())),
        }
    }
}

/// Removes the records of tokens first answered before `cutoff`; returns how many. Pages
/// through the collection in store order, deleting each page's expired records in one commit
/// (a record answered again meanwhile has a new revision and is left alone).
pub(crate) async fn expire(store: &dyn Store, cutoff: Timestamp) -> Result<usize, Error> {
    const PAGE: usize = 500;
    let mut after = None;
    let mut removed = 0;
    loop {
        let page = store
            .list(collection::IDEMPOTENCY, None, after, PAGE)
            .await?;
        let Some(last) = page.last() else {
            return Ok(removed);
        };
        after = Some(last.seq);
        let full = page.len() == PAGE;
        let expired: Vec<Write> = page
            .into_iter()
            .filter(|r| {
                serde_json::from_value::<IdempotencyRecord>(r.doc.clone())
                    .map(|doc| doc.recorded_at.is_none_or(|t| t < cutoff))
                    .unwrap_or(true)
            })
            .map(|r| Write::Delete {
                collection: collection::IDEMPOTENCY.into(),
                key: r.key,
                expected_revision: Some(r.revision),
                must_exist: false,
            })
            .collect();
        if !expired.is_empty() {
            let n = expired.len();
            match store.commit(expired).await {
                Ok(_) => removed += n,
                // Answered again meanwhile: the next sweep sees it.
                Err(StoreError::RevisionMismatch { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if !full {
            return Ok(removed);
        }
    }
}

/// A concurrent request with the same token committed first.
pub(crate) fn lost_race(e: &StoreError) -> bool {
    matches!(e, StoreError::KeyExists { collection: c, .. } if c == collection::IDEMPOTENCY)
}

/// SHA-256 of the request's canonical JSON without its client token. serde_json objects are
/// ordered maps, so equal requests give equal text.
fn fingerprint(request: &impl Serialize) -> String {
    let mut value = serde_json::to_value(request).expect("requests serialize");
    if let Some(object) = value.as_object_mut() {
        object.remove("clientToken");
    }
    hex::encode(Sha256::digest(value.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fingerprint_ignores_the_token_and_key_order() {
        let a = json!({"name": "x", "clientToken": "a".repeat(40), "tags": {"b": "1", "a": "2"}});
        let b = json!({"tags": {"a": "2", "b": "1"}, "name": "x", "clientToken": "b".repeat(40)});
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&json!({"name": "y"})));
    }
}
