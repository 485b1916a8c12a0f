//! hangar-loadgen: drives the `bedrock-agentcore-control` AgentRuntime API of
//! any endpoint (Hangar, moto_server) with botocore-identical SigV4 requests
//! and prints the results as JSON. Used by `bench/control-plane`; not a test.
//!
//! Subcommands:
//! - `mixed`: N concurrent clients, one keep-alive connection each, 10% create,
//!   60% get, 15% list, 10% update, 5% delete over a pre-created working set.
//! - `seq-get`: one client, sequential GetAgentRuntime.
//! - `echo-server`: a trivial HTTP server answering every request with a fixed
//!   200, to show how fast the load generator itself can go.
//! - `invoke`: the data plane's InvokeAgentRuntime (warm, cold, idle sessions);
//!   used by `bench/sessions`, see `invoke.rs`.

mod client;
mod echo;
mod invoke;
mod stats;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use http::Method;
use serde_json::{json, Map, Value};

use client::{Conn, Target};
use stats::{Op, Recorder};

const CONTAINER_URI: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com/bench";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/bench";

#[derive(Parser)]
#[command(
    name = "hangar-loadgen",
    version,
    about = "Load generator for the AgentCore control plane"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mixed CRUD workload from concurrent clients.
    Mixed(MixedArgs),
    /// Sequential GetAgentRuntime latency from one client.
    SeqGet(SeqArgs),
    /// Trivial target: answers every request with 200 and a fixed small JSON body.
    EchoServer(EchoArgs),
    /// InvokeAgentRuntime: warm latency vs the agent called directly, new-session
    /// latency vs a bare start, idle session capacity.
    Invoke(invoke::InvokeArgs),
}

#[derive(Args, Clone)]
struct TargetArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080 (loopback only, no TLS).
    #[arg(long)]
    endpoint: String,
    /// Host header to send (and sign) instead of the endpoint's host:port.
    #[arg(long)]
    host_header: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// SigV4 signing name; botocore uses `bedrock-agentcore` for the control plane.
    #[arg(long, default_value = "bedrock-agentcore")]
    signing_name: String,
    #[arg(long, default_value = "testing")]
    access_key: String,
    #[arg(long, default_value = "testing")]
    secret_key: String,
    /// Free-form name copied into the output.
    #[arg(long, default_value = "")]
    label: String,
    /// Tokio worker threads of the load generator (keep it small: the server
    /// under test shares the machine).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Use codeConfiguration (S3 code artifact) instead of containerConfiguration.
    #[arg(long)]
    code_artifact: bool,
    /// Leave the runtimes this run created in place instead of deleting them.
    #[arg(long)]
    no_cleanup: bool,
    /// PID of the server process (on this machine): its CPU use during the
    /// measured phase is read from /proc and reported as `server_cpu`.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Sign every request from scratch, even a Get or List whose signed
    /// headers are the same as one already sent in the same second.
    #[arg(long)]
    no_sign_cache: bool,
}

#[derive(Args)]
struct MixedArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Concurrent clients, one connection each.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Runtimes created before measuring; gets, updates and deletes hit these
    /// (and those created during the run).
    #[arg(long, default_value_t = 200)]
    working_set: usize,
    /// Warm-up seconds (mixed workload, not recorded).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Stop the measured phase after this many operations (whichever of
    /// --duration and --ops comes first).
    #[arg(long)]
    ops: Option<u64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct SeqArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Measured requests.
    #[arg(long, default_value_t = 5000)]
    requests: u64,
    /// Warm-up requests (not recorded).
    #[arg(long, default_value_t = 500)]
    warmup_requests: u64,
    /// Stop the measured phase after this many seconds even if fewer requests were sent.
    #[arg(long)]
    max_secs: Option<f64>,
    /// Runtimes to create and read in turn.
    #[arg(long, default_value_t = 16)]
    runtimes: usize,
}

#[derive(Args)]
struct EchoArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let threads = match &cli.cmd {
        Cmd::Mixed(a) => a.target.threads,
        Cmd::SeqGet(a) => a.target.threads,
        Cmd::EchoServer(a) => a.threads,
        Cmd::Invoke(a) => a.threads(),
    };
    // One thread: a current-thread runtime (no cross-thread wake-ups).
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        match cli.cmd {
            Cmd::Mixed(a) => mixed(a).await,
            Cmd::SeqGet(a) => seq_get(a).await,
            Cmd::EchoServer(a) => echo::serve(&a.listen).await,
            Cmd::Invoke(a) => invoke::run(a).await,
        }
    })
}

