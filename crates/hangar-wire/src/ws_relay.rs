//! The WebSocket relay between a client's upgraded connection (axum) and a WebSocket Hangar
//! opened into a sandbox (tokio-tungstenite): an agent's `/ws`, a browser's DevTools endpoint.
//! Frames pass unchanged both ways; a close from the sandbox side reaches the client with its
//! code and reason.

/// Relays frames both ways until either side closes.
pub(crate) async fn relay(
    client: axum::extract::ws::WebSocket,
    upstream: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
) {
    use axum::extract::ws::Message as C;
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as A;

    let (mut client_tx, mut client_rx) = client.split();
    let (mut upstream_tx, mut upstream_rx) = upstream.split();
    let up = async {
        while let Some(Ok(message)) = client_rx.next().await {
            let message = match message {
                C::Text(t) => A::Text(t.as_str().into()),
                C::Binary(b) => A::Binary(b),
                C::Ping(b) => A::Ping(b),
                C::Pong(b) => A::Pong(b),
                C::Close(_) => break,
            };
            if upstream_tx.send(message).await.is_err() {
                break;
            }
        }
        let _ = upstream_tx.close().await;
    };
    let down = async {
        while let Some(Ok(message)) = upstream_rx.next().await {
            let message = match message {
                A::Text(t) => C::Text(t.as_str().into()),
                A::Binary(b) => C::Binary(b),
                A::Ping(b) => C::Ping(b),
                A::Pong(b) => C::Pong(b),
                A::Close(frame) => C::Close(frame.map(|f| axum::extract::ws::CloseFrame {
                    code: f.code.into(),
                    reason: f.reason.as_str().into(),
                })),
                A::Frame(_) => continue,
            };
            let closing = matches!(message, C::Close(_));
            if client_tx.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = client_tx.close().await;
    };
    // Whichever direction ends first ends the proxy.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
