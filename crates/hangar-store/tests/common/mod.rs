//! Shorthands shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use hangar_store::Write;
use serde_json::{json, Value};

pub fn insert(collection: &str, key: &str, parent: Option<&str>, name: Option<&str>) -> Write {
    insert_doc(collection, key, parent, name, json!({ "key": key }))
}

pub fn insert_doc(
    collection: &str,
    key: &str,
    parent: Option<&str>,
    name: Option<&str>,
    doc: Value,
) -> Write {
    Write::Insert {
        collection: collection.into(),
        key: key.into(),
        parent: parent.map(Into::into),
        name: name.map(Into::into),
        doc,
    }
}

pub fn update(collection: &str, key: &str, expected_revision: Option<i64>, doc: Value) -> Write {
    Write::Update {
        collection: collection.into(),
        key: key.into(),
        expected_revision,
        doc,
    }
}

pub fn delete(
    collection: &str,
    key: &str,
    expected_revision: Option<i64>,
    must_exist: bool,
) -> Write {
    Write::Delete {
        collection: collection.into(),
        key: key.into(),
        expected_revision,
        must_exist,
    }
}

pub fn delete_children(collection: &str, parent: &str) -> Write {
    Write::DeleteChildren {
        collection: collection.into(),
        parent: parent.into(),
    }
}
