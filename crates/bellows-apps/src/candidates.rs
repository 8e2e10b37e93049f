//! The candidates API of seeds/004 (the Flask microservice behind an auto scaling group):
//!
//! - `GET /gtg`: 200 with no body; `?details=true`: `{"connected": "true", "instance-id": ID}`
//! - `GET /candidate/<name>`: the candidate's document, or 404 "Not Found"
//! - `POST /candidate/<name>`: stores it, `{"CandidateName": name}`; 500 "Unable to update"
//! - `GET /candidates`: every candidate, or 404 "Not Found" when there is none
//!
//! The store is SQLite in the stack's shared data directory, written with
//! `synchronous = FULL`: a write that was acknowledged survives `kill -9` of the
//! instance and of bellows.

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

#[derive(Clone, Debug)]
struct Store {
    conn: Arc<Mutex<Connection>>,
}

pub fn store_path() -> PathBuf {
    crate::data_dir().join("candidates.db")
}

pub fn app(db: &Path) -> Result<Router, AppError> {
    let wrap = |source| AppError::Store {
        path: db.to_owned(),
        source,
    };
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let conn = Connection::open(db).map_err(wrap)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(wrap)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         CREATE TABLE IF NOT EXISTS candidates (name TEXT PRIMARY KEY, doc TEXT NOT NULL);",
    )
    .map_err(wrap)?;
    let store = Store {
        conn: Arc::new(Mutex::new(conn)),
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
    let conn = s.conn.lock().unwrap_or_else(|e| e.into_inner());
    let doc: Option<String> = conn
        .query_row(
            "SELECT doc FROM candidates WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()
        .unwrap_or(None);
    match doc.and_then(|d| serde_json::from_str::<Value>(&d).ok()) {
        Some(doc) => axum::Json(doc).into_response(),
        None => not_found(),
    }
}

async fn write(State(s): State<Store>, UrlPath(name): UrlPath<String>) -> Response {
    let doc = json!({ "CandidateName": name });
    let conn = s.conn.lock().unwrap_or_else(|e| e.into_inner());
    let stored = conn.execute(
        "INSERT INTO candidates (name, doc) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc",
        params![name, doc.to_string()],
    );
    match stored {
        Ok(_) => axum::Json(doc).into_response(),
        Err(e) => {
            eprintln!("cannot store candidate {name}: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "Unable to update").into_response()
        }
    }
}

async fn list(State(s): State<Store>) -> Response {
    let conn = s.conn.lock().unwrap_or_else(|e| e.into_inner());
    let docs: Vec<Value> = conn
        .prepare("SELECT doc FROM candidates ORDER BY name")
        .and_then(|mut stmt| {
            let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
            Ok(rows
                .filter_map(|r| r.ok())
                .filter_map(|d| serde_json::from_str(&d).ok())
                .collect())
        })
        .unwrap_or_default();
    if docs.is_empty() {
        not_found()
    } else {
        axum::Json(docs).into_response()
    }
}
