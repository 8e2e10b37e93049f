//! The closed loop: N connections, each sending its next request as soon as the last
//! one is answered, driven by one event loop a thread (as wrk does) rather than by a
//! task a connection.
//!
//! This is the generator's hottest path, and what it must not do per request is what
//! an async task per connection does: wake a task, register its socket's interest anew,
//! arm a timer, read the clock more than once. Here each socket is registered once
//! (edge-triggered) for as long as it lives, a request costs one write and (usually) one
//! read, a response one clock read, which is both its end and the next request's start,
//! and timeouts are found by a scan every few milliseconds rather than by a timer each.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use mio::event::Event;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use tokio::time::Instant;

use crate::http::{self, Failure, ResponseReader};
use crate::record::{Outcome, Recorder};
use crate::{Ctx, clock};

/// How often in-flight requests are checked against the timeout, and paused
/// connections resumed: a request times out up to this late.
pub(crate) const SCAN: Duration = Duration::from_millis(5);

/// While responses follow each other closely, poll this many times without waiting
/// (yielding the CPU in between) before sleeping in the kernel: waking a sleeping
/// thread costs more than the gap (a context switch, and caches gone cold), and a
/// generator that sleeps between every few responses also holds the target back.
/// Measured against nginx on a busy machine (interleaved rounds): sleeping at once cost
/// 5.3 us of CPU a request, polling 16 times 4.3 us, yielding between those polls 3.5 us
/// and got the most requests through; on a quiet machine sleeping at once cost less
/// CPU (4.35 us against 4.79 us) but got 15% fewer requests through (README).
pub(crate) const SPIN_POLLS: u32 = 16;

/// After a failed request a connection waits this long before the next one, so that a
/// refusing server is not hammered in a spin.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(10);

/// Where a connection is in its request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A new connection's handshake is under way.
    Connecting,
    /// The request is partly written.
    Writing,
    /// The request is out; the response is coming.
    Reading,
    /// Waiting out a pause after a failure until the instant given.
    Paused(Instant),
    /// Open loop: connected and kept alive, with no request to send.
    Idle,
    /// No more requests on this connection.
    Done,
}

#[derive(Debug)]
pub(crate) struct Slot {
    pub stream: Option<TcpStream>,
    pub phase: Phase,
    /// Bytes of the request written so far.
    pub written: usize,
    /// When the request in flight started (its connect included); in an open loop,
    /// when it was due.
    pub started: Instant,
    pub buf: BytesMut,
    pub reader: ResponseReader,
}

impl Slot {
    pub fn new(head_only: bool, now: Instant) -> Slot {
        Slot {
            stream: None,
            phase: Phase::Done,
            written: 0,
            started: now,
            buf: BytesMut::with_capacity(1024),
            reader: ResponseReader::new(head_only, false),
        }
    }

    /// The connection goes (closed, or not to be reused): the slot has none.
    pub fn drop_connection(&mut self, poll: &Poll, head_only: bool) {
        if let Some(mut s) = self.stream.take() {
            let _ = poll.registry().deregister(&mut s);
        }
        self.reader = ResponseReader::new(head_only, false);
        self.buf.clear();
    }

