//! The IP tracker of seeds/000 and 001: a page that shows who you are (IP, browser, OS),
//! which instance serves you, how long you have been connected, a QR code of the page,
//! and everyone connected across all instances, live over a WebSocket.
//!
//! Sessions are shared through a store every instance sees: SQLite in the stack's data
//! directory by default, or Redis when `REDIS_URL` is set (as in the seeds: a hash per
//! session, a sorted set of who is live, and pub/sub so every instance pushes the new
//! list at once). Each instance pushes the live list to its sockets when it changes. An instance admits `MAX_USERS_PER_INSTANCE` open sockets (default
//! 25); the next user gets a 503 page that says the service is scaling out and retries by
//! itself. The app puts `ActiveUsers` and `RejectedConnections` (namespace `IPTracker`)
//! to bellows each second, per instance and per group, so alarms can use them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::AppError;
use crate::clock::now_ms;

/// Settings, from the environment as the seed's app reads them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_users: usize,
    pub heartbeat: Duration,
    pub session_timeout: Duration,
    /// The path prefix the app lives under, like `/app-x7k9m2n8/`.
    pub base: String,
}

impl Settings {
    pub fn from_env() -> Settings {
        let num = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(d)
        };
        let mut base = std::env::var("BASE_PATH").unwrap_or_else(|_| "/".to_owned());
        if !base.starts_with('/') {
            base.insert(0, '/');
        }
        if !base.ends_with('/') {
            base.push('/');
        }
        Settings {
            max_users: num("MAX_USERS_PER_INSTANCE", 25) as usize,
            heartbeat: Duration::from_secs(num("HEARTBEAT_SECONDS", 30).max(1)),
            session_timeout: Duration::from_secs(num("SESSION_TIMEOUT_SECONDS", 300).max(1)),
            base,
        }
    }
}

/// One connected user, as everyone sees them.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    pub session: String,
    pub ip: String,
    pub browser: String,
    pub os: String,
    pub instance: String,
    pub zone: String,
    /// First seen (ms since the epoch); kept across reconnects.
    pub start_time: u64,
    /// Last heartbeat (ms since the epoch).
    pub timestamp: u64,
}

/// Where sessions are shared.
enum Store {
    Sqlite(Mutex<Connection>),
    Redis(redis::aio::MultiplexedConnection),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Store::Sqlite(_) => "Store::Sqlite",
            Store::Redis(_) => "Store::Redis",
        })
    }
}

const REDIS_SESSIONS: &str = "tracker:sessions";
const REDIS_UPDATES: &str = "tracker:updates";

#[derive(Debug)]
struct Tracker {
    store: Store,
    /// Woken when another instance published a change (Redis).
    changed: tokio::sync::Notify,
    settings: Settings,
    sockets: AtomicUsize,
    rejected: AtomicU64,
    instance: String,
    private_ip: String,
    zone: String,
}

pub fn store_path() -> PathBuf {
    crate::data_dir().join("ip-tracker.db")
}

fn sqlite(db: &Path) -> Result<Store, AppError> {
    let conn = crate::open_shared(
        db,
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS sessions (
             session TEXT PRIMARY KEY, ip TEXT, browser TEXT, os TEXT, instance TEXT, zone TEXT,
             start_time INTEGER, timestamp INTEGER, connected INTEGER NOT NULL DEFAULT 0
         );",
    )?;
    Ok(Store::Sqlite(Mutex::new(conn)))
}

