//! Which service and protocol a request speaks, decoding it, and encoding the answer.

use std::io::Read;

use crate::error::AwsError;
use crate::form::{self, Dialect};
use crate::sigv4::{self, AuthError, Credential, Request};
use crate::value::{Input, Value};
use crate::xml::{self, Lists};
use crate::{cbor, json};

/// CloudWatch's Smithy service name: the JSON target prefix and the CBOR path's.
pub const CLOUDWATCH_TARGET: &str = "GraniteServiceVersion20100801";

/// The most bytes a request body may hold once decompressed.
pub const MAX_INFLATED_BODY: usize = 4 * 1024 * 1024;

/// The services this endpoint answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    AutoScaling,
    Elbv2,
    Ec2,
    CloudWatch,
    Sts,
    DynamoDb,
    /// A global service: clients sign it for `us-east-1` whatever the region.
    Iam,
}

impl Service {
    pub const ALL: [Service; 7] = [
        Service::AutoScaling,
        Service::Elbv2,
        Service::Ec2,
        Service::CloudWatch,
        Service::Sts,
        Service::DynamoDb,
        Service::Iam,
    ];

    /// The name in the SigV4 credential scope.
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::AutoScaling => "autoscaling",
            Service::Elbv2 => "elasticloadbalancing",
            Service::Ec2 => "ec2",
            Service::CloudWatch => "monitoring",
            Service::Sts => "sts",
            Service::DynamoDb => "dynamodb",
            Service::Iam => "iam",
        }
    }

    /// The form's `Version`.
    pub fn version(self) -> &'static str {
        match self {
            Service::AutoScaling => "2011-01-01",
            Service::Elbv2 => "2015-12-01",
            Service::Ec2 => "2016-11-15",
            Service::CloudWatch => "2010-08-01",
            Service::Sts => "2011-06-15",
            Service::DynamoDb => "2012-08-10",
            Service::Iam => "2010-05-08",
        }
    }

    /// The XML namespace of its answers.
    pub fn namespace(self) -> &'static str {
        match self {
            Service::AutoScaling => "http://autoscaling.amazonaws.com/doc/2011-01-01/",
            Service::Elbv2 => "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
            Service::Ec2 => "http://ec2.amazonaws.com/doc/2016-11-15/",
            Service::CloudWatch => "http://monitoring.amazonaws.com/doc/2010-08-01/",
            Service::Sts => "https://sts.amazonaws.com/doc/2011-06-15/",
            Service::DynamoDb => "http://dynamodb.amazonaws.com/doc/2012-08-10/",
            Service::Iam => "https://iam.amazonaws.com/doc/2010-05-08/",
        }
    }

    /// A human name, for messages.
    pub fn title(self) -> &'static str {
        match self {
            Service::AutoScaling => "Auto Scaling",
            Service::Elbv2 => "Elastic Load Balancing v2",
            Service::Ec2 => "EC2",
            Service::CloudWatch => "CloudWatch",
            Service::Sts => "STS",
            Service::DynamoDb => "DynamoDB",
            Service::Iam => "IAM",
        }
    }

    fn by_signing_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.signing_name() == name)
    }

    fn by_version(version: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.version() == version)
    }

    /// The codes a bad and a missing parameter get in this service.
    fn parameter_codes(self) -> (&'static str, &'static str) {
        match self {
            Service::AutoScaling | Service::Elbv2 | Service::Sts | Service::Iam => {
                ("ValidationError", "ValidationError")
            }
            Service::Ec2 | Service::CloudWatch => ("InvalidParameterValue", "MissingParameter"),
            Service::DynamoDb => ("ValidationException", "ValidationException"),
        }
    }
}

/// The wire protocol of a request, which its answer speaks too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// AWS Query: a form in, namespaced XML out.
    Query,
    /// EC2's dialect of Query.
    Ec2,
    /// AWS JSON 1.0: with query-compatible errors for CloudWatch, DynamoDB's own
    /// for DynamoDB.
    Json,
    /// Smithy RPC v2 CBOR (CloudWatch).
    Cbor,
}

/// What an answer is made of; the shell writes it to the socket as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