fn target(a: &TargetArgs) -> Result<Target> {
    Target::new(
        &a.endpoint,
        a.host_header.as_deref(),
        &a.region,
        &a.signing_name,
        &a.access_key,
        &a.secret_key,
    )
}

/// splitmix64: cheap, deterministic per client.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// The op mix of the issue: 10% create, 60% get, 15% list, 10% update, 5% delete.
fn pick(r: u64) -> Op {
    match r % 100 {
        0..=9 => Op::Create,
        10..=69 => Op::Get,
        70..=84 => Op::List,
        85..=94 => Op::Update,
        _ => Op::Delete,
    }
}

fn artifact(code: bool, tag: &str) -> Value {
    if code {
        json!({ "codeConfiguration": {
            "code": { "s3": { "bucket": "bench-artifacts", "prefix": format!("agents/{tag}.zip") } },
            "runtime": "PYTHON_3_12",
            "entryPoint": ["main.py"]
        }})
    } else {
        json!({ "containerConfiguration": { "containerUri": format!("{CONTAINER_URI}:{tag}") } })
    }
}

fn create_body(name: &str, code: bool) -> Bytes {
    Bytes::from(
        json!({
            "agentRuntimeName": name,
            "agentRuntimeArtifact": artifact(code, "latest"),
            "roleArn": ROLE_ARN,
            "networkConfiguration": { "networkMode": "PUBLIC" },
            "clientToken": uuid::Uuid::new_v4().to_string(),
        })
        .to_string(),
    )
}

fn update_body(tag: &str, code: bool) -> Bytes {
    Bytes::from(
        json!({
            "agentRuntimeArtifact": artifact(code, tag),
            "roleArn": ROLE_ARN,
            "networkConfiguration": { "networkMode": "PUBLIC" },
            "description": format!("bench update {tag}"),
            "clientToken": uuid::Uuid::new_v4().to_string(),
        })
        .to_string(),
    )
}

/// Result of one operation: Ok(()) on 2xx, otherwise the error key and a sample line.
type OpResult = std::result::Result<(), (String, String)>;

struct Worker {
    conn: Conn,
    ids: Vec<String>,
    rng: Rng,
    name_prefix: String,
    seq: u64,
    code: bool,
}

impl Worker {
    fn new(conn: Conn, rng: Rng, name_prefix: String, code: bool) -> Self {
        Self {
            conn,
            ids: Vec::new(),
            rng,
            name_prefix,
            seq: 0,
            code,
        }
    }

    async fn call(
        &mut self,
        op: Op,
        method: Method,
        pq: &str,
        body: Option<Bytes>,
    ) -> Result<Bytes, (String, String)> {
        let m = method.clone();
        match self.conn.call(method, pq, body).await {
            Ok(r) if (200..300).contains(&r.status) => Ok(r.body),
            Ok(r) => Err((
                r.status.to_string(),
                format!(
                    "{} {m} {pq} -> {}: {}",
                    op.name(),
                    r.status,
                    String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
                ),
            )),
            Err(e) => Err(("conn".into(), format!("{} {m} {pq} -> {e:#}", op.name()))),
        }
    }

    async fn create(&mut self) -> OpResult {
        self.seq += 1;
        let name = format!("{}_{}", self.name_prefix, self.seq);
        let body = self
            .call(
                Op::Create,
                Method::PUT,
                "/runtimes/",
                Some(create_body(&name, self.code)),
            )
            .await?;
        let id = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            v.get("agentRuntimeId")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        match id {
            Some(id) => {
                self.ids.push(id);
                Ok(())
            }
            None => Err((
                "bad-body".into(),
                format!(
                    "create: 2xx without agentRuntimeId: {}",
                    String::from_utf8_lossy(&body)
                ),
            )),
        }
    }

    async fn get(&mut self, id: &str) -> OpResult {
        self.call(Op::Get, Method::GET, &format!("/runtimes/{id}/"), None)
            .await
            .map(drop)
    }

