//! Where a reference's registry really is (the registry mapping) and which credentials it gets
//! (a docker-style `config.json`).
//!
//! # Registry mapping
//!
//! A rule `PATTERN=URL` sends every reference whose registry host matches `PATTERN` to `URL`
//! (`http://HOST[:PORT][/PREFIX]` or `https://…`), e.g.
//! `--registry-map '*.dkr.ecr.*.amazonaws.com=http://127.0.0.1:5000'`: a runtime whose image is
//! `123456789012.dkr.ecr.us-east-1.amazonaws.com/team/agent:v1` is pulled from
//! `http://127.0.0.1:5000/v2/team/agent/manifests/v1`. With a prefix, the repository is placed
//! under it (`http://127.0.0.1:5000/mirror` → `mirror/team/agent`). Patterns are a host, or use
//! `*` for one or more characters within the host (`*` never spans `:`). The first matching rule
//! wins. `ecr` is shorthand for both ECR host forms (private and `public.ecr.aws`).
//!
//! Without a matching rule a loopback host (`localhost`, `127.*`, `[::1]`) is spoken to over
//! plain HTTP and every other registry over HTTPS (rustls, Mozilla's roots compiled in), as
//! `docker pull` does; a mapped target is spoken to with the scheme its URL names.

use std::collections::HashMap;
use std::path::Path;

use base64::Engine;
use serde::Deserialize;

use crate::reference::{is_ecr_host, Reference};
use crate::OciError;

/// How a registry is spoken to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One `PATTERN=URL` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRule {
    pub pattern: String,
    pub scheme: Scheme,
    /// `host[:port]` to connect to.
    pub authority: String,
    /// Repository prefix (no slashes at either end), may be empty.
    pub prefix: String,
}

