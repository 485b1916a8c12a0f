//! The browser data plane: Start/Get/List/Stop of sessions, `UpdateBrowserStream`, and each
//! session's automation stream, `GET /browser-streams/{browserId}/sessions/{sessionId}/automation`:
//! a WebSocket (SigV4 in headers or a presigned query, verified against the received `Host`)
//! whose frames are relayed unchanged to the session's browser-level DevTools WebSocket, so
//! clients such as Playwright's `connect_over_cdp` speak CDP to it directly.
//!
//! And each session's live view. AWS's is Amazon DCV (a proprietary protocol, so the DCV Web
//! Client and the TypeScript SDK's `BrowserLiveView` do not work with Hangar); Hangar serves its
//! own viewer at the same URL with the same presign:
//! - `GET .../live-view?X-Amz-...` (a SigV4 presigned query, as the Python SDK's
//!   `generate_live_view_url` makes it, `X-Amz-Expires` at most 300): a self-contained HTML
//!   page (no external assets) that draws the session's page and sends a person's mouse and
//!   keyboard to it;
//! - `GET .../live-view/stream?X-Amz-...` (the page's own query re-appended, as the DCV client
//!   does with `httpExtraSearchParams`): the page's WebSocket, verified as a request for the
//!   page's URL. The presign's lifetime is a handshake window; an open stream lasts as long as
//!   the session. Frames and input are relayed to `hangar_tools::LiveView`, which speaks CDP.

use std::time::SystemTime;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hangar_model::{Input, OperationDef, Output};
use hangar_tools::browser::{LiveView, LiveViewEnd};
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

/// The two resources of a session's live view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LiveViewPart {
    /// `.../live-view`: the viewer page.
    Page,
    /// `.../live-view/stream`: the page's WebSocket.
    Stream,
}

/// `(browserId, sessionId, part)` of `GET /browser-streams/{browserId}/sessions/{sessionId}/live-view[/stream]`.
pub(crate) fn live_view_route<'a>(
    method: &http::Method,
    path: &'a str,
) -> Option<(&'a str, &'a str, LiveViewPart)> {
    if method != http::Method::GET {
        return None;
    }
    let rest = path.strip_prefix("/browser-streams/")?;
    let (rest, part) = match rest.strip_suffix("/live-view/stream") {
        Some(rest) => (rest, LiveViewPart::Stream),
        None => (rest.strip_suffix("/live-view")?, LiveViewPart::Page),
    };
    let (browser, session) = rest.split_once("/sessions/")?;
    let ok = |s: &str| !s.is_empty() && !s.contains('/');
    (ok(browser) && ok(session)).then_some((browser, session, part))
}

/// The longest presign the live view accepts: the SDK's maximum (and default) for
/// `generate_live_view_url`, so a leaked link is usable for minutes, not days.
pub(crate) const MAX_LIVE_VIEW_EXPIRES: u64 = 300;

/// The live view's own rules on top of SigV4: a presigned query (a person's browser cannot
/// send an `Authorization` header), at most [`MAX_LIVE_VIEW_EXPIRES`], not expired. Expiry is
/// checked in every auth mode, not only strict: the link's lifetime is part of what it means.
fn check_live_view_presign(signature: &sigv4::Signature, now: SystemTime) -> Result<(), AuthError> {
    let sigv4::SignatureLocation::Query { expires } = signature.location else {
        return Err(AuthError::IncompleteSignature(
            "The live view requires a presigned URL (SigV4 query parameters), as generate_live_view_url makes it."
                .into(),
        ));
    };
    if expires > MAX_LIVE_VIEW_EXPIRES {
        return Err(AuthError::InvalidSignature(format!(
            "X-Amz-Expires must be at most {MAX_LIVE_VIEW_EXPIRES} seconds for the live view, got {expires}."
        )));
    }
    if signature.presign_expired(now) {
        return Err(AuthError::InvalidSignature(
            "Signature expired: the live-view URL is no longer valid; generate a new one.".into(),
        ));
    }
    Ok(())
}