/// The app, its sessions in Redis when `redis_url` is given, else in SQLite at `db`.
pub async fn app(
    db: &Path,
    redis_url: Option<&str>,
    settings: Settings,
) -> Result<Router, AppError> {
    let (store, pubsub) = match redis_url {
        None => (sqlite(db)?, None),
        Some(url) => {
            let wrap = |e: redis::RedisError| AppError::Redis(format!("{url}: {e}"));
            let client = redis::Client::open(url).map_err(wrap)?;
            let conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(wrap)?;
            let mut pubsub = client.get_async_pubsub().await.map_err(wrap)?;
            pubsub.subscribe(REDIS_UPDATES).await.map_err(wrap)?;
            (Store::Redis(conn), Some(pubsub))
        }
    };
    let base = settings.base.clone();
    let tracker = Arc::new(Tracker {
        store,
        changed: tokio::sync::Notify::new(),
        settings,
        sockets: AtomicUsize::new(0),
        rejected: AtomicU64::new(0),
        instance: crate::instance_id(),
        private_ip: std::env::var("PRIVATE_IP").unwrap_or_else(|_| "127.0.0.1".to_owned()),
        zone: std::env::var("ZONE").unwrap_or_else(|_| "local".to_owned()),
    });
    tokio::spawn(report_metrics(tracker.clone()));
    if let Some(pubsub) = pubsub {
        let t = tracker.clone();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut messages = pubsub.into_on_message();
            while messages.next().await.is_some() {
                t.changed.notify_waiters();
            }
        });
    }
    Ok(Router::new()
        .route(&base, get(page))
        .route(&format!("{base}ws"), get(socket))
        .route(&format!("{base}api/users"), get(users))
        .route(&format!("{base}qr.svg"), get(qr))
        .route(&format!("{base}health"), get(|| async { "ok\n" }))
        .with_state(tracker))
}

fn client_ip(headers: &HeaderMap) -> String {
    // The first address of X-Forwarded-For is the visitor's, as the load balancer saw them.
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

fn browser_and_os(headers: &HeaderMap) -> (String, String) {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    match woothee::parser::Parser::new().parse(ua) {
        Some(r) => {
            let browser = if r.version.is_empty() || r.version == "UNKNOWN" {
                r.name.to_owned()
            } else {
                format!("{} {}", r.name, r.version)
            };
            let os = if r.os_version.is_empty() || r.os_version == "UNKNOWN" {
                r.os.to_owned()
            } else {
                format!("{} {}", r.os, r.os_version)
            };
            (browser, os)
        }
        None => ("unknown".to_owned(), "unknown".to_owned()),
    }
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == "tracker_session" && v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| v.to_owned())
        })
}

/// A new session id from the operating system's generator. Apps know bellows only over
/// HTTP, so this is the app's own; like bellows' tokens it fails rather than hand out
/// an id of zeros that every visitor would share.
fn new_session() -> std::io::Result<String> {
    use std::io::Read;
    let mut raw = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut raw)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

impl Tracker {
    fn full(&self) -> bool {
        self.sockets.load(Relaxed) >= self.settings.max_users
    }

