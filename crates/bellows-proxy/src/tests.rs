//! Listeners and target groups that come and go, on real sockets: a backend that
//! answers `ok`, a proxy over a stack, and `reconfigure` to a new stack.

use std::net::SocketAddr;
use std::time::Duration;

use bellows_core::ids::InstanceId;
use bellows_core::lb::select::TargetState;
use bellows_core::stack::{Stack, parse};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::{Proxy, ProxyError, ProxyEvent};

/// A backend answering every request with 200 `ok`, keeping connections alive.
async fn backend() -> SocketAddr {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = socket.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                        if s.write_all(ok).await.is_err() {
                            return;
                        }
                    }
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// A stack with listener `a` (port `a`) forwarding to `web`, and whatever `more` adds.
fn stack(a: u16, more: &str) -> Stack {
    parse(&text(a, more)).unwrap_or_else(|d| panic!("{d:?}"))
}

fn text(a: u16, more: &str) -> String {
    format!(
        r#"
[stack]
name = "t"

[target_groups.web]
[target_groups.web.health_check]
path = "/"
interval = "5s"

[listeners.a]
address = "127.0.0.1:{a}"
default = {{ forward = "web" }}

{more}

[groups.web]
min = 0
max = 1
desired = 0
target_groups = ["web"]
[groups.web.launch]
command = ["true"]
"#
    )
}

const SECOND: &str = r#"
[target_groups.api]
[target_groups.api.health_check]
path = "/"
interval = "5s"

[listeners.b]
address = "127.0.0.1:PORT"
default = { forward = "api" }
"#;

/// A free port on 127.0.0.1 (bound and let go).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET on an open connection; the status code, or an error text.
async fn get(conn: &mut TcpStream) -> Result<u16, String> {
    conn.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return head
                    .split(' ')
                    .nth(1)
                    .and_then(|c| c.parse().ok())
                    .ok_or(head);
            }
        }
        let n = crate::clock::timeout(Duration::from_secs(5), conn.read(&mut chunk))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".to_owned());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Waits (bounded) until `instance` is healthy in `tg`.
async fn healthy(proxy: &Proxy, tg: &str, instance: &InstanceId) {
    for _ in 0..100 {
        if proxy.targets().iter().any(|t| {
            t.target_group == tg && &t.instance == instance && t.state == TargetState::Healthy
        }) {
            return;
        }
        crate::clock::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "{instance} never became healthy in {tg}: {:?}",
        proxy.targets()
    );
}

/// Waits (bounded) until nothing accepts on `port`: a stopped listener's task closes
/// its socket moments after the change.
async fn refused(port: u16) {
    for _ in 0..40 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            return;
        }
        crate::clock::sleep(Duration::from_millis(50)).await;
    }
    panic!("127.0.0.1:{port} still accepts");
}

fn addr_of(proxy: &Proxy, name: &str) -> SocketAddr {
    proxy
        .listener_addrs()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a)
        .unwrap_or_else(|| panic!("no listener {name}"))
}

