//! The seeds' sample applications, run by bellows as instances (`bellows app NAME`).
//!
//! Each app listens on its instance's own address, `$PRIVATE_IP:$PORT`, keeps shared
//! state in `$BELLOWS_DATA_DIR` so that every instance answers alike, and marks its
//! answers with the instance that served them (`X-Bellows-Instance`).

#![forbid(unsafe_code)]

pub mod candidates;
mod clock;
pub mod echo;
pub mod ip_tracker;
pub mod seed;
pub mod stress;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use axum::Router;
use axum::http::HeaderValue;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on {addr}: {source}{hint}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
        hint: String,
    },
    #[error("store {path}: {source}")]
    Store {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("redis {0}")]
    Redis(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Where an app listens: `--listen` if given, else `$PRIVATE_IP:$PORT` as bellows sets
/// them, else 127.0.0.1:5000 for a run by hand.
pub fn listen_addr(flag: Option<SocketAddr>) -> SocketAddr {
    flag.unwrap_or_else(|| {
        let ip = std::env::var("PRIVATE_IP")
            .ok()
            .and_then(|s| s.parse::<IpAddr>().ok())
            .unwrap_or([127, 0, 0, 1].into());
        let port = std::env::var("PORT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5000);
        SocketAddr::new(ip, port)
    })
}

/// The directory shared by every instance of a stack.
pub fn data_dir() -> PathBuf {
    std::env::var_os("BELLOWS_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".bellows/data"))
}

/// This instance's id, or `local` outside bellows.
pub fn instance_id() -> String {
    std::env::var("INSTANCE_ID").unwrap_or_else(|_| "local".to_owned())
}

/// Opens a SQLite database that every instance of a stack shares and applies `schema`,
/// retrying while another instance holds the lock: instances start together, and
/// switching to WAL needs the database to itself for a moment.
pub(crate) fn open_shared(
    path: &std::path::Path,
    schema: &str,
) -> Result<rusqlite::Connection, AppError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let attempt = || -> rusqlite::Result<rusqlite::Connection> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(schema)?;
        Ok(conn)
    };
    let mut tries = 0u64;
    loop {
        match attempt() {
            Ok(conn) => return Ok(conn),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if tries < 100
                    && matches!(
                        e.code,
                        rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                    ) =>
            {
                tries += 1;
                // A little spread, so that instances starting together do not retry in step.
                std::thread::sleep(std::time::Duration::from_millis(
                    20 + (u64::from(std::process::id()) + tries * 7) % 50,
                ));
            }
            Err(source) => {
                return Err(AppError::Store {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

/// Binds and serves `app` until the process is stopped (SIGTERM or Ctrl-C).
pub async fn serve(addr: SocketAddr, app: Router) -> Result<(), AppError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| {
        let hint = match (std::env::var("PRIVATE_IP"), std::env::var("PORT")) {
            (Ok(ip), Ok(port)) => format!(
                ". An instance must listen on its own address, $PRIVATE_IP:$PORT ({ip}:{port}); 0.0.0.0 or another instance's address is taken"
            ),
            _ => String::new(),
        };
        AppError::Bind { addr, source, hint }
    })?;
    let id = HeaderValue::from_str(&instance_id()).unwrap_or(HeaderValue::from_static("local"));
    let app = app.layer(axum::middleware::map_response(
        move |mut resp: axum::response::Response| {
            let id = id.clone();
            async move {
                resp.headers_mut().insert("x-bellows-instance", id);
                resp
            }
        },
    ));
    eprintln!("listening on http://{addr} as instance {}", instance_id());
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped())
        .await?;
    Ok(())
}

async fn stopped() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!("stopping");
}