impl MapRule {
    pub fn parse(s: &str) -> Result<Self, OciError> {
        let bad = |why: &str| OciError::InvalidConfig(format!("registry mapping {s:?}: {why}"));
        let (pattern, url) = s
            .split_once('=')
            .ok_or_else(|| bad("expected PATTERN=http[s]://HOST[:PORT][/PREFIX]"))?;
        let (scheme, rest) = if let Some(r) = url.strip_prefix("http://") {
            (Scheme::Http, r)
        } else if let Some(r) = url.strip_prefix("https://") {
            (Scheme::Https, r)
        } else {
            return Err(bad("the target must start with http:// or https://"));
        };
        let (authority, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() || pattern.is_empty() {
            return Err(bad("empty host"));
        }
        if authority.contains(['@', '?', '#']) {
            return Err(bad(
                "the target is HOST[:PORT], without user, query or fragment",
            ));
        }
        Ok(MapRule {
            pattern: pattern.to_ascii_lowercase(),
            scheme,
            authority: authority.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    fn matches(&self, host: &str) -> bool {
        if self.pattern == "ecr" {
            return is_ecr_host(host);
        }
        glob(self.pattern.as_bytes(), host.as_bytes())
    }
}

/// `*` = one or more characters other than `:`.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (1..=s.len())
            .take_while(|&i| s[i - 1] != b':')
            .any(|i| glob(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// Where to send the requests for one reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` for loopback hosts and mapped `http://` targets, else `https`.
    pub scheme: Scheme,
    /// `host[:port]` to connect to.
    pub authority: String,
    /// Repository path on that registry.
    pub repository: String,
}

/// The ordered mapping rules.
#[derive(Debug, Clone, Default)]
pub struct RegistryMap {
    pub rules: Vec<MapRule>,
}

impl RegistryMap {
    /// Whether a rule sends `host` elsewhere.
    pub fn maps(&self, host: &str) -> bool {
        self.rules.iter().any(|rule| rule.matches(host))
    }

    pub fn resolve(&self, r: &Reference) -> Result<Target, OciError> {
        if let Some(rule) = self.rules.iter().find(|rule| rule.matches(&r.registry)) {
            let repository = if rule.prefix.is_empty() {
                r.repository.clone()
            } else {
                format!("{}/{}", rule.prefix, r.repository)
            };
            return Ok(Target {
                scheme: rule.scheme,
                authority: rule.authority.clone(),
                repository,
            });
        }
        let host = r
            .registry
            .rsplit_once(':')
            .map_or(r.registry.as_str(), |(h, p)| {
                if p.bytes().all(|b| b.is_ascii_digit()) {
                    h
                } else {
                    r.registry.as_str()
                }
            });
        let loopback = host == "localhost" || host.starts_with("127.") || host == "[::1]";
        Ok(Target {
            scheme: if loopback {
                Scheme::Http
            } else {
                Scheme::Https
            },
            authority: r.registry.clone(),
            repository: r.repository.clone(),
        })
    }
}

impl Target {
    /// `scheme://authority`, the base of every request URL.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.authority)
    }
}

/// Username and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Credentials by registry, from a docker-style `config.json` (`auths` only; credential
/// helpers would run host programs on the server's behalf and are not consulted).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    by_host: HashMap<String, Credential>,
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: HashMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

impl Credentials {
    pub fn load(path: &Path) -> Result<Self, OciError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            OciError::InvalidConfig(format!("reading registry config {}: {e}", path.display()))
        })?;
        Self::parse(&text).map_err(|e| OciError::InvalidConfig(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let config: DockerConfig = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut by_host = HashMap::new();
        for (key, a) in config.auths {
            let cred = if let Some(auth) = a.auth.filter(|s| !s.is_empty()) {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(auth.trim())
                    .map_err(|e| format!("auths.{key}.auth is not base64: {e}"))?;
                let raw =
                    String::from_utf8(raw).map_err(|_| format!("auths.{key}.auth is not UTF-8"))?;
                let (u, p) = raw
                    .split_once(':')
                    .ok_or_else(|| format!("auths.{key}.auth is not user:password"))?;
                Credential {
                    username: u.to_owned(),
                    password: p.to_owned(),
                }
            } else if let Some(token) = a.identitytoken {
                // Docker's convention for identity tokens: a fixed user name.
                Credential {
                    username: "<token>".into(),
                    password: token,
                }
            } else if let (Some(u), Some(p)) = (a.username, a.password) {
                Credential {
                    username: u,
                    password: p,
                }
            } else {
                continue;
            };
            by_host.insert(normalize_host(&key), cred);
        }
        Ok(Credentials { by_host })
    }

    /// The credential for a registry: by the host the reference names, else by the host it is
    /// mapped to.
    pub fn for_hosts(&self, named: &str, actual: &str) -> Option<&Credential> {
        self.by_host
            .get(&normalize_host(named))
            .or_else(|| self.by_host.get(&normalize_host(actual)))
    }

    pub fn is_empty(&self) -> bool {
        self.by_host.is_empty()
    }
}

/// `https://index.docker.io/v1/` and `reg.io` name the same thing in config.json keys.
fn normalize_host(key: &str) -> String {
    let k = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let k = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    if k == "index.docker.io" || k == "docker.io" {
        crate::reference::DOCKER_HUB.to_owned()
    } else {
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        let map = RegistryMap {
            rules: vec![
                MapRule::parse("ecr=http://127.0.0.1:5000/mirror").unwrap(),
                MapRule::parse("*.example.com=http://127.0.0.1:6000").unwrap(),
            ],
        };
        let r = Reference::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/a/b:1").unwrap();
        assert_eq!(
            map.resolve(&r).unwrap(),
            Target {
                scheme: Scheme::Http,
                authority: "127.0.0.1:5000".into(),
                repository: "mirror/a/b".into()
            }
        );
        let r = Reference::parse("reg.example.com/x").unwrap();
        assert_eq!(map.resolve(&r).unwrap().authority, "127.0.0.1:6000");
        // Unmapped: loopback over http, everything else over https.
        let r = Reference::parse("example.com/x").unwrap();
        assert_eq!(map.resolve(&r).unwrap().base_url(), "https://example.com");
        let r = Reference::parse("localhost:5000/x").unwrap();
        assert_eq!(map.resolve(&r).unwrap().base_url(), "http://localhost:5000");
        let r = Reference::parse("127.0.0.1:5001/x").unwrap();
        assert_eq!(map.resolve(&r).unwrap().repository, "x");
        assert_eq!(map.resolve(&r).unwrap().scheme, Scheme::Http);
        let t = map
            .resolve(&Reference::parse("ghcr.io/x").unwrap())
            .unwrap();
        assert_eq!((t.scheme, t.authority.as_str()), (Scheme::Https, "ghcr.io"));
        let t = map.resolve(&Reference::parse("alpine:3").unwrap()).unwrap();
        assert_eq!(t.base_url(), "https://registry-1.docker.io");
        assert_eq!(t.repository, "library/alpine");
        let m = MapRule::parse("*.dkr.ecr.*.amazonaws.com=http://h:1").unwrap();
        assert!(m.matches("123456789012.dkr.ecr.eu-west-1.amazonaws.com"));
        assert!(!m.matches("dkr.ecr.eu-west-1.amazonaws.com"));
        assert!(MapRule::parse("x").is_err());
        assert!(MapRule::parse("x=ftp://h").is_err());
        assert!(MapRule::parse("x=https://u@h").is_err());
    }

    #[test]
    fn https_mapping() {
        let rule = MapRule::parse("ecr=https://mirror.example.com:8443/ecr/").unwrap();
        assert_eq!(rule.scheme, Scheme::Https);
        assert_eq!(
            (rule.authority.as_str(), rule.prefix.as_str()),
            ("mirror.example.com:8443", "ecr")
        );
        let map = RegistryMap {
            rules: vec![
                rule,
                MapRule::parse("localhost=https://localhost:5443").unwrap(),
            ],
        };
        let r = Reference::parse("123456789012.dkr.ecr.us-east-1.amazonaws.com/a/b:1").unwrap();
        assert_eq!(
            map.resolve(&r).unwrap(),
            Target {
                scheme: Scheme::Https,
                authority: "mirror.example.com:8443".into(),
                repository: "ecr/a/b".into()
            }
        );
        // A mapped loopback target keeps the scheme its rule names.
        let r = Reference::parse("localhost/x").unwrap();
        assert_eq!(
            map.resolve(&r).unwrap().base_url(),
            "https://localhost:5443"
        );
    }

    #[test]
    fn docker_config() {
        let c = Credentials::parse(
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},
                "127.0.0.1:5000":{"username":"a","password":"b"},
                "reg.io":{"identitytoken":"tok"}, "x.io": {}}}"#,
        )
        .unwrap();
        assert_eq!(
            c.for_hosts("registry-1.docker.io", "-").unwrap().password,
            "p"
        );
        assert_eq!(c.for_hosts("ecr", "127.0.0.1:5000").unwrap().username, "a");
        assert_eq!(c.for_hosts("reg.io", "-").unwrap().password, "tok");
        assert!(c.for_hosts("x.io", "-").is_none());
        assert!(Credentials::parse(r#"{"auths":{"a":{"auth":"!!"}}}"#).is_err());
    }
}
