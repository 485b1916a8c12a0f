//! `entryPoint` → argv, as seen inside the sandbox (code at `/var/task`, cwd
//! `/var/task`).
//!
//! AgentCore documents only the two shapes `["main.py"]` and
//! `["opentelemetry-instrument", "main.py"]` (spec §D; how the second one runs
//! is INFERRED). What we do:
//! - one item: the script, run by the runtime's interpreter:
//!   `[python, /var/task/main.py]`, `[node, /var/task/index.js]`;
//! - two items whose first is a script file in the artifact: script plus one
//!   argument;
//! - otherwise the first item is a *launcher* that wraps a command, the way
//!   `opentelemetry-instrument python main.py` (and `ddtrace-run`) work: it
//!   gets `<interpreter> /var/task/<script>` as its command. For Python the
//!   launcher comes from the artifact, since dependencies are vendored:
//!   1. `bin/<launcher>` (where `pip install --target` puts console
//!      scripts), run through the interpreter when it is a Python script:
//!      its shebang points at the machine that built the zip;
//!   2. else a `console_scripts` entry point declared by a vendored
//!      `*.dist-info/entry_points.txt`, called via `python -c`;
//!   3. else a vendored module of that name (dashes → underscores) with a
//!      `__main__`, via `python -m`.
//!
//!   For Node: `node_modules/.bin/<launcher>`, run by node.
//!
//! Python processes also get `PYTHONPATH=/var/task`: the launcher itself
//! (run from `/var/task/bin`) must import the vendored packages, and so must
//! any Python subprocess the agent starts.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::config::Runtime;
use crate::error::ArtifactError;
use crate::unpack::{resolve_in_tree, Resolved};

/// Where the code tree is mounted inside the sandbox, and the working directory.
pub const SANDBOX_CODE_DIR: &str = "/var/task";

/// How to start the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchPlan {
    /// Inside the sandbox; `argv[0]` is an absolute path.
    pub argv: Vec<String>,
    /// Extra environment for the agent process.
    pub env: Vec<(String, String)>,
}

const SCRIPT_EXTENSIONS: [&str; 5] = [".py", ".js", ".mjs", ".cjs", ".pyc"];

/// Build the launch plan for an unpacked tree at `code_dir` (host path).
pub fn plan_launch(
    code_dir: &Path,
    runtime: Runtime,
    interpreter: &Path,
    entry_point: &[String],
) -> Result<LaunchPlan, ArtifactError> {
    let invalid = |reason: String| ArtifactError::InvalidEntryPoint {
        entry_point: entry_point.to_vec(),
        reason,
    };
    let (launcher, script, args): (Option<&str>, &str, &[String]) = match entry_point {
        [script] => (None, script, &[]),
        [first, second] => {
            let first_is_script = SCRIPT_EXTENSIONS.iter().any(|e| first.ends_with(e))
                && clean_relative(first).is_some_and(|p| is_file_in_tree(code_dir, &p));
            if first_is_script {
                (None, first, std::slice::from_ref(second))
            } else {
                (Some(first.as_str()), second, &[])
            }
        }
        _ => return Err(invalid("it must have 1 or 2 items".to_string())),
    };

    let script_rel = clean_relative(script).ok_or_else(|| {
        invalid(format!(
            "'{script}' must be a relative path inside the artifact (no leading '/', no '..')"
        ))
    })?;
    match resolve_in_tree(code_dir, &script_rel) {
        Resolved::Inside(p) if code_dir.join(&p).is_file() => {}
        Resolved::Inside(_) => {
            return Err(ArtifactError::EntryPointNotFound {
                entry: script.to_string(),
                listing: listing(code_dir),
                hint: hint_for(code_dir, &script_rel),
            })
        }
        Resolved::Escapes | Resolved::TooManyHops => {
            return Err(invalid(format!(
                "'{script}' is a symlink that leads outside the artifact"
            )))
        }
    }
    let script_in_sandbox = in_sandbox(&script_rel);
    let interp = interpreter.to_string_lossy().into_owned();

    let mut argv: Vec<String> = match launcher {
        None => vec![interp.clone(), script_in_sandbox],
        Some(l) if runtime.is_python() => {
            python_launcher(code_dir, l, &interp, &script_in_sandbox, script)?
        }
        Some(l) => node_launcher(code_dir, l, &interp, &script_in_sandbox, script)?,
    };
    argv.extend(args.iter().cloned());
    let env = if runtime.is_python() {
        vec![("PYTHONPATH".to_string(), SANDBOX_CODE_DIR.to_string())]
    } else {
        Vec::new()
    };
    Ok(LaunchPlan { argv, env })
}