    /// Runs `op` (a create when the working set is empty), returning what was run.
    async fn run(&mut self, op: Op) -> (Op, OpResult) {
        let op = if self.ids.is_empty() && op != Op::List {
            Op::Create
        } else {
            op
        };
        let res = match op {
            Op::Create => self.create().await,
            Op::Get => {
                let id = self.ids[self.rng.below(self.ids.len())].clone();
                self.get(&id).await
            }
            Op::List => self
                .call(Op::List, Method::POST, "/runtimes/?maxResults=20", None)
                .await
                .map(drop),
            Op::Update => {
                self.seq += 1;
                let id = self.ids[self.rng.below(self.ids.len())].clone();
                let body = update_body(&format!("v{}", self.seq), self.code);
                self.call(
                    Op::Update,
                    Method::PUT,
                    &format!("/runtimes/{id}/"),
                    Some(body),
                )
                .await
                .map(drop)
            }
            Op::Delete => {
                let idx = self.rng.below(self.ids.len());
                let id = self.ids.swap_remove(idx);
                let pq = format!("/runtimes/{id}/?clientToken={}", uuid::Uuid::new_v4());
                self.call(Op::Delete, Method::DELETE, &pq, None)
                    .await
                    .map(drop)
            }
        };
        (op, res)
    }

    /// Deletes every runtime this worker still tracks; returns the failures.
    async fn cleanup(&mut self) -> u64 {
        let mut failed = 0;
        while let Some(id) = self.ids.pop() {
            let pq = format!("/runtimes/{id}/?clientToken={}", uuid::Uuid::new_v4());
            if self
                .call(Op::Delete, Method::DELETE, &pq, None)
                .await
                .is_err()
            {
                failed += 1;
            }
        }
        failed
    }
}

fn rusage() -> (f64, f64) {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime), t(ru.ru_stime))
}

/// User and system CPU seconds of another process, from /proc/PID/stat.
fn proc_cpu(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let hz = if hz > 0.0 { hz } else { 100.0 };
    Some((
        f.get(11)?.parse::<f64>().ok()? / hz,
        f.get(12)?.parse::<f64>().ok()? / hz,
    ))
}

/// Busy CPU seconds of the whole machine (all but idle and iowait), from /proc/stat.
fn machine_busy() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<f64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user)
    let busy = f.get(..8)?.iter().sum::<f64>() - f[3] - f[4];
    // SAFETY: sysconf has no memory-safety preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(busy / if hz > 0.0 { hz } else { 100.0 })
}

/// CPU counters at one instant: this process, the server (with --server-pid)
/// and the whole machine.
struct Snapshot {
    at: Instant,
    loadgen: (f64, f64),
    server: Option<(f64, f64)>,
    machine: Option<f64>,
}

impl Snapshot {
    fn take(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            loadgen: rusage(),
            server: server_pid.and_then(proc_cpu),
            machine: machine_busy(),
        }
    }

    /// `loadgen_cpu`, `server_cpu` and `machine_cpu` between two snapshots.
    /// `machine_cpu.other_cores` is what neither the load generator nor the
    /// server used: the noise from the rest of the machine.
    fn report(&self, end: &Snapshot, ok: u64, out: &mut Map<String, Value>) {
        let wall = (end.at - self.at).as_secs_f64();
        out.insert(
            "loadgen_cpu".into(),
            cpu_report(self.loadgen, end.loadgen, wall, ok),
        );
        let server = self.server.zip(end.server);
        if let Some((b, e)) = server {
            out.insert("server_cpu".into(), cpu_report(b, e, wall, ok));
        }
        if let (Some(b), Some(e)) = (self.machine, end.machine) {
            let cores = |x: f64| ((x / wall.max(1e-9)) * 1000.0).round() / 1000.0;
            let mut m = Map::new();
            m.insert("busy_cores".into(), json!(cores(e - b)));
            if let Some((sb, se)) = server {
                let own = (end.loadgen.0 + end.loadgen.1 - self.loadgen.0 - self.loadgen.1)
                    + (se.0 + se.1 - sb.0 - sb.1);
                m.insert("other_cores".into(), json!(cores((e - b - own).max(0.0))));
            }
            out.insert("machine_cpu".into(), Value::Object(m));
        }
    }
}

