//! The AWS face of the control address: `POST /` (Query, EC2, AWS JSON 1.0) and
//! `POST /service/...` (Smithy RPC v2 CBOR), beside the JSON API.
//!
//! `bellows-aws` verifies the SigV4 signature and decodes the request; the handlers here
//! turn it into the same [`Call`]s the JSON API sends the loop, and their answer into the
//! action's output shape. Handlers never touch state, and every change carries an
//! [`Actor`] whose source is `aws` and whose name is the signing access key id, so the
//! audit trail shows it like any other change.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bellows_aws::arn::Names;
use bellows_aws::{AwsError, Credential, Endpoint, Reply, Request, Service, Value};
use ring::hmac;
use tokio::sync::{mpsc, oneshot};

use crate::api::{Actor, ApiError, Call};
use crate::clock;
use crate::resources::Resources;
use crate::sessions::{Session, Sessions};
use crate::tables::{DynamoMetrics, Tables};

mod autoscaling;
mod cloudwatch;
mod dynamodb;
pub(crate) mod ec2;
mod elbv2;
pub(crate) mod iam;
mod sts;

/// The largest AWS request body read (PutMetricData may carry up to 1 MB).
pub const MAX_BODY: usize = 1024 * 1024;

/// The region when the stack names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// The key pair `bellows aws-env` prints: derived from the state directory's token, so
/// it changes when the token does and is never stored anywhere itself.
pub fn derived_credential(token: &str) -> Credential {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.trim().as_bytes());
    let id = hmac::sign(&key, b"bellows aws access key id");
    let secret = hmac::sign(&key, b"bellows aws secret access key");
    let id: String = id.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let secret: String = secret.as_ref()[..20]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Credential {
        access_key_id: format!("AKIA{id}"),
        secret_access_key: secret,
    }
}

/// The variables through which a node started without a stack file's `[aws]` table
/// takes a key pair of its own instead of the derived one.
pub const ACCESS_KEY_ENV: &str = "BELLOWS_AWS_ACCESS_KEY_ID";
pub const SECRET_KEY_ENV: &str = "BELLOWS_AWS_SECRET_ACCESS_KEY";

/// The key pair the endpoint accepts: one given (both halves), else the derived one.
pub fn credentials(token: &str, given: Option<(String, String)>) -> Vec<Credential> {
    match given {
        Some((id, secret)) if !id.is_empty() && !secret.is_empty() => vec![Credential {
            access_key_id: id,
            secret_access_key: secret,
        }],
        _ => vec![derived_credential(token)],
    }
}

/// What the AWS face shares with the loop: DynamoDB's store and what its calls consumed,
/// and instances' temporary credentials.
#[derive(Debug, Clone)]
pub struct DataPlane {
    pub tables: Arc<Tables>,
    pub dynamo_metrics: Arc<DynamoMetrics>,
    pub sessions: Arc<Sessions>,
}

/// What the AWS face needs: the endpoint (region and keys), the stack's names, and the
/// loop's mailbox.
pub struct AwsFace {
    endpoint: Endpoint,
    names: Names,
    /// The application load balancer's name (`[stack] load_balancer`).
    load_balancer: String,
    calls: mpsc::Sender<Call>,
    /// The operator's token, which custom metrics put through CloudWatch carry to the
    /// loop (the signature has already proven the caller).
    token: String,
    requests: AtomicU64,
    /// Mixed into request ids so that two runs do not repeat them.
    run: u64,
    /// DynamoDB's tables and items.
    tables: Arc<Tables>,
    /// What DynamoDB calls consumed, for the `AWS/DynamoDB` metrics.
    dynamo_metrics: Arc<DynamoMetrics>,
    /// Instances' temporary credentials.
    sessions: Arc<Sessions>,
}

impl AwsFace {
    pub fn new(
        calls: mpsc::Sender<Call>,
        token: String,
        region: &str,
        stack_name: &str,
        load_balancer: &str,
        credentials: Vec<Credential>,
        data: DataPlane,
    ) -> AwsFace {
        AwsFace {
            endpoint: Endpoint::new(region, credentials),
            names: Names::new(region, stack_name),
            load_balancer: load_balancer.to_owned(),
            calls,
            token,
            requests: AtomicU64::new(0),
            run: clock::now().as_millis() ^ (u64::from(std::process::id()) << 40),
            tables: data.tables,
            dynamo_metrics: data.dynamo_metrics,
            sessions: data.sessions,
        }
    }

