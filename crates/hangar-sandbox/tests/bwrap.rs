//! Real-process tests of the bubblewrap backend. They need root and `bwrap` (the project's test
//! script installs bubblewrap and passt and runs as root); elsewhere each test prints why it is
//! skipped and passes. Each test uses its own cgroup parent, so tests may run in parallel and
//! reaping in one never touches another's sandboxes.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hangar_sandbox::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PY: &str = "/usr/bin/python3";

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A backend with a private cgroup parent that is removed (it must be empty by then) on drop.
struct TestBackend {
    backend: BwrapBackend,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.backend
                .remove_parent_cgroup()
                .expect("test cgroup parent must be empty at the end of a test");
        } else {
            let _ = self.backend.remove_parent_cgroup();
        }
    }
}

impl std::ops::Deref for TestBackend {
    type Target = BwrapBackend;
    fn deref(&self) -> &BwrapBackend {
        &self.backend
    }
}

fn cgroup_parent(tag: &str) -> String {
    format!(
        "hangar-test-{}-{}-{tag}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

fn backend(tag: &str) -> Option<TestBackend> {
    backend_with_parent(&cgroup_parent(tag))
}

fn backend_with_parent(parent: &str) -> Option<TestBackend> {
    // SAFETY: trivial libc call.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the bubblewrap backend needs root");
        return None;
    }
    let cfg = BwrapConfig {
        cgroup_parent: parent.to_string(),
        ..BwrapConfig::default()
    };
    match BwrapBackend::new(cfg) {
        Ok(b) => Some(TestBackend { backend: b }),
        Err(SandboxError::Unavailable(m)) if m.contains("not found") => {
            eprintln!("SKIPPED: {m}");
            None
        }
        Err(e) => panic!("backend: {e}"),
    }
}

/// A world-readable directory with files, as the layer above prepares code directories.
fn code_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (name, body) in files {
        let p = d.path().join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    d
}

fn py_spec(id: &str, code: &Path, script: &str, args: &[&str]) -> SandboxSpec {
    let mut s = SandboxSpec::new(id, PY);
    s.mounts.push(Mount::ReadOnly {
        host: code.to_path_buf(),
        inside: "/code".into(),
    });
    s.cwd = "/code".into();
    s.args = std::iter::once(format!("/code/{script}"))
        .chain(args.iter().map(|a| a.to_string()))
        .collect();
    s
}

async fn wait_exit(sb: &dyn Sandbox, secs: u64) -> SandboxExit {
    tokio::time::timeout(Duration::from_secs(secs), sb.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "sandbox did not exit; stdout={} stderr={}",
                sb.stdout_tail(2000),
                sb.stderr_tail(2000)
            )
        })
        .unwrap()
}

