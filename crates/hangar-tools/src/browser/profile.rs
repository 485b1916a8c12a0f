//! Browser profiles: what `SaveBrowserSessionProfile` captures from a live session and how a
//! new session starts from it.
//!
//! The saved state has the shape of Playwright's `storageState` (a format automation users
//! already know): `{"cookies": [CDP Cookie…], "origins": [{"origin", "localStorage":
//! [{name, value}…], "sessionStorage": [{name, value}…]}]}`.
//!
//! - Cookies come from `Storage.getCookies` (all of the browser's cookies).
//! - Local and session storage are read from every frame of every open tab (`DOMStorage`,
//!   which needs a live frame of the origin). Origins visited earlier but no longer open in
//!   any tab are not captured: reading them would mean loading them again.
//! - Restoring storage needs a document of each origin, so the session's first tab is pointed
//!   at each origin with every request answered by Hangar itself (`Fetch` interception, an
//!   empty page: nothing reaches the network), the items are written, and the tab returns to
//!   `about:blank` with its history cleared. Session storage belongs to a tab, so it is
//!   restored into that first tab (a tab opened later starts without it, as in any browser).
//!   This is the way Playwright restores `storageState` into a fresh context.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use super::invoke::Cdp;
use crate::ToolsError;

/// The storage of one origin: (local, session) items, in the order read.
type OriginItems = (Vec<(String, String)>, Vec<(String, String)>);

/// Captures cookies and the open tabs' local and session storage over a browser-level
/// connection.
pub(crate) async fn capture(cdp: &mut Cdp) -> Result<Value, ToolsError> {
    let cookies = cdp
        .call(None, "Storage.getCookies", json!({}))
        .await?
        .get("cookies")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let targets = cdp.call(None, "Target.getTargets", json!({})).await?;
    let pages: Vec<String> = targets
        .get("targetInfos")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("page"))
        .filter_map(|t| t.get("targetId").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let mut origins: BTreeMap<String, OriginItems> = BTreeMap::new();
    for target in pages {
        let attached = cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await;
        // A tab closing meanwhile is not an error of the save.
        let Some(session) = attached.ok().and_then(|a| {
            a.get("sessionId")
                .and_then(Value::as_str)
                .map(str::to_owned)
        }) else {
            continue;
        };
        let tree = cdp
            .call(Some(&session), "Page.getFrameTree", json!({}))
            .await
            .unwrap_or(Value::Null);
        let mut frame_origins = Vec::new();
        collect_origins(tree.get("frameTree"), &mut frame_origins);
        for origin in frame_origins {
            let entry = origins.entry(origin.clone()).or_default();
            for (local, items) in [(true, &mut entry.0), (false, &mut entry.1)] {
                let read = cdp
                    .call(
                        Some(&session),
                        "DOMStorage.getDOMStorageItems",
                        json!({"storageId": {"securityOrigin": origin, "isLocalStorage": local}}),
                    )
                    .await;
                let Ok(read) = read else { continue };
                for pair in read
                    .get("entries")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let (Some(k), Some(v)) = (
                        pair.get(0).and_then(Value::as_str),
                        pair.get(1).and_then(Value::as_str),
                    ) {
                        // Two tabs of one origin: one local storage; session storage of the
                        // later tab wins per key.
                        match items.iter_mut().find(|(name, _)| name == k) {
                            Some(existing) => existing.1 = v.to_owned(),
                            None => items.push((k.to_owned(), v.to_owned())),
                        }
                    }
                }
            }
        }
        let _ = cdp
            .call(
                None,
                "Target.detachFromTarget",
                json!({"sessionId": session}),
            )
            .await;
    }
    let items = |list: &[(String, String)]| -> Value {
        list.iter()
            .map(|(name, value)| json!({"name": name, "value": value}))
            .collect()
    };
    let origins: Vec<Value> = origins
        .iter()
        .filter(|(_, (local, session))| !local.is_empty() || !session.is_empty())
        .map(|(origin, (local, session))| {
            json!({"origin": origin, "localStorage": items(local), "sessionStorage": items(session)})
        })
        .collect();
    Ok(json!({"cookies": cookies, "origins": origins}))
}

/// The http(s) origins of a frame tree (the frame and its children).
fn collect_origins(tree: Option<&Value>, out: &mut Vec<String>) {
    let Some(tree) = tree else { return };
    if let Some(origin) = tree
        .get("frame")
        .and_then(|f| f.get("securityOrigin"))
        .and_then(Value::as_str)
    {
        if (origin.starts_with("http://") || origin.starts_with("https://"))
            && !out.iter().any(|o| o == origin)
        {
            out.push(origin.to_owned());
        }
    }
    for child in tree
        .get("childFrames")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        collect_origins(Some(child), out);
    }
}