    /// A new connection's handshake ended: whether it is connected (`Ok(false)`: not
    /// yet, the event was for something else).
    pub fn connected(&mut self) -> Result<bool, Failure> {
        let Some(stream) = &self.stream else {
            return Err(Failure::Reset);
        };
        match stream.take_error() {
            Ok(Some(e)) | Err(e) => return Err(Failure::of_connect(&e)),
            Ok(None) => {}
        }
        match stream.peer_addr() {
            Ok(_) => {
                let _ = stream.set_nodelay(true);
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(Failure::of_connect(&e)),
        }
    }

    /// Writes what is left of `bytes` (the request); true once it is all out.
    pub fn write(&mut self, bytes: &[u8]) -> Result<bool, Failure> {
        let Some(stream) = &mut self.stream else {
            return Err(Failure::Reset);
        };
        while self.written < bytes.len() {
            match stream.write(&bytes[self.written..]) {
                Ok(0) => return Err(Failure::Reset),
                Ok(n) => self.written += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(Failure::Reset),
            }
        }
        Ok(true)
    }

    /// Reads what the socket has; the response (or why there is none) once it is
    /// decided, `None` while more is to come. `scratch` is the loop's one read buffer:
    /// what a read brings is copied from there to the connection's own (a response head
    /// is a few hundred bytes), so that safe code reads into memory zeroed once, not
    /// before every read.
    /// `closed`: the peer's end had closed when the event was taken, so the end of the
    /// stream is there to read after the data (no new event will say so).
    pub fn read(
        &mut self,
        closed: bool,
        scratch: &mut [u8],
    ) -> Option<Result<http::Response, Failure>> {
        let stream = self.stream.as_mut()?;
        loop {
            let n = match stream.read(scratch) {
                Ok(0) => return Some(self.reader.eof()),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return Some(Err(Failure::Reset)),
            };
            self.buf.extend_from_slice(&scratch[..n]);
            match self.reader.feed(&mut self.buf) {
                Ok(Some(r)) => return Some(Ok(r)),
                Err(f) => return Some(Err(f)),
                Ok(None) => {}
            }
            if n < scratch.len() && !closed {
                // The socket had no more. Its registration is edge-triggered, and more
                // data arriving later is a new edge: no need to read until it says
                // "would block", which would be one more system call per request.
                return None;
            }
        }
    }
}

/// What the events of one wake-up share.
struct Wake<'a, 'r> {
    /// The loop's one read buffer.
    scratch: &'a mut [u8],
    /// The last clock reading, if one was taken.
    clock: Option<Instant>,
    /// The recorder, once locked.
    rec: Option<MutexGuard<'r, Recorder>>,
}

/// What one event loop needs of the run.
#[derive(Debug)]
pub(crate) struct Loop<'a> {
    pub ctx: &'a Ctx,
    /// No request starts at or after this.
    pub deadline: Option<Instant>,
    /// Requests started by every loop of the run (for `--requests`).
    pub budget: &'a AtomicU64,
}

