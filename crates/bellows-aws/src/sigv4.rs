//! Verifying AWS Signature Version 4 (header form, `AWS4-HMAC-SHA256`).
//!
//! The server redoes what the client did: the canonical request (method, path, sorted
//! query, the signed headers, the SHA-256 of the body), the string to sign, and the
//! HMAC chain from the secret through the date, region, service and `aws4_request`,
//! then compares signatures in constant time. The clients of these services send no
//! `x-amz-content-sha256`, so the body is hashed here. No clock is read: `now` is an
//! argument.

use http::HeaderMap;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use ring::{digest, hmac};

/// The clock skew allowed between client and server, as AWS allows: 15 minutes.
pub const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// One access key and its secret.
#[derive(Clone)]
pub struct Credential {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credential {
    // The secret is never printed, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// What a verified signature says about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub access_key_id: String,
    pub region: String,
    /// The signing name (`autoscaling`, `monitoring`, ...).
    pub service: String,
}

/// Why a request is not accepted, with AWS's codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// 403 `MissingAuthenticationToken`.
    #[error("Request is missing Authentication Token")]
    Missing,
    /// 400 `IncompleteSignature`.
    #[error("{0}")]
    Incomplete(String),
    /// 403 `InvalidClientTokenId`.
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// 403 `SignatureDoesNotMatch`.
    #[error("{0}")]
    Mismatch(String),
}

impl AuthError {
    pub fn status(&self) -> u16 {
        match self {
            AuthError::Incomplete(_) => 400,
            _ => 403,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "MissingAuthenticationToken",
            AuthError::Incomplete(_) => "IncompleteSignature",
            AuthError::UnknownKey => "InvalidClientTokenId",
            AuthError::Mismatch(_) => "SignatureDoesNotMatch",
        }
    }
}

/// A request as it arrived: the path and query exactly as on the wire.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Without the `?`.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

fn parse_authorization(value: &str) -> Result<Authorization<'_>, AuthError> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or_else(|| {
            AuthError::Incomplete(
                "Only AWS4-HMAC-SHA256 header signatures are accepted (no SigV2, no SigV4a, no presigned URLs)."
                    .to_owned(),
            )
        })?
        .trim_start();
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let incomplete = |what: &str| {
        AuthError::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={value}"
        ))
    };
    let credential = credential.ok_or_else(|| incomplete("Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(AuthError::Incomplete(format!(
            "Credential should be ACCESS_KEY/DATE/REGION/SERVICE/aws4_request, not {credential}"
        )));
    };
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed.split(';').collect(),
        signature,
    })
}

/// Seconds since the epoch of an `X-Amz-Date` (`20150830T123600Z`).
fn amz_date_seconds(v: &str) -> Option<i64> {
    if v.len() != 16 || !v.ends_with('Z') || v.as_bytes()[8] != b'T' {
        return None;
    }
    let civil = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", v).ok()?;
    Some(
        civil
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second(),
    )
}

/// Checks the request's signature; `lookup` finds a key's secret. `region` is the one
/// region this endpoint serves.
pub fn verify(
    req: &Request<'_>,
    lookup: impl Fn(&str) -> Option<String>,
    region: &str,
    now_seconds: i64,
) -> Result<Signed, AuthError> {
    let header = req
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Incomplete("The Authorization header is not ASCII.".to_owned()))?;
    let auth = parse_authorization(header)?;
    let secret = lookup(auth.access_key_id).ok_or(AuthError::UnknownKey)?;
    let amz_date = req
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            AuthError::Incomplete("The request must carry an X-Amz-Date header.".to_owned())
        })?;
    let signed_at = amz_date_seconds(amz_date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "X-Amz-Date {amz_date} is not of the form 20150830T123600Z"
        ))
    })?;
    if !amz_date.starts_with(auth.date) || auth.date.len() != 8 {
        return Err(AuthError::Mismatch(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            auth.date,
            &amz_date[..8]
        )));
    }
    if (now_seconds - signed_at).abs() > MAX_SKEW_SECONDS {
        return Err(AuthError::Mismatch(format!(
            "Signature expired or not yet valid: {amz_date} is more than 15 minutes from the server's time."
        )));
    }
    // IAM is global: clients sign it for us-east-1 whatever region they use.
    let global = auth.service == "iam" && auth.region == "us-east-1";
    if auth.region != region && !global {
        return Err(AuthError::Mismatch(format!(
            "Credential should be scoped to a valid region: this endpoint serves '{region}', not '{}'.",
            auth.region
        )));
    }
    if !auth.signed_headers.contains(&"host") {
        return Err(AuthError::Mismatch(
            "The host header must be signed.".to_owned(),
        ));
    }
    let creq = canonical_request(req, &auth.signed_headers)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let sts = string_to_sign(amz_date, &scope, &creq);
    let want = signature(&secret, auth.date, auth.region, auth.service, &sts);
    if !constant_time_eq(want.as_bytes(), auth.signature.as_bytes()) {
        return Err(AuthError::Mismatch(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
                .to_owned(),
        ));
    }
    Ok(Signed {
        access_key_id: auth.access_key_id.to_owned(),
        region: auth.region.to_owned(),
        service: auth.service.to_owned(),
    })
}

