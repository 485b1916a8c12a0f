//! `hangar serve`: wires the layers together — store, domain, wire — and serves HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use hangar_agents::{AgentProvisioner, SessionManager, SessionsConfig};
use hangar_artifacts::{Artifacts, ArtifactsConfig, DirSource, ObjectSource, S3Source};
use hangar_domain::{ControlPlane, Partition};
use hangar_sandbox::{BwrapBackend, BwrapConfig, Limits};
use hangar_store::SqliteStore;
use hangar_wire::{AuthMode, Credentials, WireState};

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4747")]
    listen: SocketAddr,
    /// Where state is kept (SQLite database). Defaults to a per-user data directory:
    /// `$XDG_DATA_HOME/hangar`, else `~/.local/share/hangar`.
    #[arg(long, env = "HANGAR_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Region every ARN is formed in.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Account every ARN is formed in.
    #[arg(long, default_value = "123456789012")]
    account_id: String,
    /// AWS shared-credentials file (`[profile]` sections with `aws_access_key_id` and
    /// `aws_secret_access_key`). When given, SigV4 signatures are verified strictly against
    /// these keys; without it any access key is accepted but requests must still be signed.
    #[arg(long, env = "HANGAR_CREDENTIALS")]
    credentials: Option<PathBuf>,
    /// S3-compatible endpoint code artifacts are fetched from (path-style, e.g.
    /// `http://127.0.0.1:9000`), with credentials from `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` or the shared credentials file, as AWS tools take them.
    /// Browser session recordings are written there too.
    #[arg(long, conflicts_with = "s3_dir")]
    s3_endpoint: Option<String>,
    /// A local directory standing in for S3: the object `s3://bucket/key` is `DIR/bucket/key`.
    /// The default when no `--s3-endpoint` is given is `DATA_DIR/s3`. Browser session
    /// recordings are written there then (into `DIR/bucket/`, which must exist).
    #[arg(long)]
    s3_dir: Option<PathBuf>,
    /// The interpreter for a runtime, e.g. `--interpreter PYTHON_3_12=/opt/py312/bin/python3.12`
    /// (repeatable). Without it `python3.X` is looked up in /usr/bin, then PATH.
    #[arg(long = "interpreter", value_name = "RUNTIME=PATH")]
    interpreters: Vec<String>,
    /// Memory limit of each session sandbox, in MiB.
    #[arg(long, default_value_t = 1024)]
    session_memory_mib: u64,
    /// CPU limit of each session sandbox, in CPUs.
    #[arg(long, default_value_t = 1.0)]
    session_cpus: f64,
    /// Process (and thread) limit of each session sandbox.
    #[arg(long, default_value_t = 512)]
    session_max_processes: u32,
    /// Send container images whose registry host matches PATTERN to another registry, e.g.
    /// `--registry-map 'ecr=http://127.0.0.1:5000'` (`ecr`: every ECR host; `*` matches within
    /// a host; the URL may be `http://` or `https://`; an optional `/PREFIX` after the host
    /// prefixes repositories). Repeatable; the first match wins.
    #[arg(long = "registry-map", value_name = "PATTERN=URL")]
    registry_map: Vec<String>,
    /// What to do with a container artifact: `pull` its image (READY once it is present), or
    /// `accept` it without pulling (READY at once; invoking it answers 424) for a server that
    /// only serves the control plane, e.g. to test deployment tooling without a registry.
    #[arg(long, value_enum, default_value_t = ContainerImages::Pull)]
    container_images: ContainerImages,
    /// A docker-style `config.json` whose `auths` give registry credentials (basic, or
    /// exchanged for a bearer token when the registry asks).
    #[arg(long, env = "HANGAR_REGISTRY_CONFIG")]
    registry_config: Option<PathBuf>,
    /// Largest container image accepted (sum of its compressed layers and config), in bytes.
    /// AgentCore's limit is 2 GB.
    #[arg(long, default_value_t = 2_000_000_000)]
    image_max_bytes: u64,
    /// How often container images no version references any more are removed, in seconds.
    #[arg(long, default_value_t = 600)]
    image_gc_interval_secs: u64,
    /// How long a `clientToken` is remembered (replayed, or refused for another request), in
    /// seconds. AWS documents tokens as valid for at least 24 hours.
    #[arg(long, default_value_t = 86_400)]
    client_token_lifetime_secs: u64,
    /// An unreferenced image younger than this (seconds since it was unpacked) is kept.
    #[arg(long, default_value_t = 3600)]
    image_gc_grace_secs: u64,
    /// Per-call limit of a code interpreter's `executeCode` / `executeCommand`, in seconds:
    /// the code is then interrupted and the call answers with an error; the session lives on.
    #[arg(long, default_value_t = 60.0)]
    code_interpreter_call_timeout: f64,
    /// Pre-started code-interpreter sandboxes kept ready per network mode (0: none).
    #[arg(long, default_value_t = 2)]
    code_interpreter_pool: usize,
    /// Live code-interpreter sessions at most.
    #[arg(long, default_value_t = 64)]
    code_interpreter_max_sessions: usize,
    /// Pre-started headless Chromiums kept ready for browser sessions (0: none).
    #[arg(long, default_value_t = 1)]
    browser_pool: usize,
    /// Live browser sessions at most.
    #[arg(long, default_value_t = 16)]
    browser_max_sessions: usize,
    /// Memory limit of each browser session's sandbox, in MiB (Chromium idles at ~400 MiB).
    #[arg(long, default_value_t = 2048)]
    browser_memory_mib: u64,
    /// JWT authorizers: the least time, in seconds, between two fetches of one identity
    /// provider's discovery document and JWKS (on an unknown `kid`, or after a failure).
    #[arg(long, default_value_t = 10.0)]
    jwt_refetch_interval: f64,
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("hangar"));
    }
    let home =
        std::env::var_os("HOME").context("neither --data-dir, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/hangar"))
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data_dir = match args.data_dir.clone() {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let auth = match &args.credentials {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading credentials file {}", path.display()))?;
            let credentials = Credentials::from_ini(&text)
                .with_context(|| format!("parsing credentials file {}", path.display()))?;
            AuthMode::Strict(credentials)
        }
        None => AuthMode::Permissive,
    };
    let store = SqliteStore::open(&data_dir)
        .with_context(|| format!("opening the store in {}", data_dir.display()))?;

    // Execution: code artifacts, sandboxes, sessions.
    // Code artifacts are read from, and browser session recordings written to, one store: the
    // S3 endpoint, or the directory standing in for S3.
    let (source, replay_store): (
        Arc<dyn ObjectSource>,
        Arc<dyn hangar_tools::browser::recording::ReplayStore>,
    ) = match (&args.s3_endpoint, &args.s3_dir) {
        (Some(endpoint), _) => {
            let s3 = Arc::new(
                S3Source::from_env(endpoint.clone()).context("configuring the S3 endpoint")?,
            );
            (s3.clone(), s3)
        }
        (None, dir) => {
            let dir = Arc::new(DirSource::new(
                dir.clone().unwrap_or_else(|| data_dir.join("s3")),
            ));
            (dir.clone(), dir)
        }
    };
    let mut artifacts_config = ArtifactsConfig::new(artifact_cache_dir(&data_dir)?);
    for spec in &args.interpreters {
        let (runtime, path) = hangar_artifacts::parse_override(spec)
            .with_context(|| format!("--interpreter {spec}"))?;
        artifacts_config
            .interpreters
            .overrides
            .insert(runtime, path);
    }
    // Agent code, and browser extensions and policy files, come through one artifact cache.
    let artifacts =
        Arc::new(Artifacts::new(artifacts_config, source).context("opening the artifact cache")?);
    let images = image_store(&args, &data_dir)?;
    let mut provisioner = AgentProvisioner::new(artifacts.clone()).with_images(images);
    if args.container_images == ContainerImages::Accept {
        provisioner = provisioner.without_image_pulls();
    }
    let provisioner = Arc::new(provisioner);

    let control = ControlPlane::new(
        Arc::new(store),
        Partition {
            region: args.region.clone(),
            account_id: args.account_id.clone(),
        },
        provisioner.clone(),
    );
    control.start().await.context("recovering state")?;
    spawn_image_gc(
        provisioner.clone(),
        control.clone(),
        std::time::Duration::from_secs(args.image_gc_interval_secs.max(1)),
    );
    spawn_client_token_expiry(
        control.clone(),
        std::time::Duration::from_secs(args.client_token_lifetime_secs.max(1)),
    );

    let public_url = format!("http://{}", args.listen);
    let sessions_config = SessionsConfig {
        limits: Limits {
            memory_bytes: Some(args.session_memory_mib << 20),
            cpu_millis: Some((args.session_cpus * 1000.0).round() as u32),
            max_processes: Some(args.session_max_processes),
            ..Limits::default()
        },
        public_url: public_url.clone(),
        ..SessionsConfig::default()
    };
    // The control plane is useful without sandboxes (no bubblewrap, not root): serve it and
    // say why agents cannot run.
    let sandbox_config = BwrapConfig {
        cgroup_parent: cgroup_parent(&data_dir),
        ..BwrapConfig::default()
    };
    let backend = match BwrapBackend::new(sandbox_config) {
        Ok(backend) => Some(Arc::new(backend)),
        Err(e) => {
            tracing::warn!(error = %e, "agent sessions are disabled: the sandbox backend is unavailable");
            None
        }
    };
    let sessions = match &backend {
        Some(backend) => Some(Arc::new(
            SessionManager::start(
                control.clone(),
                provisioner,
                backend.clone(),
                sessions_config,
            )
            .await
            .context("starting the session manager")?,
        )),
        None => None,
    };

    // Code-interpreter sessions share the sandbox backend (and its orphan reaping, done by the
    // session manager's start above).
    let code_interpreters = backend.as_ref().map(|backend| {
        hangar_tools::CodeInterpreters::new(
            control.clone(),
            backend.clone(),
            hangar_tools::CodeInterpreterConfig {
                limits: Limits {
                    memory_bytes: Some(args.session_memory_mib << 20),
                    cpu_millis: Some((args.session_cpus * 1000.0).round() as u32),
                    max_processes: Some(args.session_max_processes),
                    ..Limits::default()
                },
                call_timeout: std::time::Duration::from_secs_f64(
                    args.code_interpreter_call_timeout.max(0.1),
                ),
                pool_size: args.code_interpreter_pool,
                max_live_sessions: args.code_interpreter_max_sessions,
                ..hangar_tools::CodeInterpreterConfig::default()
            },
        )
    });

    // Browser sessions too; each is a headless Chromium in its own sandbox.
    let browsers = backend.as_ref().map(|backend| {
        let defaults = hangar_tools::BrowserConfig::default();
        hangar_tools::Browsers::with_stores(
            control.clone(),
            backend.clone(),
            hangar_tools::BrowserConfig {
                limits: Limits {
                    memory_bytes: Some(args.browser_memory_mib << 20),
                    ..defaults.limits
                },
                pool_size: args.browser_pool,
                max_live_sessions: args.browser_max_sessions,
                ..defaults
            },
            hangar_tools::BrowserStores {
                artifacts: Some(artifacts.clone()),
                replays: Some(replay_store.clone()),
            },
        )
    });

    let authorizers = Arc::new(hangar_auth::JwtAuthorizers::new(hangar_auth::Settings {
        min_refetch_interval: std::time::Duration::from_secs_f64(
            args.jwt_refetch_interval.max(0.0),
        ),
        ..hangar_auth::Settings::default()
    }));
    // Kept in the data directory so tokens issued before a restart still verify after it.
    let workload_tokens = Arc::new(
        hangar_auth::WorkloadTokenIssuer::load_or_create(
            public_url.clone(),
            &data_dir.join("workload-token-key.der"),
        )
        .context("loading the workload access token key")?,
    );
    let mut state = WireState::new(control, auth)
        .with_authorizers(authorizers)
        .with_workload_tokens(workload_tokens);
    if let Some(sessions) = &sessions {
        state = state.with_sessions(sessions.clone());
    }
    if let Some(code_interpreters) = &code_interpreters {
        state = state.with_code_interpreters(code_interpreters.clone());
    }
    if let Some(browsers) = &browsers {
        state = state.with_browsers(browsers.clone());
    }
    let app = hangar_wire::router(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let local_addr = listener.local_addr()?;
    // Streamed answers (agent invocations) go out as several small writes; without NODELAY,
    // Nagle's algorithm holds each one until the client's delayed ACK (~40 ms).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tracing::info!(
        listen = %local_addr,
        data_dir = %data_dir.display(),
        region = args.region,
        account_id = args.account_id,
        strict_auth = args.credentials.is_some(),
        "hangar is serving"
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving")?;
    if let Some(sessions) = sessions {
        sessions.shutdown().await;
    }
    if let Some(code_interpreters) = code_interpreters {
        code_interpreters.shutdown().await;
    }
    if let Some(browsers) = browsers {
        browsers.shutdown().await;
    }
    if let Some(backend) = backend {
        // Every sandbox is gone: leave no empty cgroup behind either.
        if let Err(e) = backend.remove_parent_cgroup() {
            tracing::warn!(error = %e, "could not remove the sandboxes' parent cgroup");
        }
    }
    tracing::info!("hangar stopped");
    Ok(())
}