    /// Everyone seen within the session timeout, oldest first.
    async fn live(&self) -> Vec<User> {
        let cutoff = now_ms().saturating_sub(self.settings.session_timeout.as_millis() as u64);
        match &self.store {
            Store::Sqlite(db) => {
                let db = db.lock().unwrap_or_else(|e| e.into_inner());
                let _ = db.execute(
                    "DELETE FROM sessions WHERE timestamp < ?1",
                    params![cutoff as i64],
                );
                let Ok(mut stmt) = db.prepare(
                    "SELECT session, ip, browser, os, instance, zone, start_time, timestamp FROM sessions ORDER BY start_time",
                ) else {
                    return Vec::new();
                };
                stmt.query_map([], |r| {
                    Ok(User {
                        session: r.get::<_, String>(0)?.chars().take(8).collect(),
                        ip: r.get(1)?,
                        browser: r.get(2)?,
                        os: r.get(3)?,
                        instance: r.get(4)?,
                        zone: r.get(5)?,
                        start_time: r.get::<_, i64>(6)? as u64,
                        timestamp: r.get::<_, i64>(7)? as u64,
                    })
                })
                .map(|rows| rows.filter_map(Result::ok).collect())
                .unwrap_or_default()
            }
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let _: Result<(), _> = redis::cmd("ZREMRANGEBYSCORE")
                    .arg(REDIS_SESSIONS)
                    .arg("-inf")
                    .arg(cutoff)
                    .query_async(&mut conn)
                    .await;
                let ids: Vec<String> = redis::cmd("ZRANGE")
                    .arg(REDIS_SESSIONS)
                    .arg(0)
                    .arg(-1)
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if ids.is_empty() {
                    return Vec::new();
                }
                let mut pipe = redis::pipe();
                for id in &ids {
                    pipe.cmd("HGETALL").arg(format!("tracker:session:{id}"));
                }
                let hashes: Vec<HashMap<String, String>> =
                    pipe.query_async(&mut conn).await.unwrap_or_default();
                let mut users: Vec<User> = ids
                    .iter()
                    .zip(hashes)
                    .filter(|(_, h)| !h.is_empty())
                    .map(|(id, h)| {
                        let field = |k: &str| h.get(k).cloned().unwrap_or_default();
                        let num = |k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0);
                        User {
                            session: id.chars().take(8).collect(),
                            ip: field("ip"),
                            browser: field("browser"),
                            os: field("os"),
                            instance: field("instance"),
                            zone: field("zone"),
                            start_time: num("start_time"),
                            timestamp: num("timestamp"),
                        }
                    })
                    .collect();
                users.sort_by_key(|u| u.start_time);
                users
            }
        }
    }

    /// Records that `session` is here now; its start time is kept if it was seen before.
    async fn touch(&self, session: &str, ip: &str, browser: &str, os: &str) -> u64 {
        let now = now_ms();
        match &self.store {
            Store::Sqlite(db) => {
                let db = db.lock().unwrap_or_else(|e| e.into_inner());
                let _ = db.execute(
                    "INSERT INTO sessions (session, ip, browser, os, instance, zone, start_time, timestamp)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                     ON CONFLICT (session) DO UPDATE SET ip = excluded.ip, browser = excluded.browser, os = excluded.os,
                         instance = excluded.instance, zone = excluded.zone, timestamp = excluded.timestamp",
                    params![session, ip, browser, os, self.instance, self.zone, now as i64],
                );
                db.query_row(
                    "SELECT start_time FROM sessions WHERE session = ?1",
                    params![session],
                    |r| r.get::<_, i64>(0),
                )
                .map_or(now, |t| t as u64)
            }
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let key = format!("tracker:session:{session}");
                let mut pipe = redis::pipe();
                pipe.cmd("HSETNX")
                    .arg(&key)
                    .arg("start_time")
                    .arg(now)
                    .ignore();
                pipe.cmd("HSET")
                    .arg(&key)
                    .arg(&[
                        ("ip", ip),
                        ("browser", browser),
                        ("os", os),
                        ("instance", &self.instance),
                        ("zone", &self.zone),
                    ])
                    .arg("timestamp")
                    .arg(now)
                    .ignore();
                pipe.cmd("EXPIRE")
                    .arg(&key)
                    .arg(self.settings.session_timeout.as_secs())
                    .ignore();
                pipe.cmd("ZADD")
                    .arg(REDIS_SESSIONS)
                    .arg(now)
                    .arg(session)
                    .ignore();
                pipe.cmd("PUBLISH").arg(REDIS_UPDATES).arg(session).ignore();
                pipe.cmd("HGET").arg(&key).arg("start_time");
                let start: Result<(Option<u64>,), _> = pipe.query_async(&mut conn).await;
                start.ok().and_then(|(s,)| s).unwrap_or(now)
            }
        }
    }

    async fn heartbeat(&self, session: &str) {
        let now = now_ms();
        match &self.store {
            Store::Sqlite(db) => {
                let db = db.lock().unwrap_or_else(|e| e.into_inner());
                let _ = db.execute(
                    "UPDATE sessions SET timestamp = ?2 WHERE session = ?1",
                    params![session, now as i64],
                );
            }
            Store::Redis(conn) => {
                let mut conn = conn.clone();
                let key = format!("tracker:session:{session}");
                let mut pipe = redis::pipe();
                pipe.cmd("HSET")
                    .arg(&key)
                    .arg("timestamp")
                    .arg(now)
                    .ignore();
                pipe.cmd("EXPIRE")
                    .arg(&key)
                    .arg(self.settings.session_timeout.as_secs())
                    .ignore();
                pipe.cmd("ZADD")
                    .arg(REDIS_SESSIONS)
                    .arg(now)
                    .arg(session)
                    .ignore();
                pipe.cmd("PUBLISH").arg(REDIS_UPDATES).arg(session).ignore();
                let _: Result<(), _> = pipe.query_async(&mut conn).await;
            }
        }
    }
}