#[tokio::test]
async fn listeners_and_target_groups_come_and_go_and_a_kept_connection_stays() {
    let app = backend().await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let (a, b) = (free_port(), free_port());
    let base = stack(a, "");
    let proxy = Proxy::start(&base, None, tx).await.unwrap();
    let i1 = InstanceId::parse("i-00000000000000001").unwrap();
    proxy.register("web", &i1, app, "zone-a");
    healthy(&proxy, "web", &i1).await;
    let mut kept = TcpStream::connect(addr_of(&proxy, "a")).await.unwrap();
    assert_eq!(get(&mut kept).await, Ok(200));

    // Added: a listener and its target group.
    let two = stack(a, &SECOND.replace("PORT", &b.to_string()));
    proxy.reconfigure(&two, &[]).unwrap();
    let i2 = InstanceId::parse("i-00000000000000002").unwrap();
    proxy.register("api", &i2, app, "zone-a");
    healthy(&proxy, "api", &i2).await;
    let mut new = TcpStream::connect(("127.0.0.1", b)).await.unwrap();
    assert_eq!(get(&mut new).await, Ok(200));
    assert_eq!(get(&mut kept).await, Ok(200), "the kept connection serves");
    assert!(proxy.snapshot().groups.iter().any(|g| g.name == "api"));

    // Removed again: the port refuses, its idle connection closes, `a` goes on.
    proxy.reconfigure(&base, &[]).unwrap();
    refused(b).await;
    let mut rest = [0u8; 16];
    let closed = crate::clock::timeout(Duration::from_secs(3), new.read(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
    assert_eq!(get(&mut kept).await, Ok(200), "the kept connection serves");
    let snap = proxy.snapshot();
    assert_eq!(
        snap.groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>(),
        ["web"]
    );
    assert_eq!(snap.listeners.len(), 1);
    assert!(proxy.targets().iter().all(|t| t.target_group == "web"));
    let mut text = String::new();
    proxy.render_prometheus(&mut text);
    assert!(!text.contains("api"), "{text}");
}

#[tokio::test]
async fn a_moved_listener_is_rebound_and_a_busy_address_refuses_the_change() {
    let app = backend().await;
    let (tx, _rx) = mpsc::unbounded_channel();
    let (a, c) = (free_port(), free_port());
    let proxy = Proxy::start(&stack(a, ""), None, tx).await.unwrap();
    let i1 = InstanceId::parse("i-00000000000000001").unwrap();
    proxy.register("web", &i1, app, "zone-a");
    healthy(&proxy, "web", &i1).await;

    // A busy address: refused with the listener's name, and nothing changed.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let taken = stack(a, &SECOND.replace("PORT", &port.to_string()));
    let err = proxy.reconfigure(&taken, &[]).unwrap_err();
    assert!(
        matches!(err, ProxyError::Bind { ref name, .. } if name == "b"),
        "{err}"
    );
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert_eq!(proxy.listener_addrs().len(), 1);
    assert_eq!(proxy.snapshot().groups.len(), 1);

    // Moved: the new address serves, the old one refuses, the counters carry over.
    let mut conn = TcpStream::connect(("127.0.0.1", a)).await.unwrap();
    assert_eq!(get(&mut conn).await, Ok(200));
    drop(conn);
    proxy.reconfigure(&stack(c, ""), &[]).unwrap();
    assert_eq!(addr_of(&proxy, "a").port(), c);
    refused(a).await;
    let mut conn = TcpStream::connect(("127.0.0.1", c)).await.unwrap();
    assert_eq!(get(&mut conn).await, Ok(200));
    let requests = proxy.snapshot().listeners[0]
        .1
        .iter()
        .find(|(f, _)| *f == "request_count")
        .map(|(_, v)| *v);
    assert_eq!(requests, Some(2));
}

#[tokio::test]
async fn a_target_group_that_starts_and_stops_receiving_traffic_checks_its_targets_or_not() {
    let app = backend().await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let a = free_port();
    let canary = "[target_groups.canary]\n[target_groups.canary.health_check]\npath = \"/\"";
    let unused = stack(a, canary);
    let proxy = Proxy::start(&unused, None, tx).await.unwrap();
    let i1 = InstanceId::parse("i-00000000000000001").unwrap();
    proxy.register("canary", &i1, app, "zone-a");
    let state = |p: &Proxy| {
        p.targets()
            .into_iter()
            .find(|t| t.target_group == "canary")
            .map(|t| t.state)
    };
    assert_eq!(state(&proxy), Some(TargetState::Unused));

    let used = parse(&text(a, canary).replace(
        "default = { forward = \"web\" }",
        "default = { forward = \"canary\" }",
    ))
    .unwrap();
    proxy.reconfigure(&used, &[]).unwrap();
    healthy(&proxy, "canary", &i1).await;
    let mut conn = TcpStream::connect(("127.0.0.1", a)).await.unwrap();
    assert_eq!(get(&mut conn).await, Ok(200));

    proxy.reconfigure(&unused, &[]).unwrap();
    assert_eq!(state(&proxy), Some(TargetState::Unused));
    // The checks stopped: it stays unused past a few check intervals of a new target.
    crate::clock::sleep(Duration::from_millis(600)).await;
    assert_eq!(state(&proxy), Some(TargetState::Unused));
    let mut seen = Vec::new();
    while let Ok(ProxyEvent::TargetHealth { from, to, .. }) = rx.try_recv() {
        seen.push((from, to));
    }
    assert_eq!(
        seen,
        [
            (TargetState::Unused, TargetState::Initial),
            (TargetState::Initial, TargetState::Healthy),
            (TargetState::Healthy, TargetState::Unused),
        ]
    );
}