/// Where unpacked code artifacts are kept. Sessions run under unprivileged uids that bind-mount
/// their code from there, so every directory above it must be searchable by others. That is
/// `DATA_DIR/artifacts` when the data directory allows it; otherwise (a data directory under a
/// private home, say) a directory of this server's own under `/var/cache/hangar`.
/// Removes container images no version references any more: shortly after start (a minute, or
/// the interval if shorter), then every `interval`.
fn spawn_image_gc(
    provisioner: Arc<AgentProvisioner>,
    control: ControlPlane,
    interval: std::time::Duration,
) {
    tokio::spawn(async move {
        let first = interval.min(std::time::Duration::from_secs(60));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match provisioner.collect_images(&control).await {
                Ok(r) if !r.images_removed.is_empty() || r.blobs_removed > 0 => tracing::info!(
                    images = r.images_removed.len(),
                    blobs = r.blobs_removed,
                    "unreferenced container images removed"
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "container image gc failed"),
            }
        }
    });
}

/// Forgets expired client tokens: every tenth of their lifetime (at most every 10 minutes), so
/// a token lives at most 10% longer than its lifetime.
fn spawn_client_token_expiry(control: ControlPlane, lifetime: std::time::Duration) {
    tokio::spawn(async move {
        let every = (lifetime / 10).clamp(
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(600),
        );
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match control.expire_client_tokens(lifetime).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(tokens = n, "expired client tokens forgotten"),
                Err(e) => tracing::warn!(error = %e, "client token expiry failed"),
            }
        }
    });
}