/// Authenticates a live-view request by its presigned query, through the same
/// `sigv4::parse` + `authn::finish` path as the automation stream. The stream's URL carries
/// the page's query, so it is verified as a request for the page's path.
fn authenticate_live_view(
    state: &WireState,
    parts: &mut http::request::Parts,
    part: LiveViewPart,
) -> Result<(), WireError> {
    let received = parts.uri.clone();
    if part == LiveViewPart::Stream {
        let path = received.path();
        let page = path.strip_suffix("/stream").unwrap_or(path);
        let uri = match received.query() {
            Some(q) => format!("{page}?{q}"),
            None => page.to_owned(),
        };
        parts.uri = uri
            .parse()
            .map_err(|e| WireError::cannot_parse(format!("Bad live-view URL: {e}")))?;
    }
    let verified = (|| -> Result<(), WireError> {
        let signature = match sigv4::parse(parts)? {
            sigv4::Presented::SigV4(signature) => signature,
            sigv4::Presented::Bearer(_) => {
                return Err(AuthError::IncompleteSignature(format!(
                    "The live view requires a {} (SigV4) presigned URL, not a bearer token.",
                    sigv4::ALGORITHM
                ))
                .into())
            }
        };
        check_live_view_presign(&signature, SystemTime::now())?;
        authn::finish(
            state,
            parts,
            authn::Pending::SigV4(signature),
            &Bytes::new(),
        )?;
        Ok(())
    })();
    parts.uri = received;
    verified
}

/// The viewer page, embedded: no external assets, so it works offline and behind any proxy.
const LIVE_VIEW_PAGE: &str = include_str!("live_view.html");