/// A signed, decoded request, ready for its handler.
#[derive(Debug, Clone)]
pub struct Call {
    pub service: Service,
    pub protocol: Protocol,
    /// The action's AWS name (`DescribeAutoScalingGroups`).
    pub action: String,
    pub input: Input,
    /// Who signed it.
    pub access_key_id: String,
    /// Whether the key is temporary (signed with its session token).
    pub session: bool,
}

/// Temporary credentials: the secret, and the session token that must come with every
/// request they sign (`X-Amz-Security-Token`).
#[derive(Clone)]
pub struct SessionSecret {
    pub secret_access_key: String,
    pub token: String,
}

impl std::fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionSecret(<redacted>)")
    }
}

impl Call {
    /// The answer to this call in its own protocol.
    pub fn reply(&self, result: Result<Value, AwsError>, request_id: &str) -> Reply {
        match result {
            Ok(output) => encode_output(
                self.service,
                self.protocol,
                &self.action,
                &output,
                request_id,
            ),
            Err(e) => encode_error(Some(self.service), self.protocol, &e, request_id),
        }
    }
}

/// The endpoint's configuration: the one region it serves and the keys it accepts.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub region: String,
    credentials: Vec<Credential>,
}

/// Where the envelope says a request goes, before its signature is checked.
struct Route {
    service: Service,
    protocol: Protocol,
    action: Option<String>,
}

impl Endpoint {
    pub fn new(region: impl Into<String>, credentials: Vec<Credential>) -> Endpoint {
        Endpoint {
            region: region.into(),
            credentials,
        }
    }

    fn secret(&self, access_key_id: &str) -> Option<String> {
        self.credentials
            .iter()
            .find(|c| c.access_key_id == access_key_id)
            .map(|c| c.secret_access_key.clone())
    }

    /// Verifies and decodes a request, or says why not in the request's own protocol.
    /// Nothing is decoded before the signature holds, so an unsigned request learns
    /// nothing but that it is unsigned.
    pub fn accept(
        &self,
        req: &Request<'_>,
        now_seconds: i64,
        request_id: &str,
    ) -> Result<Call, Reply> {
        self.accept_with(req, now_seconds, request_id, &|_| None)
    }

    /// Like `accept`, with temporary credentials too: `sessions` finds a temporary
    /// key's secret and token. A request signed with one must carry its token.
    pub fn accept_with(
        &self,
        req: &Request<'_>,
        now_seconds: i64,
        request_id: &str,
        sessions: &dyn Fn(&str) -> Option<SessionSecret>,
    ) -> Result<Call, Reply> {
        let route = route(req)
            .map_err(|(service, protocol, e)| encode_error(service, protocol, &e, request_id))?;
        let fail = |e: AwsError| encode_error(Some(route.service), route.protocol, &e, request_id);
        let session = std::cell::RefCell::new(None);
        let lookup = |k: &str| {
            self.secret(k).or_else(|| {
                let s = sessions(k)?;
                let secret = s.secret_access_key.clone();
                *session.borrow_mut() = Some(s);
                Some(secret)
            })
        };
        let signed = sigv4::verify(req, lookup, &self.region, now_seconds)
            .map_err(|e: AuthError| fail(AwsError::new(e.status(), e.code(), e.to_string())))?;
        let session = session.into_inner();
        if let Some(s) = &session {
            let given = header(req, "x-amz-security-token").unwrap_or("");
            if !sigv4::constant_time_eq(given.as_bytes(), s.token.as_bytes()) {
                return Err(fail(AwsError::new(
                    403,
                    "InvalidClientTokenId",
                    "The security token included in the request is invalid.",
                )));
            }
        }
        if signed.service != route.service.signing_name() {
            return Err(fail(AwsError::new(
                403,
                "SignatureDoesNotMatch",
                format!(
                    "Credential should be scoped to correct service: '{}'.",
                    route.service.signing_name()
                ),
            )));
        }
        let body = inflate(req).map_err(fail)?;
        let (invalid, missing) = route.service.parameter_codes();
        let (action, root) = match route.protocol {
            Protocol::Query | Protocol::Ec2 => {
                let dialect = if route.protocol == Protocol::Ec2 {
                    Dialect::Ec2
                } else {
                    Dialect::Query
                };
                let raw = if body.is_empty() {
                    req.query.as_bytes()
                } else {
                    &body[..]
                };
                let root = form::parse(raw, dialect)
                    .map_err(|e| fail(AwsError::new(400, "MalformedQueryString", e.0)))?;
                let action = root.get("Action").and_then(Value::as_str).ok_or_else(|| {
                    fail(AwsError::new(
                        400,
                        "MissingAction",
                        "The request must contain the parameter Action.",
                    ))
                })?;
                (action, root)
            }
            Protocol::Json => {
                let root = json::decode(&body)
                    .map_err(|m| fail(AwsError::new(400, "SerializationException", m)))?;
                (route.action.clone().unwrap_or_default(), root)
            }
            Protocol::Cbor => {
                let root = if body.is_empty() {
                    Value::object()
                } else {
                    cbor::decode(&body).map_err(|e| {
                        fail(AwsError::new(400, "SerializationException", e.to_string()))
                    })?
                };
                if !matches!(root, Value::Struct(_)) {
                    return Err(fail(AwsError::new(
                        400,
                        "SerializationException",
                        "the body must be a CBOR map",
                    )));
                }
                (route.action.clone().unwrap_or_default(), root)
            }
        };
        Ok(Call {
            service: route.service,
            protocol: route.protocol,
            action,
            input: Input::new(root, invalid, missing),
            access_key_id: signed.access_key_id,
            session: session.is_some(),
        })
    }
}

