//! Deserialization helpers used by the generated union types.

use serde::de::Error as _;
use serde::Deserialize;

/// Reads a union object and returns its single set member (JSON `null` members count as
/// unset, as AWS treats them).
pub(crate) fn union_member<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    union: &'static str,
    members: &'static [&'static str],
) -> Result<(String, serde_json::Value), D::Error> {
    let map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
    let mut set = map.into_iter().filter(|(_, v)| !v.is_null());
    match (set.next(), set.next()) {
        (Some(one), None) => Ok(one),
        (None, _) => Err(D::Error::custom(format_args!(
            "union {union} must have exactly one of its members set: [{}]",
            members.join(", ")
        ))),
        (Some(_), Some(_)) => Err(D::Error::custom(format_args!(
            "union {union} must have exactly one of its members set: [{}]",
            members.join(", ")
        ))),
    }
}

/// Deserializes a union member's value.
pub(crate) fn member_value<'de, T: serde::de::DeserializeOwned, D: serde::Deserializer<'de>>(
    value: serde_json::Value,
) -> Result<T, D::Error> {
    serde_json::from_value(value).map_err(D::Error::custom)
}
