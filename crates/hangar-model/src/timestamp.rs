//! Timestamps.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// A botocore `timestamp`, at millisecond precision.
///
/// Serialized as ISO-8601 UTC with milliseconds (`2025-07-14T22:16:40.713Z`), which botocore
/// parses for `timestampFormat: iso8601` and also for the rest-json default. Deserializes from
/// such strings (any RFC 3339 offset or precision) or from an epoch-seconds number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub OffsetDateTime);

impl Timestamp {
    /// The current time, truncated to milliseconds (so it survives a serialization round trip).
    pub fn now() -> Timestamp {
        Timestamp::from_unix_millis(Timestamp(OffsetDateTime::now_utc()).unix_millis())
    }

    /// From milliseconds since the Unix epoch (saturating at the supported range, years ±9999).
    pub fn from_unix_millis(ms: i64) -> Timestamp {
        const MIN: i128 = -377_705_116_800_000; // -9999-01-01T00:00:00Z
        const MAX: i128 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
        let ms = (ms as i128).clamp(MIN, MAX);
        Timestamp(OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).expect("in range"))
    }

    /// From (possibly fractional) seconds since the Unix epoch.
    pub fn from_unix_seconds_f64(secs: f64) -> Option<Timestamp> {
        if !secs.is_finite() {
            return None;
        }
        let ms = (secs * 1000.0).round();
        if ms.abs() > 253_402_300_799_999.0 {
            return None;
        }
        Some(Timestamp::from_unix_millis(ms as i64))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }

    /// Whole seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Seconds since the Unix epoch, with the milliseconds as fraction.
    pub fn unix_seconds_f64(&self) -> f64 {
        self.unix_millis() as f64 / 1000.0
    }

    /// The wire form: `2025-07-14T22:16:40.713Z`.
    pub fn to_iso8601(&self) -> String {
        let t = self.0.to_offset(UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }

    /// Parses an RFC 3339 / ISO-8601 date-time (`2025-07-14T22:16:40.713Z`, `…+02:00`, with or
    /// without fraction), or an epoch-seconds number written as a string.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let s = s.trim();
        if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
            return Some(Timestamp::from_unix_millis(
                (t.unix_timestamp_nanos() / 1_000_000) as i64,
            ));
        }
        // Lower-case `t`/`z` and a missing offset are common enough to accept.
        let upper = s.to_ascii_uppercase();
        if upper != s {
            if let Ok(t) = OffsetDateTime::parse(&upper, &Rfc3339) {
                return Some(Timestamp::from_unix_millis(
                    (t.unix_timestamp_nanos() / 1_000_000) as i64,
                ));
            }
        }
        if upper.contains('T')
            && !upper.ends_with('Z')
            && !upper.get(10..).unwrap_or("").contains(['+', '-'])
        {
            if let Ok(t) = OffsetDateTime::parse(&format!("{upper}Z"), &Rfc3339) {
                return Some(Timestamp::from_unix_millis(
                    (t.unix_timestamp_nanos() / 1_000_000) as i64,
                ));
            }
        }
        if !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
        {
            return s
                .parse::<f64>()
                .ok()
                .and_then(Timestamp::from_unix_seconds_f64);
        }
        None
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Timestamp {
        Timestamp::from_unix_millis((t.unix_timestamp_nanos() / 1_000_000) as i64)
    }
}

impl From<Timestamp> for OffsetDateTime {
    fn from(t: Timestamp) -> OffsetDateTime {
        t.0
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_iso8601())
    }
}

impl std::fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Timestamp({})", self.to_iso8601())
    }
}

impl std::str::FromStr for Timestamp {
    type Err = InvalidTimestamp;
    fn from_str(s: &str) -> Result<Timestamp, InvalidTimestamp> {
        Timestamp::parse(s).ok_or(InvalidTimestamp)
    }
}

/// The error of parsing a [`Timestamp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidTimestamp;

impl std::fmt::Display for InvalidTimestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid timestamp")
    }
}

impl std::error::Error for InvalidTimestamp {}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_iso8601())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Timestamp;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an ISO-8601 date-time string or epoch seconds")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Timestamp, E> {
                Timestamp::parse(v)
                    .ok_or_else(|| E::custom(format_args!("invalid timestamp {v:?}")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Timestamp, E> {
                self.visit_f64(v as f64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Timestamp, E> {
                self.visit_f64(v as f64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Timestamp, E> {
                Timestamp::from_unix_seconds_f64(v)
                    .ok_or_else(|| E::custom("timestamp out of range"))
            }
        }
        d.deserialize_any(V)
    }
}
