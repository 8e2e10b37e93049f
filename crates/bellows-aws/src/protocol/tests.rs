use std::io::Write;

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::sigv4;

const KEY: &str = "AKIABELLOWS0TEST";
const SECRET: &str = "test-secret";
/// 2026-12-02T06:40:00Z.
const NOW: i64 = 1_796_193_600;

fn endpoint() -> Endpoint {
    Endpoint::new(
        "us-east-1",
        vec![Credential {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
        }],
    )
}

struct Built {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Built {
    fn req(&self) -> Request<'_> {
        Request {
            method: "POST",
            path: &self.path,
            query: "",
            headers: &self.headers,
            body: &self.body,
        }
    }
}

/// A request signed for `service` with the test key, as a client would send it.
fn signed(
    path: &str,
    extra: &[(&'static str, &str)],
    body: Vec<u8>,
    service: &str,
    secret: &str,
) -> Built {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:7070"));
    headers.insert("x-amz-date", HeaderValue::from_static("20261202T064000Z"));
    for (k, v) in extra {
        headers.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    let mut b = Built {
        path: path.to_owned(),
        headers,
        body,
    };
    let auth = sigv4::authorization(
        &b.req(),
        &Credential {
            access_key_id: KEY.into(),
            secret_access_key: secret.into(),
        },
        "us-east-1",
        service,
    );
    b.headers
        .insert("authorization", HeaderValue::from_str(&auth).unwrap());
    b
}

fn form(body: &str, service: &str) -> Built {
    signed(
        "/",
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body.as_bytes().to_vec(),
        service,
        SECRET,
    )
}

fn text(r: &Reply) -> String {
    String::from_utf8(r.body.clone()).unwrap()
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn query_requests_are_routed_by_version_and_answered_in_namespaced_xml() {
    let b = form(
        "Action=DescribeAutoScalingGroups&Version=2011-01-01&AutoScalingGroupNames.member.1=web",
        "autoscaling",
    );
    let call = endpoint().accept(&b.req(), NOW, "rid-1").unwrap();
    assert_eq!(
        (call.service, call.protocol),
        (Service::AutoScaling, Protocol::Query)
    );
    assert_eq!(call.action, "DescribeAutoScalingGroups");
    assert_eq!(call.access_key_id, KEY);
    assert_eq!(
        call.input.strings("AutoScalingGroupNames").unwrap(),
        ["web"]
    );
    let out = Value::object().with(
        "AutoScalingGroups",
        Value::List(vec![Value::object().with("AutoScalingGroupName", "web")]),
    );
    let r = call.reply(Ok(out), "rid-1");
    assert_eq!(r.status, 200);
    assert_eq!(
        text(&r),
        "<DescribeAutoScalingGroupsResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\">\
         <DescribeAutoScalingGroupsResult><AutoScalingGroups><member><AutoScalingGroupName>web</AutoScalingGroupName></member></AutoScalingGroups></DescribeAutoScalingGroupsResult>\
         <ResponseMetadata><RequestId>rid-1</RequestId></ResponseMetadata></DescribeAutoScalingGroupsResponse>"
    );
    // An action without an output shape has no Result element, and the body is never empty.
    let r = call.reply(Ok(Value::Null), "rid-2");
    assert!(text(&r).starts_with("<DescribeAutoScalingGroupsResponse xmlns="));
    assert!(!text(&r).contains("Result>"));
    // Errors: ErrorResponse with Type, Code, Message and RequestId.
    let r = call.reply(
        Err(AwsError::new(
            400,
            "ValidationError",
            "AutoScalingGroup name not found - x",
        )),
        "rid-3",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        text(&r),
        "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><Error><Type>Sender</Type>\
         <Code>ValidationError</Code><Message>AutoScalingGroup name not found - x</Message></Error>\
         <RequestId>rid-3</RequestId></ErrorResponse>"
    );
}

#[test]
fn every_service_is_told_by_its_version() {
    for (version, service, signing) in [
        ("2011-01-01", Service::AutoScaling, "autoscaling"),
        ("2015-12-01", Service::Elbv2, "elasticloadbalancing"),
        ("2016-11-15", Service::Ec2, "ec2"),
        ("2010-08-01", Service::CloudWatch, "monitoring"),
        ("2011-06-15", Service::Sts, "sts"),
        ("2010-05-08", Service::Iam, "iam"),
    ] {
        let b = form(&format!("Action=X&Version={version}"), signing);
        let call = endpoint().accept(&b.req(), NOW, "r").unwrap();
        assert_eq!(call.service, service);
        let want = if service == Service::Ec2 {
            Protocol::Ec2
        } else {
            Protocol::Query
        };
        assert_eq!(call.protocol, want);
    }
}

#[test]
fn iam_is_global_signed_for_us_east_1_whatever_the_region() {
    let elsewhere = Endpoint::new(
        "eu-west-1",
        vec![Credential {
            access_key_id: KEY.into(),
            secret_access_key: SECRET.into(),
        }],
    );
    let b = form("Action=GetRole&Version=2010-05-08&RoleName=app", "iam");
    let call = elsewhere.accept(&b.req(), NOW, "r").unwrap();
    assert_eq!(
        (call.service, call.protocol),
        (Service::Iam, Protocol::Query)
    );
    let r = call.reply(
        Err(AwsError::new(
            404,
            "NoSuchEntity",
            "The role with name app cannot be found.",
        )),
        "r-1",
    );
    assert_eq!(r.status, 404);
    assert!(
        text(&r).starts_with("<ErrorResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\">")
    );
    // Any other service signed for us-east-1 is refused by a eu-west-1 endpoint.
    let b = form("Action=DescribeVpcs&Version=2016-11-15", "ec2");
    let r = elsewhere.accept(&b.req(), NOW, "r").unwrap_err();
    assert_eq!(r.status, 403);
}

#[test]
fn ec2_answers_with_request_id_items_and_its_own_errors() {
    let b = form(
        "Action=RevokeSecurityGroupIngress&Version=2016-11-15&GroupId=sg-1&IpProtocol=tcp&FromPort=80&ToPort=80&CidrIp=0.0.0.0%2F0",
        "ec2",
    );
    let call = endpoint().accept(&b.req(), NOW, "r").unwrap();
    assert_eq!(call.input.str("CidrIp").unwrap(), "0.0.0.0/0");
    assert_eq!(call.input.i64("FromPort").unwrap(), 80);
    let r = call.reply(
        Ok(Value::object()
            .with("return", true)
            .with("groupSet", vec!["a"])),
        "r-1",
    );
    assert_eq!(
        text(&r),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<RevokeSecurityGroupIngressResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>r-1</requestId><return>true</return><groupSet><item>a</item></groupSet></RevokeSecurityGroupIngressResponse>"
    );
    let r = call.reply(
        Err(AwsError::new(
            400,
            "InvalidGroup.NotFound",
            "The security group 'sg-2' does not exist",
        )),
        "r-2",
    );
    assert_eq!(
        text(&r),
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>InvalidGroup.NotFound</Code>\
         <Message>The security group &apos;sg-2&apos; does not exist</Message></Error></Errors><RequestID>r-2</RequestID></Response>"
    );
}

#[test]
fn cloudwatch_json_carries_query_compatible_errors() {
    let b = signed(
        "/",
        &[
            ("content-type", "application/x-amz-json-1.0"),
            ("x-amz-target", "GraniteServiceVersion20100801.PutMetricData"),
            ("x-amzn-query-mode", "true"),
        ],
        br#"{"Namespace":"App","MetricData":[{"MetricName":"Users","Value":3,"Timestamp":1796193600}]}"#.to_vec(),
        "monitoring",
        SECRET,
    );
    let call = endpoint().accept(&b.req(), NOW, "r").unwrap();
    assert_eq!(
        (call.service, call.protocol),
        (Service::CloudWatch, Protocol::Json)
    );
    assert_eq!(call.action, "PutMetricData");
    let datum = &call.input.list("MetricData")[0];
    assert_eq!(datum.f64("Value").unwrap(), 3.0);
    assert_eq!(datum.time("Timestamp").unwrap(), 1_796_193_600.0);
    let r = call.reply(Ok(Value::Null), "r");
    assert_eq!((r.status, text(&r).as_str()), (200, "{}"));
    assert_eq!(
        header(&r, "content-type"),
        Some("application/x-amz-json-1.0")
    );
    let r = call.reply(Err(AwsError::new(400, "InvalidParameterValue", "bad")), "r");
    assert_eq!(
        header(&r, "x-amzn-query-error"),
        Some("InvalidParameterValue;Sender")
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        body["__type"],
        "com.amazonaws.cloudwatch#InvalidParameterValueException"
    );
    assert_eq!(body["message"], "bad");
}

#[test]
fn cloudwatch_cbor_is_routed_by_path_and_answers_with_smithy_protocol() {
    let body = cbor::encode(&Value::object().with("AlarmNames", vec!["high-cpu"]));
    let b = signed(
        "/service/GraniteServiceVersion20100801/operation/DescribeAlarms",
        &[
            ("content-type", "application/cbor"),
            ("smithy-protocol", "rpc-v2-cbor"),
        ],
        body,
        "monitoring",
        SECRET,
    );
    let call = endpoint().accept(&b.req(), NOW, "r").unwrap();
    assert_eq!(
        (call.service, call.protocol),
        (Service::CloudWatch, Protocol::Cbor)
    );
    assert_eq!(call.action, "DescribeAlarms");
    assert_eq!(call.input.strings("AlarmNames").unwrap(), ["high-cpu"]);
    let r = call.reply(Ok(Value::object().with("At", Value::Time(1.0))), "r");
    assert_eq!(header(&r, "smithy-protocol"), Some("rpc-v2-cbor"));
    assert_eq!(
        cbor::decode(&r.body).unwrap(),
        Value::object().with("At", Value::Time(1.0))
    );
    let r = call.reply(Ok(Value::Null), "r");
    assert_eq!(r.body, [0xa0]);
    let r = call.reply(Err(AwsError::invalid_action("Nope", "CloudWatch")), "r");
    assert_eq!(r.status, 400);
    assert_eq!(header(&r, "smithy-protocol"), Some("rpc-v2-cbor"));
    assert_eq!(
        header(&r, "x-amzn-query-error"),
        Some("InvalidAction;Sender")
    );
}

#[test]
fn gzipped_bodies_are_inflated_after_the_signature_over_the_gzip_is_checked() {
    let plain = "Action=PutMetricData&Version=2010-08-01&Namespace=App&MetricData.member.1.MetricName=Users&MetricData.member.1.Value=2";
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(plain.as_bytes()).unwrap();
    let b = signed(
        "/",
        &[
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("content-encoding", "gzip"),
        ],
        gz.finish().unwrap(),
        "monitoring",
        SECRET,
    );
    // The Version sits inside the gzip: the scope names the service.
    let call = endpoint().accept(&b.req(), NOW, "r").unwrap();
    assert_eq!(call.action, "PutMetricData");
    assert_eq!(call.input.str("Namespace").unwrap(), "App");
}

#[test]
fn signature_failures_are_403_in_the_callers_protocol() {
    let ep = endpoint();
    let b = signed(
        "/",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"Action=DescribeAutoScalingGroups&Version=2011-01-01".to_vec(),
        "autoscaling",
        "not-the-secret",
    );
    let r = ep.accept(&b.req(), NOW, "r").unwrap_err();
    assert_eq!(r.status, 403);
    assert!(
        text(&r).contains("<Code>SignatureDoesNotMatch</Code>"),
        "{}",
        text(&r)
    );
    // Signed for the wrong service.
    let b = form("Action=DescribeAutoScalingGroups&Version=2011-01-01", "ec2");
    let r = ep.accept(&b.req(), NOW, "r").unwrap_err();
    assert_eq!(r.status, 403);
    assert!(
        text(&r).contains("scoped to correct service: &apos;autoscaling&apos;"),
        "{}",
        text(&r)
    );
    // An unknown key over JSON: the query-compatible header names the Query code.
    let other = Endpoint::new("us-east-1", vec![]);
    let b = signed(
        "/",
        &[("x-amz-target", "GraniteServiceVersion20100801.ListMetrics")],
        b"{}".to_vec(),
        "monitoring",
        SECRET,
    );
    let r = other.accept(&b.req(), NOW, "r").unwrap_err();
    assert_eq!(r.status, 403);
    assert_eq!(
        header(&r, "x-amzn-query-error"),
        Some("InvalidClientTokenId;Sender")
    );
    // EC2's own error document.
    let b = form("Action=DescribeInstances&Version=2016-11-15", "ec2");
    let r = other.accept(&b.req(), NOW, "r").unwrap_err();
    assert!(
        text(&r).contains("<Response><Errors><Error><Code>InvalidClientTokenId</Code>"),
        "{}",
        text(&r)
    );
}

#[test]
fn unknown_versions_paths_and_targets_get_400_never_5xx() {
    let ep = endpoint();
    let b = form(
        "Action=DescribeLoadBalancers&Version=2012-06-01",
        "elasticloadbalancing",
    );
    let r = ep.accept(&b.req(), NOW, "r").unwrap_err();
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("<Code>InvalidAction</Code>"));
    let b = form("Action=X&Version=1999-01-01", "autoscaling");
    let r = ep.accept(&b.req(), NOW, "r").unwrap_err();
    assert_eq!(r.status, 400);
    assert!(text(&r).contains("<Code>NoSuchVersion</Code>"));
    let b = signed(
        "/",
        &[("x-amz-target", "Kinesis_20131202.ListStreams")],
        b"{}".to_vec(),
        "kinesis",
        SECRET,
    );
    assert_eq!(ep.accept(&b.req(), NOW, "r").unwrap_err().status, 400);
    let b = signed(
        "/service/Other/operation/X",
        &[],
        Vec::new(),
        "monitoring",
        SECRET,
    );
    assert_eq!(ep.accept(&b.req(), NOW, "r").unwrap_err().status, 400);
    let b = form("Version=2011-01-01", "autoscaling");
    let r = ep.accept(&b.req(), NOW, "r").unwrap_err();
    assert!(text(&r).contains("<Code>MissingAction</Code>"));
    for bad in ["not json", "[]"] {
        let b = signed(
            "/",
            &[("x-amz-target", "GraniteServiceVersion20100801.ListMetrics")],
            bad.as_bytes().to_vec(),
            "monitoring",
            SECRET,
        );
        assert_eq!(ep.accept(&b.req(), NOW, "r").unwrap_err().status, 400);
    }
}

#[test]
fn an_unimplemented_action_is_invalid_action_in_every_protocol() {
    let e = AwsError::invalid_action("CreateLaunchConfiguration", "Auto Scaling");
    for protocol in [
        Protocol::Query,
        Protocol::Ec2,
        Protocol::Json,
        Protocol::Cbor,
    ] {
        let r = encode_error(Some(Service::CloudWatch), protocol, &e, "r");
        assert_eq!(r.status, 400, "{protocol:?}");
        assert!(!r.body.is_empty());
    }
}

#[test]
fn dynamodb_speaks_json_with_its_own_error_shape() {
    let ep = endpoint();
    let b = signed(
        "/",
        &[("x-amz-target", "DynamoDB_20120810.GetItem")],
        br#"{"TableName":"t","Key":{"id":{"S":"a"}}}"#.to_vec(),
        "dynamodb",
        SECRET,
    );
    let call = ep.accept(&b.req(), NOW, "r").unwrap();
    assert_eq!(
        (call.service, call.protocol),
        (Service::DynamoDb, Protocol::Json)
    );
    assert_eq!(call.action, "GetItem");
    let r = call.reply(Err(crate::dynamodb::conditional_failed()), "rid");
    assert_eq!(r.status, 400);
    assert_eq!(
        String::from_utf8(r.body).unwrap(),
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#
    );
    assert!(!r.headers.iter().any(|(k, _)| *k == "x-amzn-query-error"));
    // A wrong secret is DynamoDB's own code, not the Query one.
    let b = signed(
        "/",
        &[("x-amz-target", "DynamoDB_20120810.ListTables")],
        b"{}".to_vec(),
        "dynamodb",
        "wrong",
    );
    let r = ep.accept(&b.req(), NOW, "r").unwrap_err();
    assert!(
        text(&r).contains("#InvalidSignatureException"),
        "{}",
        text(&r)
    );
    // Signed for another service: refused.
    let b = signed(
        "/",
        &[("x-amz-target", "DynamoDB_20120810.ListTables")],
        b"{}".to_vec(),
        "monitoring",
        SECRET,
    );
    assert_eq!(ep.accept(&b.req(), NOW, "r").unwrap_err().status, 403);
}
