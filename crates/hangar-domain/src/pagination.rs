//! Opaque `nextToken`s.
//!
//! A token carries the store sequence number of the last item returned plus a fingerprint of
//! the listing it belongs to. Listing by sequence number means items created while a client
//! pages appear after the cursor and deleted ones simply drop out: every item that exists
//! throughout the listing is returned exactly once.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::Error;

pub const DEFAULT_MAX_RESULTS: usize = 10;

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// Sequence number of the last item returned.
    s: i64,
    /// Which listing the token belongs to.
    l: String,
}

pub fn encode(listing: &str, after_seq: i64) -> String {
    let json = serde_json::to_vec(&Cursor {
        s: after_seq,
        l: listing.to_owned(),
    })
    .expect("cursor serializes");
    URL_SAFE_NO_PAD.encode(json)
}

/// The sequence number to continue after, or a ValidationException naming `nextToken`.
pub fn decode(listing: &str, token: Option<&str>) -> Result<Option<i64>, Error> {
    let Some(token) = token else { return Ok(None) };
    let cursor: Option<Cursor> = URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match cursor {
        Some(c) if c.l == listing => Ok(Some(c.s)),
        _ => Err(Error::invalid_field(
            "nextToken",
            "The provided pagination token is invalid or does not belong to this listing",
        )),
    }
}

pub fn page_size(max_results: Option<i32>) -> usize {
    max_results
        .map(|n| n.clamp(1, 100) as usize)
        .unwrap_or(DEFAULT_MAX_RESULTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = encode("runtimes", 42);
        assert_eq!(decode("runtimes", Some(&t)).unwrap(), Some(42));
        assert_eq!(decode("runtimes", None).unwrap(), None);
    }

    #[test]
    fn foreign_or_garbage_tokens_are_rejected() {
        let t = encode("runtimes", 42);
        assert!(decode("browsers", Some(&t)).is_err());
        assert!(decode("runtimes", Some("not a token")).is_err());
        assert!(decode("runtimes", Some("")).is_err());
    }
}