impl Loop<'_> {
    /// Runs `connections` connections to their end; an I/O error of the poller itself
    /// (not of a connection) ends it early.
    pub fn run(&self, connections: usize) -> std::io::Result<()> {
        let mut poll = Poll::new()?;
        let mut events = Events::with_capacity(connections.clamp(16, 1024));
        let now = clock::now();
        let mut slots: Vec<Slot> = (0..connections)
            .map(|_| Slot::new(self.ctx.template.head_only, now))
            .collect();
        let mut scratch = vec![0u8; 2 * http::READ_BUFFER];
        let mut rec = None;
        for (i, slot) in slots.iter_mut().enumerate() {
            self.next(&poll, slot, i, now, &mut rec);
        }
        drop(rec);
        let mut next_scan = now;
        // Empty polls in a row, counted while spinning.
        let mut empty = SPIN_POLLS;
        loop {
            let wait = if empty < SPIN_POLLS {
                Duration::ZERO
            } else {
                SCAN
            };
            poll_spinning(&mut poll, &mut events, wait, &mut empty)?;
            if events.is_empty() && wait == Duration::ZERO {
                continue;
            }
            // One lock of the recorder for all the responses of this wake-up, and the
            // clock read only when they did not read it already.
            let mut wake = Wake {
                scratch: &mut scratch,
                clock: None,
                rec: None,
            };
            for ev in events.iter() {
                let i = ev.token().0;
                if let Some(slot) = slots.get_mut(i) {
                    self.ready(&poll, slot, i, ev, &mut wake);
                }
            }
            let Wake { clock, mut rec, .. } = wake;
            let now = clock.unwrap_or_else(clock::now);
            if now >= next_scan {
                next_scan = now + SCAN;
                for (i, slot) in slots.iter_mut().enumerate() {
                    self.scan(&poll, slot, i, now, &mut rec);
                }
                if slots.iter().all(|s| s.phase == Phase::Done) {
                    return Ok(());
                }
            }
        }
    }

    /// Finds requests out of time and connections at the end of their pause.
    fn scan<'r>(
        &'r self,
        poll: &Poll,
        slot: &mut Slot,
        i: usize,
        now: Instant,
        rec: &mut Option<MutexGuard<'r, Recorder>>,
    ) {
        match slot.phase {
            Phase::Connecting | Phase::Writing | Phase::Reading
                if now - slot.started >= self.ctx.cfg.timeout =>
            {
                self.finish(poll, slot, i, now, Err(Failure::Timeout), rec);
            }
            Phase::Paused(until) if now >= until => {
                self.next(poll, slot, i, now, rec);
            }
            Phase::Paused(_) if self.ctx.stopping() => slot.phase = Phase::Done,
            _ => {}
        }
    }

    /// Something happened on `slot`'s socket: take it as far as it goes.
    fn ready<'r>(
        &'r self,
        poll: &Poll,
        slot: &mut Slot,
        i: usize,
        ev: &Event,
        wake: &mut Wake<'_, 'r>,
    ) {
        let closed = ev.is_read_closed() || ev.is_error();
        let Wake {
            scratch,
            clock,
            rec,
        } = wake;
        let mut now = || *clock.insert(clock::now());
        if slot.phase == Phase::Connecting {
            match slot.connected() {
                Ok(true) => slot.phase = Phase::Writing,
                // Not connected yet: a wake-up for something else.
                Ok(false) => return,
                Err(f) => return self.finish(poll, slot, i, now(), Err(f), rec),
            }
        }
        if slot.phase == Phase::Writing {
            match slot.write(&self.ctx.template.bytes) {
                Ok(true) => slot.phase = Phase::Reading,
                Ok(false) => return,
                Err(f) => return self.finish(poll, slot, i, now(), Err(f), rec),
            }
            // Usually the answer cannot be in yet, and its arrival is the next event.
            // But a server may answer before a long request is all written (a 413,
            // say): then this event, which told of it, is the only one.
            if !ev.is_readable() && !closed {
                return;
            }
        }
        if slot.phase == Phase::Reading {
            let r = slot.read(closed, scratch);
            if let Some(r) = r {
                self.finish(poll, slot, i, now(), r, rec);
            }
        }
    }

    /// Records the end of `slot`'s request at `now` and starts its next one.
    fn finish<'r>(
        &'r self,
        poll: &Poll,
        slot: &mut Slot,
        i: usize,
        now: Instant,
        result: Result<http::Response, Failure>,
        rec: &mut Option<MutexGuard<'r, Recorder>>,
    ) {
        let started = self.ctx.started;
        let outcome = match &result {
            Ok(r) => Outcome::Status(r.status),
            Err(f) => Outcome::Failed(*f),
        };
        rec.get_or_insert_with(|| self.ctx.rec.lock().expect("recorder lock"))
            .sent_and_record(now - started, now - slot.started, outcome);
        let reuse = matches!(&result, Ok(r) if self.ctx.cfg.keep_alive && !r.close);
        if !reuse {
            slot.drop_connection(poll, self.ctx.template.head_only);
        }
        slot.buf.clear();
        if result.is_err() {
            slot.phase = Phase::Paused(now + PAUSE_AFTER_FAILURE);
            return;
        }
        self.next(poll, slot, i, now, rec);
    }

    /// Starts `slot`'s next request at `now`, if the run is not over.
    fn next<'r>(
        &'r self,
        poll: &Poll,
        slot: &mut Slot,
        i: usize,
        now: Instant,
        rec: &mut Option<MutexGuard<'r, Recorder>>,
    ) {
        slot.phase = Phase::Done;
        if self.deadline.is_some_and(|d| now >= d) || self.ctx.stopping() {
            slot.stream = None;
            return;
        }
        if let Some(n) = self.ctx.cfg.requests
            && self.budget.fetch_add(1, Ordering::Relaxed) >= n
        {
            slot.stream = None;
            return;
        }
        slot.started = now;
        slot.written = 0;
        if slot.stream.is_some() {
            slot.phase = Phase::Writing;
            match slot.write(&self.ctx.template.bytes) {
                Ok(true) => slot.phase = Phase::Reading,
                Ok(false) => {}
                Err(f) => self.finish(poll, slot, i, now, Err(f), rec),
            }
            return;
        }
        match connect(poll, self.ctx.addr, i) {
            Ok(s) => {
                slot.stream = Some(s);
                slot.phase = Phase::Connecting;
            }
            Err(f) => self.finish(poll, slot, i, now, Err(f), rec),
        }
    }
}

/// Polls for at most `wait`; `empty` counts the polls in a row that found nothing
/// without waiting (against [`SPIN_POLLS`]). An interrupted poll finds nothing.
pub(crate) fn poll_spinning(
    poll: &mut Poll,
    events: &mut Events,
    wait: Duration,
    empty: &mut u32,
) -> std::io::Result<()> {
    match poll.poll(events, Some(wait)) {
        Err(e) if e.kind() == ErrorKind::Interrupted => events.clear(),
        Err(e) => return Err(e),
        Ok(()) => {}
    }
    if !events.is_empty() {
        *empty = 0;
    } else if wait == Duration::ZERO {
        *empty = empty.saturating_add(1);
        // Should the target share this CPU, let it run: its answers are what we wait
        // for. Alone on the CPU, this returns at once.
        std::thread::yield_now();
    }
    Ok(())
}

pub(crate) fn connect(poll: &Poll, addr: SocketAddr, i: usize) -> Result<TcpStream, Failure> {
    let mut s = TcpStream::connect(addr).map_err(|e| Failure::of_connect(&e))?;
    poll.registry()
        .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
        .map_err(|e| Failure::of_connect(&e))?;
    Ok(s)
}
