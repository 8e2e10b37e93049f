//! bellows' one HTTP client: [`Http`] makes every outgoing request of bellows' own,
//! webhooks and issues (outbox), smoke checks through the load balancer, scenarios, an
//! instance's stress endpoint, and the control API's client (`client.rs`) on top of it.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// http:// and https:// (TLS 1.2 and 1.3, verified against Mozilla's root certificates),
/// HTTP/1.1, with a pool of kept-alive connections.
#[derive(Debug, Clone)]
pub struct Http {
    pub(crate) inner: HttpClient<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A whole answer: its status and its body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Bytes,
}

impl Answer {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Default for Http {
    fn default() -> Http {
        Http::new()
    }
}

impl Http {
    pub fn new() -> Http {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .build();
        Http {
            inner: HttpClient::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// One request to `url`, its answer read whole (decoded from chunks), all within
    /// `timeout`. The error says why there is no answer, innermost cause first.
    pub async fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let mut req = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req
            .body(Full::new(body.into()))
            .map_err(|e| e.to_string())?;
        let whole = async {
            let resp = self.inner.request(req).await.map_err(|e| innermost(&e))?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| e.to_string())?;
            Ok(Answer { status, body })
        };
        crate::clock::timeout(timeout, whole)
            .await
            .map_err(|_| format!("no answer within {} s", timeout.as_secs_f64()))?
    }
}

/// An error's innermost cause: "connection refused" rather than "client error (Connect)".
pub(crate) fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on loopback that answers one request with `answer`, as it is.
    async fn answers(answer: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let _ = s.read(&mut buf).await;
            s.write_all(answer.as_bytes()).await.unwrap();
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn a_chunked_answer_is_read_whole_and_a_silent_one_times_out() {
        let http = Http::new();
        let url = answers(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        )
        .await;
        let a = http
            .exchange("GET", &url, &[], Vec::new(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!((a.status, a.text().as_str()), (200, "hello world"));

        let url =
            answers("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy").await;
        let a = http
            .exchange(
                "POST",
                &url,
                &[("content-type", "application/json")],
                "{}",
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        assert_eq!((a.status, a.text().as_str()), (503, "busy"));

        // Accepts, reads, never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let e = http
            .exchange("GET", &url, &[], Vec::new(), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(e.starts_with("no answer within"), "{e}");
        drop(listener);

        // Nobody listens: the innermost cause.
        let e = http
            .exchange("GET", &url, &[], Vec::new(), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.to_lowercase().contains("refused"), "{e}");
    }
}