fn python_launcher(
    code_dir: &Path,
    launcher: &str,
    interp: &str,
    script_in_sandbox: &str,
    script: &str,
) -> Result<Vec<String>, ArtifactError> {
    let not_found = |expected: String| ArtifactError::LauncherNotFound {
        launcher: launcher.to_string(),
        script: script.to_string(),
        expected,
    };
    let plain_name = !launcher.contains('/') && clean_relative(launcher).is_some();
    // 1. bin/<launcher>, or a relative path given as the launcher.
    let rel = if plain_name {
        Some(Path::new("bin").join(launcher))
    } else {
        clean_relative(launcher)
    };
    if let Some(rel) = rel.filter(|r| is_file_in_tree(code_dir, r)) {
        let host = code_dir.join(&rel);
        let sandbox = in_sandbox(&rel);
        if is_python_script(&host) {
            return Ok(vec![
                interp.to_string(),
                sandbox,
                interp.to_string(),
                script_in_sandbox.to_string(),
            ]);
        }
        let mode = fs::metadata(&host)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        if mode & 0o111 == 0 {
            return Err(not_found(format!(
                "'{}' is neither a Python script nor executable (chmod +x it before zipping)",
                rel.display()
            )));
        }
        return Ok(vec![
            sandbox,
            interp.to_string(),
            script_in_sandbox.to_string(),
        ]);
    }
    if !plain_name {
        return Err(not_found(format!(
            "'{launcher}' is not a file in the artifact"
        )));
    }
    // 2. A console_scripts entry point of a vendored distribution.
    if let Some((module, attr)) = console_script(code_dir, launcher) {
        let code = format!(
            "import sys, importlib\n\
             f = importlib.import_module('{module}')\n\
             for a in '{attr}'.split('.'): f = getattr(f, a)\n\
             sys.argv[0] = '{launcher}'\n\
             sys.exit(f())"
        );
        return Ok(vec![
            interp.to_string(),
            "-c".to_string(),
            code,
            interp.to_string(),
            script_in_sandbox.to_string(),
        ]);
    }
    // 3. A vendored module with a __main__.
    let module = launcher.replace('-', "_");
    if is_identifier_path(&module)
        && is_file_in_tree(code_dir, &Path::new(&module).join("__main__.py"))
    {
        return Ok(vec![
            interp.to_string(),
            "-m".to_string(),
            module,
            interp.to_string(),
            script_in_sandbox.to_string(),
        ]);
    }
    Err(not_found(format!(
        "expected bin/{launcher} or a vendored package that declares it \
         (`pip install --target <dir> <package>` puts both in the zip)"
    )))
}

fn node_launcher(
    code_dir: &Path,
    launcher: &str,
    interp: &str,
    script_in_sandbox: &str,
    script: &str,
) -> Result<Vec<String>, ArtifactError> {
    let rel = if !launcher.contains('/') && clean_relative(launcher).is_some() {
        Some(Path::new("node_modules/.bin").join(launcher))
    } else {
        clean_relative(launcher)
    };
    match rel.filter(|r| is_file_in_tree(code_dir, r)) {
        Some(rel) => Ok(vec![
            interp.to_string(),
            in_sandbox(&rel),
            script_in_sandbox.to_string(),
        ]),
        None => Err(ArtifactError::LauncherNotFound {
            launcher: launcher.to_string(),
            script: script.to_string(),
            expected: format!("expected node_modules/.bin/{launcher}"),
        }),
    }
}