fn cpu_report(before: (f64, f64), after: (f64, f64), wall: f64, ops: u64) -> Value {
    let user = after.0 - before.0;
    let sys = after.1 - before.1;
    let cpu = user + sys;
    json!({
        "user_s": (user * 1000.0).round() / 1000.0,
        "sys_s": (sys * 1000.0).round() / 1000.0,
        "cores_used": ((cpu / wall.max(1e-9)) * 1000.0).round() / 1000.0,
        "us_per_op": if ops > 0 { ((cpu / ops as f64) * 1e7).round() / 10.0 } else { 0.0 },
    })
}

fn name_prefix() -> String {
    // Unique per invocation so repeated rounds against one server never
    // collide on agentRuntimeName ([a-zA-Z][a-zA-Z0-9_]{0,47}).
    let u = uuid::Uuid::new_v4().simple().to_string();
    format!("bench_{}", &u[..8])
}

fn header(mode: &str, a: &TargetArgs) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("mode".into(), json!(mode));
    m.insert("label".into(), json!(a.label));
    m.insert("endpoint".into(), json!(a.endpoint));
    m.insert("signing_name".into(), json!(a.signing_name));
    m.insert("loadgen_threads".into(), json!(a.threads));
    m
}

async fn mixed(a: MixedArgs) -> Result<()> {
    if a.clients == 0 {
        bail!("--clients must be at least 1");
    }
    let tgt = target(&a.target)?;
    let prefix = name_prefix();
    let code = a.target.code_artifact;

    // Set-up: every client creates its share of the working set and reads one
    // back; any failure aborts the run (measuring error paths is worthless).
    let mut workers = Vec::with_capacity(a.clients);
    let mut setups = Vec::new();
    for c in 0..a.clients {
        let share = a.working_set / a.clients + usize::from(c < a.working_set % a.clients);
        let mut w = Worker::new(
            Conn::new(tgt.clone(), !a.target.no_sign_cache),
            Rng(a.seed.wrapping_mul(1_000_003).wrapping_add(c as u64)),
            format!("{prefix}_{c}"),
            code,
        );
        setups.push(tokio::spawn(async move {
            for _ in 0..share {
                w.create()
                    .await
                    .map_err(|(_, s)| anyhow!("set-up create failed: {s}"))?;
            }
            if let Some(id) = w.ids.first().cloned() {
                w.get(&id)
                    .await
                    .map_err(|(_, s)| anyhow!("set-up get failed: {s}"))?;
            }
            Ok::<_, anyhow::Error>(w)
        }));
    }
    for s in setups {
        workers.push(s.await??);
    }
    let initial: usize = workers.iter().map(|w| w.ids.len()).sum();

    let t0 = Instant::now();
    let measure_start = t0 + Duration::from_secs_f64(a.warmup);
    let end = measure_start + Duration::from_secs_f64(a.duration);
    let measured = Arc::new(AtomicU64::new(0));
    let limit = a.ops.unwrap_or(u64::MAX);

    let server_pid = a.target.server_pid;
    let cpu_start = tokio::spawn(async move {
        tokio::time::sleep_until(measure_start.into()).await;
        Snapshot::take(server_pid)
    });

    let mut handles = Vec::new();
    for mut w in workers {
        let measured = measured.clone();
        handles.push(tokio::spawn(async move {
            let mut rec = Recorder::default();
            let mut last = measure_start;
            loop {
                let start = Instant::now();
                if start >= end {
                    break;
                }
                let in_window = start >= measure_start;
                if in_window && measured.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                let op = pick(w.rng.next());
                let (op, res) = w.run(op).await;
                let done = Instant::now();
                if in_window {
                    last = last.max(done);
                    match res {
                        Ok(()) => rec.ok(op, (done - start).as_nanos() as u64),
                        Err((k, s)) => rec.err(op, k, || s),
                    }
                }
            }
            (w, rec, last)
        }));
    }
    let mut rec = Recorder::default();
    let mut last = measure_start;
    let mut workers = Vec::new();
    for h in handles {
        let (w, r, l) = h.await?;
        rec.merge(r);
        last = last.max(l);
        workers.push(w);
    }
    let snap_end = Snapshot::take(server_pid);
    let snap_begin = cpu_start.await?;
    let secs = (last - measure_start).as_secs_f64();
    let final_ws: usize = workers.iter().map(|w| w.ids.len()).sum();
    let reconnects: u64 = workers.iter().map(|w| w.conn.reconnects).sum();
    let ok = rec.ok_count();

    let mut cleanup_failed = 0;
    if !a.target.no_cleanup {
        let mut cl = Vec::new();
        for mut w in workers {
            cl.push(tokio::spawn(async move { w.cleanup().await }));
        }
        for c in cl {
            cleanup_failed += c.await?;
        }
    }

    let mut out = header("mixed", &a.target);
    out.insert("clients".into(), json!(a.clients));
    out.insert("warmup_s".into(), json!(a.warmup));
    out.extend(rec.summarize(secs));
    out.insert(
        "working_set".into(),
        json!({ "initial": initial, "final": final_ws, "cleanup_failed": cleanup_failed }),
    );
    out.insert("reconnects".into(), json!(reconnects));
    snap_begin.report(&snap_end, ok, &mut out);
    println!("{}", serde_json::to_string_pretty(&Value::Object(out))?);
    Ok(())
}