/// Wait until the sandbox's stdout contains `needle`.
async fn wait_output(sb: &dyn Sandbox, needle: &str) {
    let t = Instant::now();
    while !sb.stdout_tail(1 << 20).contains(needle) {
        assert!(
            t.elapsed() < Duration::from_secs(20) && sb.exited().is_none(),
            "no {needle:?} in stdout={} stderr={} exit={:?}",
            sb.stdout_tail(2000),
            sb.stderr_tail(2000),
            sb.exited()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn http_get(sb: &dyn Sandbox, port: u16, path: &str) -> String {
    let t = Instant::now();
    loop {
        match sb.connect(port).await {
            Ok(mut c) => {
                c.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
                    .await
                    .unwrap();
                let mut s = String::new();
                c.read_to_string(&mut s).await.unwrap();
                return s;
            }
            Err(e) => {
                assert!(
                    t.elapsed() < Duration::from_secs(20),
                    "connect: {e}; stderr={}",
                    sb.stderr_tail(2000)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn exec_out(sb: &dyn Sandbox, argv: &[&str]) -> ExecOutput {
    let req = ExecRequest::new(argv[0]).args(argv[1..].iter().copied());
    sb.exec(req)
        .await
        .unwrap()
        .wait_with_output()
        .await
        .unwrap()
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Ok(s) => !s
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_program_with_env_cwd_args() {
    let Some(b) = backend("basic") else { return };
    let code = code_dir(&[(
        "main.py",
        r#"
import os, sys
print("args", sys.argv[1:])
print("cwd", os.getcwd())
print("env", sorted(os.environ.items()))
print("uid", os.getuid(), os.getgid(), os.getgroups())
print("host", open("/etc/hostname").read().strip(), open("/etc/hosts").read().split()[1])
print("oops", file=sys.stderr)
sys.exit(3)
"#,
    )]);
    let mut spec = py_spec("basic", code.path(), "main.py", &["a b", "c"]);
    spec.env = vec![
        ("FOO".into(), "bar baz".into()),
        ("PATH".into(), "/usr/bin".into()),
    ];
    let sb = b.spawn(spec).await.unwrap();
    let st = wait_exit(sb.as_ref(), 20).await;
    let out = sb.stdout_tail(10_000);
    assert_eq!(st.code, Some(3), "{out} {}", sb.stderr_tail(1000));
    assert!(out.contains("args ['a b', 'c']"), "{out}");
    assert!(out.contains("cwd /code"), "{out}");
    // The complete environment is what we gave (python adds nothing; LC_CTYPE may be coerced).
    assert!(
        out.contains("('FOO', 'bar baz')") && out.contains("('PATH', '/usr/bin')"),
        "{out}"
    );
    assert!(
        !out.contains("NODE_EXTRA_CA_CERTS") && !out.contains("CARGO"),
        "{out}"
    );
    let uid = sb.host_uid().unwrap();
    assert!(out.contains(&format!("uid {uid} {uid} []")), "{out}");
    assert!(out.contains("host sandbox localhost"), "{out}");
    assert_eq!(sb.stderr_tail(100), "oops\n");
    sb.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sandboxes_listen_on_the_same_port() {
    let Some(b) = backend("port") else { return };
    let mut boxes = Vec::new();
    let mut dirs = Vec::new();
    for name in ["alpha", "beta"] {
        let code = code_dir(&[("index.html", &format!("I am {name}\n"))]);
        let mut spec = SandboxSpec::new(name, PY);
        spec.args = ["-m", "http.server", "8080"].map(String::from).to_vec();
        spec.mounts.push(Mount::ReadOnly {
            host: code.path().into(),
            inside: "/srv".into(),
        });
        spec.cwd = "/srv".into();
        boxes.push(b.spawn(spec).await.unwrap());
        dirs.push(code);
    }
    for _ in 0..3 {
        for (sb, name) in boxes.iter().zip(["alpha", "beta"]) {
            let r = http_get(sb.as_ref(), 8080, "/index.html").await;
            assert!(r.starts_with("HTTP/1.0 200"), "{r}");
            assert!(r.ends_with(&format!("I am {name}\n")), "{r}");
        }
    }
    for sb in &boxes {
        sb.kill().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation() {
    let Some(b) = backend("iso") else { return };
    // A host file outside every mount, and a private one in root's home.
    let host_dir = tempfile::tempdir().unwrap();
    let host_secret = host_dir.path().join("host-secret.txt");
    std::fs::write(&host_secret, "secret").unwrap();
    std::fs::set_permissions(host_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&host_secret, std::fs::Permissions::from_mode(0o644)).unwrap();

    let owner = code_dir(&[(
        "owner.py",
        "import time\nopen('/tmp/a-secret','w').write('mine')\nprint('written', flush=True)\ntime.sleep(600)\n",
    )]);
    let a = b
        .spawn(py_spec("iso-a", owner.path(), "owner.py", &[]))
        .await
        .unwrap();
    wait_output(a.as_ref(), "written").await;

    let probe = code_dir(&[(
        "probe.py",
        r#"
import ctypes, errno, os, sys
host_secret = sys.argv[1]
r = {}
r["other_tmp"] = os.path.exists("/tmp/a-secret")
r["host_file"] = os.path.exists(host_secret)
r["root_home"] = os.path.exists("/root")
try:
    open("/etc/shadow").read(); r["shadow"] = True
except OSError:
    r["shadow"] = False
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
r["pids"] = pids
r["own_pid"] = os.getpid()
try:
    open("/code/new.txt", "w").write("x"); r["write_code"] = True
except OSError as e:
    r["write_code"] = e.errno
try:
    open("/usr/evil", "w"); r["write_usr"] = True
except OSError as e:
    r["write_usr"] = e.errno
try:
    open("/evil", "w"); r["write_root"] = True
except OSError as e:
    r["write_root"] = e.errno
libc = ctypes.CDLL(None, use_errno=True)
MS_REMOUNT, MS_BIND = 32, 4096
rc = libc.mount(None, b"/code", None, MS_REMOUNT | MS_BIND, None)
r["remount_rw"] = (rc, ctypes.get_errno())
rc = libc.mount(b"none", b"/mnt", b"tmpfs", 0, None)
r["mount_tmpfs"] = (rc, ctypes.get_errno())
r["unshare_user"] = libc.unshare(0x10000000)
r["uid"] = os.getuid()
st = open("/proc/self/status").read()
r["capeff"] = [l.split()[1] for l in st.splitlines() if l.startswith("CapEff")][0]
r["capbnd"] = [l.split()[1] for l in st.splitlines() if l.startswith("CapBnd")][0]
print(repr(r))
"#,
    )]);
    let mut spec = py_spec(
        "iso-b",
        probe.path(),
        "probe.py",
        &[host_secret.to_str().unwrap()],
    );
    spec.mounts.push(Mount::Tmpfs {
        inside: "/mnt".into(),
        size_bytes: 1 << 20,
    });
    let sb = b.spawn_bwrap(spec).await.unwrap();
    // Host view: the program runs as the session uid, not root.
    let pid = sb.main_pid().expect("running");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    let host_uid = sb.uid();
    assert_ne!(host_uid, 0);
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some(host_uid.to_string().as_str())
    );
    assert_ne!(a.host_uid(), Some(host_uid), "sessions get distinct uids");
    let st = wait_exit(&sb, 20).await;
    let out = sb.stdout_tail(10_000);
    assert!(st.success(), "{out} {}", sb.stderr_tail(2000));
    let get = |k: &str| -> String {
        let i = out
            .find(&format!("'{k}': "))
            .unwrap_or_else(|| panic!("{k} in {out}"));
        out[i + k.len() + 4..]
            .split([',', '}'])
            .next()
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(get("other_tmp"), "False", "{out}");
    assert_eq!(get("host_file"), "False", "{out}");
    assert_eq!(get("root_home"), "False", "{out}");
    assert_eq!(get("shadow"), "False", "{out}");
    assert_eq!(get("write_code"), libc::EROFS.to_string(), "{out}");
    assert_eq!(get("write_usr"), libc::EROFS.to_string(), "{out}");
    assert_eq!(get("write_root"), libc::EROFS.to_string(), "{out}");
    assert!(
        out.contains(&format!("'remount_rw': (-1, {})", libc::EPERM)),
        "{out}"
    );
    assert!(
        out.contains(&format!("'mount_tmpfs': (-1, {})", libc::EPERM)),
        "{out}"
    );
    assert_eq!(get("unshare_user"), "-1", "{out}");
    assert_eq!(get("uid"), host_uid.to_string(), "{out}");
    assert_eq!(get("capeff"), "'0000000000000000'", "{out}");
    assert_eq!(get("capbnd"), "'0000000000000000'", "{out}");
    // Own pid namespace: only bwrap's pid 1 and the program itself.
    let i = out.find("'pids': [").unwrap();
    let pids: Vec<u32> = out[i + 9..]
        .split(']')
        .next()
        .unwrap()
        .split(", ")
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.len() <= 3 && pids.iter().all(|p| *p < 10), "{out}");
    assert!(a.exited().is_none());
    sb.kill().await.unwrap();
    a.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_kills_only_the_offender() {
    let Some(b) = backend("oom") else { return };
    let code = code_dir(&[
        (
            "hog.py",
            "chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))\n    print(len(chunks) * 8, 'MiB', flush=True)\n",
        ),
        (
            "bystander.py",
            "import time\nkeep = bytearray(30 << 20)\nprint('holding', flush=True)\ntime.sleep(600)\n",
        ),
    ]);
    let mut by = py_spec("bystander", code.path(), "bystander.py", &[]);
    by.limits.memory_bytes = Some(64 << 20);
    let by = b.spawn(by).await.unwrap();
    wait_output(by.as_ref(), "holding").await;

    let mut hog = py_spec("hog", code.path(), "hog.py", &[]);
    hog.limits.memory_bytes = Some(64 << 20);
    let hog = b.spawn(hog).await.unwrap();
    let st = wait_exit(hog.as_ref(), 60).await;
    assert!(st.killed(), "{st:?} {}", hog.stdout_tail(500));
    assert!(hog.oom_kills().unwrap_or(0) >= 1);
    let printed = hog.stdout_tail(10_000);
    let last: u64 = printed
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(last < 64, "got to {last} MiB under a 64 MiB limit");

    assert!(by.exited().is_none(), "bystander must survive");
    let o = exec_out(by.as_ref(), &["/usr/bin/echo", "still here"]).await;
    assert_eq!(o.stdout, b"still here\n");
    assert!(by.memory_usage_bytes().unwrap() > 30 << 20);
    hog.kill().await.unwrap();
    by.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pids_limit_bounds_a_fork_bomb() {
    let Some(b) = backend("pids") else { return };
    let code = code_dir(&[(
        "bomb.py",
        r#"
import os, time
n = 0
try:
    for _ in range(1000):
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
        n += 1
except OSError as e:
    print("fork failed after", n, e.errno, flush=True)
else:
    print("no limit", n, flush=True)
time.sleep(600)
"#,
    )]);
    let mut spec = py_spec("bomb", code.path(), "bomb.py", &[]);
    spec.limits.max_processes = Some(32);
    let sb = b.spawn_bwrap(spec).await.unwrap();
    wait_output(&sb, "fork").await;
    let out = sb.stdout_tail(1000);
    let n: u32 = out.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert!(n < 32, "{out}");
    assert!(out.contains(&format!(" {}", libc::EAGAIN)), "{out}");
    assert!(sb.pids().len() <= 32);
    let pids = sb.pids();
    sb.kill().await.unwrap();
    assert!(pids.iter().all(|p| !alive(*p)));
    assert!(!sb.cgroup_exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_quota_is_enforced() {
    let Some(b) = backend("cpu") else { return };
    let code = code_dir(&[(
        "spin.py",
        r#"
import os, time
t0 = time.monotonic(); c0 = sum(os.times()[:2])
while time.monotonic() - t0 < 1.0:
    pass
print("share %.3f" % ((sum(os.times()[:2]) - c0) / (time.monotonic() - t0)))
"#,
    )]);
    let mut spec = py_spec("spin", code.path(), "spin.py", &[]);
    spec.limits.cpu_millis = Some(200);
    let sb = b.spawn(spec).await.unwrap();
    let st = wait_exit(sb.as_ref(), 20).await;
    assert!(st.success());
    let out = sb.stdout_tail(100);
    let share: f64 = out.trim().split(' ').nth(1).unwrap().parse().unwrap();
    // 20 % of a CPU, with a little slack for period boundaries.
    assert!(share > 0.02 && share < 0.32, "{out}");
    sb.kill().await.unwrap();
}

/// A tiny HTTP server on the host's loopback; answers every request with `body`.
async fn host_http(body: &'static str) -> (u16, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let h = tokio::spawn(async move {
        for _ in 0..20 {
            let Ok((mut c, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = c.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, h)
}

const NET_PROBE: &str = r#"
import os, socket, sys, urllib.request
port = int(sys.argv[1])
print("ifaces", sorted(n for _, n in socket.if_nameindex()))
for host in ["127.0.0.1", os.environ.get("HANGAR_HOST_LOOPBACK", "10.0.2.2")]:
    try:
        body = urllib.request.urlopen("http://%s:%d/" % (host, port), timeout=3).read().decode()
        print(host, "OK", body)
    except Exception as e:
        print(host, "FAIL", type(e).__name__)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_none_reaches_nothing() {
    let Some(b) = backend("netnone") else { return };
    let (port, server) = host_http("hello-from-host").await;
    let code = code_dir(&[("net.py", NET_PROBE)]);
    let sb = b
        .spawn(py_spec(
            "netnone",
            code.path(),
            "net.py",
            &[&port.to_string()],
        ))
        .await
        .unwrap();
    let st = wait_exit(sb.as_ref(), 30).await;
    let out = sb.stdout_tail(5000);
    assert!(st.success(), "{out} {}", sb.stderr_tail(2000));
    assert!(out.contains("ifaces ['lo']"), "{out}");
    assert!(out.contains("127.0.0.1 FAIL"), "{out}");
    assert!(out.contains("10.0.2.2 FAIL"), "{out}");
    server.abort();
    sb.kill().await.unwrap();
}

async fn public_network(helper: NetHelper, comm: &str) {
    let parent = cgroup_parent(comm);
    // SAFETY: trivial libc call.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: the bubblewrap backend needs root");
        return;
    }
    let b = match BwrapBackend::new(BwrapConfig {
        cgroup_parent: parent,
        net_helper: helper,
        ..BwrapConfig::default()
    }) {
        Ok(b) => TestBackend { backend: b },
        Err(e) => {
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    if !b.public_network_available() {
        eprintln!("SKIPPED: {comm} not installed");
        return;
    }
    let (port, server) = host_http("hello-from-host").await;
    let code = code_dir(&[("net.py", NET_PROBE)]);
    let mut spec = py_spec("netpub", code.path(), "net.py", &[&port.to_string()]);
    spec.network = NetworkMode::Public {
        host_loopback: true,
    };
    let sb = b.spawn_bwrap(spec).await.unwrap();
    // The helper is in the session cgroup and runs as the session uid, not root.
    let helper_pid = sb
        .pids()
        .into_iter()
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim().starts_with(comm))
        })
        .unwrap_or_else(|| {
            let comms: Vec<String> = sb
                .pids()
                .iter()
                .map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default())
                .collect();
            panic!("no network helper in the session cgroup: {comms:?}")
        });
    let status = std::fs::read_to_string(format!("/proc/{helper_pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == sb.uid().to_string()),
        "{uid_line}"
    );
    assert!(
        !std::fs::read_link(format!("/proc/{helper_pid}/root"))
            .map(|r| r == Path::new("/"))
            .unwrap_or(true),
        "the helper is jailed"
    );
    let st = wait_exit(&sb, 30).await;
    let out = sb.stdout_tail(5000);
    assert!(st.success(), "{out} {}", sb.stderr_tail(2000));
    assert!(out.contains("ifaces ['eth0', 'lo']"), "{out}");
    // The sandbox's own loopback is its own; the host's is at 10.0.2.2.
    assert!(out.contains("127.0.0.1 FAIL"), "{out}");
    assert!(out.contains("10.0.2.2 OK hello-from-host"), "{out}");
    let pids = sb.pids();
    assert!(pids.contains(&helper_pid));
    sb.kill().await.unwrap();
    server.abort();
    let t = Instant::now();
    while pids.iter().any(|p| alive(*p)) && t.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        pids.iter().all(|p| !alive(*p)),
        "the helper died with the sandbox"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_public_slirp4netns_reaches_the_host_loopback() {
    public_network(NetHelper::Slirp4netns, "slirp4netns").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_public_pasta_reaches_the_host_loopback() {
    public_network(NetHelper::Pasta, "passt").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_inside_the_same_sandbox() {
    let Some(b) = backend("exec") else { return };
    let code = code_dir(&[(
        "main.py",
        "import time\nopen('/tmp/marker','w').write('from-main')\nprint('ready', flush=True)\ntime.sleep(600)\n",
    )]);
    let sb = b
        .spawn_bwrap(py_spec("exec", code.path(), "main.py", &[]))
        .await
        .unwrap();
    wait_output(&sb, "ready").await;
    let uid = sb.uid();

    let o = exec_out(&sb, &["/usr/bin/cat", "/tmp/marker"]).await;
    assert_eq!(String::from_utf8_lossy(&o.stdout), "from-main");
    assert!(o.status.success());

    let o = exec_out(
        &sb,
        &[
            "/usr/bin/sh",
            "-c",
            "id -u; id -G; pwd; grep -E '^Cap(Eff|Bnd)' /proc/self/status; ls /proc | grep -c '^[0-9]'; cat /proc/1/cmdline | tr '\\0' ' '; echo; echo err >&2; exit 7",
        ],
    )
    .await;
    let out = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], uid.to_string(), "{out}");
    assert_eq!(lines[1], uid.to_string(), "{out}");
    assert_eq!(lines[2], "/", "{out}");
    assert!(
        lines[3].ends_with("0000000000000000") && lines[4].ends_with("0000000000000000"),
        "{out}"
    );
    // bwrap's pid 1, the program, sh, ls, grep, (cat): a handful, not the host's hundreds.
    let n: u32 = lines[5].parse().unwrap();
    assert!(n <= 8, "{out}");
    assert!(lines[6].contains("bwrap"), "{out}");
    assert_eq!(o.stderr, b"err\n");
    assert_eq!(o.status.code, Some(7));

    // cwd, env and stdin.
    let mut req = ExecRequest::new("/usr/bin/sh").args(["-c", "pwd; echo $GREETING; cat"]);
    req.cwd = "/code".into();
    req.env = vec![("GREETING".into(), "hi".into())];
    req.stdin = true;
    let mut p = sb.exec(req).await.unwrap();
    let mut stdin = p.stdin.take().unwrap();
    stdin.write_all(b"piped\n").await.unwrap();
    drop(stdin);
    let o = p.wait_with_output().await.unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "/code\nhi\npiped\n");

    // The exec'd command is in the session cgroup; killing it kills the command.
    let mut p = sb
        .exec(ExecRequest::new("/usr/bin/sleep").args(["600"]))
        .await
        .unwrap();
    let t = Instant::now();
    while sb.pids().len() < 5 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sb.pids().len(), 5, "bwrap x2, python, exec helper, sleep");
    p.start_kill().unwrap();
    let st = p.wait().await.unwrap();
    assert!(st.killed());
    let t = Instant::now();
    while sb.pids().len() > 3 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(sb.pids().len(), 3, "the sleep died with its exec handle");

    // A missing program is an error, not a hang.
    let r = sb.exec(ExecRequest::new("/nonexistent")).await;
    assert!(r.is_err());

    sb.kill().await.unwrap();
    assert!(matches!(
        sb.exec(ExecRequest::new("/usr/bin/true")).await,
        Err(SandboxError::NotRunning(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_tails_are_bounded() {
    let Some(b) = backend("tails") else { return };
    let mut spec = SandboxSpec::new("tails", PY);
    spec.args = vec![
        "-c".into(),
        "import sys\nfor i in range(40000): print('line %06d' % i)\nsys.stderr.write('E' * 300000 + 'END')\n".into(),
    ];
    let sb = b.spawn(spec).await.unwrap();
    let st = wait_exit(sb.as_ref(), 20).await;
    assert!(st.success());
    let out = sb.stdout_tail(usize::MAX);
    assert_eq!(out.len(), 256 * 1024);
    assert!(out.ends_with("line 039999\n"));
    assert_eq!(sb.stdout_tail(12), "line 039999\n");
    let err = sb.stderr_tail(usize::MAX);
    assert_eq!(err.len(), 256 * 1024);
    assert!(err.ends_with("EEEEND"));
    sb.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leaves_nothing_behind() {
    let Some(b) = backend("kill") else { return };
    let mut spec = SandboxSpec::new("killme", "/usr/bin/sh");
    spec.args = vec!["-c".into(), "sleep 600 & sleep 600 & echo up; wait".into()];
    let sb = b.spawn_bwrap(spec).await.unwrap();
    wait_output(&sb, "up").await;
    let _p = sb
        .exec(ExecRequest::new("/usr/bin/sleep").args(["600"]))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let pids = sb.pids();
    assert!(pids.len() >= 6, "{pids:?}");
    assert!(sb.cgroup_exists());
    sb.kill().await.unwrap();
    assert!(!sb.cgroup_exists());
    let t = Instant::now();
    while pids.iter().any(|p| alive(*p)) && t.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(pids.iter().all(|p| !alive(*p)), "{pids:?}");
    assert!(sb.exited().unwrap().killed());
    sb.kill().await.unwrap(); // idempotent
    assert!(matches!(
        sb.connect(8080).await,
        Err(SandboxError::NotRunning(_))
    ));

    // Drop kills too.
    let mut spec = SandboxSpec::new("dropme", "/usr/bin/sleep");
    spec.args = vec!["600".into()];
    let sb = b.spawn_bwrap(spec).await.unwrap();
    let pids = sb.pids();
    let name = sb.cgroup_name().to_string();
    drop(sb);
    assert!(
        pids.iter().all(|p| !alive(*p)) || {
            tokio::time::sleep(Duration::from_millis(200)).await;
            pids.iter().all(|p| !alive(*p))
        }
    );
    assert!(!Path::new("/sys/fs/cgroup/pids")
        .join(&b.config().cgroup_parent)
        .join(name)
        .exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reap_orphans_cleans_up_after_a_crash() {
    let parent = cgroup_parent("reap");
    let Some(b1) = backend_with_parent(&parent) else {
        return;
    };
    let mut spec = SandboxSpec::new("orphan", "/usr/bin/sh");
    spec.args = vec!["-c".into(), "sleep 600 & sleep 600".into()];
    let sb = b1.spawn_bwrap(spec).await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pids = sb.pids();
    assert!(pids.len() >= 4, "{pids:?}");
    // "Crash": the sandbox is forgotten without any cleanup, its backend instance is gone.
    std::mem::forget(sb);

    // The successor (new backend, same parent) has a live sandbox of its own already.
    let b2 = backend_with_parent(&parent).unwrap();
    let mut spec = SandboxSpec::new("survivor", "/usr/bin/sleep");
    spec.args = vec!["600".into()];
    let survivor = b2.spawn(spec).await.unwrap();
    assert_eq!(b2.reap_orphans().await.unwrap(), 1);
    assert!(
        survivor.exited().is_none(),
        "own sandboxes are never reaped"
    );
    let t = Instant::now();
    while pids.iter().any(|p| alive(*p)) && t.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(pids.iter().all(|p| !alive(*p)), "{pids:?}");
    assert_eq!(b2.reap_orphans().await.unwrap(), 0);
    survivor.kill().await.unwrap();
    drop(b2); // removes the parent; b1's drop then finds nothing to remove
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_root_is_the_read_only_slash() {
    let Some(b) = backend("root") else { return };
    // A minimal "unpacked image": no /proc, /dev, /tmp or /etc/hosts; the image's binaries come
    // from the host's /usr mounted where the image expects them.
    let img = tempfile::tempdir().unwrap();
    let r = img.path();
    std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["usr", "etc", "app"] {
        std::fs::create_dir(r.join(d)).unwrap();
    }
    for l in ["bin", "lib", "lib64"] {
        std::os::unix::fs::symlink(format!("usr/{l}"), r.join(l)).unwrap();
    }
    std::fs::write(r.join("etc/os-release"), "ID=hangar-test\n").unwrap();
    std::fs::write(r.join("app/hello.txt"), "hello from the image\n").unwrap();
    for f in ["etc/os-release", "app/hello.txt"] {
        std::fs::set_permissions(r.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let mut spec = SandboxSpec::new("image", "/bin/sh");
    spec.root = Some(r.to_path_buf());
    spec.mounts = vec![Mount::ReadOnly {
        host: PathBuf::from("/usr"),
        inside: "/usr".into(),
    }];
    spec.cwd = "/app".into();
    spec.args = vec![
        "-c".into(),
        "cat hello.txt /etc/os-release; ls /etc; touch /app/x 2>&1; touch /tmp/ok && echo tmp-ok; ls -d /proc/1".into(),
    ];
    let sb = b.spawn(spec).await.unwrap();
    let st = wait_exit(sb.as_ref(), 20).await;
    let out = sb.stdout_tail(5000);
    assert!(st.success(), "{out} {}", sb.stderr_tail(2000));
    assert!(
        out.contains("hello from the image\nID=hangar-test\n"),
        "{out}"
    );
    assert!(out.contains("hostname\nhosts\nos-release\n"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert!(out.contains("tmp-ok\n/proc/1"), "{out}");
    // Nothing was written into the image directory.
    let mut names: Vec<_> = std::fs::read_dir(r.join("etc"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["os-release"]);
    assert!(!r.join("proc").exists() && !r.join("tmp").exists());
    sb.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_failures_are_reported_and_cleaned_up() {
    let Some(b) = backend("fail") else { return };
    let mut spec = SandboxSpec::new("badmount", "/usr/bin/true");
    spec.mounts.push(Mount::ReadOnly {
        host: "/nonexistent/dir".into(),
        inside: "/code".into(),
    });
    match b.spawn(spec).await {
        Err(SandboxError::StartFailed { stderr, .. }) => {
            assert!(stderr.contains("bwrap"), "{stderr}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("must fail"),
    }
    // A missing program: bwrap's pid 1 forks, the exec fails.
    match b.spawn(SandboxSpec::new("badprog", "/nonexistent")).await {
        Err(SandboxError::StartFailed { stderr, .. }) => {
            assert!(stderr.contains("execvp /nonexistent"), "{stderr}")
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("must fail"),
    }
    // A program that ends at once with success is not a failure.
    let sb = b
        .spawn(SandboxSpec::new("quick", "/usr/bin/true"))
        .await
        .unwrap();
    assert!(wait_exit(sb.as_ref(), 10).await.success());
    sb.kill().await.unwrap();
    let mut spec = SandboxSpec::new("uid0", "/usr/bin/true");
    spec.uid = Some(0);
    assert!(matches!(
        b.spawn(spec).await,
        Err(SandboxError::InvalidSpec(_))
    ));
}