type RouteError = (Option<Service>, Protocol, AwsError);

fn header<'a>(req: &'a Request<'_>, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The service named by the credential scope, read without checking anything.
fn scope_service(req: &Request<'_>) -> Option<Service> {
    let auth = header(req, "authorization")?;
    let credential = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    Service::by_signing_name(credential.split('/').nth(3)?)
}

fn route(req: &Request<'_>) -> Result<Route, RouteError> {
    if let Some(rest) = req.path.strip_prefix("/service/") {
        let parts: Vec<&str> = rest.split('/').collect();
        return match parts[..] {
            [CLOUDWATCH_TARGET, "operation", op] if !op.is_empty() => Ok(Route {
                service: Service::CloudWatch,
                protocol: Protocol::Cbor,
                action: Some(op.to_owned()),
            }),
            _ => Err((
                None,
                Protocol::Cbor,
                AwsError::new(
                    400,
                    "UnknownOperationException",
                    format!("no service or operation at {}", req.path),
                ),
            )),
        };
    }
    if let Some(target) = header(req, "x-amz-target") {
        return match target.split_once('.') {
            Some((CLOUDWATCH_TARGET, op)) if !op.is_empty() => Ok(Route {
                service: Service::CloudWatch,
                protocol: Protocol::Json,
                action: Some(op.to_owned()),
            }),
            Some((crate::dynamodb::TARGET, op)) if !op.is_empty() => Ok(Route {
                service: Service::DynamoDb,
                protocol: Protocol::Json,
                action: Some(op.to_owned()),
            }),
            _ => Err((
                None,
                Protocol::Json,
                AwsError::new(
                    400,
                    "UnknownOperationException",
                    format!("bellows serves no target {target}"),
                ),
            )),
        };
    }
    if req.path != "/" && !req.path.is_empty() {
        return Err((
            scope_service(req),
            Protocol::Query,
            AwsError::new(
                400,
                "InvalidAction",
                format!(
                    "The AWS endpoint answers at / and /service/...; {} is not one of its paths.",
                    req.path
                ),
            ),
        ));
    }
    // A Query request: the form's Version names the service, or else its signature's
    // scope does. Only the two fields are read here.
    let raw = if req.body.is_empty() || is_gzip(req) {
        req.query.as_bytes()
    } else {
        req.body
    };
    let mut version = None;
    let mut action = None;
    for (k, v) in form_urlencoded::parse(raw).take(form::MAX_PARAMETERS) {
        match &*k {
            "Version" => version = Some(v.into_owned()),
            "Action" => action = Some(v.into_owned()),
            _ => {}
        }
    }
    let scope = scope_service(req);
    let service = match version.as_deref() {
        Some(v) => match Service::by_version(v) {
            Some(s) => s,
            None if v == "2012-06-01" => {
                return Err((
                    scope,
                    Protocol::Query,
                    AwsError::invalid_action(
                        action.as_deref().unwrap_or("?"),
                        "classic Elastic Load Balancing 2012-06-01; bellows serves ELBv2, 2015-12-01",
                    ),
                ));
            }
            None => {
                return Err((
                    scope,
                    Protocol::Query,
                    AwsError::new(
                        400,
                        "NoSuchVersion",
                        format!("The requested version ({v}) of service is not served by bellows."),
                    ),
                ));
            }
        },
        None => scope.ok_or((
            None,
            Protocol::Query,
            AwsError::new(
                403,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            ),
        ))?,
    };
    if service == Service::DynamoDb {
        return Err((
            Some(service),
            Protocol::Json,
            AwsError::new(
                400,
                "UnknownOperationException",
                "DynamoDB speaks AWS JSON 1.0 with X-Amz-Target: DynamoDB_20120810.<Operation>",
            ),
        ));
    }
    let protocol = if service == Service::Ec2 {
        Protocol::Ec2
    } else {
        Protocol::Query
    };
    Ok(Route {
        service,
        protocol,
        action,
    })
}