async fn seq_get(a: SeqArgs) -> Result<()> {
    let tgt = target(&a.target)?;
    let mut w = Worker::new(
        Conn::new(tgt, !a.target.no_sign_cache),
        Rng(7),
        name_prefix(),
        a.target.code_artifact,
    );
    for _ in 0..a.runtimes.max(1) {
        w.create()
            .await
            .map_err(|(_, s)| anyhow!("set-up create failed: {s}"))?;
    }
    let ids = w.ids.clone();
    let mut i = 0usize;
    for _ in 0..a.warmup_requests {
        let id = &ids[i % ids.len()];
        i += 1;
        w.get(id)
            .await
            .map_err(|(_, s)| anyhow!("warm-up get failed: {s}"))?;
    }
    let mut rec = Recorder::default();
    let deadline = a
        .max_secs
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let snap0 = Snapshot::take(a.target.server_pid);
    let t0 = Instant::now();
    for _ in 0..a.requests {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let id = &ids[i % ids.len()];
        i += 1;
        let start = Instant::now();
        let res = w.get(id).await;
        let nanos = start.elapsed().as_nanos() as u64;
        match res {
            Ok(()) => rec.ok(Op::Get, nanos),
            Err((k, s)) => rec.err(Op::Get, k, || s),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let snap1 = Snapshot::take(a.target.server_pid);
    let ok = rec.ok_count();
    let reconnects = w.conn.reconnects;
    let cleanup_failed = if a.target.no_cleanup {
        0
    } else {
        w.cleanup().await
    };

    let mut out = header("seq-get", &a.target);
    out.insert("clients".into(), json!(1));
    out.insert("warmup_requests".into(), json!(a.warmup_requests));
    out.extend(rec.summarize(secs));
    out.insert(
        "working_set".into(),
        json!({ "initial": ids.len(), "final": ids.len(), "cleanup_failed": cleanup_failed }),
    );
    out.insert("reconnects".into(), json!(reconnects));
    snap0.report(&snap1, ok, &mut out);
    println!(
        "{}",
        serde_json::to_string_pretty(&Value::Object(out)).context("json")?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_mix_matches_the_issue() {
        let mut counts = [0u32; 5];
        for r in 0..100 {
            counts[pick(r) as usize] += 1;
        }
        // create, get, list, update, delete
        assert_eq!(counts, [10, 60, 15, 10, 5]);
    }

    #[test]
    fn bodies_are_what_botocore_serializes() {
        let c: Value = serde_json::from_slice(&create_body("bench_x_1", false)).unwrap();
        assert_eq!(c["agentRuntimeName"], "bench_x_1");
        assert_eq!(
            c["agentRuntimeArtifact"]["containerConfiguration"]["containerUri"],
            format!("{CONTAINER_URI}:latest")
        );
        assert_eq!(c["networkConfiguration"]["networkMode"], "PUBLIC");
        assert_eq!(c["roleArn"], ROLE_ARN);
        assert!(c["clientToken"].as_str().unwrap().len() >= 33);
        let u: Value = serde_json::from_slice(&update_body("v2", true)).unwrap();
        assert!(u["agentRuntimeArtifact"]["codeConfiguration"]["code"]["s3"].is_object());
        assert!(u.get("agentRuntimeName").is_none());
    }
}
