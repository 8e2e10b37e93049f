//! The control API's client, on bellows' one HTTP client (`http.rs`), used by every
//! CLI command that talks to a running `up`.

use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::types::ApiError;
use crate::http::{Http, innermost};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach bellows at {addr}: is `bellows up` running with this state directory? ({reason})"
    )]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("{}", .0.message)]
    Api(ApiError),
    #[error("unexpected answer from bellows: {0}")]
    Protocol(String),
}

#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    token: Option<String>,
    http: Http,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    error: ApiError,
}

impl Client {
    pub fn new(addr: SocketAddr, token: Option<String>) -> Client {
        Client {
            addr,
            token,
            http: Http::new(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr));
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req = req.header(crate::api::types::SOURCE_HEADER, "cli");
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self
            .http
            .inner
            .request(req)
            .await
            .map_err(|e| ClientError::Unreachable {
                addr: self.addr,
                reason: innermost(&e),
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = collect(resp).await?;
        match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Err(ClientError::Api(ApiError {
                status: status.as_u16(),
                ..b.error
            })),
            Err(_) => Err(ClientError::Protocol(format!(
                "{status}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }

    async fn json<T: DeserializeOwned>(resp: Response<Incoming>) -> Result<T, ClientError> {
        let no_content = resp.status() == StatusCode::NO_CONTENT;
        let bytes = collect(resp).await?;
        let bytes: &[u8] = if no_content || bytes.is_empty() {
            b"null"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::json(self.send(Method::GET, path, None).await?).await
    }

    pub async fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Self::json(self.send(Method::PUT, path, Some(body)).await?).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Protocol(e.to_string()))?;
        Self::json(self.send(Method::POST, path, Some(body)).await?).await
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::json(self.send(Method::DELETE, path, None).await?).await
    }

    /// Copies a response body to `out` as it arrives (for following logs).
    pub async fn stream(&self, path: &str, out: &mut impl Write) -> Result<(), ClientError> {
        let mut body = self.send(Method::GET, path, None).await?.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                match out.write_all(data).and_then(|()| out.flush()) {
                    Ok(()) => {}
                    // The reader went away (`bellows logs ID | head`): done.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    Err(e) => return Err(ClientError::Protocol(e.to_string())),
                }
            }
        }
        Ok(())
    }
}

async fn collect(resp: Response<Incoming>) -> Result<Bytes, ClientError> {
    resp.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .map_err(|e| ClientError::Protocol(e.to_string()))
}
