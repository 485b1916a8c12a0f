//! Ad-hoc measurements of the bubblewrap backend (run as root):
//!
//! ```sh
//! cargo run --release -p hangar-sandbox --example sandbox_bench [runs]
//! ```
//!
//! With `HANGAR_BENCH_VENV=<venv with bedrock-agentcore>` it also times a 5-line
//! `BedrockAgentCoreApp` (spawn -> `GET /ping` 200), bare and sandboxed.
//!
//! Prints medians of: spawn → first `GET /ping` 200 of a tiny Python HTTP server, in a sandbox
//! (no network / public network) and started bare; `connect()` into a sandbox vs a plain loopback
//! connect; a request on a warm connection; idle memory per sandbox.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hangar_sandbox::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SERVER: &str = r#"
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        body = b'{"status": "Healthy"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
HTTPServer(("0.0.0.0", int(sys.argv[1]) if len(sys.argv) > 1 else 8080), H).serve_forever()
"#;

const AGENT: &str = r#"
import os
from bedrock_agentcore import BedrockAgentCoreApp
app = BedrockAgentCoreApp()
@app.entrypoint
def invoke(payload):
    return {"result": payload.get("prompt", "")}
if __name__ == "__main__":
    app.run(port=int(os.environ.get("PORT", "8080")))
"#;

const PING: &[u8] = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";

async fn ping_once(mut c: TcpStream) -> bool {
    if c.write_all(PING).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(c.read(&mut buf).await, Ok(n) if n > 12 && buf.starts_with(b"HTTP/1.1 200"))
}

