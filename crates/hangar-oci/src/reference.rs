//! Image references: `[HOST[:PORT]/]REPO[:TAG][@sha256:HEX]`, as Docker and AgentCore write them.

use std::fmt;

use crate::OciError;

/// Docker Hub's registry: a reference without a host component names it, as `docker pull` does.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host (with `:port` if given), as written (lowercase).
    pub registry: String,
    /// Repository path inside the registry, e.g. `team/agent`.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:<64 hex>`.
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(s: &str) -> Result<Self, OciError> {
        let bad = |why: &str| OciError::InvalidReference(format!("{s:?}: {why}"));
        if s.is_empty() || s.len() > 1024 {
            return Err(bad("must be 1 to 1024 characters"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                let hex = d
                    .strip_prefix("sha256:")
                    .ok_or_else(|| bad("only sha256 digests are supported"))?;
                if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(bad("a sha256 digest is 64 hexadecimal digits"));
                }
                (r, Some(format!("sha256:{}", hex.to_ascii_lowercase())))
            }
            None => (s, None),
        };
        // The tag is after the last ':' that follows the last '/', so a registry port is not one.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[last_slash + i + 1..];
                if tag.is_empty()
                    || tag.len() > 128
                    || !tag
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                {
                    return Err(bad("invalid tag"));
                }
                (&rest[..last_slash + i], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        let (registry, repository) = match name.split_once('/') {
            // Docker's rule: the first component is a host if it has a '.' or ':' or is localhost.
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_ascii_lowercase(), path.to_owned())
            }
            _ if name.contains('/') => (DOCKER_HUB.to_owned(), name.to_owned()),
            _ => (DOCKER_HUB.to_owned(), format!("library/{name}")),
        };
        if repository.is_empty()
            || !repository.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
                    && c.as_bytes()[0].is_ascii_alphanumeric()
            })
        {
            return Err(bad("invalid repository name"));
        }
        Ok(Reference {
            registry,
            repository,
            tag: if tag.is_none() && digest.is_none() {
                Some("latest".into())
            } else {
                tag
            },
            digest,
        })
    }

    /// What to ask the registry for: the digest when pinned (the tag is then informative only).
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }

    /// True for private ECR hosts (`ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]`) and ECR Public.
    pub fn is_ecr(&self) -> bool {
        is_ecr_host(&self.registry)
    }
}

pub(crate) fn is_ecr_host(host: &str) -> bool {
    if host == "public.ecr.aws" {
        return true;
    }
    let host = host
        .strip_suffix(".amazonaws.com.cn")
        .or_else(|| host.strip_suffix(".amazonaws.com"));
    let Some(host) = host else { return false };
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts[0].len() == 12
        && parts[0].bytes().all(|b| b.is_ascii_digit())
        && parts[1] == "dkr"
        && parts[2] == "ecr"
        && !parts[3].is_empty()
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecr_tag_and_digest() {
        let d = "a".repeat(64);
        let r = Reference::parse(&format!(
            "123456789012.dkr.ecr.us-west-2.amazonaws.com/team/agent:v1@sha256:{d}"
        ))
        .unwrap();
        assert_eq!(r.registry, "123456789012.dkr.ecr.us-west-2.amazonaws.com");
        assert_eq!(r.repository, "team/agent");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.digest, Some(format!("sha256:{d}")));
        assert_eq!(r.manifest_ref(), format!("sha256:{d}"));
        assert!(r.is_ecr());
        let r = Reference::parse("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/a").unwrap();
        assert!(r.is_ecr());
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert!(Reference::parse("public.ecr.aws/x/y:1").unwrap().is_ecr());
        assert!(!Reference::parse("1234.dkr.ecr.us-east-1.amazonaws.com/a")
            .unwrap()
            .is_ecr());
    }

    #[test]
    fn ports_hub_and_errors() {
        let r = Reference::parse("127.0.0.1:5000/x/y").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            ("127.0.0.1:5000", "x/y")
        );
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = Reference::parse("localhost/a:b").unwrap();
        assert_eq!(r.registry, "localhost");
        let r = Reference::parse("busybox:1.36").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str()),
            (DOCKER_HUB, "library/busybox")
        );
        assert_eq!(
            Reference::parse("org/app").unwrap().repository,
            "org/app".to_string()
        );
        for bad in [
            "",
            "reg.io/UPPER:1",
            "reg.io/a:",
            "reg.io/a@sha256:abc",
            "reg.io/a@md5:00",
            "reg.io//a",
            "reg.io/a:b c",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad}");
        }
        let s = "reg.io:443/a/b:t";
        assert_eq!(Reference::parse(s).unwrap().to_string(), s);
    }
}
