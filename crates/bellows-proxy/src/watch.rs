//! Connection timeouts without a timer per request: a coarse clock, a little shared
//! state per connection, and one watchdog tick per connection each second.
//!
//! hyper's own header read timeout arms a fresh timer for every request head, which
//! cost about 15% of the proxy's throughput in scripts/bench-proxy. Here the request
//! path only stores two atomics; the watchdog decides:
//! - a request head that has started must arrive whole within `header_timeout`
//!   (slowloris);
//! - a keep-alive connection with nothing to do is closed after `idle_timeout`;
//! - so is one whose client stopped reading: a write to it stalled that long (else a
//!   client could hold a connection, and its target's, by never reading the answer).
//!
//! A target's answer is timed the same way: [`Deadline`] checks the coarse clock each
//! time it is polled, and the watchdog's tick, in the same task, polls it at least once
//! a second. (A tokio timer per request cost about 2% of the proxy's CPU.)

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Milliseconds since the Unix epoch, at most ~100 ms old.
static COARSE_MS: AtomicU64 = AtomicU64::new(0);

pub fn coarse_now() -> u64 {
    match COARSE_MS.load(Relaxed) {
        0 => crate::clock::now().as_millis(),
        ms => ms,
    }
}

/// Keeps the coarse clock going; started once with the proxy.
pub(crate) async fn tick_clock() {
    let mut every = crate::clock::interval(Duration::from_millis(100));
    loop {
        every.tick().await;
        COARSE_MS.store(crate::clock::now().as_millis(), Relaxed);
    }
}

/// A future that gives up at a time of the coarse clock: `Err(())` then. It is only
/// looked at when polled, so it must share its task with something that wakes it at
/// least once a second (the connection's watchdog tick does).
#[derive(Debug)]
pub(crate) struct Deadline<F> {
    fut: F,
    at_ms: u64,
}

pub(crate) fn deadline<F: Future + Unpin>(after: Duration, fut: F) -> Deadline<F> {
    Deadline {
        fut,
        at_ms: coarse_now().saturating_add(after.as_millis() as u64),
    }
}

impl<F: Future + Unpin> Future for Deadline<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(out) = Pin::new(&mut self.fut).poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if coarse_now() >= self.at_ms {
            return Poll::Ready(Err(()));
        }
        Poll::Pending
    }
}

/// What the watchdog knows of one connection.
#[derive(Debug)]
pub(crate) struct Watch {
    /// When the connection became free for its next request; 0 while one is served.
    waiting_since: AtomicU64,
    /// Bytes of a next request head have arrived.
    partial: AtomicBool,
    /// The last time a byte was written to the client.
    last_write: AtomicU64,
    /// Since when a write to the client has waited for room; 0 when none waits.
    stalled_since: AtomicU64,
}

impl Watch {
    pub fn new() -> Arc<Watch> {
        let now = coarse_now();
        Arc::new(Watch {
            waiting_since: AtomicU64::new(now),
            partial: AtomicBool::new(false),
            last_write: AtomicU64::new(now),
            stalled_since: AtomicU64::new(0),
        })
    }

    /// A request head has been parsed.
    pub fn begin(&self) {
        self.waiting_since.store(0, Relaxed);
        self.partial.store(false, Relaxed);
    }

    /// The response is on its way; the connection waits for the next request.
    pub fn end(&self) {
        self.waiting_since.store(coarse_now(), Relaxed);
    }

    /// A tunnel wrote `wrote` bytes to the client and still has bytes it could not
    /// take (`blocked`): a client that stops reading is a stalled write, as in a request.
    pub fn tunnel_wrote(&self, wrote: usize, blocked: bool) {
        let now = coarse_now();
        if wrote > 0 {
            self.last_write.store(now, Relaxed);
        }
        if !blocked {
            self.stalled_since.store(0, Relaxed);
        } else if wrote > 0 || self.stalled_since.load(Relaxed) == 0 {
            self.stalled_since.store(now, Relaxed);
        }
    }

    /// Waiting for a next request, none of whose bytes have come.
    pub fn idle(&self) -> bool {
        self.waiting_since.load(Relaxed) != 0 && !self.partial.load(Relaxed)
    }

    /// Whether the connection has overstayed.
    pub fn expired(&self, header_timeout: Duration, idle_timeout: Duration) -> bool {
        let now = coarse_now();
        let stalled = self.stalled_since.load(Relaxed);
        if stalled != 0 && now.saturating_sub(stalled) > idle_timeout.as_millis() as u64 {
            return true;
        }
        let since = self.waiting_since.load(Relaxed);
        if since == 0 {
            return false;
        }
        if self.partial.load(Relaxed) {
            now.saturating_sub(since) > header_timeout.as_millis() as u64
        } else {
            let last = since.max(self.last_write.load(Relaxed));
            now.saturating_sub(last) > idle_timeout.as_millis() as u64
        }
    }
}

/// A stream that tells its `Watch` about reads and writes.
#[derive(Debug)]
pub(crate) struct Watched<S> {
    pub inner: S,
    pub watch: Arc<Watch>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.watch.waiting_since.load(Relaxed) != 0 {
            self.watch.partial.store(true, Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        match polled {
            Poll::Ready(Ok(n)) if n > 0 => {
                self.watch.last_write.store(coarse_now(), Relaxed);
                self.watch.stalled_since.store(0, Relaxed);
            }
            Poll::Pending if self.watch.stalled_since.load(Relaxed) == 0 => {
                self.watch.stalled_since.store(coarse_now(), Relaxed);
            }
            _ => {}
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests set the one coarse clock: one at a time.
    static CLOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn a_deadline_gives_up_only_once_its_time_has_come() {
        let _clock = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        COARSE_MS.store(2_000_000, Relaxed);
        let mut never = std::pin::pin!(deadline(
            Duration::from_secs(5),
            std::future::pending::<()>()
        ));
        assert!(never.as_mut().poll(&mut cx).is_pending());
        COARSE_MS.store(2_004_900, Relaxed);
        assert!(never.as_mut().poll(&mut cx).is_pending());
        COARSE_MS.store(2_005_000, Relaxed);
        assert_eq!(never.as_mut().poll(&mut cx), Poll::Ready(Err(())));
        let mut ready = std::pin::pin!(deadline(Duration::ZERO, std::future::ready(7)));
        assert_eq!(ready.as_mut().poll(&mut cx), Poll::Ready(Ok(7)));
    }

    #[test]
    fn idle_and_partial_heads_expire_on_their_own_clocks() {
        let _clock = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
        COARSE_MS.store(1_000_000, Relaxed);
        let w = Watch::new();
        let (header, idle) = (Duration::from_secs(10), Duration::from_secs(60));
        COARSE_MS.store(1_030_000, Relaxed);
        assert!(!w.expired(header, idle), "idle 30 s of 60");
        w.partial.store(true, Relaxed);
        assert!(w.expired(header, idle), "a head started 30 s ago");
        w.begin();
        COARSE_MS.store(1_200_000, Relaxed);
        assert!(
            !w.expired(header, idle),
            "a request in progress never expires here"
        );
        w.end();
        COARSE_MS.store(1_261_000, Relaxed);
        assert!(w.expired(header, idle), "idle 61 s");
        w.begin();
        w.stalled_since.store(1_261_000, Relaxed);
        COARSE_MS.store(1_300_000, Relaxed);
        assert!(!w.expired(header, idle), "a write stalled 39 s");
        COARSE_MS.store(1_322_000, Relaxed);
        assert!(w.expired(header, idle), "a write stalled 61 s, mid-request");
    }
}
