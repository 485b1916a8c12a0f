//! The browser data plane: Start/Get/List/Stop of sessions, `UpdateBrowserStream`, and each
//! session's automation stream, `GET /browser-streams/{browserId}/sessions/{sessionId}/automation`:
//! a WebSocket (SigV4 in headers or a presigned query, verified against the received `Host`)
//! whose frames are relayed unchanged to the session's browser-level DevTools WebSocket, so
//! clients such as Playwright's `connect_over_cdp` speak CDP to it directly.

use axum::response::Response;
use bytes::Bytes;
use hangar_model::{Input, OperationDef, Output};
use hangar_tools::Browsers;

use crate::routes::Labels;
use crate::{authn, bind, encode, sigv4, AuthError, WireError, WireState};

fn browsers(state: &WireState) -> Result<&Browsers, WireError> {
    state.browsers.as_deref().ok_or_else(|| {
        hangar_domain::Error::Unsupported(
            "This Hangar does not run browser sessions (no sandbox backend).".into(),
        )
        .into()
    })
}

/// The `Host` the client used; stream endpoints are built on it.
fn request_host(parts: &http::request::Parts) -> String {
    parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into())
}

pub(crate) async fn handle(
    state: &WireState,
    def: &'static OperationDef,
    labels: &Labels<'_>,
    parts: &http::request::Parts,
    body: Bytes,
) -> Result<Response, WireError> {
    let browsers = browsers(state)?;
    let output = match bind::typed_input(def, labels, parts, body)? {
        Input::StartBrowserSession(r) => {
            Output::StartBrowserSession(browsers.start(r, &request_host(parts)).await?)
        }
        Input::GetBrowserSession(r) => {
            Output::GetBrowserSession(browsers.get(&r.browser_identifier, &r.session_id)?)
        }
        Input::ListBrowserSessions(r) => Output::ListBrowserSessions(browsers.list(r).await?),
        Input::StopBrowserSession(r) => {
            Output::StopBrowserSession(browsers.stop(&r.browser_identifier, &r.session_id).await?)
        }
        Input::UpdateBrowserStream(r) => Output::UpdateBrowserStream(browsers.update_stream(r)?),
        Input::InvokeBrowser(r) => Output::InvokeBrowser(browsers.invoke(r).await?),
        Input::SaveBrowserSessionProfile(r) => {
            Output::SaveBrowserSessionProfile(browsers.save_profile(r).await?)
        }
        _ => unreachable!("routed by operation"),
    };
    encode::encode_output(&output)
}

/// `(browserId, sessionId)` of `GET /browser-streams/{browserId}/sessions/{sessionId}/automation`.
pub(crate) fn automation_route<'a>(
    method: &http::Method,
    path: &'a str,
) -> Option<(&'a str, &'a str)> {
    if method != http::Method::GET {
        return None;
    }
    let rest = path
        .strip_prefix("/browser-streams/")?
        .strip_suffix("/automation")?;
    let (browser, session) = rest.split_once("/sessions/")?;
    let ok = |s: &str| !s.is_empty() && !s.contains('/');
    (ok(browser) && ok(session)).then_some((browser, session))
}

/// The automation stream: SigV4 (never a bearer token), then the relay.
pub(crate) async fn automation(
    state: &WireState,
    browser: &str,
    session_id: &str,
    parts: &mut http::request::Parts,
) -> Result<Response, WireError> {
    use axum::extract::ws::WebSocketUpgrade;
    use axum::extract::FromRequestParts;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let signature = match sigv4::parse(parts)? {
        sigv4::Presented::SigV4(signature) => signature,
        sigv4::Presented::Bearer(_) => {
            return Err(AuthError::IncompleteSignature(format!(
                "The automation stream requires {} (SigV4) authentication, not a bearer token.",
                sigv4::ALGORITHM
            ))
            .into())
        }
    };
    // The virtual request signed by the SDKs has no body: the empty payload hash.
    authn::finish(
        state,
        parts,
        authn::Pending::SigV4(signature),
        &Bytes::new(),
    )?;
    let browsers = browsers(state)?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let (browser, session_id) = (decode(browser), decode(session_id));
    let upgrade = WebSocketUpgrade::from_request_parts(parts, &())
        .await
        .map_err(|e| WireError::cannot_parse(format!("Not a WebSocket upgrade: {e}")))?
        // CDP messages (screenshots) can be large.
        .max_message_size(256 << 20)
        .max_frame_size(256 << 20);
    let target = browsers.automation(&browser, &session_id).await?;
    let request = target
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| WireError::Internal(format!("DevTools WebSocket request: {e}")))?;
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(256 << 20))
        .max_frame_size(Some(256 << 20));
    let (cdp, _) =
        tokio_tungstenite::client_async_with_config(request, target.stream, Some(config))
            .await
            .map_err(|e| {
                WireError::Internal(format!(
                    "The browser did not accept the DevTools WebSocket: {e}"
                ))
            })?;
    let span = tracing::info_span!("browser_automation", session = %session_id);
    let mut allowed = target.allowed;
    Ok(upgrade.on_upgrade(move |client| {
        tracing::Instrument::instrument(
            async move {
                tracing::debug!("automation stream connected");
                tokio::select! {
                    _ = pump(client, cdp) => {}
                    // DISABLED or the session ended: the connection closes.
                    _ = allowed.wait_for(|ok| !*ok) => {
                        tracing::info!("automation stream closed: disabled or session ended");
                    }
                }
            },
            span,
        )
    }))
}

/// Relays frames both ways until either side closes.
async fn pump(
    client: axum::extract::ws::WebSocket,
    cdp: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) {
    use axum::extract::ws::Message as C;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as A;

    let (mut client_tx, mut client_rx) = client.split();
    let (mut cdp_tx, mut cdp_rx) = cdp.split();
    let upstream = async {
        while let Some(Ok(message)) = client_rx.next().await {
            let message = match message {
                C::Text(t) => A::Text(t.as_str().into()),
                C::Binary(b) => A::Binary(b),
                C::Ping(b) => A::Ping(b),
                C::Pong(b) => A::Pong(b),
                C::Close(_) => break,
            };
            if cdp_tx.send(message).await.is_err() {
                break;
            }
        }
        let _ = cdp_tx.close().await;
    };
    let downstream = async {
        while let Some(Ok(message)) = cdp_rx.next().await {
            let message = match message {
                A::Text(t) => C::Text(t.as_str().into()),
                A::Binary(b) => C::Binary(b),
                A::Ping(b) => C::Ping(b),
                A::Pong(b) => C::Pong(b),
                A::Close(_) => break,
                A::Frame(_) => continue,
            };
            if client_tx.send(message).await.is_err() {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn automation_routes() {
        let get = http::Method::GET;
        assert_eq!(
            super::automation_route(
                &get,
                "/browser-streams/aws.browser.v1/sessions/S1/automation"
            ),
            Some(("aws.browser.v1", "S1"))
        );
        assert_eq!(
            super::automation_route(
                &http::Method::POST,
                "/browser-streams/b/sessions/S1/automation"
            ),
            None
        );
        assert_eq!(
            super::automation_route(&get, "/browser-streams/b/sessions//automation"),
            None
        );
        assert_eq!(
            super::automation_route(&get, "/browser-streams/b/sessions/S1/live-view"),
            None
        );
    }
}
