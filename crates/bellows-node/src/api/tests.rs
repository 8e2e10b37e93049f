//! The API's handlers without a server or a node: the router is called directly, and
//! the loop's end of the call channel is dropped, so a request that gets past
//! validation and authentication is answered 503 ("shutting down") without touching any
//! state. That is enough to test routing, the token and body validation exhaustively.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use super::*;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn router_without_node() -> Router {
    let (calls, _) = mpsc::channel(1);
    let (events, _) = broadcast::channel(1);
    router(ApiState::new(calls, TOKEN.to_owned(), events))
}

fn openapi() -> Value {
    serde_json::from_slice(include_bytes!("../../assets/openapi.json")).expect("valid JSON")
}

/// An operation of the AWS face, which `aws::router` serves beside this router (the
/// node merges the two) and tests/aws.rs drives with the real clients.
fn is_aws(op: &Value) -> bool {
    op["tags"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t == "aws"))
}

/// Every documented (method, path) with path parameters filled in, and whether it
/// needs the token.
fn operations() -> Vec<(Method, String, bool)> {
    let doc = openapi();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if is_aws(op) {
                continue;
            }
            let concrete = path
                .replace("{id}", "i-0123456789abcdef0")
                .replace("{group}", "web")
                .replace("{listener}", "http")
                .replace("{file}", "dashboard.js");
            let change = op.get("security").is_some();
            out.push((method.to_uppercase().parse().unwrap(), concrete, change));
        }
    }
    out
}

async fn call(method: Method, uri: &str, token: bool, body: Body) -> (StatusCode, Vec<u8>) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json");
    if token {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    let resp = router_without_node()
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    (status, bytes)
}

#[test]
fn the_openapi_document_describes_every_route_and_nothing_else() {
    let source = include_str!("../api.rs");
    let mut routed: Vec<&str> = source
        .split(".route(")
        .skip(1)
        .filter_map(|rest| rest.trim_start().strip_prefix('"'))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    routed.sort_unstable();
    // `instance_face` routes `/api/v1/metrics` again, for instances in namespaces.
    routed.dedup();
    let doc = openapi();
    let paths = doc["paths"].as_object().unwrap();
    let mut documented: Vec<&str> = paths
        .iter()
        .filter(|(_, item)| item.as_object().unwrap().values().any(|op| !is_aws(op)))
        .map(|(p, _)| p.as_str())
        .collect();
    documented.sort_unstable();
    assert_eq!(routed, documented);
    // The AWS face's documented paths are the ones its own router serves.
    let aws_source = include_str!("../aws.rs");
    for (path, item) in paths {
        if item.as_object().unwrap().values().any(is_aws) {
            let served = if path == "/" {
                aws_source.contains(".route(\"/\", post(")
            } else {
                path.starts_with("/service/") && aws_source.contains(".route(\"/service/{*rest}\"")
            };
            assert!(
                served,
                "{path} is documented as an AWS route that aws.rs does not serve"
            );
        }
    }
    assert_eq!(doc["openapi"], "3.1.0");
    // Every reference points at a schema or response that exists.
    let text = doc.to_string();
    for r in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = r.split('"').next().unwrap();
        let (kind, name) = target.split_once('/').unwrap();
        assert!(
            doc["components"][kind][name].is_object(),
            "dangling $ref {target}"
        );
    }
}

#[tokio::test]
async fn every_documented_operation_is_routed_and_every_change_needs_the_token() {
    for (method, uri, change) in operations() {
        let (status, body) = call(method.clone(), &uri, false, Body::empty()).await;
        let text = String::from_utf8_lossy(&body);
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri} is not routed"
        );
        assert!(
            !text.contains("no such endpoint"),
            "{method} {uri} is not routed"
        );
        if change {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}: {text}");
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"]["code"], "unauthorized");
        } else {
            assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {uri} is a read");
        }
        // A wrong token is refused the same way, and says so. (Putting metrics is
        // the exception: instances' own tokens are known only to the loop, which checks
        // a token before it stores anything; the end-to-end tests cover that.)
        if change && uri != "/api/v1/metrics" {
            let resp = router_without_node()
                .oneshot(
                    Request::builder()
                        .method(method.clone())
                        .uri(&uri)
                        .header("authorization", "Bearer not-the-token")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {uri}");
        }
    }
}

