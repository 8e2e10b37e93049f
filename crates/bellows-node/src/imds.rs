//! The instance metadata service: EC2's paths (IMDSv1 and v2), served to each instance
//! on its own private address, so an app that reads IMDS works unchanged. Instances get
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`, which the AWS SDKs honour.
//!
//! Each instance has a listener of its own on `PRIVATE_IP:METADATA_PORT` (in a network
//! namespace, on the host end of its veth): the address a request arrives on says which
//! instance asks, with no trust in anything it sends.
//!
//! Under `iam/security-credentials/ROLE` it serves the instance profile's temporary
//! credentials (`sessions.rs`), as EC2 does, so that the SDKs' default credential chain
//! finds them with no configuration.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};

/// The port of every instance's metadata endpoint.
pub const METADATA_PORT: u16 = 1338;

/// What an instance may learn about itself.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub instance_id: String,
    pub private_ip: Ipv4Addr,
    pub zone: String,
    pub instance_type: String,
    pub group: String,
    pub stack: String,
    /// The instance profile's role and what it may call.
    pub role: String,
    pub allow: Vec<String>,
    pub sessions: Arc<crate::sessions::Sessions>,
}

#[derive(Debug)]
struct Imds {
    meta: Metadata,
    /// IMDSv2 session tokens and when they expire.
    tokens: Mutex<HashMap<String, Instant>>,
}

/// Serves one instance's metadata on `listen` (its private address, or in a network
/// namespace the host end of its veth) until the returned task is aborted. On a veth's
/// host end only the instance's own address is answered: another namespace's instance
/// could route there too.
pub fn serve(meta: Metadata, listen: Ipv4Addr) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let only_from = (listen != meta.private_ip).then_some(meta.private_ip);
    let listener = std::net::TcpListener::bind(SocketAddr::new(listen.into(), METADATA_PORT))?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let state = Arc::new(Imds {
        meta,
        tokens: Mutex::new(HashMap::new()),
    });
    let app = Router::new()
        .route("/latest/api/token", put(token))
        .route("/latest/meta-data", get(index))
        .route("/latest/meta-data/", get(index))
        .route("/latest/meta-data/{*path}", get(item))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found") })
        .with_state(state)
        .layer(axum::middleware::from_fn(
            move |ConnectInfo(peer): ConnectInfo<SocketAddr>,
                  req: axum::extract::Request,
                  next: axum::middleware::Next| async move {
                if only_from.is_some_and(|ip| peer.ip() != std::net::IpAddr::V4(ip)) {
                    return (StatusCode::FORBIDDEN, "Forbidden").into_response();
                }
                next.run(req).await
            },
        ));
    Ok(tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    }))
}

/// IMDSv2: `PUT /latest/api/token` with `X-aws-ec2-metadata-token-ttl-seconds`.
async fn token(State(s): State<Arc<Imds>>, headers: HeaderMap) -> Response {
    // As EC2: a request that went through a proxy may not get a token.
    if headers.contains_key("x-forwarded-for") {
        return (StatusCode::FORBIDDEN, "Forbidden").into_response();
    }
    let ttl = headers
        .get("x-aws-ec2-metadata-token-ttl-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
        return (
            StatusCode::BAD_REQUEST,
            "X-aws-ec2-metadata-token-ttl-seconds must be from 1 to 21600",
        )
            .into_response();
    };
    let t = match crate::token::random_hex::<24>() {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "no IMDSv2 token");
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
        }
    };
    let mut tokens = s.tokens.lock().unwrap_or_else(|e| e.into_inner());
    let now = crate::clock::instant();
    tokens.retain(|_, exp| *exp > now);
    if tokens.len() >= 1000 {
        return (StatusCode::TOO_MANY_REQUESTS, "Too many tokens").into_response();
    }
    tokens.insert(t.clone(), now + Duration::from_secs(ttl));
    (
        [("x-aws-ec2-metadata-token-ttl-seconds", ttl.to_string())],
        t,
    )
        .into_response()
}

/// A request without a token is IMDSv1 and allowed; one with a token needs a valid one.
fn authorized(s: &Imds, headers: &HeaderMap) -> bool {
    match headers
        .get("x-aws-ec2-metadata-token")
        .and_then(|v| v.to_str().ok())
    {
        None => true,
        Some(t) => s
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(t)
            .is_some_and(|exp| *exp > crate::clock::instant()),
    }
}

const KEYS: [&str; 11] = [
    "ami-id",
    "hostname",
    "iam/",
    "instance-id",
    "instance-type",
    "local-hostname",
    "local-ipv4",
    "placement/",
    "placement/availability-zone",
    "placement/region",
    "tags/instance/aws:autoscaling:groupName",
];

async fn index(State(s): State<Arc<Imds>>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    KEYS.iter()
        .filter(|k| !k.contains('/') || k.ends_with('/'))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
        .into_response()
}

async fn item(
    State(s): State<Arc<Imds>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&s, &headers) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let m = &s.meta;
    let host = format!(
        "ip-{}.{}.compute.internal",
        m.private_ip.to_string().replace('.', "-"),
        m.stack
    );
    let value = match path.trim_end_matches('/') {
        "ami-id" => "ami-bellows".to_owned(),
        "instance-id" => m.instance_id.clone(),
        "instance-type" => m.instance_type.clone(),
        "local-ipv4" => m.private_ip.to_string(),
        "hostname" | "local-hostname" => host,
        "placement" => "availability-zone\nregion".to_owned(),
        "placement/availability-zone" => m.zone.clone(),
        "placement/region" => "local".to_owned(),
        "tags/instance/aws:autoscaling:groupName" => m.group.clone(),
        "iam" => "info\nsecurity-credentials/".to_owned(),
        "iam/security-credentials" => m.role.clone(),
        "iam/info" => {
            let now = crate::clock::now();
            serde_json::json!({
                "Code": "Success",
                "LastUpdated": iso(now),
                "InstanceProfileArn": format!("arn:aws:iam::{}:instance-profile/{}", bellows_aws::arn::ACCOUNT, m.role),
                "InstanceProfileId": format!("AIPA{}", m.instance_id.trim_start_matches("i-").to_uppercase()),
            })
            .to_string()
        }
        p if p.strip_prefix("iam/security-credentials/") == Some(m.role.as_str()) => {
            let now = crate::clock::now();
            match m.sessions.current(&m.instance_id, &m.role, &m.allow, now) {
                Ok(c) => serde_json::json!({
                    "Code": "Success",
                    "LastUpdated": iso(c.issued),
                    "Type": "AWS-HMAC",
                    "AccessKeyId": c.access_key_id,
                    "SecretAccessKey": c.secret_access_key,
                    "Token": c.token,
                    "Expiration": iso(c.expires),
                })
                .to_string(),
                Err(e) => {
                    tracing::error!(error = %e, "no instance credentials");
                    return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                        .into_response();
                }
            }
        }
        _ => return (StatusCode::NOT_FOUND, "Not Found").into_response(),
    };
    value.into_response()
}

/// A time as IMDS writes it: `2026-12-02T13:00:00Z`, whole seconds.
fn iso(t: bellows_core::Time) -> String {
    let s = bellows_core::Time::from_millis(t.as_secs() * 1000).to_string();
    s.replace(".000Z", "Z")
}