async fn page(State(t): State<Arc<Tracker>>, headers: HeaderMap) -> Response {
    if t.full() {
        t.rejected.fetch_add(1, Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Html(FULL_PAGE),
        )
            .into_response();
    }
    let session = match session_of(&headers).map_or_else(new_session, Ok) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot make a session id");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot make a session id",
            )
                .into_response();
        }
    };
    let ip = client_ip(&headers);
    let (browser, os) = browser_and_os(&headers);
    let start = t.touch(&session, &ip, &browser, &os).await;
    let config = serde_json::json!({
        "session": session,
        "ip": ip,
        "browser": browser,
        "os": os,
        "instance": t.instance,
        "private_ip": t.private_ip,
        "zone": t.zone,
        "start_time": start,
        "heartbeat_ms": t.settings.heartbeat.as_millis() as u64,
        "base": t.settings.base,
    });
    let html = PAGE.replace("/*CONFIG*/", &config.to_string().replace("</", "<\\/"));
    let cookie = format!("tracker_session={session}; Path=/; Max-Age=86400; SameSite=Lax");
    (
        [
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Html(html),
    )
        .into_response()
}

async fn users(State(t): State<Arc<Tracker>>) -> axum::Json<Vec<User>> {
    axum::Json(t.live().await)
}