/// `a/./b` → `a/b`; `None` for absolute paths, `..`, NUL or nothing at all.
fn clean_relative(s: &str) -> Option<PathBuf> {
    if s.contains('\0') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in Path::new(s).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn in_sandbox(rel: &Path) -> String {
    format!("{SANDBOX_CODE_DIR}/{}", rel.to_string_lossy())
}

/// A regular file once symlinks inside the tree are followed.
fn is_file_in_tree(code_dir: &Path, rel: &Path) -> bool {
    match resolve_in_tree(code_dir, rel) {
        Resolved::Inside(p) => code_dir.join(p).is_file(),
        _ => false,
    }
}

/// pip's console-script wrappers: `#!/build/host/python` or, for long
/// interpreter paths, a `#!/bin/sh` + `'''exec' …python…` polyglot. Both run
/// fine under Python.
fn is_python_script(path: &Path) -> bool {
    let mut head = Vec::with_capacity(512);
    if fs::File::open(path)
        .and_then(|f| f.take(512).read_to_end(&mut head))
        .is_err()
    {
        return false;
    }
    head.starts_with(b"#!") && String::from_utf8_lossy(&head).contains("python")
        || path.extension().is_some_and(|e| e == "py")
}

/// Find `name = module:attr` under `[console_scripts]` in any top-level
/// `*.dist-info/entry_points.txt`.
fn console_script(code_dir: &Path, name: &str) -> Option<(String, String)> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(code_dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "dist-info") && p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(text) = fs::read_to_string(dir.join("entry_points.txt")) else {
            continue;
        };
        let mut in_section = false;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('[') {
                in_section = line == "[console_scripts]";
                continue;
            }
            if !in_section {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            if k.trim() != name {
                continue;
            }
            // "module.sub:attr.x [extra]"
            let v = v.split('[').next().unwrap_or("").trim();
            let (module, attr) = v.split_once(':')?;
            let (module, attr) = (module.trim(), attr.trim());
            if is_identifier_path(module) && is_identifier_path(attr) {
                return Some((module.to_string(), attr.to_string()));
            }
        }
    }
    None
}

/// `a.b_c.d`: dotted Python identifiers (ASCII), so it is safe to paste into `-c`.
fn is_identifier_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|p| {
            p.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// The first names at the top of the tree, for "the zip contains: …".
fn listing(code_dir: &Path) -> String {
    let mut names: Vec<String> = fs::read_dir(code_dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let mut n = e.file_name().to_string_lossy().into_owned();
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        n.push('/');
                    }
                    n
                })
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return "nothing (the zip is empty)".to_string();
    }
    names.sort();
    const SHOWN: usize = 10;
    let more = names.len().saturating_sub(SHOWN);
    names.truncate(SHOWN);
    let mut s = names.join(", ");
    if more > 0 {
        s.push_str(&format!(", … and {more} more"));
    }
    s
}

/// The usual mistake: zipping the folder instead of its contents.
fn hint_for(code_dir: &Path, script: &Path) -> String {
    let Ok(rd) = fs::read_dir(code_dir) else {
        return String::new();
    };
    let mut found: Vec<String> = rd
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.path().join(script).is_file())
        .map(|e| format!("{}/{}", e.file_name().to_string_lossy(), script.display()))
        .collect();
    found.sort();
    match found.first() {
        Some(f) => format!(
            "; it does have '{f}': zip the folder's contents rather than the folder, or set entryPoint to [\"{f}\"]"
        ),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(clean_relative("main.py"), Some(PathBuf::from("main.py")));
        assert_eq!(
            clean_relative("./src/./app.py"),
            Some(PathBuf::from("src/app.py"))
        );
        assert_eq!(clean_relative("/main.py"), None);
        assert_eq!(clean_relative("../main.py"), None);
        assert_eq!(clean_relative("."), None);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier_path(
            "opentelemetry.instrumentation.auto_instrumentation"
        ));
        assert!(is_identifier_path("run"));
        assert!(!is_identifier_path("os; import x"));
        assert!(!is_identifier_path("a..b"));
        assert!(!is_identifier_path("1abc"));
    }
}
