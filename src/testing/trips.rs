//! [`TripCounter`]: a TCP proxy that counts round trips between clients and the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::{Error, Result};

/// A TCP proxy in front of a PostgreSQL server that counts round trips: every time a client
/// speaks after the server has answered it (or first on a connection) is one more trip.
///
/// Point a pool at [`TripCounter::url`] and compare [`TripCounter::count`] before and after an
/// operation. Pings a pool sends in the background when a connection goes back (sqlx's release
/// test) count too, whenever they happen: to count only an operation's critical path, read the
/// count as soon as the operation returns.
///
/// ```no_run
/// # async fn f(db: flakeguard_db::testing::TestDatabase) -> flakeguard_db::Result<()> {
/// use flakeguard_db::testing::TripCounter;
/// let proxy = TripCounter::start(&db.app_url().await?).await?;
/// let app = flakeguard_db::connect(&proxy.url()).await?;
/// let before = proxy.count();
/// // ... one operation on `app` ...
/// let trips = proxy.count() - before;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TripCounter {
    url: String,
    trips: Arc<AtomicU64>,
}

impl TripCounter {
    /// Starts a proxy for the server of `url` (`postgres://user:pass@host:port/db`) on a free
    /// port of 127.0.0.1; it runs until the runtime shuts down.
    pub async fn start(url: &str) -> Result<TripCounter> {
        let parsed = url::Url::parse(url)
            .map_err(|e| Error::Config(format!("not a PostgreSQL URL ({e}): {url:?}")))?;
        let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
        let port = parsed.port().unwrap_or(5432);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| Error::Config(format!("cannot listen on 127.0.0.1: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("cannot read the proxy's address: {e}")))?;
        let mut proxied = parsed.clone();
        let _ = proxied.set_host(Some("127.0.0.1"));
        let _ = proxied.set_port(Some(local.port()));
        let trips = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&trips);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect((host.as_str(), port)).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                // true: the server spoke last, so the client's next message starts a trip.
                let answered = Arc::new(AtomicBool::new(true));
                let (a, c) = (Arc::clone(&answered), Arc::clone(&counter));
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        if a.swap(false, Ordering::SeqCst) {
                            c.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = sr.read(&mut buf).await {
                        answered.store(true, Ordering::SeqCst);
                        if n == 0 || cw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Ok(TripCounter {
            url: proxied.to_string(),
            trips,
        })
    }

    /// The URL to connect to: the server's, with the proxy's port.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// Round trips so far, over every connection through the proxy.
    pub fn count(&self) -> u64 {
        self.trips.load(Ordering::SeqCst)
    }
}