/// One request/response on an open keep-alive connection.
async fn ping_on(c: &mut TcpStream) {
    c.write_all(PING).await.unwrap();
    let mut buf = [0u8; 512];
    let mut got = 0;
    // headers + 21-byte body; the response arrives in one segment on loopback.
    while got == 0 || !buf[..got].ends_with(b"}") {
        got += c.read(&mut buf[got..]).await.unwrap();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn stats(name: &str, v: Vec<f64>, unit: &str) {
    let mut s = v.clone();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{name:<58} median {:>9.3} {unit}  (min {:.3}, max {:.3}, n={})",
        median(v),
        s[0],
        s[s.len() - 1],
        s.len()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(15);
    let mk = |suffix: &str, helper: NetHelper| {
        BwrapBackend::new(BwrapConfig {
            cgroup_parent: format!("hangar-bench-{}-{suffix}", std::process::id()),
            net_helper: helper,
            ..Default::default()
        })
        .expect("backend (run as root with bubblewrap installed)")
    };
    let slirp_backend = mk("slirp", NetHelper::Slirp4netns);
    let pasta_backend = mk("pasta", NetHelper::Pasta);
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.path().join("server.py");
    std::fs::write(&script, SERVER).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();

    let spec = |id: String, net: NetworkMode| {
        let mut s = SandboxSpec::new(id, "/usr/bin/python3");
        s.args = vec!["/code/server.py".into()];
        s.mounts.push(Mount::ReadOnly {
            host: dir.path().into(),
            inside: "/code".into(),
        });
        s.cwd = "/code".into();
        s.network = net;
        s
    };
    let bare_server = |port: u16| {
        tokio::process::Command::new("/usr/bin/python3")
            .arg(&script)
            .arg(port.to_string())
            .env_clear()
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };

    // Bare: the same server on a host port.
    let mut bare = Vec::new();
    for i in 0..runs {
        let port = 18_600 + i as u16;
        let t = Instant::now();
        let mut child = bare_server(port);
        loop {
            if let Ok(c) = TcpStream::connect(("127.0.0.1", port)).await {
                if ping_once(c).await {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        bare.push(t.elapsed().as_secs_f64() * 1e3);
        child.kill().await.unwrap();
    }
    stats("bare python server: spawn -> GET /ping 200", bare, "ms");

    if let Ok(venv) = std::env::var("HANGAR_BENCH_VENV") {
        let app = dir.path().join("app.py");
        std::fs::write(&app, AGENT).unwrap();
        std::fs::set_permissions(&app, std::fs::Permissions::from_mode(0o644)).unwrap();
        let py = format!("{venv}/bin/python");
        let (mut bare, mut boxed) = (Vec::new(), Vec::new());
        for i in 0..runs.min(10) {
            let port = 18_700 + i as u16;
            let t = Instant::now();
            let mut child = tokio::process::Command::new(&py)
                .arg(&app)
                .env_clear()
                .env("PORT", port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            loop {
                if let Ok(c) = TcpStream::connect(("127.0.0.1", port)).await {
                    if ping_once(c).await {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            bare.push(t.elapsed().as_secs_f64() * 1e3);
            child.kill().await.unwrap();

            let mut s = SandboxSpec::new(format!("agent-{i}"), "/opt/venv/bin/python");
            s.args = vec!["/code/app.py".into()];
            s.mounts.push(Mount::ReadOnly {
                host: dir.path().into(),
                inside: "/code".into(),
            });
            s.mounts.push(Mount::ReadOnly {
                host: venv.clone().into(),
                inside: "/opt/venv".into(),
            });
            s.cwd = "/code".into();
            let t = Instant::now();
            let sb = slirp_backend.spawn_bwrap(s).await.unwrap();
            loop {
                if let Ok(c) = sb.connect(8080).await {
                    if ping_once(c).await {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            boxed.push(t.elapsed().as_secs_f64() * 1e3);
            if i == 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                println!(
                    "idle agent sandbox: cgroup memory {:.1} MiB",
                    sb.memory_usage_bytes().unwrap() as f64 / (1 << 20) as f64
                );
            }
            sb.kill().await.unwrap();
        }
        stats("agent app bare: spawn -> GET /ping 200", bare, "ms");
        stats(
            "agent app sandboxed (no network): spawn -> /ping",
            boxed,
            "ms",
        );
    }

    let public = NetworkMode::Public {
        host_loopback: true,
    };
    let variants = [
        ("network none", NetworkMode::None, &slirp_backend),
        ("public/slirp4netns", public, &slirp_backend),
        ("public/pasta", public, &pasta_backend),
    ];
    for (label, net, backend) in variants {
        if net != NetworkMode::None && !backend.public_network_available() {
            println!("{label}: helper not installed, skipped");
            continue;
        }
        let (mut to_ping, mut to_spawn, mut kills) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..runs {
            let t = Instant::now();
            let sb = backend
                .spawn_bwrap(spec(format!("bench-{i}"), net))
                .await
                .unwrap();
            to_spawn.push(t.elapsed().as_secs_f64() * 1e3);
            loop {
                if let Ok(c) = sb.connect(8080).await {
                    if ping_once(c).await {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            to_ping.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            sb.kill().await.unwrap();
            kills.push(t.elapsed().as_secs_f64() * 1e3);
        }
        stats(
            &format!("sandbox, {label}: spawn() returns"),
            to_spawn,
            "ms",
        );
        stats(
            &format!("sandbox, {label}: spawn -> GET /ping 200"),
            to_ping,
            "ms",
        );
        stats(&format!("sandbox, {label}: kill()"), kills, "ms");
    }

    // Connection costs.
    let sb = slirp_backend
        .spawn_bwrap(spec("bench-conn".into(), NetworkMode::None))
        .await
        .unwrap();
    while sb.connect(8080).await.is_err() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Pure overhead: a port nobody listens on answers with an immediate RST on both sides.
    let (mut sand, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..2000 {
        let t = Instant::now();
        assert!(sb.connect(9).await.is_err());
        sand.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        assert!(TcpStream::connect(("127.0.0.1", 9)).await.is_err());
        plain.push(t.elapsed().as_secs_f64() * 1e6);
    }
    stats("connect() to a closed port: into the sandbox", sand, "us");
    stats("connect() to a closed port: host loopback", plain, "us");

    let bport = 18_590u16;
    let mut bchild = bare_server(bport);
    while TcpStream::connect(("127.0.0.1", bport)).await.is_err() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (mut sand, mut plain) = (Vec::new(), Vec::new());
    for _ in 0..300 {
        let t = Instant::now();
        let c = sb.connect(8080).await.unwrap();
        sand.push(t.elapsed().as_secs_f64() * 1e6);
        drop(c);
        let t = Instant::now();
        let c = TcpStream::connect(("127.0.0.1", bport)).await.unwrap();
        plain.push(t.elapsed().as_secs_f64() * 1e6);
        drop(c);
        // The single-threaded servers (backlog 5) need a moment to accept and drop.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stats("connect() to the server in the sandbox", sand, "us");
    stats("connect() to the bare server", plain, "us");

    // (Keep-alive connections occupy the single-threaded servers: open them only now.)
    let mut c = sb.connect(8080).await.unwrap();
    let mut bc = TcpStream::connect(("127.0.0.1", bport)).await.unwrap();
    for (label, conn) in [
        ("into the sandbox", &mut c),
        ("to the bare server", &mut bc),
    ] {
        let mut warm = Vec::new();
        for _ in 0..2000 {
            let t = Instant::now();
            ping_on(conn).await;
            warm.push(t.elapsed().as_secs_f64() * 1e6);
        }
        stats(&format!("GET /ping, warm connection {label}"), warm, "us");
    }
    sb.kill().await.unwrap();
    bchild.kill().await.unwrap();

    // Idle memory.
    for (label, net, backend) in variants {
        if net != NetworkMode::None && !backend.public_network_available() {
            continue;
        }
        let mut boxes = Vec::new();
        for i in 0..10 {
            let sb = backend
                .spawn_bwrap(spec(format!("idle-{i}"), net))
                .await
                .unwrap();
            while sb.connect(8080).await.is_err() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            boxes.push(sb);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mem: Vec<f64> = boxes
            .iter()
            .map(|b| b.memory_usage_bytes().unwrap() as f64 / (1 << 20) as f64)
            .collect();
        let pss: Vec<f64> = boxes
            .iter()
            .map(|b| {
                b.pids()
                    .iter()
                    .map(|p| pss_kib(*p) as f64 / 1024.0)
                    .sum::<f64>()
            })
            .collect();
        stats(
            &format!("idle tiny server, {label}: cgroup memory"),
            mem,
            "MiB",
        );
        stats(
            &format!("idle tiny server, {label}: PSS, all processes"),
            pss,
            "MiB",
        );
        for b in boxes {
            b.kill().await.unwrap();
        }
    }
    slirp_backend.remove_parent_cgroup().unwrap();
    pasta_backend.remove_parent_cgroup().unwrap();
}

fn pss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Pss:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
