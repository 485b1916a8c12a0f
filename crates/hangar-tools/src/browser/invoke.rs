//! `InvokeBrowser`: the eight OS-level actions, carried out with CDP `Input.*` and
//! `Page.captureScreenshot` on the session's foreground page (the last page target Chromium
//! lists), over a short-lived DevTools connection of Hangar's own, beside any automation
//! stream.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hangar_model::data::{
    BrowserAction, BrowserActionResult, BrowserActionStatus, KeyPressResult, KeyShortcutResult,
    KeyTypeResult, MouseButton, MouseClickResult, MouseDragResult, MouseMoveResult,
    MouseScrollResult, ScreenshotResult,
};
use hangar_model::Blob;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::ToolsError;

/// One CDP connection attached (flattened) to one page.
pub(crate) struct Cdp {
    ws: WebSocketStream<TcpStream>,
    next_id: u64,
    page_session: String,
    /// The target id of the attached page (empty on a browser-level connection).
    page_target: String,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Cdp {
    /// A browser-level connection (no page attached).
    pub(crate) async fn browser(stream: TcpStream, url: &str) -> Result<Cdp, ToolsError> {
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| ToolsError::Internal(format!("DevTools WebSocket: {e}")))?;
        Ok(Cdp {
            ws,
            next_id: 0,
            page_session: String::new(),
            page_target: String::new(),
        })
    }

    pub(crate) async fn connect(stream: TcpStream, url: &str) -> Result<Cdp, ToolsError> {
        let mut cdp = Cdp::browser(stream, url).await?;
        let targets = cdp.call(None, "Target.getTargets", json!({})).await?;
        let page = targets
            .get("targetInfos")
            .and_then(Value::as_array)
            .and_then(|t| {
                t.iter()
                    .rfind(|t| t.get("type").and_then(Value::as_str) == Some("page"))
            })
            .and_then(|t| t.get("targetId").and_then(Value::as_str))
            .map(str::to_owned)
            .ok_or_else(|| ToolsError::Conflict("The browser has no open page.".into()))?;
        let attached = cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": page, "flatten": true}),
            )
            .await?;
        cdp.page_session = attached
            .get("sessionId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        cdp.page_target = page;
        Ok(cdp)
    }

    /// The raw connection, for a caller that runs its own event loop (the live view), with
    /// the next free message id, the attached page's target id and its flattened session id.
    pub(crate) fn into_parts(self) -> (WebSocketStream<TcpStream>, u64, String, String) {
        (
            self.ws,
            self.next_id + 1,
            self.page_target,
            self.page_session,
        )
    }

    pub(crate) async fn call(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, ToolsError> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let fail = |e: String| ToolsError::Internal(format!("CDP {method}: {e}"));
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let wait = async {
            while let Some(m) = self.ws.next().await {
                let Ok(Message::Text(t)) = m else {
                    if let Err(e) = m {
                        return Err(fail(e.to_string()));
                    }
                    continue;
                };
                let v: Value = serde_json::from_str(t.as_str()).map_err(|e| fail(e.to_string()))?;
                if v.get("id").and_then(Value::as_u64) != Some(id) {
                    continue; // events
                }
                if let Some(err) = v.get("error") {
                    return Err(fail(err.to_string()));
                }
                return Ok(v.get("result").cloned().unwrap_or(Value::Null));
            }
            Err(fail("the connection closed".into()))
        };
        tokio::time::timeout(CALL_TIMEOUT, wait)
            .await
            .map_err(|_| fail("no answer".into()))?
    }

    /// The flattened session of the page [`Cdp::connect`] attached to.
    pub(crate) fn page_session(&self) -> &str {
        &self.page_session
    }