/// The container image store, next to the artifact cache (same readability constraints: session
/// uids must reach the unpacked roots).
fn image_store(
    args: &ServeArgs,
    data_dir: &std::path::Path,
) -> anyhow::Result<Arc<hangar_oci::ImageStore>> {
    let artifacts = artifact_cache_dir(data_dir)?;
    let dir = match artifacts.file_name().and_then(|n| n.to_str()) {
        Some("artifacts") => artifacts.with_file_name("images"),
        _ => artifacts.with_extension("images"),
    };
    let mut config = hangar_oci::ImageStoreConfig::new(dir);
    config.gc_grace = std::time::Duration::from_secs(args.image_gc_grace_secs);
    config.max_image_bytes = args.image_max_bytes;
    for rule in &args.registry_map {
        config.map.rules.push(
            hangar_oci::MapRule::parse(rule).with_context(|| format!("--registry-map {rule}"))?,
        );
    }
    if let Some(path) = &args.registry_config {
        config.credentials = hangar_oci::Credentials::load(path)?;
    }
    Ok(Arc::new(
        hangar_oci::ImageStore::new(config).context("opening the image store")?,
    ))
}

fn artifact_cache_dir(data_dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let data_dir = std::fs::canonicalize(data_dir)?;
    let searchable = data_dir
        .ancestors()
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if searchable {
        return Ok(data_dir.join("artifacts"));
    }
    let shared = PathBuf::from("/var/cache/hangar");
    std::fs::create_dir_all(&shared).with_context(|| format!("creating {}", shared.display()))?;
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755))?;
    let dir = shared.join(cgroup_parent(&data_dir));
    tracing::info!(
        data_dir = %data_dir.display(),
        cache = %dir.display(),
        "the data directory is private, so code artifacts are cached where sessions can read them"
    );
    Ok(dir)
}

/// The cgroup all of this server's sandboxes live under. Named after the data directory, so a
/// restarted server reaps what its crashed predecessor left, while other Hangar servers on the
/// same host (other data directories) are left alone.
fn cgroup_parent(data_dir: &std::path::Path) -> String {
    let path = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    // FNV-1a: stable across builds and Rust versions, unlike std's hasher.
    let hash = path
        .as_os_str()
        .as_encoded_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("hangar-{hash:016x}")
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// `--container-images`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ContainerImages {
    Pull,
    Accept,
}
