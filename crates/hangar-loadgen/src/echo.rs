//! A trivial target: every request gets `200` and the same small JSON body
//! (shaped like a CreateAgentRuntime answer, so `mixed` can run against it).
//! Running the load generator against it shows the load generator's own
//! ceiling on this machine.

use std::convert::Infallible;
use std::io::Write;

use anyhow::{bail, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &str = r#"{"agentRuntimeArn":"arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/echo_runtime-0123456789","agentRuntimeId":"echo_runtime-0123456789","agentRuntimeVersion":"1","createdAt":"2026-01-01T00:00:00Z","status":"READY","workloadIdentityDetails":{"workloadIdentityArn":"arn:aws:bedrock-agentcore:us-east-1:123456789012:workload-identity-directory/default/workload-identity/echo"}}"#;

pub async fn serve(listen: &str) -> Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        bail!("echo-server listens on loopback only");
    }
    println!("{}", serde_json::json!({ "listening": addr.to_string() }));
    std::io::stdout().flush()?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let svc = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                // Read the request body, as a real server would.
                let _ = req.into_body().collect().await;
                let resp = hyper::Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from_static(BODY.as_bytes())))
                    .expect("static response");
                Ok::<_, Infallible>(resp)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