/// The cookies of a saved state as `Storage.setCookies` takes them (CookieParam: only these
/// members of what `getCookies` gave).
pub(crate) fn cookie_params(state: &Value) -> Vec<Value> {
    const KEEP: &[&str] = &[
        "name",
        "value",
        "domain",
        "path",
        "secure",
        "httpOnly",
        "sameSite",
        "priority",
        "sourceScheme",
        "sourcePort",
    ];
    state
        .get("cookies")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let mut out = serde_json::Map::new();
                    for k in KEEP {
                        if let Some(v) = c.get(*k) {
                            out.insert((*k).into(), v.clone());
                        }
                    }
                    // Session cookies have expires -1; persistent ones keep their expiry.
                    if c.get("session").and_then(Value::as_bool) != Some(true) {
                        if let Some(e) = c.get("expires") {
                            out.insert("expires".into(), e.clone());
                        }
                    }
                    Value::Object(out)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a saved state has storage to restore (restoring it costs a navigation per origin).
pub(crate) fn has_storage(state: &Value) -> bool {
    state
        .get("origins")
        .and_then(Value::as_array)
        .is_some_and(|o| !o.is_empty())
}

/// Writes the saved local and session storage into the page `cdp` is attached to (a fresh
/// browser's first tab), then leaves the tab blank with no history.
pub(crate) async fn restore_storage(cdp: &mut Cdp, state: &Value) -> Result<(), ToolsError> {
    let page = cdp.page_session().to_owned();
    let origins: Vec<&Value> = state
        .get("origins")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    cdp.call(
        Some(&page),
        "Fetch.enable",
        json!({"patterns": [{"urlPattern": "*", "requestStage": "Request"}]}),
    )
    .await?;
    // `<!doctype html><title></title>`, base64 as `Fetch.fulfillRequest` takes bodies.
    let empty_page = "PCFkb2N0eXBlIGh0bWw+PHRpdGxlPjwvdGl0bGU+";
    for entry in origins {
        let Some(origin) = entry.get("origin").and_then(Value::as_str) else {
            continue;
        };
        if !(origin.starts_with("http://") || origin.starts_with("https://")) {
            continue;
        }
        let serve = |event: &Value| {
            (event.get("method").and_then(Value::as_str) == Some("Fetch.requestPaused")).then(
                || {
                    let request = event["params"]["requestId"].clone();
                    (
                        event
                            .get("sessionId")
                            .and_then(Value::as_str)
                            .map(str::to_owned),
                        "Fetch.fulfillRequest",
                        json!({
                            "requestId": request,
                            "responseCode": 200,
                            "responseHeaders": [{"name": "Content-Type", "value": "text/html"}],
                            "body": empty_page,
                        }),
                    )
                },
            )
        };
        cdp.call_serving(
            Some(&page),
            "Page.navigate",
            json!({"url": format!("{origin}/")}),
            serve,
        )
        .await?;
        // The navigation's answer can come before the new document is the page's: write only
        // once the page is of the origin.
        let script = format!(
            "(() => {{ if (location.origin !== {origin}) return false; \
               for (const {{name, value}} of {local}) localStorage.setItem(name, value); \
               for (const {{name, value}} of {session}) sessionStorage.setItem(name, value); \
               return true; }})()",
            origin = Value::from(origin),
            local = entry.get("localStorage").cloned().unwrap_or(json!([])),
            session = entry.get("sessionStorage").cloned().unwrap_or(json!([])),
        );
        let mut written = false;
        for _ in 0..100 {
            let answer = cdp
                .call(
                    Some(&page),
                    "Runtime.evaluate",
                    json!({"expression": script, "returnByValue": true}),
                )
                .await?;
            if answer
                .get("result")
                .and_then(|r| r.get("value"))
                .and_then(Value::as_bool)
                == Some(true)
            {
                written = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !written {
            return Err(ToolsError::Internal(format!(
                "could not restore the storage of {origin}: the page did not load"
            )));
        }
    }
    cdp.call(Some(&page), "Fetch.disable", json!({})).await?;
    cdp.call(Some(&page), "Page.navigate", json!({"url": "about:blank"}))
        .await?;
    // The history should not offer the empty pages; right after a cross-process navigation
    // the page may not answer yet, and a history left behind does not make the session unusable.
    for _ in 0..20 {
        let reset = cdp
            .call(Some(&page), "Page.resetNavigationHistory", json!({}))
            .await;
        if reset.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn origins_of_a_frame_tree() {
        let tree = json!({
            "frame": {"securityOrigin": "http://a.test:8080"},
            "childFrames": [
                {"frame": {"securityOrigin": "https://b.test"}},
                {"frame": {"securityOrigin": "://"}},
                {"frame": {"securityOrigin": "http://a.test:8080"}}
            ]
        });
        let mut out = Vec::new();
        super::collect_origins(Some(&tree), &mut out);
        assert_eq!(out, vec!["http://a.test:8080", "https://b.test"]);
    }

    #[test]
    fn cookie_params_keep_what_set_cookies_takes() {
        let state = json!({"cookies": [
            {"name": "a", "value": "1", "domain": "x", "path": "/", "size": 2, "session": true, "expires": -1},
            {"name": "b", "value": "2", "domain": "x", "path": "/", "session": false, "expires": 99.5}
        ]});
        let params = super::cookie_params(&state);
        assert_eq!(
            params[0],
            json!({"name": "a", "value": "1", "domain": "x", "path": "/"})
        );
        assert_eq!(params[1]["expires"], json!(99.5));
    }
}
