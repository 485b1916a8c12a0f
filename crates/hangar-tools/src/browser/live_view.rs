//! The live view's CDP side: Hangar's own DevTools connection to a session's browser, attached
//! (flattened) to the foreground page, streaming it with `Page.startScreencast` and replaying a
//! person's mouse, wheel and keyboard with `Input.*`.
//!
//! AWS's live view is Amazon DCV, a proprietary protocol; Hangar's is its own page (served by
//! the wire layer) speaking a small JSON protocol over a WebSocket, relayed here:
//! - to the viewer: `{"type":"viewport","width":w,"height":h}` once, then
//!   `{"type":"frame","data":"<base64 JPEG>","metadata":{...}}` per screencast frame (the
//!   metadata as CDP gives it: `deviceWidth`, `deviceHeight`, `pageScaleFactor`, ...);
//! - from the viewer: [`ViewerInput`] messages, coordinates in the page's CSS pixels (the
//!   viewer scales its canvas coordinates with the frame metadata).
//!
//! Each frame is acknowledged (`Page.screencastFrameAck`) only once it has been handed to the
//! viewer's bounded queue: Chromium sends the next frame after the ack, so a slow viewer slows
//! the screencast down instead of piling frames up in memory. A frame waiting for room never
//! blocks the loop: input, target events and the session's end are handled meanwhile, and a
//! newer frame replaces it.
//!
//! The viewed page follows new tabs: a page target created after the viewer connected becomes
//! the viewed one (a new tab is what a person expects to see), and when the viewed page closes
//! the most recent remaining page takes its place. Headless Chromium reports no "tab became
//! visible" event, so a switch back to an older tab (`bringToFront`) is not followed.

use std::collections::HashMap;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::Instrument;

use super::invoke::Cdp;
use crate::ToolsError;

/// JPEG quality of the screencast: readable text at a fraction of PNG's size.
const JPEG_QUALITY: u8 = 70;

/// A mouse button, as the viewer names it (CDP's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Button {
    #[default]
    None,
    Left,
    Middle,
    Right,
    Back,
    Forward,
}

