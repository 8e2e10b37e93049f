//! Signatures from AWS's published Signature Version 4 test suite (the `.sreq` files of
//! `aws-sig-v4-test-suite`, credentials `AKIDEXAMPLE`, 2015-08-30T12:36:00Z, region
//! us-east-1, service `service`) and from botocore itself.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::*;

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
/// 2015-08-30T12:36:00Z.
const SUITE_NOW: i64 = 1_440_938_160;

/// A signed request as the suite writes it: request line, `Name:value` headers, a blank
/// line, the body.
struct Raw {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

fn raw(text: &str) -> Raw {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let line = lines.next().unwrap();
    let mut parts = line.split(' ');
    let method = parts.next().unwrap().to_owned();
    let target = parts.next().unwrap();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut headers = HeaderMap::new();
    for l in lines {
        let (k, v) = l.split_once(':').unwrap();
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v.trim_start()).unwrap(),
        );
    }
    Raw {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn check(r: &Raw, secret: &str, region: &str, now: i64) -> Result<Signed, AuthError> {
    let req = Request {
        method: &r.method,
        path: &r.path,
        query: &r.query,
        headers: &r.headers,
        body: &r.body,
    };
    verify(
        &req,
        |k| (k == "AKIDEXAMPLE" || k == "AKIABELLOWSEXAMPLE1").then(|| secret.to_owned()),
        region,
        now,
    )
}

const SUITE: &[(&str, &str)] = &[
    (
        "post-x-www-form-urlencoded",
        "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a\n\nParam1=value1",
    ),
    (
        "post-x-www-form-urlencoded-parameters",
        "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded; charset=utf8\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe\n\nParam1=value1",
    ),
    (
        "post-vanilla",
        "POST / HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    ),
    (
        "post-header-key-sort",
        "POST / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    ),
    (
        "get-vanilla-query-order-key-case",
        "GET /?Param2=value2&Param1=value1 HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    ),
    (
        "get-vanilla-utf8-query",
        "GET /?\u{1234}=bar HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    ),
    (
        "get-unreserved",
        "GET /-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz HTTP/1.1\nHost:example.amazonaws.com\nX-Amz-Date:20150830T123600Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    ),
    (
        "get-header-value-trim",
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1: value1\nMy-Header2: \"a   b   c\"\nX-Amz-Date:20150830T123600Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    ),
    (
        "get-header-key-duplicate",
        "GET / HTTP/1.1\nHost:example.amazonaws.com\nMy-Header1:value2\nMy-Header1:value2\nMy-Header1:value1\nX-Amz-Date:20150830T123600Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;x-amz-date, Signature=c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    ),
];

#[test]
fn aws_test_suite_signatures_verify() {
    for (name, text) in SUITE {
        let r = raw(text);
        let signed = check(&r, SUITE_SECRET, "us-east-1", SUITE_NOW)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(signed.service, "service", "{name}");
        assert_eq!(signed.access_key_id, "AKIDEXAMPLE", "{name}");
    }
}

#[test]
fn the_suites_canonical_request_is_rebuilt_exactly() {
    // post-x-www-form-urlencoded.creq from the suite.
    let r = raw(SUITE[0].1);
    let req = Request {
        method: &r.method,
        path: &r.path,
        query: &r.query,
        headers: &r.headers,
        body: &r.body,
    };
    let creq = canonical_request(&req, &["content-type", "host", "x-amz-date"]).unwrap();
    assert_eq!(
        creq,
        "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\ncontent-type;host;x-amz-date\n9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
    );
}

/// Signed by botocore 1.43.11's `SigV4Auth` for `autoscaling` at 2026-12-02T06:35:01Z
/// (the body is what `aws autoscaling describe-auto-scaling-groups` sends).
const BOTOCORE: &str = "POST / HTTP/1.1\nContent-Type:application/x-www-form-urlencoded; charset=utf-8\nHost:127.0.0.1:7070\nUser-Agent:aws-cli/1.45.11\nX-Amz-Date:20261202T063501Z\nAuthorization: AWS4-HMAC-SHA256 Credential=AKIABELLOWSEXAMPLE1/20261202/us-east-1/autoscaling/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=62bcdb56297037fabf2d9d04fcc14003d1af5bdb9f582dfcdcf242a9f8c3b8f0\n\nAction=DescribeAutoScalingGroups&Version=2011-01-01&AutoScalingGroupNames.member.1=ip-tracker-asg";
const BOTOCORE_SECRET: &str = "bellowsSecretKeyExample0123456789abcdefgh";
/// 2026-12-02T06:35:01Z.
const BOTOCORE_NOW: i64 = 1_796_193_301;

#[test]
fn a_botocore_signature_verifies() {
    let r = raw(BOTOCORE);
    let signed = check(&r, BOTOCORE_SECRET, "us-east-1", BOTOCORE_NOW).unwrap();
    assert_eq!(
        signed,
        Signed {
            access_key_id: "AKIABELLOWSEXAMPLE1".into(),
            region: "us-east-1".into(),
            service: "autoscaling".into(),
        }
    );
    // A few minutes of skew either way are fine.
    assert!(check(&r, BOTOCORE_SECRET, "us-east-1", BOTOCORE_NOW + 600).is_ok());
    assert!(check(&r, BOTOCORE_SECRET, "us-east-1", BOTOCORE_NOW - 600).is_ok());
}

#[test]
fn anything_changed_is_refused_with_awss_codes() {
    let good = raw(BOTOCORE);
    let code = |r: &Raw, secret: &str, region: &str, now: i64| {
        check(r, secret, region, now)
            .map(|_| ())
            .map_err(|e| (e.status(), e.code()))
    };
    let mismatch = Err((403, "SignatureDoesNotMatch"));
    // A different body, a wrong secret, a stale or future date, another region.
    let mut body = raw(BOTOCORE);
    body.body = body.body.replace_ascii("ip-tracker-asg", "other-asg");
    assert_eq!(
        code(&body, BOTOCORE_SECRET, "us-east-1", BOTOCORE_NOW),
        mismatch
    );
    assert_eq!(code(&good, "wrong", "us-east-1", BOTOCORE_NOW), mismatch);
    assert_eq!(
        code(&good, BOTOCORE_SECRET, "us-east-1", BOTOCORE_NOW + 3600),
        mismatch
    );
    assert_eq!(
        code(&good, BOTOCORE_SECRET, "us-east-1", BOTOCORE_NOW - 3600),
        mismatch
    );
    assert_eq!(
        code(&good, BOTOCORE_SECRET, "eu-west-1", BOTOCORE_NOW),
        mismatch
    );
    // A changed signed header.
    let mut host = raw(BOTOCORE);
    host.headers
        .insert("host", HeaderValue::from_static("127.0.0.1:7071"));
    assert_eq!(
        code(&host, BOTOCORE_SECRET, "us-east-1", BOTOCORE_NOW),
        mismatch
    );
    // An unknown key.
    let mut key = raw(BOTOCORE);
    let a = key.headers["authorization"]
        .to_str()
        .unwrap()
        .replace("AKIABELLOWSEXAMPLE1", "AKIAOTHER");
    key.headers
        .insert("authorization", HeaderValue::from_str(&a).unwrap());
    assert_eq!(
        code(&key, BOTOCORE_SECRET, "us-east-1", BOTOCORE_NOW),
        Err((403, "InvalidClientTokenId"))
    );
    // No signature at all, and a truncated one.
    let mut none = raw(BOTOCORE);
    none.headers.remove("authorization");
    assert_eq!(
        code(&none, BOTOCORE_SECRET, "us-east-1", BOTOCORE_NOW),
        Err((403, "MissingAuthenticationToken"))
    );
    let mut cut = raw(BOTOCORE);
    cut.headers.insert(
        "authorization",
        HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKIABELLOWSEXAMPLE1/20261202/us-east-1/autoscaling/aws4_request"),
    );
    assert_eq!(
        code(&cut, BOTOCORE_SECRET, "us-east-1", BOTOCORE_NOW),
        Err((400, "IncompleteSignature"))
    );
}

trait ReplaceAscii {
    fn replace_ascii(&self, from: &str, to: &str) -> Vec<u8>;
}

impl ReplaceAscii for Vec<u8> {
    fn replace_ascii(&self, from: &str, to: &str) -> Vec<u8> {
        String::from_utf8_lossy(self).replace(from, to).into_bytes()
    }
}

#[test]
fn secrets_are_not_printed() {
    let c = Credential {
        access_key_id: "AKIA1".into(),
        secret_access_key: "very-secret".into(),
    };
    assert!(!format!("{c:?}").contains("very-secret"));
}
