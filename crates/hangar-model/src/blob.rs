//! Binary values.

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A botocore `blob`. In JSON bodies it is a base64 string (standard alphabet, padded);
/// deserialization also accepts an array of byte values.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Blob(pub Vec<u8>);

impl Blob {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Blob {
        Blob(bytes.into())
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The standard-alphabet base64 encoding.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.0)
    }

    /// Decodes standard-alphabet base64 (padding optional).
    pub fn from_base64(s: &str) -> Option<Blob> {
        decode_base64(s).map(Blob)
    }
}

pub(crate) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
    let s = s.trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(s)
        .ok()
        .or_else(|| STANDARD.decode(s).ok())
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) if s.len() <= 256 => write!(f, "Blob({s:?})"),
            _ => write!(f, "Blob(<{} bytes>)", self.0.len()),
        }
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Blob {
        Blob(v)
    }
}

impl From<&[u8]> for Blob {
    fn from(v: &[u8]) -> Blob {
        Blob(v.to_vec())
    }
}

impl From<&str> for Blob {
    fn from(v: &str) -> Blob {
        Blob(v.as_bytes().to_vec())
    }
}

impl From<String> for Blob {
    fn from(v: String) -> Blob {
        Blob(v.into_bytes())
    }
}

impl From<Blob> for Vec<u8> {
    fn from(b: Blob) -> Vec<u8> {
        b.0
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Blob, E> {
                Blob::from_base64(v).ok_or_else(|| E::custom("invalid base64"))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Blob, A::Error> {
                let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Blob(out))
            }
        }
        d.deserialize_any(V)
    }
}