    /// A request id shaped like AWS's (a UUID).
    fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let r = self.run;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (r >> 32) as u32,
            (r >> 16) as u16,
            r & 0xfff,
            (n >> 48) & 0xfff,
            n & 0xffff_ffff_ffff
        )
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Call) -> Result<T, AwsError> {
        let (tx, rx) = oneshot::channel();
        let gone = || AwsError::new(503, "ServiceUnavailable", "bellows is shutting down");
        self.calls.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }
}

impl std::fmt::Debug for AwsFace {
    // The token is a secret: it is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsFace")
            .field("region", &self.endpoint.region)
            .finish_non_exhaustive()
    }
}

/// One decoded call and who made it.
pub(crate) struct Ctx<'a> {
    face: &'a AwsFace,
    call: &'a bellows_aws::Call,
    /// The instance's credentials the call was signed with, if it was.
    session: Option<Session>,
}

impl Ctx<'_> {
    fn input(&self) -> &bellows_aws::Input {
        &self.call.input
    }

    fn names(&self) -> &Names {
        &self.face.names
    }

    /// Who a change is recorded as: the access key, through `aws`, under the action's
    /// AWS name.
    fn actor(&self) -> Actor {
        Actor {
            name: self.call.access_key_id.clone(),
            source: "aws".to_owned(),
            action: Some(self.call.action.clone()),
        }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Call) -> Result<T, AwsError> {
        self.face.ask(make).await
    }

    /// Reads the AWS resource records in the loop.
    async fn read<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Resources) -> Result<T, AwsError> + Send + 'static,
    ) -> Result<T, AwsError> {
        let (call, answer) = Call::resources(None, move |r: &mut Resources| op(r));
        self.send(call).await?;
        answer.await
    }

    /// Changes the AWS resource records in the loop, as this call's actor: the loop
    /// applies what they then describe, audits it, and rolls back what fails.
    async fn change<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Resources) -> Result<T, AwsError> + Send + 'static,
    ) -> Result<T, AwsError> {
        let (call, answer) = Call::resources(Some(self.actor()), op);
        self.send(call).await?;
        answer.await
    }

    async fn send(&self, call: Call) -> Result<(), AwsError> {
        self.face
            .calls
            .send(call)
            .await
            .map_err(|_| AwsError::new(503, "ServiceUnavailable", "bellows is shutting down"))
    }
}

/// An API error from the loop in the service's terms: `not_found` keeps its message with
/// the code the service uses for it, a refused change is a validation error.
pub(crate) fn from_api(e: ApiError, not_found_code: &str, invalid_code: &str) -> AwsError {
    match e.status {
        404 => AwsError::new(400, not_found_code, e.message),
        503 => AwsError::new(503, "ServiceUnavailable", e.message),
        s if s >= 500 => AwsError::new(500, "InternalFailure", e.message),
        _ => AwsError::new(400, invalid_code, e.message),
    }
}

/// The AWS routes, with their own body limit; merged into the control API's router.
pub fn router(face: Arc<AwsFace>) -> Router {
    Router::new()
        .route("/", post(handle))
        .route("/service/{*rest}", post(handle))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(face)
}

async fn handle(
    State(face): State<Arc<AwsFace>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = face.request_id();
    let req = Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    let now = (clock::now().as_millis() / 1000) as i64;
    let now_time = clock::now();
    let sessions = |k: &str| {
        face.sessions
            .lookup(k, now_time)
            .map(|s| bellows_aws::SessionSecret {
                secret_access_key: s.secret_access_key,
                token: s.token,
            })
    };
    let call = match face.endpoint.accept_with(&req, now, &request_id, &sessions) {
        Ok(call) => call,
        Err(reply) => {
            tracing::info!(status = reply.status, request_id = %request_id, "aws request refused");
            return into_response(reply);
        }
    };
    let session = if call.session {
        face.sessions.lookup(&call.access_key_id, now_time)
    } else {
        None
    };
    // A role's credentials call only what the role allows.
    if let Some(s) = &session {
        let service = iam_prefix(call.service);
        if !s.allows(service, &call.action) {
            tracing::info!(service, action = %call.action, key = %call.access_key_id, instance = %s.instance, "aws call denied to an instance role");
            let e = AwsError::new(
                403,
                "AccessDenied",
                format!(
                    "User: {} is not authorized to perform: {service}:{} because no identity-based policy allows the {service}:{} action",
                    face.names.assumed_role_arn(&s.role, &s.instance),
                    call.action,
                    call.action
                ),
            );
            return into_response(call.reply(Err(e), &request_id));
        }
    }
    let ctx = Ctx {
        face: &face,
        call: &call,
        session,
    };
    let result = dispatch(&ctx).await;
    if let Err(e) = &result {
        tracing::info!(service = call.service.signing_name(), action = %call.action, code = %e.code, key = %call.access_key_id, "aws call failed");
    } else {
        tracing::debug!(service = call.service.signing_name(), action = %call.action, key = %call.access_key_id, "aws call");
    }
    into_response(call.reply(result, &request_id))
}

