//! The closed loop's fast path: one thread, one `epoll` set, N keep-alive connections,
//! and a callback per readiness event, as wrk does. A response that completes is
//! recorded and the next request written in the same turn of the loop, with no task to
//! wake and no scheduler between the two. Used for `--concurrency N` with keep-alive;
//! everything else runs on tokio.

use std::io::{ErrorKind, Read, Write};
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use tokio::time::Instant;

use crate::Ctx;
use crate::http::{BodyLen, Failure, parse_head, response_end};
use crate::record::Outcome;

#[derive(Debug, PartialEq, Eq)]
enum State {
    Connecting,
    Writing,
    Reading,
    /// Waiting out a pause after a failure before connecting again.
    Resting(Instant),
    Done,
}

#[derive(Debug)]
struct Conn {
    stream: Option<TcpStream>,
    state: State,
    buf: Vec<u8>,
    filled: usize,
    written: usize,
    sent_at: Instant,
    /// Registered for writability too: while connecting, or after a write would block.
    /// Otherwise only for reads, so that acknowledgements do not wake the loop.
    write_interest: bool,
    /// A large fixed-length body being skipped: bytes still to come, and the response's
    /// status and whether it closes.
    skipping: Option<(usize, u16, bool)>,
}

/// Runs the closed loop on the calling thread until the deadline, the request budget
/// or a stop; returns how long it ran.
pub(crate) fn closed_loop(ctx: &Ctx, connections: usize) -> Duration {
    let deadline = match (ctx.cfg.duration, ctx.cfg.requests) {
        (Some(d), _) => Some(ctx.started + d),
        (None, Some(_)) => None,
        (None, None) => Some(ctx.started + Duration::from_secs(10)),
    };
    let Ok(mut poll) = Poll::new() else {
        return Duration::ZERO;
    };
    let mut events = Events::with_capacity(1024);
    let mut budget = ctx.cfg.requests.unwrap_or(u64::MAX);
    let mut conns: Vec<Conn> = (0..connections)
        .map(|_| Conn {
            stream: None,
            state: State::Resting(ctx.started),
            buf: vec![0; 16 * 1024],
            filled: 0,
            written: 0,
            sent_at: ctx.started,
            skipping: None,
            write_interest: false,
        })
        .collect();
    let mut last_sweep = Instant::now();
    loop {
        let now = Instant::now();
        let ending = deadline.is_some_and(|d| now >= d) || ctx.stopping();
        // Start or restart connections that rest, time out requests, see if all done.
        if now - last_sweep >= Duration::from_millis(20)
            || conns.iter().any(|c| matches!(c.state, State::Resting(_)))
        {
            last_sweep = now;
            for (i, c) in conns.iter_mut().enumerate() {
                match c.state {
                    State::Resting(until) if ending || budget == 0 => {
                        let _ = until;
                        c.state = State::Done;
                    }
                    State::Resting(until) if now >= until => {
                        budget -= 1;
                        start(ctx, &poll, c, i, now);
                    }
                    State::Connecting | State::Writing | State::Reading
                        if now - c.sent_at >= ctx.cfg.timeout =>
                    {
                        fail(ctx, &poll, c, Failure::Timeout, now);
                    }
                    _ => {}
                }
            }
        }
        if conns.iter().all(|c| c.state == State::Done) {
            break;
        }
        let wait = match deadline {
            Some(d) if !ending => (d - now).min(Duration::from_millis(20)),
            _ => Duration::from_millis(20),
        };
        if poll.poll(&mut events, Some(wait)).is_err() {
            continue;
        }
        let now = Instant::now();
        let ending = deadline.is_some_and(|d| now >= d) || ctx.stopping();
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(c) = conns.get_mut(i) else { continue };
            if c.state == State::Connecting && (ev.is_writable() || ev.is_error()) {
                let ok = c.stream.as_ref().is_some_and(|s| {
                    s.take_error().ok().flatten().is_none() && s.peer_addr().is_ok()
                });
                if !ok {
                    let f = if ev.is_error() || ev.is_write_closed() {
                        Failure::ConnectRefused
                    } else {
                        Failure::ConnectOther
                    };
                    fail(ctx, &poll, c, f, now);
                    continue;
                }
                c.state = State::Writing;
            }
            if c.state == State::Writing {
                write(ctx, &poll, c, i, now);
            }
            if c.state == State::Reading && c.write_interest {
                interest(&poll, c, i, false);
            }
            if c.state == State::Reading
                && (ev.is_readable() || ev.is_error() || ev.is_read_closed())
            {
                read(ctx, &poll, c, now, ending, &mut budget, i);
            }
        }
    }
    ctx.started.elapsed()
}