/// `GET .../live-view`: the viewer page, for a READY session.
pub(crate) async fn live_view_page(
    state: &WireState,
    browser: &str,
    session_id: &str,
    parts: &mut http::request::Parts,
) -> Result<Response, WireError> {
    authenticate_live_view(state, parts, LiveViewPart::Page)?;
    let (browser, session_id) = (decode(browser), decode(session_id));
    browsers(state)?.live_view_available(&browser, &session_id)?;
    let headers = [
        (http::header::CONTENT_TYPE, "text/html; charset=utf-8"),
        // The URL is a credential for a few minutes: never cached, never sent as a Referer.
        (http::header::CACHE_CONTROL, "no-store"),
        (http::header::REFERRER_POLICY, "no-referrer"),
        (
            http::header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'",
        ),
        (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    Ok((headers, LIVE_VIEW_PAGE).into_response())
}

/// `GET .../live-view/stream`: the viewer's WebSocket, relayed to a [`LiveView`].
pub(crate) async fn live_view_stream(
    state: &WireState,
    browser: &str,
    session_id: &str,
    parts: &mut http::request::Parts,
) -> Result<Response, WireError> {
    use axum::extract::ws::WebSocketUpgrade;
    use axum::extract::FromRequestParts;

    authenticate_live_view(state, parts, LiveViewPart::Stream)?;
    let browsers = browsers(state)?;
    let (browser, session_id) = (decode(browser), decode(session_id));
    let upgrade = WebSocketUpgrade::from_request_parts(parts, &())
        .await
        .map_err(|e| WireError::cannot_parse(format!("Not a WebSocket upgrade: {e}")))?
        // Viewer messages are input events and pastes (at most 64 KiB of text).
        .max_message_size(1 << 20);
    // Connect before upgrading, so an ended session is a 404, not a socket that closes.
    let view = browsers.live_view(&browser, &session_id).await?;
    let span = tracing::info_span!("browser_live_view", session = %session_id);
    Ok(upgrade.on_upgrade(move |socket| {
        tracing::Instrument::instrument(relay_live_view(socket, view), span)
    }))
}

/// Carries the viewer's WebSocket messages to the live view and its frames back, then closes
/// the socket saying why.
async fn relay_live_view(socket: axum::extract::ws::WebSocket, view: LiveView) {
    use axum::extract::ws::{CloseFrame, Message};
    use futures_util::{SinkExt, StreamExt};

    let (mut tx, mut rx) = socket.split();
    let (input_tx, input_rx) = tokio::sync::mpsc::channel::<String>(64);
    // One frame in flight: the live view acknowledges a frame to Chromium once it is queued
    // here, so the screencast runs at the pace the viewer's connection takes.
    let (frame_tx, mut frame_rx) = tokio::sync::mpsc::channel::<String>(1);
    let reader = async move {
        while let Some(Ok(message)) = rx.next().await {
            match message {
                Message::Text(text) if input_tx.send(text.as_str().to_owned()).await.is_err() => {
                    break
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    let writer = async move {
        while let Some(frame) = frame_rx.recv().await {
            if tx.send(Message::Text(frame.into())).await.is_err() {
                return None;
            }
        }
        Some(tx)
    };
    let session = async move {
        tokio::select! {
            end = view.run(input_rx, frame_tx) => end,
            _ = reader => LiveViewEnd::ViewerLeft,
        }
    };
    tracing::debug!("live view connected");
    let (end, tx) = tokio::join!(session, writer);
    tracing::info!(?end, "live view closed");
    if let Some(mut tx) = tx {
        let (code, reason) = match end {
            LiveViewEnd::SessionEnded => (1000, "The browser session ended."),
            LiveViewEnd::ViewerLeft => (1000, ""),
            LiveViewEnd::BrowserGone => (1011, "The browser went away."),
        };
        let _ = tx
            .send(Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
        let _ = tx.close().await;
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
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
                    _ = crate::ws_relay::relay(client, cdp) => {}
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

    #[test]
    fn live_view_routes() {
        use super::{live_view_route, LiveViewPart};
        let get = http::Method::GET;
        assert_eq!(
            live_view_route(
                &get,
                "/browser-streams/aws.browser.v1/sessions/S1/live-view"
            ),
            Some(("aws.browser.v1", "S1", LiveViewPart::Page))
        );
        assert_eq!(
            live_view_route(&get, "/browser-streams/b/sessions/S1/live-view/stream"),
            Some(("b", "S1", LiveViewPart::Stream))
        );
        for bad in [
            "/browser-streams/b/sessions/S1/automation",
            "/browser-streams/b/sessions//live-view",
            "/browser-streams/b/sessions/S1/x/live-view",
            "/browser-streams/b/sessions/S1/live-view/other",
        ] {
            assert_eq!(live_view_route(&get, bad), None, "{bad}");
        }
        assert_eq!(
            live_view_route(
                &http::Method::POST,
                "/browser-streams/b/sessions/S1/live-view"
            ),
            None
        );
    }

    fn presigned(date: &str, expires: u64) -> crate::sigv4::Signature {
        let uri = format!(
            "/browser-streams/b/sessions/S1/live-view?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fbedrock-agentcore%2Faws4_request\
             &X-Amz-Date={date}&X-Amz-Expires={expires}&X-Amz-SignedHeaders=host&X-Amz-Signature=abc"
        );
        let (parts, ()) = http::Request::get(uri).body(()).unwrap().into_parts();
        match crate::sigv4::parse(&parts).unwrap() {
            crate::sigv4::Presented::SigV4(s) => s,
            crate::sigv4::Presented::Bearer(_) => unreachable!(),
        }
    }

    #[test]
    fn live_view_presign_window() {
        use std::time::{Duration, UNIX_EPOCH};
        // 2026-01-01T00:00:00Z
        let signed = UNIX_EPOCH + Duration::from_secs(1_767_225_600);
        let check = super::check_live_view_presign;
        assert!(check(&presigned("20260101T000000Z", 300), signed).is_ok());
        assert!(check(
            &presigned("20260101T000000Z", 300),
            signed + Duration::from_secs(300)
        )
        .is_ok());
        // Expired one second after the window.
        assert!(check(
            &presigned("20260101T000000Z", 300),
            signed + Duration::from_secs(301)
        )
        .is_err());
        // More than the SDK's maximum, even while fresh.
        assert!(check(&presigned("20260101T000000Z", 301), signed).is_err());
        assert!(check(&presigned("20260101T000000Z", 3600), signed).is_err());
    }
}