async fn dispatch(ctx: &Ctx<'_>) -> Result<Value, AwsError> {
    let action = ctx.call.action.as_str();
    let answer = match ctx.call.service {
        Service::Sts => sts::handle(ctx, action).await,
        Service::AutoScaling => autoscaling::handle(ctx, action).await,
        Service::Elbv2 => elbv2::handle(ctx, action).await,
        Service::Ec2 => ec2::handle(ctx, action).await,
        Service::CloudWatch => cloudwatch::handle(ctx, action).await,
        Service::DynamoDb => dynamodb::handle(ctx, action).await,
        Service::Iam => iam::handle(ctx, action).await,
    };
    answer.unwrap_or_else(|| Err(AwsError::invalid_action(action, ctx.call.service.title())))
}

/// The service's name in IAM actions (CloudWatch signs as `monitoring`).
fn iam_prefix(service: Service) -> &'static str {
    match service {
        Service::CloudWatch => "cloudwatch",
        other => other.signing_name(),
    }
}

fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut headers = HeaderMap::new();
    for (k, v) in reply.headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            headers.insert(k, v);
        }
    }
    (status, headers, reply.body).into_response()
}

/// How a paginated action names its page: the size member and its bounds, and the
/// token members in and out (`NextToken` for most, ELBv2's `Marker`/`NextMarker`).
struct Paging {
    size: &'static str,
    default: usize,
    max: usize,
    token_in: &'static str,
    token_out: &'static str,
    /// The code of a token this endpoint did not hand out.
    bad_token: &'static str,
}

const NEXT_TOKEN: Paging = Paging {
    size: "MaxRecords",
    default: 50,
    max: 100,
    token_in: "NextToken",
    token_out: "NextToken",
    bad_token: "InvalidNextToken",
};

/// One page of a listing, as AWS's paginated actions give them: at most the page size
/// from where the caller's token says, with a token for the rest (the CLI and the SDKs'
/// paginators follow it). A token is the offset of the next item, tagged so that one
/// made up or from another listing's end is refused rather than read.
fn page(
    ctx: &Ctx<'_>,
    paging: &Paging,
    mut items: Vec<Value>,
    out: &mut Value,
    list: &str,
) -> Result<(), AwsError> {
    let input = ctx.input();
    let size = match input.opt_i64(paging.size)? {
        None => paging.default,
        Some(n) if n >= 1 && n as usize <= paging.max => n as usize,
        Some(n) => {
            return Err(AwsError::new(
                400,
                "ValidationError",
                format!(
                    "The value {n} for {} is not valid: 1 to {}",
                    paging.size, paging.max
                ),
            ));
        }
    };
    let start = match input.opt_str(paging.token_in)? {
        None => 0,
        Some(t) => t
            .strip_prefix("bellows-page-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|&n| n > 0 && n < items.len())
            .ok_or_else(|| {
                AwsError::new(
                    400,
                    paging.bad_token,
                    format!("The {} is not valid: {t}", paging.token_in),
                )
            })?,
    };
    let rest = items.split_off(start);
    let more = rest.len() > size;
    let shown: Vec<Value> = rest.into_iter().take(size).collect();
    out.set(list, Value::List(shown));
    if more {
        out.set(paging.token_out, format!("bellows-page-{}", start + size));
    }
    Ok(())
}

/// Seconds since the epoch of a core time, for a timestamp member.
fn time(t: bellows_core::Time) -> Value {
    Value::Time(t.as_millis() as f64 / 1000.0)
}

/// A record's body as a wire value: members named `...Time` are timestamps, and members
/// whose name starts with `_` are the record's own (kept out of answers).
pub(crate) fn from_json(v: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    match v {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => Value::Str(s.clone()),
        J::Array(items) => Value::List(items.iter().map(from_json).collect()),
        J::Object(m) => Value::Struct(
            m.iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), member_from_json(k, v)))
                .collect(),
        ),
    }
}

/// A record's member `key` as a wire value (a `...Time` member is a timestamp).
pub(crate) fn member_from_json(key: &str, v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Number(n) if key.ends_with("Time") => {
            Value::Time(n.as_f64().unwrap_or(0.0))
        }
        other => from_json(other),
    }
}