fn is_gzip(req: &Request<'_>) -> bool {
    header(req, "content-encoding").is_some_and(|e| e.trim().eq_ignore_ascii_case("gzip"))
}

/// The body, decompressed when it came gzipped (large PutMetricData bodies do).
fn inflate(req: &Request<'_>) -> Result<Vec<u8>, AwsError> {
    if !is_gzip(req) {
        return Ok(req.body.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(req.body)
        .take(MAX_INFLATED_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            AwsError::new(
                400,
                "SerializationException",
                format!("the gzipped body does not inflate: {e}"),
            )
        })?;
    if out.len() > MAX_INFLATED_BODY {
        return Err(AwsError::new(
            413,
            "RequestEntityTooLarge",
            format!("the body inflates to more than {MAX_INFLATED_BODY} bytes"),
        ));
    }
    Ok(out)
}

/// A value as an AWS JSON 1.0 body (for records of what an answer said).
pub fn json_body(v: &Value) -> Vec<u8> {
    json::encode(v)
}

/// A successful answer.
pub fn encode_output(
    service: Service,
    protocol: Protocol,
    action: &str,
    output: &Value,
    request_id: &str,
) -> Reply {
    let rid = ("x-amzn-requestid", request_id.to_owned());
    match protocol {
        Protocol::Query => {
            let mut out = String::new();
            out.push_str(&format!(
                "<{action}Response xmlns=\"{}\">",
                service.namespace()
            ));
            if *output != Value::Null {
                xml::element(&mut out, &format!("{action}Result"), output, Lists::Member);
            }
            out.push_str("<ResponseMetadata><RequestId>");
            xml::escape_into(&mut out, request_id);
            out.push_str(&format!(
                "</RequestId></ResponseMetadata></{action}Response>"
            ));
            Reply {
                status: 200,
                headers: vec![("content-type", "text/xml".to_owned()), rid],
                body: out.into_bytes(),
            }
        }
        Protocol::Ec2 => {
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            out.push_str(&format!(
                "<{action}Response xmlns=\"{}\"><requestId>",
                service.namespace()
            ));
            xml::escape_into(&mut out, request_id);
            out.push_str("</requestId>");
            xml::content(&mut out, output, Lists::Item);
            out.push_str(&format!("</{action}Response>"));
            Reply {
                status: 200,
                headers: vec![("content-type", "text/xml;charset=UTF-8".to_owned()), rid],
                body: out.into_bytes(),
            }
        }
        Protocol::Json => Reply {
            status: 200,
            headers: vec![
                ("content-type", "application/x-amz-json-1.0".to_owned()),
                rid,
            ],
            body: json::encode(output),
        },
        Protocol::Cbor => Reply {
            status: 200,
            headers: vec![
                ("content-type", "application/cbor".to_owned()),
                ("smithy-protocol", "rpc-v2-cbor".to_owned()),
                rid,
            ],
            body: cbor::encode(if *output == Value::Null {
                &EMPTY
            } else {
                output
            }),
        },
    }
}

static EMPTY: Value = Value::Struct(Vec::new());

/// CloudWatch's error shapes by their Query codes (the JSON and CBOR `__type`).
fn cloudwatch_shape(code: &str) -> &str {
    match code {
        "InvalidParameterValue" => "InvalidParameterValueException",
        "MissingParameter" => "MissingRequiredParameterException",
        "InvalidParameterCombination" => "InvalidParameterCombinationException",
        "LimitExceeded" => "LimitExceededFault",
        "InvalidFormat" => "InvalidFormatFault",
        "InternalServiceError" => "InternalServiceFault",
        "InvalidAction" => "UnknownOperationException",
        other => other,
    }
}

/// DynamoDB's codes for what the endpoint refuses before a handler runs.
fn dynamodb_shape(code: &str) -> &str {
    match code {
        "InvalidClientTokenId" => "UnrecognizedClientException",
        "SignatureDoesNotMatch" => "InvalidSignatureException",
        "MissingAuthenticationToken" => "MissingAuthenticationTokenException",
        "InvalidAction" => "UnknownOperationException",
        "AccessDenied" => "AccessDeniedException",
        other => other,
    }
}

/// A failed answer in the protocol's own shape.
pub fn encode_error(
    service: Option<Service>,
    protocol: Protocol,
    e: &AwsError,
    request_id: &str,
) -> Reply {
    let rid = ("x-amzn-requestid", request_id.to_owned());
    let fault = if e.sender_fault() {
        "Sender"
    } else {
        "Receiver"
    };
    match protocol {
        Protocol::Query => {
            let mut out = String::new();
            match service {
                Some(s) => out.push_str(&format!("<ErrorResponse xmlns=\"{}\">", s.namespace())),
                None => out.push_str("<ErrorResponse>"),
            }
            out.push_str(&format!("<Error><Type>{fault}</Type><Code>"));
            xml::escape_into(&mut out, &e.code);
            out.push_str("</Code><Message>");
            xml::escape_into(&mut out, &e.message);
            out.push_str("</Message></Error><RequestId>");
            xml::escape_into(&mut out, request_id);
            out.push_str("</RequestId></ErrorResponse>");
            Reply {
                status: e.status,
                headers: vec![("content-type", "text/xml".to_owned()), rid],
                body: out.into_bytes(),
            }
        }
        Protocol::Ec2 => {
            let mut out = String::from(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>",
            );
            xml::escape_into(&mut out, &e.code);
            out.push_str("</Code><Message>");
            xml::escape_into(&mut out, &e.message);
            out.push_str("</Message></Error></Errors><RequestID>");
            xml::escape_into(&mut out, request_id);
            out.push_str("</RequestID></Response>");
            Reply {
                status: e.status,
                headers: vec![("content-type", "text/xml;charset=UTF-8".to_owned()), rid],
                body: out.into_bytes(),
            }
        }
        Protocol::Json if service == Some(Service::DynamoDb) => {
            let body = Value::object()
                .with(
                    "__type",
                    format!(
                        "com.amazonaws.dynamodb.v20120810#{}",
                        dynamodb_shape(&e.code)
                    ),
                )
                .with("message", e.message.as_str());
            let body = if e.cancellation_reasons.is_empty() {
                body
            } else {
                let reasons = e
                    .cancellation_reasons
                    .iter()
                    .map(|(code, message)| {
                        let r = Value::object().with("Code", code.as_str());
                        match message {
                            Some(m) => r.with("Message", m.as_str()),
                            None => r,
                        }
                    })
                    .collect();
                body.with("CancellationReasons", Value::List(reasons))
            };
            Reply {
                status: e.status,
                headers: vec![
                    ("content-type", "application/x-amz-json-1.0".to_owned()),
                    rid,
                ],
                body: json::encode(&body),
            }
        }
        Protocol::Json | Protocol::Cbor => {
            let body = Value::object()
                .with(
                    "__type",
                    format!("com.amazonaws.cloudwatch#{}", cloudwatch_shape(&e.code)),
                )
                .with("message", e.message.as_str());
            let query_error = ("x-amzn-query-error", format!("{};{fault}", e.code));
            if protocol == Protocol::Json {
                Reply {
                    status: e.status,
                    headers: vec![
                        ("content-type", "application/x-amz-json-1.0".to_owned()),
                        query_error,
                        rid,
                    ],
                    body: json::encode(&body),
                }
            } else {
                Reply {
                    status: e.status,
                    headers: vec![
                        ("content-type", "application/cbor".to_owned()),
                        ("smithy-protocol", "rpc-v2-cbor".to_owned()),
                        query_error,
                        rid,
                    ],
                    body: cbor::encode(&body),
                }
            }
        }
    }
}

#[cfg(test)]
mod hostile;
#[cfg(test)]
mod tests;
