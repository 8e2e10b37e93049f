//! Whatever arrives, the endpoint answers with an error in AWS's shape and never panics:
//! random bytes through every decoder, and random requests through `accept`.

use http::{HeaderMap, HeaderValue};
use quickcheck::{QuickCheck, TestResult};

use super::*;
use crate::math;

fn endpoint() -> Endpoint {
    Endpoint::new(
        "us-east-1",
        vec![Credential {
            access_key_id: "AKIA0000000000000000".into(),
            secret_access_key: "s".into(),
        }],
    )
}

#[test]
fn random_bytes_never_panic_a_decoder() {
    fn prop(bytes: Vec<u8>) -> TestResult {
        let _ = cbor::decode(&bytes);
        let _ = form::parse(&bytes, Dialect::Query);
        let _ = form::parse(&bytes, Dialect::Ec2);
        let _ = json::decode(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = math::evaluate(&text, &Default::default());
        TestResult::passed()
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(Vec<u8>) -> TestResult);
}

#[test]
fn random_requests_get_a_non_empty_4xx() {
    fn prop(
        path: String,
        target: Option<String>,
        auth: Option<String>,
        body: Vec<u8>,
    ) -> TestResult {
        let mut headers = HeaderMap::new();
        for (name, v) in [("x-amz-target", &target), ("authorization", &auth)] {
            if let Some(v) = v
                && let Ok(v) = HeaderValue::from_str(v)
            {
                headers.insert(name, v);
            }
        }
        headers.insert("x-amz-date", HeaderValue::from_static("20261202T064000Z"));
        let path = format!("/{path}");
        let req = Request {
            method: "POST",
            path: &path,
            query: "",
            headers: &headers,
            body: &body,
        };
        match endpoint().accept(&req, 1_796_193_600, "r") {
            // Nothing unsigned gets through.
            Ok(_) => TestResult::failed(),
            Err(reply) => {
                TestResult::from_bool((400..500).contains(&reply.status) && !reply.body.is_empty())
            }
        }
    }
    QuickCheck::new()
        .tests(2000)
        .quickcheck(prop as fn(String, Option<String>, Option<String>, Vec<u8>) -> TestResult);
}

#[test]
fn a_forged_authorization_header_is_refused() {
    // Well-formed, with a key that exists, but signed with nothing.
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:1"));
    headers.insert("x-amz-date", HeaderValue::from_static("20261202T064000Z"));
    headers.insert(
        "authorization",
        HeaderValue::from_static(
            "AWS4-HMAC-SHA256 Credential=AKIA0000000000000000/20261202/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000",
        ),
    );
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let req = Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body,
    };
    let reply = endpoint().accept(&req, 1_796_193_600, "r").unwrap_err();
    assert_eq!(reply.status, 403);
    assert!(String::from_utf8_lossy(&reply.body).contains("SignatureDoesNotMatch"));
}
