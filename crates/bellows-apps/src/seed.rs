//! The seed app of seeds/002, section 1: `GET /` returns the seed, `POST /` with
//! `{"num": 100}` sets it. Every instance shares one SQLite store, so the answer is the
//! same whichever instance serves it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::routing::get;
use rusqlite::{Connection, OptionalExtension};

use crate::AppError;

#[derive(Clone, Debug)]
struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl Store {
    fn open(path: &Path) -> Result<Store, AppError> {
        let conn = crate::open_shared(
            path,
            "PRAGMA journal_mode = WAL;
             CREATE TABLE IF NOT EXISTS seed (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL);",
        )?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn get(&self) -> rusqlite::Result<i64> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        Ok(conn
            .query_row("SELECT value FROM seed WHERE id = 1", [], |r| r.get(0))
            .optional()?
            .unwrap_or(0))
    }

    fn set(&self, value: i64) -> rusqlite::Result<()> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT INTO seed (id, value) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET value = excluded.value",
            [value],
        )?;
        Ok(())
    }
}

pub fn store_path() -> PathBuf {
    crate::data_dir().join("seed.db")
}

/// The app's routes over the store at `db`.
pub fn app(db: &Path) -> Result<Router, AppError> {
    let store = Store::open(db)?;
    Ok(Router::new()
        .route("/", get(read).post(write))
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(store))
}

async fn read(State(store): State<Store>) -> (StatusCode, String) {
    match store.get() {
        Ok(v) => (StatusCode::OK, v.to_string()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot read the seed: {e}\n"),
        ),
    }
}

async fn write(State(store): State<Store>, body: Bytes) -> (StatusCode, String) {
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("the body must be JSON like {{\"num\": 100}}: {e}\n"),
            );
        }
    };
    let Some(num) = value.get("num") else {
        return (
            StatusCode::BAD_REQUEST,
            "the body must have a field \"num\", like {\"num\": 100}\n".to_owned(),
        );
    };
    let Some(num) = num.as_i64() else {
        return (
            StatusCode::BAD_REQUEST,
            format!("\"num\" must be an integer, found {num}\n"),
        );
    };
    match store.set(num) {
        Ok(()) => (StatusCode::OK, num.to_string()),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot store the seed: {e}\n"),
        ),
    }
}