    /// Like [`Cdp::call`], but every event that arrives before the answer goes to `on_event`,
    /// which may answer it with a command `(session, method, params)`; those answers are sent
    /// without waiting for theirs. (Needed where the answer waits on an event being handled,
    /// e.g. `Page.navigate` under `Fetch` interception.)
    pub(crate) async fn call_serving<F>(
        &mut self,
        session: Option<&str>,
        method: &str,
        params: Value,
        mut on_event: F,
    ) -> Result<Value, ToolsError>
    where
        F: FnMut(&Value) -> Option<(Option<String>, &'static str, Value)>,
    {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let fail = |e: String| ToolsError::Internal(format!("CDP {method}: {e}"));
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let wait = async {
            while let Some(m) = self.ws.next().await {
                let Ok(Message::Text(t)) = m else {
                    if let Err(e) = m {
                        return Err(fail(e.to_string()));
                    }
                    continue;
                };
                let v: Value = serde_json::from_str(t.as_str()).map_err(|e| fail(e.to_string()))?;
                match v.get("id").and_then(Value::as_u64) {
                    Some(got) if got == id => {
                        if let Some(err) = v.get("error") {
                            return Err(fail(err.to_string()));
                        }
                        return Ok(v.get("result").cloned().unwrap_or(Value::Null));
                    }
                    Some(_) => continue, // answers to commands sent from here
                    None => {}
                }
                if let Some((s, m, p)) = on_event(&v) {
                    self.next_id += 1;
                    let mut reply = json!({"id": self.next_id, "method": m, "params": p});
                    if let Some(s) = s {
                        reply["sessionId"] = json!(s);
                    }
                    self.ws
                        .send(Message::Text(reply.to_string().into()))
                        .await
                        .map_err(|e| fail(e.to_string()))?;
                }
            }
            Err(fail("the connection closed".into()))
        };
        tokio::time::timeout(CALL_TIMEOUT, wait)
            .await
            .map_err(|_| fail("no answer".into()))?
    }

    async fn page(&mut self, method: &str, params: Value) -> Result<Value, ToolsError> {
        let session = self.page_session.clone();
        self.call(Some(&session), method, params).await
    }

    async fn mouse(&mut self, kind: &str, x: i32, y: i32, extra: Value) -> Result<(), ToolsError> {
        let mut params = json!({"type": kind, "x": x, "y": y});
        if let (Some(p), Some(e)) = (params.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        self.page("Input.dispatchMouseEvent", params)
            .await
            .map(drop)
    }

    async fn key(&mut self, key: &Key, modifiers: i32, down: bool) -> Result<(), ToolsError> {
        let mut params = json!({
            "type": if down { if key.text.is_some() { "keyDown" } else { "rawKeyDown" } } else { "keyUp" },
            "key": key.key, "code": key.code, "windowsVirtualKeyCode": key.vk,
            "nativeVirtualKeyCode": key.vk, "modifiers": modifiers,
        });
        if down && modifiers & !8 == 0 {
            if let Some(t) = &key.text {
                params["text"] = json!(t);
            }
        }
        self.page("Input.dispatchKeyEvent", params).await.map(drop)
    }
}

/// A key by AgentCore's names (`enter`, `tab`, `ctrl`, a single character, …).
struct Key {
    key: String,
    code: String,
    vk: i32,
    text: Option<String>,
    /// CDP modifier bit when the key is a modifier.
    modifier: i32,
}

fn key(name: &str) -> Option<Key> {
    let named = |key: &str, code: &str, vk: i32, text: Option<&str>, modifier: i32| Key {
        key: key.into(),
        code: code.into(),
        vk,
        text: text.map(str::to_owned),
        modifier,
    };
    let lower = name.to_ascii_lowercase();
    Some(match lower.as_str() {
        "enter" | "return" => named("Enter", "Enter", 13, Some("\r"), 0),
        "tab" => named("Tab", "Tab", 9, Some("\t"), 0),
        "escape" | "esc" => named("Escape", "Escape", 27, None, 0),
        "backspace" => named("Backspace", "Backspace", 8, None, 0),
        "delete" | "del" => named("Delete", "Delete", 46, None, 0),
        "space" => named(" ", "Space", 32, Some(" "), 0),
        "up" | "arrowup" => named("ArrowUp", "ArrowUp", 38, None, 0),
        "down" | "arrowdown" => named("ArrowDown", "ArrowDown", 40, None, 0),
        "left" | "arrowleft" => named("ArrowLeft", "ArrowLeft", 37, None, 0),
        "right" | "arrowright" => named("ArrowRight", "ArrowRight", 39, None, 0),
        "home" => named("Home", "Home", 36, None, 0),
        "end" => named("End", "End", 35, None, 0),
        "pageup" => named("PageUp", "PageUp", 33, None, 0),
        "pagedown" => named("PageDown", "PageDown", 34, None, 0),
        "alt" | "option" => named("Alt", "AltLeft", 18, None, 1),
        "ctrl" | "control" => named("Control", "ControlLeft", 17, None, 2),
        "cmd" | "command" | "meta" | "win" | "super" => named("Meta", "MetaLeft", 91, None, 4),
        "shift" => named("Shift", "ShiftLeft", 16, None, 8),
        _ => {
            let mut chars = name.chars();
            let c = chars.next()?;
            if chars.next().is_some() {
                if let Some(n) = lower.strip_prefix('f').and_then(|n| n.parse::<i32>().ok()) {
                    if (1..=12).contains(&n) {
                        return Some(named(&format!("F{n}"), &format!("F{n}"), 111 + n, None, 0));
                    }
                }
                return None;
            }
            let upper = c.to_ascii_uppercase();
            let (code, vk) = if c.is_ascii_alphabetic() {
                (format!("Key{upper}"), upper as i32)
            } else if c.is_ascii_digit() {
                (format!("Digit{c}"), c as i32)
            } else {
                (String::new(), 0)
            };
            Key {
                key: c.to_string(),
                code,
                vk,
                text: Some(c.to_string()),
                modifier: 0,
            }
        }
    })
}

fn button_name(b: Option<MouseButton>) -> &'static str {
    match b.unwrap_or(MouseButton::Left) {
        MouseButton::Left => "left",
        MouseButton::Right => "right",
        MouseButton::Middle => "middle",
    }
}

/// Checks the documented bounds `1 < x < width-2`, `1 < y < height-2`.
pub(crate) fn check_point(x: i32, y: i32, viewport: (i32, i32)) -> Result<(), ToolsError> {
    if !(x > 1 && x < viewport.0 - 2 && y > 1 && y < viewport.1 - 2) {
        return Err(ToolsError::Validation(format!(
            "Coordinates ({x}, {y}) are outside the viewport: x must be between 2 and {}, y between 2 and {}",
            viewport.0 - 3,
            viewport.1 - 3
        )));
    }
    Ok(())
}

/// Validates the action's arguments against the viewport (before any connection).
pub(crate) fn validate(action: &BrowserAction, viewport: (i32, i32)) -> Result<(), ToolsError> {
    match action {
        BrowserAction::MouseClick(a) => check_point(a.x, a.y, viewport),
        BrowserAction::MouseMove(a) => check_point(a.x, a.y, viewport),
        BrowserAction::MouseScroll(a) => check_point(a.x, a.y, viewport),
        BrowserAction::MouseDrag(a) => {
            check_point(a.start_x, a.start_y, viewport)?;
            check_point(a.end_x, a.end_y, viewport)
        }
        BrowserAction::KeyPress(a) => key(&a.key)
            .map(drop)
            .ok_or_else(|| ToolsError::Validation(format!("Unknown key {:?}", a.key))),
        BrowserAction::KeyShortcut(a) => {
            for k in &a.keys {
                key(k).ok_or_else(|| ToolsError::Validation(format!("Unknown key {k:?}")))?;
            }
            Ok(())
        }
        BrowserAction::KeyType(_) | BrowserAction::Screenshot(_) => Ok(()),
    }
}

/// Carries out one action. `Err` here is a failure of the action itself, reported as a
/// `FAILED` result by the caller.
pub(crate) async fn perform(
    cdp: &mut Cdp,
    action: &BrowserAction,
) -> Result<Option<Vec<u8>>, ToolsError> {
    match action {
        BrowserAction::MouseClick(a) => {
            let button = button_name(a.button);
            let count = a.click_count.unwrap_or(1).max(1);
            cdp.mouse("mouseMoved", a.x, a.y, json!({})).await?;
            for i in 1..=count {
                let extra = json!({"button": button, "clickCount": i});
                cdp.mouse("mousePressed", a.x, a.y, extra.clone()).await?;
                cdp.mouse("mouseReleased", a.x, a.y, extra).await?;
            }
        }
        BrowserAction::MouseMove(a) => cdp.mouse("mouseMoved", a.x, a.y, json!({})).await?,
        BrowserAction::MouseDrag(a) => {
            let button = button_name(a.button);
            let held = json!({"button": button, "buttons": 1, "clickCount": 1});
            cdp.mouse("mouseMoved", a.start_x, a.start_y, json!({}))
                .await?;
            cdp.mouse("mousePressed", a.start_x, a.start_y, held.clone())
                .await?;
            for step in 1..=10 {
                let x = a.start_x + (a.end_x - a.start_x) * step / 10;
                let y = a.start_y + (a.end_y - a.start_y) * step / 10;
                cdp.mouse("mouseMoved", x, y, json!({"button": button, "buttons": 1}))
                    .await?;
            }
            cdp.mouse("mouseReleased", a.end_x, a.end_y, held).await?;
        }
        BrowserAction::MouseScroll(a) => {
            // AgentCore: negative deltaY scrolls down; CDP: positive deltaY scrolls down.
            let extra =
                json!({"deltaX": -a.delta_x.unwrap_or(0), "deltaY": -a.delta_y.unwrap_or(0)});
            cdp.mouse("mouseWheel", a.x, a.y, extra).await?;
        }
        BrowserAction::KeyType(a) => {
            cdp.page("Input.insertText", json!({"text": a.text}))
                .await?;
        }
        BrowserAction::KeyPress(a) => {
            let k = key(&a.key)
                .ok_or_else(|| ToolsError::Validation(format!("Unknown key {:?}", a.key)))?;
            for _ in 0..a.presses.unwrap_or(1).max(1) {
                cdp.key(&k, 0, true).await?;
                cdp.key(&k, 0, false).await?;
            }
        }
        BrowserAction::KeyShortcut(a) => {
            let keys: Vec<Key> = a
                .keys
                .iter()
                .map(|k| key(k).ok_or_else(|| ToolsError::Validation(format!("Unknown key {k:?}"))))
                .collect::<Result<_, _>>()?;
            let mut modifiers = 0;
            for k in &keys {
                modifiers |= k.modifier;
                cdp.key(k, modifiers, true).await?;
            }
            for k in keys.iter().rev() {
                cdp.key(k, modifiers, false).await?;
                modifiers &= !k.modifier;
            }
        }
        BrowserAction::Screenshot(_) => {
            let shot = cdp
                .page("Page.captureScreenshot", json!({"format": "png"}))
                .await?;
            let data = shot
                .get("data")
                .and_then(Value::as_str)
                .and_then(Blob::from_base64)
                .ok_or_else(|| ToolsError::Internal("the screenshot has no data".into()))?;
            return Ok(Some(data.into_inner()));
        }
    }
    Ok(None)
}

/// The result member of the same name as the action.
pub(crate) fn result(
    action: &BrowserAction,
    outcome: Result<Option<Vec<u8>>, String>,
) -> BrowserActionResult {
    let (status, error, data) = match outcome {
        Ok(data) => (BrowserActionStatus::Success, None, data),
        Err(e) => (BrowserActionStatus::Failed, Some(e), None),
    };
    match action {
        BrowserAction::MouseClick(_) => {
            BrowserActionResult::MouseClick(MouseClickResult { error, status })
        }
        BrowserAction::MouseMove(_) => {
            BrowserActionResult::MouseMove(MouseMoveResult { error, status })
        }
        BrowserAction::MouseDrag(_) => {
            BrowserActionResult::MouseDrag(MouseDragResult { error, status })
        }
        BrowserAction::MouseScroll(_) => {
            BrowserActionResult::MouseScroll(MouseScrollResult { error, status })
        }
        BrowserAction::KeyType(_) => BrowserActionResult::KeyType(KeyTypeResult { error, status }),
        BrowserAction::KeyPress(_) => {
            BrowserActionResult::KeyPress(KeyPressResult { error, status })
        }
        BrowserAction::KeyShortcut(_) => {
            BrowserActionResult::KeyShortcut(KeyShortcutResult { error, status })
        }
        BrowserAction::Screenshot(_) => BrowserActionResult::Screenshot(ScreenshotResult {
            data: data.map(Blob::new),
            error,
            status,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_bounds() {
        assert_eq!(key("enter").unwrap().vk, 13);
        assert_eq!(key("ctrl").unwrap().modifier, 2);
        assert_eq!(key("a").unwrap().code, "KeyA");
        assert_eq!(key("F5").unwrap().key, "F5");
        assert!(key("nosuchkey").is_none());
        assert!(check_point(2, 2, (1456, 819)).is_ok());
        assert!(check_point(1, 2, (1456, 819)).is_err());
        assert!(check_point(1454, 100, (1456, 819)).is_err());
        assert!(check_point(1453, 816, (1456, 819)).is_ok());
    }
}