async fn qr(State(t): State<Arc<Tracker>>, headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("http");
    let url = format!("{proto}://{host}{}", t.settings.base);
    match qrcode::QrCode::new(url.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(160, 160)
                .build();
            ([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn socket(
    State(t): State<Arc<Tracker>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Some(session) = session_of(&headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "open the page first: the socket needs its session",
        )
            .into_response();
    };
    if t.full() {
        t.rejected.fetch_add(1, Relaxed);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "this instance is full; the service is scaling out",
        )
            .into_response();
    }
    t.sockets.fetch_add(1, Relaxed);
    upgrade.on_upgrade(move |ws| async move {
        live(&t, ws, &session).await;
        t.sockets.fetch_sub(1, Relaxed);
    })
}

/// Pushes the live list when it changes, takes heartbeats.
async fn live(t: &Tracker, mut ws: WebSocket, session: &str) {
    t.heartbeat(session).await;
    let mut last = String::new();
    let mut tick = crate::clock::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            // Each half second, or at once when another instance published a change.
            _ = async { tokio::select! { _ = tick.tick() => {}, _ = t.changed.notified() => {} } } => {
                let list = serde_json::json!({ "type": "users", "users": t.live().await }).to_string();
                if list != last {
                    if ws.send(Message::Text(list.clone().into())).await.is_err() {
                        return;
                    }
                    last = list;
                }
            }
            msg = ws.recv() => match msg {
                Some(Ok(Message::Text(_))) => t.heartbeat(session).await,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
}

/// Puts ActiveUsers and RejectedConnections to bellows each second, when running there.
async fn report_metrics(t: Arc<Tracker>) {
    let (Ok(api), Ok(token)) = (
        std::env::var("BELLOWS_API"),
        std::env::var("BELLOWS_METRICS_TOKEN"),
    ) else {
        return;
    };
    let group = std::env::var("GROUP").unwrap_or_default();
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(hyper_util::client::legacy::connect::HttpConnector::new());
    let mut tick = crate::clock::interval(Duration::from_secs(1));
    let mut last_rejected = 0;
    loop {
        tick.tick().await;
        let rejected = t.rejected.load(Relaxed);
        let (users, new_rejections) = (t.sockets.load(Relaxed), rejected - last_rejected);
        last_rejected = rejected;
        let mut metrics = Vec::new();
        for dims in [
            HashMap::from([("InstanceId", t.instance.as_str())]),
            HashMap::from([("AutoScalingGroupName", group.as_str())]),
        ] {
            metrics.push(serde_json::json!({ "namespace": "IPTracker", "name": "ActiveUsers", "dimensions": dims, "value": users }));
            metrics.push(serde_json::json!({ "namespace": "IPTracker", "name": "RejectedConnections", "dimensions": dims, "value": new_rejections }));
        }
        let body = serde_json::json!({ "metrics": metrics }).to_string();
        let Ok(req) = hyper::Request::post(format!("{api}/api/v1/metrics"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        else {
            continue;
        };
        let _ = crate::clock::timeout(Duration::from_secs(2), client.request(req)).await;
    }
}

const FULL_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Scaling out</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;display:grid;place-items:center;height:90vh;color:#333}</style>
</head><body><div>
<h1>We are busy, and scaling out</h1>
<p>This instance has all the users it can take. A new one is on its way;
this page tries again by itself in <span id="n">5</span> s.</p>
</div>
<script>let n=5;setInterval(()=>{n--;document.getElementById('n').textContent=Math.max(n,0);if(n<=0)location.reload()},1000)</script>
</body></html>"#;

const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>IP tracker</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:60rem}
.card{display:flex;gap:2rem;align-items:flex-start;flex-wrap:wrap}
dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem 1rem;margin:0}
dt{color:#666}table{border-collapse:collapse;width:100%;margin-top:1rem}
td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;font-size:.9rem}
.me{background:#fff4e6}#status{color:#888;font-size:.85rem}
</style></head><body>
<h1>IP tracker</h1>
<div class="card">
<dl>
<dt>Your IP</dt><dd id="ip"></dd>
<dt>Browser</dt><dd id="browser"></dd>
<dt>OS</dt><dd id="os"></dd>
<dt>Served by</dt><dd id="instance"></dd>
<dt>Private IP</dt><dd id="private_ip"></dd>
<dt>Zone</dt><dd id="zone"></dd>
<dt>Connected for</dt><dd id="duration">0s</dd>
</dl>
<img id="qr" alt="QR code of this page" width="160" height="160">
</div>
<h2>Connected now (<span id="count">0</span>)</h2>
<table><thead><tr><th>Session</th><th>IP</th><th>Browser</th><th>OS</th><th>Instance</th><th>Zone</th><th>Connected for</th></tr></thead>
<tbody id="users"></tbody></table>
<p id="status">connecting...</p>
<script>
const C = /*CONFIG*/;
for (const k of ["ip","browser","os","instance","private_ip","zone"]) document.getElementById(k).textContent = C[k];
document.getElementById("qr").src = C.base + "qr.svg";
const fmt = ms => { const s = Math.max(0, Math.floor(ms/1000)); const h = Math.floor(s/3600), m = Math.floor(s%3600/60);
  return (h ? h+"h" : "") + (h||m ? m+"m" : "") + (s%60) + "s"; };
setInterval(() => document.getElementById("duration").textContent = fmt(Date.now() - C.start_time), 1000);
let users = [];
function render() {
  document.getElementById("count").textContent = users.length;
  const tb = document.getElementById("users"); tb.textContent = "";
  for (const u of users) {
    const tr = document.createElement("tr"); if (C.session.startsWith(u.session)) tr.className = "me";
    for (const v of [u.session, u.ip, u.browser, u.os, u.instance, u.zone, fmt(Date.now() - u.start_time)]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td); }
    tb.appendChild(tr); }
}
setInterval(render, 1000);
function connect() {
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + C.base + "ws");
  let beat;
  ws.onopen = () => { document.getElementById("status").textContent = "live";
    beat = setInterval(() => ws.send(JSON.stringify({type: "heartbeat"})), C.heartbeat_ms); };
  ws.onmessage = e => { const m = JSON.parse(e.data); if (m.type === "users") { users = m.users; render(); } };
  ws.onclose = () => { clearInterval(beat); document.getElementById("status").textContent = "reconnecting...";
    setTimeout(connect, 2000); };
}
connect();
</script></body></html>"#;