/// RFC 3986's unreserved characters stay as they are; everything else is `%XX`.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

const UNRESERVED_AND_SLASH: &AsciiSet = &UNRESERVED.remove(b'/');

fn encode(s: &str, set: &'static AsciiSet) -> String {
    utf8_percent_encode(s, set).to_string()
}

/// The canonical request for the signed headers.
pub fn canonical_request(req: &Request<'_>, signed_headers: &[&str]) -> Result<String, AuthError> {
    // Services other than S3 encode the path once more than it is on the wire (so `%`
    // becomes `%25`), which is what the SDKs do.
    let path = if req.path.is_empty() { "/" } else { req.path };
    let uri = encode(path, UNRESERVED_AND_SLASH);
    let mut pairs: Vec<(String, String)> = req
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
            (encode(&dec(k), UNRESERVED), encode(&dec(v), UNRESERVED))
        })
        .collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut headers = String::new();
    for name in signed_headers {
        let values: Vec<String> = req
            .headers
            .get_all(*name)
            .iter()
            .map(|v| collapse(&String::from_utf8_lossy(v.as_bytes())))
            .collect();
        if values.is_empty() {
            return Err(AuthError::Mismatch(format!(
                "The header '{name}' is listed as signed but the request does not carry it."
            )));
        }
        headers.push_str(name);
        headers.push(':');
        headers.push_str(&values.join(","));
        headers.push('\n');
    }
    Ok(format!(
        "{}\n{uri}\n{query}\n{headers}\n{}\n{}",
        req.method,
        signed_headers.join(";"),
        hex(digest::digest(&digest::SHA256, req.body).as_ref())
    ))
}

/// A header value trimmed, with runs of spaces made one.
fn collapse(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref())
    )
}

/// The hex signature of a string to sign.
pub fn signature(secret: &str, date: &str, region: &str, service: &str, sts: &str) -> String {
    let mac = |key: &[u8], data: &str| {
        hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
    };
    let k_date = mac(format!("AWS4{secret}").as_bytes(), date);
    let k_region = mac(k_date.as_ref(), region);
    let k_service = mac(k_region.as_ref(), service);
    let k_signing = mac(k_service.as_ref(), "aws4_request");
    hex(mac(k_signing.as_ref(), sts).as_ref())
}

/// The `Authorization` header a client would send: `headers` must already hold `host`
/// and `x-amz-date`; every header in it is signed. For tests and tools; the endpoint
/// only verifies.
pub fn authorization(
    req: &Request<'_>,
    credential: &Credential,
    region: &str,
    service: &str,
) -> String {
    let amz_date = req
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let date = amz_date.get(..8).unwrap_or_default();
    let mut names: Vec<String> = req.headers.keys().map(|k| k.as_str().to_owned()).collect();
    names.sort();
    names.dedup();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let creq = canonical_request(req, &names).unwrap_or_default();
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let sig = signature(
        &credential.secret_access_key,
        date,
        region,
        service,
        &string_to_sign(amz_date, &scope, &creq),
    );
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={}, Signature={sig}",
        credential.access_key_id,
        names.join(";")
    )
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two byte strings are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;
