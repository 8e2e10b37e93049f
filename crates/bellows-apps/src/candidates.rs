//! The candidates API of seeds/004 (the Flask microservice behind an auto scaling group):
//!
//! - `GET /gtg`: 200 with no body; `?details=true`: `{"connected": "true", "instance-id": ID}`
//! - `GET /candidate/<name>`: the candidate's document, or 404 "Not Found"
//! - `POST /candidate/<name>`: stores it, `{"CandidateName": name}`; 500 "Unable to update"
//! - `GET /candidates`: every candidate, or 404 "Not Found" when there is none
//!
//! The store is SQLite in the stack's shared data directory, written with
//! `synchronous = FULL`: a write that was acknowledged survives `kill -9` of the
//! instance and of bellows. With `REDIS_URL` set it is a Redis hash instead (as durable
//! as that Redis is configured to be: `appendonly yes` with `appendfsync always`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Value, json};

use crate::AppError;

/// Where candidates are kept: SQLite by default, Redis (a hash) when `REDIS_URL` is set.
#[derive(Clone)]
enum Store {
    Sqlite(Arc<Mutex<Connection>>),
    Redis(redis::aio::MultiplexedConnection),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if matches!(self, Store::Sqlite(_)) {
            "Store::Sqlite"
        } else {
            "Store::Redis"
        })
    }
}

const REDIS_KEY: &str = "candidates";

impl Store {
    async fn get(&self, name: &str) -> Result<Option<String>, String> {
        match self {
            Store::Sqlite(c) => {
                let conn = c.lock().unwrap_or_else(|e| e.into_inner());
                conn.query_row(
                    "SELECT doc FROM candidates WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|e| e.to_string())
            }
            Store::Redis(c) => redis::cmd("HGET")
                .arg(REDIS_KEY)
                .arg(name)
                .query_async(&mut c.clone())
                .await
                .map_err(|e| e.to_string()),
        }
    }

    async fn put(&self, name: &str, doc: &str) -> Result<(), String> {
        match self {
            Store::Sqlite(c) => {
                let conn = c.lock().unwrap_or_else(|e| e.into_inner());
                conn.execute(
                    "INSERT INTO candidates (name, doc) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
                    params![name, doc],
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            }
            Store::Redis(c) => redis::cmd("HSET")
                .arg(REDIS_KEY)
                .arg(name)
                .arg(doc)
                .query_async(&mut c.clone())
                .await
                .map_err(|e| e.to_string()),
        }
    }

    async fn all(&self) -> Result<Vec<String>, String> {
        match self {
            Store::Sqlite(c) => {
                let conn = c.lock().unwrap_or_else(|e| e.into_inner());
                let mut stmt = conn
                    .prepare("SELECT doc FROM candidates ORDER BY name")
                    .map_err(|e| e.to_string())?;
                let rows = stmt
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(|e| e.to_string())?;
                Ok(rows.filter_map(Result::ok).collect())
            }
            Store::Redis(c) => {
                let mut all: Vec<(String, String)> = redis::cmd("HGETALL")
                    .arg(REDIS_KEY)
                    .query_async(&mut c.clone())
                    .await
                    .map_err(|e| e.to_string())?;
                all.sort();
                Ok(all.into_iter().map(|(_, doc)| doc).collect())
            }
        }
    }
}

pub fn store_path() -> PathBuf {
    crate::data_dir().join("candidates.db")
}

/// The API, its store in Redis when `redis_url` is given, else in SQLite at `db`.
pub async fn app(db: &Path, redis_url: Option<&str>) -> Result<Router, AppError> {
    let store = match redis_url {
        Some(url) => {
            let wrap = |e: redis::RedisError| AppError::Redis(format!("{url}: {e}"));
            let client = redis::Client::open(url).map_err(wrap)?;
            Store::Redis(
                client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(wrap)?,
            )
        }
        None => {
            let conn = crate::open_shared(
                db,
                "PRAGMA journal_mode = WAL;
                 PRAGMA synchronous = FULL;
                 CREATE TABLE IF NOT EXISTS candidates (name TEXT PRIMARY KEY, doc TEXT NOT NULL);",
            )?;
            Store::Sqlite(Arc::new(Mutex::new(conn)))
        }
    };
    Ok(Router::new()
        .route("/gtg", get(gtg))
        .route("/candidate/{name}", get(read).post(write))
        .route("/candidates", get(list))
        .with_state(store))
}

async fn gtg(Query(q): Query<std::collections::HashMap<String, String>>) -> Response {
    if q.contains_key("details") {
        axum::Json(json!({ "connected": "true", "instance-id": crate::instance_id() }))
            .into_response()
    } else {
        StatusCode::OK.into_response()
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "Not Found").into_response()
}

async fn read(State(s): State<Store>, UrlPath(name): UrlPath<String>) -> Response {
    match s
        .get(&name)
        .await
        .ok()
        .flatten()
        .and_then(|d| serde_json::from_str::<Value>(&d).ok())
    {
        Some(doc) => axum::Json(doc).into_response(),
        None => not_found(),
    }
}

async fn write(State(s): State<Store>, UrlPath(name): UrlPath<String>) -> Response {
    let doc = json!({ "CandidateName": name });
    match s.put(&name, &doc.to_string()).await {
        Ok(()) => axum::Json(doc).into_response(),
        Err(e) => {
            eprintln!("cannot store candidate {name}: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "Unable to update").into_response()
        }
    }
}

async fn list(State(s): State<Store>) -> Response {
    let docs: Vec<Value> = s
        .all()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    if docs.is_empty() {
        not_found()
    } else {
        axum::Json(docs).into_response()
    }
}
