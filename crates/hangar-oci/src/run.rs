//! How to start an image: its `Entrypoint` + `Cmd`, `Env`, `WorkingDir` and `User`, resolved
//! against its own root (as a container runtime would, without following links out of it).

use crate::store::PreparedImage;
use crate::unpack::resolve_in_root;
use crate::OciError;

/// What the session sandbox runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlan {
    /// Absolute path of the program inside the root.
    pub program: String,
    pub args: Vec<String>,
    /// The image's environment (`PATH` defaulted as Docker does, `HOME` from the user).
    pub env: Vec<(String, String)>,
    pub cwd: String,
    /// uid and gid inside the sandbox (the image's `User`; 0 when it names none).
    pub uid: u32,
    pub gid: u32,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub fn plan_run(image: &PreparedImage) -> Result<RunPlan, OciError> {
    let c = &image.config;
    let argv: Vec<String> = c.entrypoint.iter().chain(&c.cmd).cloned().collect();
    let Some(first) = argv.first() else {
        return Err(OciError::InvalidConfig(format!(
            "Container image {} has neither Entrypoint nor Cmd: nothing to run",
            image.digest
        )));
    };
    let mut env: Vec<(String, String)> = Vec::new();
    for e in &c.env {
        let (k, v) = e.split_once('=').unwrap_or((e.as_str(), ""));
        if k.is_empty() {
            continue;
        }
        env.retain(|(n, _)| n != k);
        env.push((k.to_owned(), v.to_owned()));
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    let path_var = env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let program = if first.starts_with('/') {
        first.clone()
    } else if first.contains('/') {
        let wd = if c.working_dir.is_empty() {
            "/"
        } else {
            &c.working_dir
        };
        format!("{}/{first}", wd.trim_end_matches('/'))
    } else {
        path_var
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{first}", d.trim_end_matches('/')))
            .find(|p| resolve_in_root(&image.root, p).is_some_and(|h| h.is_file()))
            .ok_or_else(|| {
                OciError::InvalidConfig(format!(
                    "Container image {}: the program {first:?} of its Entrypoint/Cmd is not \
                     in its PATH ({path_var})",
                    image.digest
                ))
            })?
    };
    if resolve_in_root(&image.root, &program).is_none() {
        return Err(OciError::InvalidConfig(format!(
            "Container image {}: the program {program} of its Entrypoint/Cmd does not exist in \
             the image",
            image.digest
        )));
    }
    let (uid, gid, home) = user(image)?;
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), home));
    }
    let cwd = if c.working_dir.is_empty() {
        "/".to_owned()
    } else {
        c.working_dir.clone()
    };
    Ok(RunPlan {
        program,
        args: argv[1..].to_vec(),
        env,
        cwd,
        uid,
        gid,
    })
}

/// `User`: `name`, `uid`, `name:group`, `uid:gid` — names looked up in the image's own
/// `/etc/passwd` and `/etc/group`.
fn user(image: &PreparedImage) -> Result<(u32, u32, String), OciError> {
    let spec = image.config.user.trim();
    let read = |p: &str| {
        resolve_in_root(&image.root, p)
            .and_then(|h| std::fs::read_to_string(h).ok())
            .unwrap_or_default()
    };
    let passwd = read("/etc/passwd");
    // name:x:uid:gid:gecos:home:shell
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 6)
        .collect();
    let (u, g) = spec.split_once(':').unwrap_or((spec, ""));
    let bad = |what: &str| {
        OciError::InvalidConfig(format!(
            "Container image {}: its User {spec:?} names {what}",
            image.digest
        ))
    };
    let (uid, mut gid, home) = if u.is_empty() {
        (0, 0, "/root".to_owned())
    } else if let Ok(uid) = u.parse::<u32>() {
        match entries.iter().find(|f| f[2] == u) {
            Some(f) => (uid, f[3].parse().unwrap_or(uid), f[5].to_owned()),
            None => (uid, uid, "/".to_owned()),
        }
    } else {
        let f = entries
            .iter()
            .find(|f| f[0] == u)
            .ok_or_else(|| bad("a user its /etc/passwd does not have"))?;
        (
            f[2].parse().map_err(|_| bad("a user with a bad uid"))?,
            f[3].parse().unwrap_or(0),
            f[5].to_owned(),
        )
    };
    if !g.is_empty() {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => read("/etc/group")
                .lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| bad("a group its /etc/group does not have"))?,
        };
    }
    Ok((uid, gid, if home.is_empty() { "/".into() } else { home }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RunConfig;

    fn image(root: &std::path::Path, config: RunConfig) -> PreparedImage {
        PreparedImage {
            digest: "sha256:x".into(),
            root: root.to_path_buf(),
            config,
            platform: "linux/amd64".into(),
            emulation: None,
        }
    }

    #[test]
    fn plan() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("usr/bin/agent"), b"").unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "staff:x:50:\n").unwrap();
        let p = plan_run(&image(
            root,
            RunConfig {
                entrypoint: vec!["agent".into(), "-v".into()],
                cmd: vec!["serve".into()],
                env: vec!["PATH=/bin".into(), "A=1=2".into()],
                working_dir: "/app".into(),
                user: "app".into(),
            },
        ))
        .unwrap();
        assert_eq!(p.program, "/bin/agent");
        assert_eq!(p.args, vec!["-v", "serve"]);
        assert_eq!((p.uid, p.gid), (1000, 1001));
        assert!(p.env.contains(&("A".into(), "1=2".into())));
        assert!(p.env.contains(&("HOME".into(), "/home/app".into())));
        assert_eq!(p.cwd, "/app");
        let mut c = RunConfig {
            cmd: vec!["/usr/bin/agent".into()],
            user: "1000:staff".into(),
            ..Default::default()
        };
        let p = plan_run(&image(root, c.clone())).unwrap();
        assert_eq!((p.uid, p.gid, p.cwd.as_str()), (1000, 50, "/"));
        c.user = "ghost".into();
        assert!(plan_run(&image(root, c.clone())).is_err());
        c.user = String::new();
        c.cmd = vec!["missing".into()];
        assert!(plan_run(&image(root, c.clone())).is_err());
        c.cmd = vec!["/bin/missing".into()];
        assert!(plan_run(&image(root, c)).is_err());
    }
}
