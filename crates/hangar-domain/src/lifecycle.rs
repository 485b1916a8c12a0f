//! Session lifecycle settings: AgentCore's defaults and the limits it enforces beyond the model.

use serde_json::{json, Value};

use crate::json::Object;
use crate::Error;

pub const DEFAULT_IDLE_TIMEOUT_SECS: i64 = 900;
pub const DEFAULT_MAX_LIFETIME_SECS: i64 = 28_800;
/// The model allows up to 1,209,600 s, but only runtimes on a capacity provider ("instances")
/// may go past the microVM limit of 8 hours.
pub const MICROVM_MAX_SECS: i64 = 28_800;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifecycle {
    pub idle_runtime_session_timeout: i64,
    pub max_lifetime: i64,
}

impl Lifecycle {
    /// The effective settings of a runtime configuration, or the rule it breaks.
    pub fn from_config(config: &Object) -> Result<Lifecycle, Error> {
        let given = config.get("lifecycleConfiguration");
        let field = |name: &str| given.and_then(|l| l.get(name)).and_then(Value::as_i64);
        let idle = field("idleRuntimeSessionTimeout");
        let max = field("maxLifetime");
        // AgentCore's documented defaults: with only maxLifetime given, idle follows it down
        // when it is shorter than the default idle timeout.
        let lifecycle = match (idle, max) {
            (None, None) => Lifecycle {
                idle_runtime_session_timeout: DEFAULT_IDLE_TIMEOUT_SECS,
                max_lifetime: DEFAULT_MAX_LIFETIME_SECS,
            },
            (None, Some(max)) => Lifecycle {
                idle_runtime_session_timeout: max.min(DEFAULT_IDLE_TIMEOUT_SECS),
                max_lifetime: max,
            },
            (Some(idle), None) => Lifecycle {
                idle_runtime_session_timeout: idle,
                max_lifetime: DEFAULT_MAX_LIFETIME_SECS,
            },
            (Some(idle), Some(max)) => Lifecycle {
                idle_runtime_session_timeout: idle,
                max_lifetime: max,
            },
        };
        if !config.contains_key("capacityProviderConfiguration") {
            for (name, value) in [
                (
                    "idleRuntimeSessionTimeout",
                    lifecycle.idle_runtime_session_timeout,
                ),
                ("maxLifetime", lifecycle.max_lifetime),
            ] {
                if value > MICROVM_MAX_SECS {
                    return Err(Error::invalid_field(
                        &format!("lifecycleConfiguration.{name}"),
                        &format!("Member must have value less than or equal to {MICROVM_MAX_SECS} for runtimes without a capacity provider"),
                    ));
                }
            }
        }
        if lifecycle.idle_runtime_session_timeout > lifecycle.max_lifetime {
            return Err(Error::invalid_field(
                "lifecycleConfiguration.idleRuntimeSessionTimeout",
                "Member must be less than or equal to maxLifetime",
            ));
        }
        Ok(lifecycle)
    }

    pub fn to_json(self) -> Value {
        json!({
            "idleRuntimeSessionTimeout": self.idle_runtime_session_timeout,
            "maxLifetime": self.max_lifetime,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: Value) -> Object {
        v.as_object().unwrap().clone()
    }

    fn lc(v: Value) -> Result<(i64, i64), Error> {
        Lifecycle::from_config(&config(v)).map(|l| (l.idle_runtime_session_timeout, l.max_lifetime))
    }

    #[test]
    fn defaults_follow_agentcore() {
        assert_eq!(lc(json!({})).unwrap(), (900, 28800));
        assert_eq!(
            lc(json!({"lifecycleConfiguration": {"maxLifetime": 600}})).unwrap(),
            (600, 600)
        );
        assert_eq!(
            lc(json!({"lifecycleConfiguration": {"maxLifetime": 3600}})).unwrap(),
            (900, 3600)
        );
        assert_eq!(
            lc(json!({"lifecycleConfiguration": {"idleRuntimeSessionTimeout": 120}})).unwrap(),
            (120, 28800)
        );
        assert_eq!(
            lc(json!({"lifecycleConfiguration": {"idleRuntimeSessionTimeout": 60, "maxLifetime": 120}})).unwrap(),
            (60, 120)
        );
    }

    #[test]
    fn idle_must_not_exceed_max_lifetime() {
        let err = lc(
            json!({"lifecycleConfiguration": {"idleRuntimeSessionTimeout": 600, "maxLifetime": 300}}),
        );
        assert!(
            matches!(err, Err(Error::Validation { ref fields, .. }) if fields[0].name == "lifecycleConfiguration.idleRuntimeSessionTimeout")
        );
        assert!(lc(json!({"lifecycleConfiguration": {"idleRuntimeSessionTimeout": 1000}})).is_ok());
    }

    #[test]
    fn microvm_limit_applies_without_capacity_provider() {
        assert!(lc(json!({"lifecycleConfiguration": {"maxLifetime": 28801}})).is_err());
        assert_eq!(
            lc(json!({"lifecycleConfiguration": {"maxLifetime": 100000}, "capacityProviderConfiguration": {}})).unwrap(),
            (900, 100000)
        );
    }
}
