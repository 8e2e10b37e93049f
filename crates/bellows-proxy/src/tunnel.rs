//! An upgraded connection (a WebSocket after its 101) as a tunnel of bytes both ways that
//! holds no buffer of its own while idle.
//!
//! `tokio::io::copy_bidirectional` keeps an 8 KiB buffer per direction for the life of the
//! tunnel; with the connection's own read and write buffers that came to about 50 KiB per
//! idle WebSocket (nginx: about 18 KiB). Here both directions read into one scratch
//! buffer per thread and write straight on; only bytes the other side cannot take at once
//! are kept, in a buffer that exists just while they wait. An idle tunnel is then its two
//! sockets' registrations and the connection task (`scripts/bench-ws` measures it).

use std::cell::RefCell;
use std::io::{self, ErrorKind};

use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use crate::watch::Watched;

/// The scratch buffer's size: a read takes at most this much before it is passed on.
const SCRATCH: usize = 16 * 1024;

/// Reads, per direction, before the other direction gets its turn.
const BURST: usize = 16;

thread_local! {
    static SCRATCH_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; SCRATCH].into_boxed_slice());
}

/// One direction of the tunnel.
#[derive(Debug, Default)]
struct Flow {
    /// Bytes read that the other side has not taken yet, from `at` on.
    pending: Vec<u8>,
    at: usize,
    /// The source closed its side: once `pending` is out, the other side's write half
    /// is shut too.
    eof: bool,
    shut: bool,
}

impl Flow {
    fn waiting(&self) -> bool {
        self.at < self.pending.len()
    }

    fn done(&self) -> bool {
        self.shut
    }

    /// What readiness of the source (`read`) and of the destination (`write`) would let
    /// this direction move.
    fn wants(&self) -> (bool, bool) {
        (!self.eof && !self.waiting(), self.waiting())
    }

    /// Moves what can move without waiting: first what is pending, then fresh reads
    /// written straight through. Stops at the first `WouldBlock` or after a burst.
    /// The bytes written to `to`.
    fn step(&mut self, from: &TcpStream, to: &TcpStream) -> io::Result<usize> {
        let mut wrote = 0;
        for _ in 0..BURST {
            if self.waiting() {
                match to.try_write(&self.pending[self.at..]) {
                    Ok(n) => {
                        self.at += n;
                        wrote += n;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(wrote),
                    Err(e) => return Err(e),
                }
                if !self.waiting() {
                    // Give the memory back: an idle tunnel keeps nothing.
                    self.pending = Vec::new();
                    self.at = 0;
                }
                continue;
            }
            if self.eof {
                return Ok(wrote);
            }
            let moved = SCRATCH_BUF.with_borrow_mut(|buf| -> io::Result<Option<usize>> {
                let n = match from.try_read(buf) {
                    Ok(0) => {
                        self.eof = true;
                        return Ok(None);
                    }
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
                    Err(e) => return Err(e),
                };
                let written = match to.try_write(&buf[..n]) {
                    Ok(m) => m,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                    Err(e) => return Err(e),
                };
                if written < n {
                    self.pending.extend_from_slice(&buf[written..n]);
                }
                Ok(Some(written))
            })?;
            match moved {
                Some(n) => wrote += n,
                None => return Ok(wrote),
            }
        }
        Ok(wrote)
    }
}

/// Carries bytes between the client and the target until both sides have closed, or
/// either fails. A client that stops reading counts as a stalled write, so the
/// connection's watchdog cuts it after the idle timeout as it would any other.
pub(crate) async fn run(client: &mut Watched<TcpStream>, target: &mut TcpStream) {
    let _ = carry(client, target).await;
}

async fn carry(client: &mut Watched<TcpStream>, target: &mut TcpStream) -> io::Result<()> {
    let watch = client.watch.clone();
    let client = &mut client.inner;
    let mut up = Flow::default(); // client -> target
    let mut down = Flow::default(); // target -> client
    loop {
        up.step(client, target)?;
        let wrote = down.step(target, client)?;
        watch.tunnel_wrote(wrote, down.waiting());
        for (flow, to) in [(&mut up, &mut *target), (&mut down, &mut *client)] {
            if flow.eof && !flow.waiting() && !flow.shut {
                // Pass the half-close on; the other direction may still carry bytes.
                let _ = to.shutdown().await;
                flow.shut = true;
            }
        }
        if up.done() && down.done() {
            return Ok(());
        }
        let (client_read, target_write) = up.wants();
        let (target_read, client_write) = down.wants();
        let client_interest = interest(client_read, client_write);
        let target_interest = interest(target_read, target_write);
        tokio::select! {
            ready = client.ready(client_interest.unwrap_or(Interest::READABLE)),
                if client_interest.is_some() => { ready?; }
            ready = target.ready(target_interest.unwrap_or(Interest::READABLE)),
                if target_interest.is_some() => { ready?; }
            else => return Ok(()),
        }
    }
}

fn interest(read: bool, write: bool) -> Option<Interest> {
    match (read, write) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::watch::Watch;

    async fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    /// Bytes both ways, more than the scratch buffer and more than the sockets hold
    /// while the far end is not reading, arrive whole and in order; a half-close on
    /// one side is passed on while the other direction goes on.
    #[tokio::test]
    async fn bytes_cross_whole_both_ways_and_half_closes_pass_on() {
        let (mut user, proxy_client) = pair().await;
        let (mut proxy_target, mut app) = pair().await;
        let tunnel = tokio::spawn(async move {
            let mut client = Watched {
                inner: proxy_client,
                watch: Watch::new(),
            };
            run(&mut client, &mut proxy_target).await;
        });
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        // The app writes 3 MB before reading anything: the tunnel has to hold what the
        // user is not reading yet, and must not stop the other direction meanwhile.
        let app_side = tokio::spawn(async move {
            app.write_all(&sent).await.unwrap();
            let mut got = Vec::new();
            app.read_to_end(&mut got).await.unwrap();
            app.write_all(b"after the user's half-close").await.unwrap();
            app.shutdown().await.unwrap();
            got
        });
        user.write_all(&big[..100_000]).await.unwrap();
        user.shutdown().await.unwrap();
        let mut got = Vec::new();
        user.read_to_end(&mut got).await.unwrap();
        let mut expected = big.clone();
        expected.extend_from_slice(b"after the user's half-close");
        assert_eq!(got.len(), expected.len());
        assert!(
            got == expected,
            "the target's bytes arrived changed or out of order"
        );
        assert!(
            app_side.await.unwrap() == big[..100_000],
            "the user's bytes arrived changed"
        );
        tunnel.await.unwrap();
    }

    /// A reset on one side ends the tunnel instead of leaving it waiting.
    #[tokio::test]
    async fn a_reset_ends_the_tunnel() {
        let (user, proxy_client) = pair().await;
        let (mut proxy_target, _app) = pair().await;
        let tunnel = tokio::spawn(async move {
            let mut client = Watched {
                inner: proxy_client,
                watch: Watch::new(),
            };
            run(&mut client, &mut proxy_target).await;
        });
        #[allow(deprecated)]
        user.set_linger(Some(std::time::Duration::ZERO)).unwrap();
        drop(user);
        crate::clock::timeout(std::time::Duration::from_secs(10), tunnel)
            .await
            .expect("the tunnel outlived its client's reset")
            .unwrap();
    }
}
