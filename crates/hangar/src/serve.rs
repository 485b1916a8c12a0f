//! `hangar serve`: wires the layers together — store, domain, wire — and serves HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use hangar_domain::{AcceptingProvisioner, ControlPlane, Partition};
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
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("hangar"));
    }
    let home = std::env::var_os("HOME").context("neither --data-dir, XDG_DATA_HOME nor HOME is set")?;
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
    let data_dir = match args.data_dir {
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
    let control = ControlPlane::new(
        Arc::new(store),
        Partition {
            region: args.region.clone(),
            account_id: args.account_id.clone(),
        },
        Arc::new(AcceptingProvisioner),
    );
    control.start().await.context("recovering state")?;

    let app = hangar_wire::router(WireState::new(control, auth));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(
        listen = %listener.local_addr()?,
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
    tracing::info!("hangar stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