#[tokio::test]
async fn the_dashboard_and_its_files_are_served_with_a_strict_content_policy() {
    for (uri, kind) in [
        ("/", "text/html"),
        ("/assets/dashboard.js", "text/javascript"),
        ("/assets/uPlot.iife.min.js", "text/javascript"),
        ("/assets/uPlot.LICENSE", "text/plain"),
        ("/api/v1/openapi.json", "application/json"),
    ] {
        let resp = router_without_node()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        let headers = resp.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{uri}"
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'self'")
        );
    }
    let (status, _) = call(
        Method::GET,
        "/assets/..%2Fsrc%2Fapi.rs",
        false,
        Body::empty(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A tiny deterministic generator for hostile bodies.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[tokio::test]
async fn bad_bodies_get_400s_never_a_panic_and_nothing_reaches_the_node() {
    let with_body: Vec<(Method, String)> = operations()
        .into_iter()
        .filter(|(m, uri, change)| {
            *change
                && *m != Method::DELETE
                && !uri.ends_with("/stress")
                && !uri.ends_with("/metrics")
        })
        .map(|(m, uri, _)| (m, uri))
        .collect();
    assert!(with_body.len() >= 7, "{with_body:?}");
    let mut fixed: Vec<Vec<u8>> = [
        "",
        "{",
        "[]",
        "null",
        "42",
        "\"x\"",
        "{\"unknown\": 1}",
        "{\"desired\": -1}",
        "{\"desired\": \"two\"}",
        "{\"desired\": 1e99}",
        "{\"protected\": \"yes\"}",
        "{\"health\": \"Sick\"}",
        "{\"cidr\": \"300.1.1.1/8\"}",
        "{\"cidr\": \"10.0.0.0/33\"}",
        "{\"cidr\": 7}",
        "{\"min_healthy_percentage\": 101}",
        "{\"warmup\": \"forever\"}",
        "{\"decrement_desired\": 1}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fixed.push("[".repeat(10_000).into_bytes());
    fixed.push(vec![b' '; MAX_BODY + 1]);
    fixed.push(b"{\"cidr\": \"\xff\xfe\"}".to_vec());
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for (method, uri) in &with_body {
        let mut bodies = fixed.clone();
        for _ in 0..50 {
            let n = (rng.next() % 200) as usize;
            bodies.push(rng.bytes(n));
        }
        for body in bodies {
            let (status, answer) = call(method.clone(), uri, true, Body::from(body.clone())).await;
            let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
            // 503 would mean the body passed validation and reached the (absent) node.
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::PAYLOAD_TOO_LARGE,
                "{method} {uri} with {shown:?}: {status} {}",
                String::from_utf8_lossy(&answer)
            );
            let v: Value = serde_json::from_slice(&answer).expect("a JSON error");
            assert!(v["error"]["message"].is_string());
        }
    }
}

/// Requests the OpenAPI document allows get past validation (to the absent node's 503),
/// and those it forbids do not: what schemathesis found both ways (scripts/api-check).
#[tokio::test]
async fn what_the_document_allows_is_taken_and_what_it_forbids_is_refused() {
    let unavailable = StatusCode::SERVICE_UNAVAILABLE;
    for (method, uri, body, want) in [
        // JSON Schema's integers include 2.0.
        (
            Method::PUT,
            "/api/v1/groups/web/capacity",
            r#"{"min": 2.0}"#,
            unavailable,
        ),
        (
            Method::PUT,
            "/api/v1/groups/web/capacity",
            r#"{"desired": 2.5}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::PUT,
            "/api/v1/groups/web/capacity",
            "{}",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/groups/web/refresh",
            r#"{"min_healthy_percentage": 38.0, "warmup": null}"#,
            unavailable,
        ),
        // A window outside 10 s to 3 h is taken at its bound.
        (Method::GET, "/api/v1/investigate?since=5s", "", unavailable),
        (
            Method::GET,
            "/api/v1/investigate?since=999999d",
            "",
            unavailable,
        ),
        (
            Method::GET,
            "/api/v1/investigate?since=",
            "",
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/api/v1/activities?limit=18446744073709551615",
            "",
            unavailable,
        ),
        // Nothing but `metrics` beside a batch.
        (
            Method::POST,
            "/api/v1/metrics",
            r#"{"metrics": [{"namespace": "App", "name": "m", "value": 1}], "x": 1}"#,
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::POST,
            "/api/v1/metrics",
            r#"{"metrics": [{"namespace": "App", "name": "m", "value": 1}]}"#,
            unavailable,
        ),
    ] {
        let (status, answer) = call(method.clone(), uri, true, Body::from(body)).await;
        assert_eq!(
            status,
            want,
            "{method} {uri} {body}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
}

/// The client shares the wire types with the server and nothing else, so that the two
/// never import each other.
#[test]
fn the_client_imports_the_wire_types_not_the_server() {
    let client = include_str!("../client.rs");
    for line in client.lines().filter(|l| l.contains("crate::api")) {
        assert!(
            line.contains("crate::api::types"),
            "client.rs imports the server: {line}"
        );
    }
    let types = include_str!("types.rs");
    assert!(
        !types.contains("crate::client") && !types.contains("use super::"),
        "the wire types import the client or the server"
    );
}

/// The dashboard's charts query metrics by name: each is one the core's catalogue says
/// bellows publishes, so that renaming a metric there cannot leave a chart empty.
#[test]
fn the_dashboard_charts_only_metrics_of_the_catalogue() {
    use bellows_core::metrics::catalogue;
    let js = include_str!("../../assets/dashboard.js");
    let charts = &js[js.find("const CHARTS = [").expect("the dashboard's CHARTS")..];
    let charts = &charts[..charts.find("\n];").expect("the end of CHARTS")];
    let mut seen = 0;
    for part in charts.split("ns: \"").skip(1) {
        let ns = &part[..part.find('"').unwrap()];
        let name = part
            .split("name: \"")
            .nth(1)
            .and_then(|n| n.split('"').next())
            .expect("a series' name after its namespace");
        assert!(
            catalogue::ALL
                .iter()
                .any(|m| m.namespace == ns && m.name == name),
            "the dashboard charts {ns}/{name}, which bellows does not publish"
        );
        seen += 1;
    }
    assert!(seen >= 8, "only {seen} series found in CHARTS");
}
