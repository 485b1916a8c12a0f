//! Sockets created inside a sandbox's network namespace.
//!
//! A socket belongs to the network namespace of the thread that created it, for its whole life.
//! So to reach `127.0.0.1:8080` *of a sandbox* (where every session listens on the same port),
//! a worker thread switches into the sandbox's namespace with `setns`, creates the socket,
//! switches back, and hands the unconnected socket to the async caller, which connects it on
//! the runtime as usual. No port forwarding, no reliance on the program's port choice, and it
//! works with no network at all.
//!
//! The switching happens on one dedicated thread rather than on tokio's blocking pool: a thread
//! left in the wrong namespace by a failed switch-back would silently poison unrelated work. If
//! restoring ever fails, the worker reports the error and exits; the next request starts a
//! fresh one.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::sys;

struct Job {
    netns: Arc<OwnedFd>,
    reply: oneshot::Sender<io::Result<TcpSocket>>,
}

static WORKER: Mutex<Option<mpsc::Sender<Job>>> = Mutex::new(None);

fn start_worker() -> io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("hangar-netns".into())
        .spawn(move || {
            let home = match sys::open(Path::new("/proc/thread-self/ns/net"), libc::O_RDONLY) {
                Ok(fd) => {
                    let _ = ready_tx.send(Ok(()));
                    fd
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            while let Ok(job) = rx.recv() {
                if let Err(e) = sys::setns(job.netns.as_raw_fd(), libc::CLONE_NEWNET) {
                    let _ = job.reply.send(Err(e));
                    continue;
                }
                let sock = TcpSocket::new_v4();
                if let Err(e) = sys::setns(home.as_raw_fd(), libc::CLONE_NEWNET) {
                    tracing::error!(error = %e, "cannot return to the host network namespace; restarting the netns worker");
                    let _ = job.reply.send(Err(e));
                    // Drop the receiver: senders see the worker gone and start a new one.
                    return;
                }
                let _ = job.reply.send(sock);
            }
        })?;
    ready_rx
        .recv()
        .map_err(|_| io::Error::other("netns worker died during start"))??;
    Ok(tx)
}

/// An unconnected IPv4 TCP socket living in the network namespace `netns`.
pub(crate) async fn socket_in(netns: &Arc<OwnedFd>) -> io::Result<TcpSocket> {
    for _ in 0..2 {
        let (reply, rx) = oneshot::channel();
        let job = Job {
            netns: netns.clone(),
            reply,
        };
        let sent = {
            let mut w = WORKER.lock().unwrap_or_else(|e| e.into_inner());
            if w.is_none() {
                *w = Some(start_worker()?);
            }
            match w.as_ref().map(|tx| tx.send(job)) {
                Some(Ok(())) => true,
                _ => {
                    *w = None;
                    false
                }
            }
        };
        if !sent {
            continue;
        }
        match rx.await {
            Ok(r) => return r,
            Err(_) => continue,
        }
    }
    Err(io::Error::other("netns worker unavailable"))
}

/// Connect to `127.0.0.1:port` inside `netns`.
pub(crate) async fn connect_loopback(netns: &Arc<OwnedFd>, port: u16) -> io::Result<TcpStream> {
    let sock = socket_in(netns).await?;
    sock.connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
}