/// Connects and, once connected, sends the first request.
fn start(ctx: &Ctx, poll: &Poll, c: &mut Conn, i: usize, now: Instant) {
    c.sent_at = now;
    c.filled = 0;
    c.written = 0;
    match TcpStream::connect(ctx.addr) {
        Ok(mut s) => {
            let _ = s.set_nodelay(true);
            if poll
                .registry()
                .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                .is_err()
            {
                c.state = State::Resting(now + Duration::from_millis(10));
                return;
            }
            c.stream = Some(s);
            c.write_interest = true;
            c.state = State::Connecting;
        }
        Err(e) => {
            let f = if e.kind() == ErrorKind::ConnectionRefused {
                Failure::ConnectRefused
            } else {
                Failure::ConnectOther
            };
            fail(ctx, poll, c, f, now);
        }
    }
}

fn write(ctx: &Ctx, poll: &Poll, c: &mut Conn, i: usize, now: Instant) {
    let Some(s) = c.stream.as_mut() else { return };
    let req = &ctx.template.bytes;
    while c.written < req.len() {
        match s.write(&req[c.written..]) {
            Ok(0) => return fail(ctx, poll, c, Failure::Reset, now),
            Ok(n) => c.written += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if !c.write_interest {
                    interest(poll, c, i, true);
                }
                return;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return fail(ctx, poll, c, Failure::Reset, now),
        }
    }
    c.state = State::Reading;
}

fn read(
    ctx: &Ctx,
    poll: &Poll,
    c: &mut Conn,
    now: Instant,
    ending: bool,
    budget: &mut u64,
    i: usize,
) {
    loop {
        let Some(s) = c.stream.as_mut() else { return };
        if c.filled == c.buf.len() {
            // Bodies are not kept. A long fixed-length one is counted off as it comes.
            match parse_head(&c.buf[..c.filled], ctx.template.head_only) {
                Ok(Some(h)) => match h.body {
                    BodyLen::Fixed(n) if h.body_start + n > c.filled => {
                        c.skipping = Some((h.body_start + n - c.filled, h.status, h.close));
                        c.filled = 0;
                    }
                    _ if c.buf.len() < 1 << 20 => c.buf.resize(c.buf.len() * 2, 0),
                    _ => return fail(ctx, poll, c, Failure::BadResponse, now),
                },
                Ok(None) => return fail(ctx, poll, c, Failure::BadResponse, now),
                Err(f) => return fail(ctx, poll, c, f, now),
            }
        }
        let eof = match s.read(&mut c.buf[c.filled..]) {
            Ok(0) => true,
            Ok(n) => {
                c.filled += n;
                false
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return fail(ctx, poll, c, Failure::Reset, now),
        };
        let done = match c.skipping {
            Some((left, status, close)) if c.filled >= left => Ok(Some((0, status, close))),
            Some((left, status, close)) => {
                c.skipping = Some((left - c.filled, status, close));
                c.filled = 0;
                if eof { Ok(None) } else { continue }
            }
            None => response_end(&c.buf[..c.filled], ctx.template.head_only, eof),
        };
        match done {
            Ok(Some((_, status, close))) => {
                c.skipping = None;
                let at = now - ctx.started;
                ctx.rec.lock().expect("recorder lock").sent_and_record(
                    c.sent_at - ctx.started,
                    at,
                    now - c.sent_at,
                    Outcome::Status(status),
                );
                c.filled = 0;
                c.written = 0;
                if close || eof {
                    close_conn(poll, c);
                    c.state = State::Resting(now);
                    return;
                }
                if ending || *budget == 0 {
                    close_conn(poll, c);
                    c.state = State::Done;
                    return;
                }
                *budget -= 1;
                c.sent_at = now;
                c.state = State::Writing;
                write(ctx, poll, c, i, now);
                return;
            }
            Ok(None) if eof => return fail(ctx, poll, c, Failure::Reset, now),
            Ok(None) => {}
            Err(f) => return fail(ctx, poll, c, f, now),
        }
    }
}

/// Changes what the connection is registered for.
fn interest(poll: &Poll, c: &mut Conn, i: usize, write: bool) {
    if let Some(s) = c.stream.as_mut() {
        let want = if write {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        if poll.registry().reregister(s, Token(i), want).is_ok() {
            c.write_interest = write;
        }
    }
}

fn close_conn(poll: &Poll, c: &mut Conn) {
    c.skipping = None;
    if let Some(mut s) = c.stream.take() {
        let _ = poll.registry().deregister(&mut s);
    }
}

/// Records a failed request and rests the connection before the next.
fn fail(ctx: &Ctx, poll: &Poll, c: &mut Conn, f: Failure, now: Instant) {
    ctx.rec.lock().expect("recorder lock").sent_and_record(
        c.sent_at - ctx.started,
        now - ctx.started,
        now - c.sent_at,
        Outcome::Failed(f),
    );
    close_conn(poll, c);
    c.filled = 0;
    c.written = 0;
    // Do not spin on a refusing server.
    c.state = State::Resting(now + Duration::from_millis(10));
}