/// What the viewer sends: one input event of the person at the viewer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ViewerInput {
    /// `event`: `mousePressed`, `mouseReleased` or `mouseMoved`.
    #[serde(rename_all = "camelCase")]
    Mouse {
        event: MouseEvent,
        x: f64,
        y: f64,
        #[serde(default)]
        button: Button,
        /// Pressed buttons as a bitmask (1 left, 2 right, 4 middle), as DOM `buttons`.
        #[serde(default)]
        buttons: u8,
        #[serde(default)]
        click_count: u8,
        #[serde(default)]
        modifiers: u8,
    },
    #[serde(rename_all = "camelCase")]
    Wheel {
        x: f64,
        y: f64,
        delta_x: f64,
        delta_y: f64,
        #[serde(default)]
        modifiers: u8,
    },
    /// A key going down or up; `text` is what the key types (none for control keys).
    #[serde(rename_all = "camelCase")]
    Key {
        event: KeyEvent,
        key: String,
        code: String,
        #[serde(default)]
        key_code: u16,
        #[serde(default)]
        text: Option<String>,
        #[serde(default)]
        modifiers: u8,
    },
    /// Text inserted at once (a paste, or an IME composition).
    Text { text: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum MouseEvent {
    #[serde(rename = "mousePressed")]
    Pressed,
    #[serde(rename = "mouseReleased")]
    Released,
    #[serde(rename = "mouseMoved")]
    Moved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum KeyEvent {
    KeyDown,
    KeyUp,
}

/// Longest text one viewer message may insert: a generous paste, not a flood.
const MAX_TEXT: usize = 64 << 10;

impl ViewerInput {
    /// The CDP call carrying this input, coordinates clamped into the viewport (a drag that
    /// leaves the viewer's canvas should not reach beyond the page). `None`: nothing to send.
    pub fn to_cdp(&self, viewport: (i32, i32)) -> Option<(&'static str, Value)> {
        let clamp = |v: f64, max: i32| {
            if v.is_finite() {
                v.clamp(0.0, f64::from(max.max(1) - 1))
            } else {
                0.0
            }
        };
        let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
        match self {
            ViewerInput::Mouse {
                event,
                x,
                y,
                button,
                buttons,
                click_count,
                modifiers,
            } => {
                let kind = match event {
                    MouseEvent::Pressed => "mousePressed",
                    MouseEvent::Released => "mouseReleased",
                    MouseEvent::Moved => "mouseMoved",
                };
                Some((
                    "Input.dispatchMouseEvent",
                    json!({
                        "type": kind, "x": clamp(*x, viewport.0), "y": clamp(*y, viewport.1),
                        "button": button, "buttons": buttons, "clickCount": click_count,
                        "modifiers": modifiers & 0x0f,
                    }),
                ))
            }
            ViewerInput::Wheel {
                x,
                y,
                delta_x,
                delta_y,
                modifiers,
            } => Some((
                "Input.dispatchMouseEvent",
                json!({
                    "type": "mouseWheel", "x": clamp(*x, viewport.0), "y": clamp(*y, viewport.1),
                    "deltaX": finite(*delta_x), "deltaY": finite(*delta_y),
                    "modifiers": modifiers & 0x0f,
                }),
            )),
            ViewerInput::Key {
                event,
                key,
                code,
                key_code,
                text,
                modifiers,
            } => {
                // `keyDown` with text types it; `rawKeyDown` (no text) is a control key or a
                // shortcut. With Ctrl/Alt/Meta held the key is a shortcut, never text.
                let text = text
                    .as_deref()
                    .filter(|t| !t.is_empty() && modifiers & 0b0111 == 0);
                let kind = match (event, text) {
                    (KeyEvent::KeyUp, _) => "keyUp",
                    (KeyEvent::KeyDown, Some(_)) => "keyDown",
                    (KeyEvent::KeyDown, None) => "rawKeyDown",
                };
                let mut params = json!({
                    "type": kind, "key": key, "code": code,
                    "windowsVirtualKeyCode": key_code, "nativeVirtualKeyCode": key_code,
                    "modifiers": modifiers & 0x0f,
                });
                if let (KeyEvent::KeyDown, Some(t)) = (event, text) {
                    params["text"] = json!(t);
                    params["unmodifiedText"] = json!(t);
                }
                Some(("Input.dispatchKeyEvent", params))
            }
            ViewerInput::Text { text } => (!text.is_empty() && text.len() <= MAX_TEXT)
                .then(|| ("Input.insertText", json!({ "text": text }))),
        }
    }
}

/// Why a live view ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveViewEnd {
    /// The browser session ended (stopped or timed out).
    SessionEnded,
    /// The viewer went away.
    ViewerLeft,
    /// The browser closed the DevTools connection, or has no page left.
    BrowserGone,
}

/// A live view connected to a session's browser, ready to [`run`](LiveView::run).
pub struct LiveView {
    ws: WebSocketStream<TcpStream>,
    next_id: u64,
    /// The page being viewed: (target id, flattened session id).
    current: Option<(String, String)>,
    /// Page targets, the viewed one last; the most recent other one is viewed when it closes.
    pages: Vec<String>,
    viewport: (i32, i32),
    ended: watch::Receiver<bool>,
    session_id: String,
}

/// What an answer to one of our calls means.
enum Pending {
    /// `Target.attachToTarget` of this target: view it once attached.
    Attach(String),
    /// `Target.getTargets` after the viewed page closed: view the last page listed.
    FindPage,
    /// Input and acks: nothing to do with the answer.
    Ignore,
}

impl LiveView {
    /// Takes over a DevTools connection attached to the foreground page and subscribes to
    /// target events (to follow new tabs).
    pub(crate) async fn new(
        mut cdp: Cdp,
        viewport: (i32, i32),
        ended: watch::Receiver<bool>,
        session_id: String,
    ) -> Result<LiveView, ToolsError> {
        // Events for the targets that exist now arrive during this call (and are dropped);
        // pages created from now on are followed. The pages listed afterwards are known, so a
        // late event about one of them does not count as a new tab.
        cdp.call(None, "Target.setDiscoverTargets", json!({"discover": true}))
            .await?;
        let listed = cdp.call(None, "Target.getTargets", json!({})).await?;
        let (ws, next_id, target, session) = cdp.into_parts();
        let mut pages: Vec<String> = listed["targetInfos"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter(|t| t["type"] == "page")
                    .filter_map(|t| t["targetId"].as_str())
                    .filter(|t| *t != target)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        pages.push(target.clone());
        Ok(LiveView {
            ws,
            next_id,
            current: Some((target, session)),
            pages,
            viewport,
            ended,
            session_id,
        })
    }

    /// The session's viewport (what the screencast is sized to).
    pub fn viewport(&self) -> (i32, i32) {
        self.viewport
    }

    /// Streams the viewed page to `to_viewer` (JSON text messages) and replays the input read
    /// from `from_viewer` (JSON text messages), until the session ends, the viewer goes away
    /// (its channel closes) or the browser does.
    pub async fn run(
        self,
        from_viewer: mpsc::Receiver<String>,
        to_viewer: mpsc::Sender<String>,
    ) -> LiveViewEnd {
        let span = tracing::info_span!("live_view", session = %self.session_id);
        self.run_inner(from_viewer, to_viewer)
            .instrument(span)
            .await
    }

    async fn send(
        &mut self,
        pending: &mut HashMap<u64, Pending>,
        session: Option<&str>,
        method: &str,
        params: Value,
        what: Pending,
    ) -> bool {
        let id = self.next_id;
        self.next_id += 1;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        pending.insert(id, what);
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .is_ok()
    }

    fn screencast_params(&self) -> Value {
        json!({
            "format": "jpeg", "quality": JPEG_QUALITY,
            "maxWidth": self.viewport.0, "maxHeight": self.viewport.1, "everyNthFrame": 1,
        })
    }

    async fn run_inner(
        mut self,
        mut from_viewer: mpsc::Receiver<String>,
        to_viewer: mpsc::Sender<String>,
    ) -> LiveViewEnd {
        let mut pending: HashMap<u64, Pending> = HashMap::new();
        // The newest frame not yet handed to the viewer: (message, page session, ack id).
        let mut waiting: Option<(String, String, Value)> = None;
        let hello =
            json!({"type": "viewport", "width": self.viewport.0, "height": self.viewport.1});
        if to_viewer.send(hello.to_string()).await.is_err() {
            return LiveViewEnd::ViewerLeft;
        }
        if let Some((_, session)) = self.current.clone() {
            let params = self.screencast_params();
            if !self
                .send(
                    &mut pending,
                    Some(&session),
                    "Page.startScreencast",
                    params,
                    Pending::Ignore,
                )
                .await
            {
                return LiveViewEnd::BrowserGone;
            }
        }
        tracing::debug!("live view started");
        let mut ended = self.ended.clone();
        let has_ended = self.ended.clone();
        loop {
            tokio::select! {
                // The `Ref` that `wait_for` returns is not `Send`: drop it inside.
                _ = async { drop(ended.wait_for(|e| *e).await) } => return LiveViewEnd::SessionEnded,
                input = from_viewer.recv() => {
                    let Some(text) = input else { return LiveViewEnd::ViewerLeft };
                    let input = match serde_json::from_str::<ViewerInput>(&text) {
                        Ok(i) => i,
                        Err(e) => {
                            // A viewer bug is no reason to end the view: skip the message.
                            tracing::debug!(error = %e, "ignoring a viewer message");
                            continue;
                        }
                    };
                    let (Some((method, params)), Some((_, session))) =
                        (input.to_cdp(self.viewport), self.current.clone())
                    else {
                        continue;
                    };
                    if !self.send(&mut pending, Some(&session), method, params, Pending::Ignore).await {
                        return LiveViewEnd::BrowserGone;
                    }
                }
                permit = to_viewer.reserve(), if waiting.is_some() => {
                    let Ok(permit) = permit else { return LiveViewEnd::ViewerLeft };
                    let Some((frame, session, ack)) = waiting.take() else { continue };
                    permit.send(frame);
                    if !self.ack(&mut pending, &session, ack).await {
                        return LiveViewEnd::BrowserGone;
                    }
                }
                message = self.ws.next() => {
                    let text = match message {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                            // The sandbox is killed right after the session ends: say why.
                            return if *has_ended.borrow() { LiveViewEnd::SessionEnded } else { LiveViewEnd::BrowserGone };
                        }
                        Some(Ok(_)) => continue,
                    };
                    let Ok(v) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                    match self.on_cdp(v, &mut pending, &mut waiting).await {
                        Ok(()) => {}
                        Err(end) => return end,
                    }
                }
            }
        }
    }

    /// One message from the browser.
    async fn on_cdp(
        &mut self,
        v: Value,
        pending: &mut HashMap<u64, Pending>,
        waiting: &mut Option<(String, String, Value)>,
    ) -> Result<(), LiveViewEnd> {
        let gone = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(LiveViewEnd::BrowserGone)
            }
        };
        if let Some(id) = v.get("id").and_then(Value::as_u64) {
            let target = match pending.remove(&id) {
                Some(Pending::Attach(target)) => target,
                Some(Pending::FindPage) => {
                    // The same choice as InvokeBrowser: the last page target listed.
                    let page = v["result"]["targetInfos"].as_array().and_then(|t| {
                        t.iter()
                            .rfind(|t| t["type"] == "page")
                            .and_then(|t| t["targetId"].as_str())
                            .map(str::to_owned)
                    });
                    let Some(page) = page else {
                        return Ok(()); // no page yet: the next targetCreated brings one
                    };
                    self.pages.retain(|p| *p != page);
                    self.pages.push(page.clone());
                    return self.attach(pending, page).await;
                }
                _ => return Ok(()),
            };
            if let Some(err) = v.get("error") {
                // The page went away before we attached: its destruction event follows.
                tracing::debug!(%target, error = %err, "could not attach to a page");
                return Ok(());
            }
            // Only the most recent wish counts (pages can come and go quickly).
            if self.pages.last() != Some(&target) {
                return Ok(());
            }
            let session = v["result"]["sessionId"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if let Some((_, old)) = self.current.take() {
                // Detaching stops the old page's screencast.
                let ok = self
                    .send(
                        pending,
                        None,
                        "Target.detachFromTarget",
                        json!({ "sessionId": old }),
                        Pending::Ignore,
                    )
                    .await;
                gone(ok)?;
            }
            tracing::debug!(%target, "live view follows a page");
            self.current = Some((target, session.clone()));
            let params = self.screencast_params();
            let ok = self
                .send(
                    pending,
                    Some(&session),
                    "Page.startScreencast",
                    params,
                    Pending::Ignore,
                )
                .await;
            return gone(ok);
        }
        let method = v.get("method").and_then(Value::as_str).unwrap_or_default();
        let params = &v["params"];
        match method {
            "Page.screencastFrame" => {
                let from = v.get("sessionId").and_then(Value::as_str);
                let current = self.current.as_ref().map(|(_, s)| s.as_str());
                if from.is_none() || from != current {
                    return Ok(()); // a late frame of a page no longer viewed
                }
                let frame = json!({
                    "type": "frame", "data": params["data"], "metadata": params["metadata"],
                });
                let session = from.unwrap_or_default().to_owned();
                let newer = (frame.to_string(), session, params["sessionId"].clone());
                // A frame still waiting is out of date: drop it, but acknowledge it, or
                // Chromium would stop sending.
                if let Some((_, session, ack)) = waiting.replace(newer) {
                    gone(self.ack(pending, &session, ack).await)?;
                }
                Ok(())
            }
            "Target.targetCreated" => {
                let info = &params["targetInfo"];
                let (Some("page"), Some(target)) = (
                    info.get("type").and_then(Value::as_str),
                    info.get("targetId").and_then(Value::as_str),
                ) else {
                    return Ok(());
                };
                if self.pages.iter().any(|p| p == target) {
                    return Ok(());
                }
                self.pages.push(target.to_owned());
                self.attach(pending, target.to_owned()).await
            }
            "Target.targetDestroyed" | "Target.detachedFromTarget" => {
                let target = params
                    .get("targetId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let session = params.get("sessionId").and_then(Value::as_str);
                let viewed = match (&self.current, &target, session) {
                    (Some((t, _)), Some(target), _) => t == target,
                    (Some((_, s)), None, Some(session)) => s == session,
                    _ => false,
                };
                if method == "Target.targetDestroyed" {
                    if let Some(target) = &target {
                        self.pages.retain(|p| p != target);
                    }
                }
                if !viewed {
                    return Ok(());
                }
                self.current = None;
                match self.pages.last().cloned() {
                    Some(next) => self.attach(pending, next).await,
                    None => {
                        // Pages that existed before the viewer connected are not tracked:
                        // look for one.
                        let ok = self
                            .send(
                                pending,
                                None,
                                "Target.getTargets",
                                json!({}),
                                Pending::FindPage,
                            )
                            .await;
                        gone(ok)?;
                        tracing::debug!("the viewed page closed");
                        Ok(())
                    }
                }
            }
            _ => Ok(()),
        }
    }

    async fn ack(
        &mut self,
        pending: &mut HashMap<u64, Pending>,
        session: &str,
        frame: Value,
    ) -> bool {
        let params = json!({ "sessionId": frame });
        self.send(
            pending,
            Some(session),
            "Page.screencastFrameAck",
            params,
            Pending::Ignore,
        )
        .await
    }

    async fn attach(
        &mut self,
        pending: &mut HashMap<u64, Pending>,
        target: String,
    ) -> Result<(), LiveViewEnd> {
        let params = json!({"targetId": target, "flatten": true});
        if self
            .send(
                pending,
                None,
                "Target.attachToTarget",
                params,
                Pending::Attach(target),
            )
            .await
        {
            Ok(())
        } else {
            Err(LiveViewEnd::BrowserGone)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mouse_is_clamped_into_the_viewport() {
        let input: ViewerInput = serde_json::from_str(
            r#"{"type":"mouse","event":"mousePressed","x":2000.5,"y":-3,"button":"left","buttons":1,"clickCount":1}"#,
        )
        .unwrap();
        let (method, params) = input.to_cdp((1456, 819)).unwrap();
        assert_eq!(method, "Input.dispatchMouseEvent");
        assert_eq!(params["type"], "mousePressed");
        assert_eq!(params["x"], 1455.0);
        assert_eq!(params["y"], 0.0);
        assert_eq!(params["button"], "left");
        assert_eq!(params["clickCount"], 1);
    }

    #[test]
    fn keys_type_text_unless_a_shortcut() {
        let key = |json: &str| {
            serde_json::from_str::<ViewerInput>(json)
                .unwrap()
                .to_cdp((100, 100))
                .unwrap()
                .1
        };
        let a = key(
            r#"{"type":"key","event":"keyDown","key":"a","code":"KeyA","keyCode":65,"text":"a"}"#,
        );
        assert_eq!(
            (a["type"].as_str(), a["text"].as_str()),
            (Some("keyDown"), Some("a"))
        );
        // Ctrl+A selects; it must not type an "a".
        let ctrl_a = key(
            r#"{"type":"key","event":"keyDown","key":"a","code":"KeyA","keyCode":65,"text":"a","modifiers":2}"#,
        );
        assert_eq!(ctrl_a["type"], "rawKeyDown");
        assert!(ctrl_a.get("text").is_none());
        let up = key(r#"{"type":"key","event":"keyUp","key":"Enter","code":"Enter","keyCode":13}"#);
        assert_eq!(up["type"], "keyUp");
    }

    #[test]
    fn unknown_or_oversized_input_is_dropped() {
        assert!(serde_json::from_str::<ViewerInput>(r#"{"type":"eval","js":"1"}"#).is_err());
        assert!(
            serde_json::from_str::<ViewerInput>(r#"{"type":"mouse","event":"x","x":1,"y":1}"#)
                .is_err()
        );
        let paste = ViewerInput::Text {
            text: "x".repeat(MAX_TEXT + 1),
        };
        assert!(paste.to_cdp((10, 10)).is_none());
        let wheel: ViewerInput =
            serde_json::from_str(r#"{"type":"wheel","x":5,"y":5,"deltaX":0,"deltaY":120}"#)
                .unwrap();
        assert_eq!(wheel.to_cdp((10, 10)).unwrap().1["deltaY"], 120.0);
    }
}
