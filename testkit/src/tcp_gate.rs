use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A TCP relay in front of a server, to take the server away from its clients and give it
/// back, as a restart, a failover or a network cut does: while cut, every relayed connection is
/// closed and each new one is closed as soon as it is accepted. Only the clients pointed at
/// [`TcpGate::port`] are affected; the server itself runs on.
pub struct TcpGate {
    port: u16,
    open: watch::Sender<bool>,
    relay: JoinHandle<()>,
}

impl TcpGate {
    /// Relays `127.0.0.1:<port>` to `target`, open.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the gate");
        let port = listener.local_addr().expect("its address").port();
        let (open, _) = watch::channel(true);
        let gate = open.clone();
        let relay = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !*gate.borrow() {
                    continue; // dropped: closed at once
                }
                let mut state = gate.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Self { port, open, relay }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every relayed connection and refuses new ones until [`TcpGate::restore`].
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for TcpGate {
    fn drop(&mut self) {
        self.relay.abort();
    }
}
