//! The open loop on the closed loop's kind of event loop: each request goes out at its
//! due time whatever has come back, on an idle keep-alive connection, or a new one up
//! to `--max-connections`; when none is free it waits in line, and its latency still
//! counts from when it was due (no coordinated omission). One thread drives thousands
//! of requests a second with a clock read per wake-up, where a task a request (what
//! this replaced) fell behind its schedule at high rates and counted its own lag as
//! the server's.

use std::collections::VecDeque;
use std::sync::MutexGuard;
use std::time::Duration;

use mio::event::Event;
use mio::{Events, Poll};
use tokio::time::Instant;

use crate::closed::{Phase, SCAN, SPIN_POLLS, Slot, connect, poll_spinning};
use crate::http::{self, Failure};
use crate::record::{Outcome, Recorder};
use crate::schedule::Plan;
use crate::{Ctx, clock};

/// What one open event loop needs of the run.
#[derive(Debug)]
pub(crate) struct Loop<'a> {
    pub ctx: &'a Ctx,
    pub plan: &'a Plan,
    /// This loop sends requests `share`, `share + of`, `share + 2 of`, ... of the plan.
    pub share: usize,
    pub of: usize,
    /// The most connections this loop opens at once.
    pub max_connections: usize,
}

/// The loop's connections, by what they are free for.
struct Pool {
    slots: Vec<Slot>,
    /// Connected and idle: the next request goes to the last one.
    idle: Vec<usize>,
    /// Without a connection.
    free: Vec<usize>,
    /// Requests due with no connection to take them, by due time.
    waiting: VecDeque<Instant>,
    /// Requests in flight (connecting, writing or reading).
    busy: usize,
}

impl Loop<'_> {
    /// Sends this loop's share of the plan and waits for the answers; the due time of
    /// the last request sent. An I/O error of the poller itself ends it early.
    pub fn run(&self) -> std::io::Result<Duration> {
        let mut poll = Poll::new()?;
        let mut events = Events::with_capacity(1024);
        let mut pool = Pool {
            slots: Vec::new(),
            idle: Vec::new(),
            free: Vec::new(),
            waiting: VecDeque::new(),
            busy: 0,
        };
        let mut scratch = vec![0u8; 2 * http::READ_BUFFER];
        let limit = self.ctx.cfg.requests;
        let mut due = self
            .plan
            .send_times()
            .enumerate()
            .skip(self.share)
            .step_by(self.of.max(1))
            .take_while(|(k, _)| limit.is_none_or(|n| (*k as u64) < n))
            .map(|(_, d)| d)
            .peekable();
        let mut last = Duration::ZERO;
        let mut next_scan = clock::now();
        let mut empty = SPIN_POLLS;
        loop {
            let now = clock::now();
            // Everything due by now goes out (or joins the line, behind those already
            // in it), under one lock.
            let mut rec: Option<MutexGuard<'_, Recorder>> = None;
            self.drain(&poll, &mut pool, now, &mut rec);
            while let Some(d) = due.peek().copied() {
                if self.ctx.stopping() {
                    while due.next().is_some() {}
                    break;
                }
                let due_at = self.ctx.started + d;
                if due_at > now {
                    break;
                }
                due.next();
                last = d;
                rec.get_or_insert_with(|| self.ctx.rec.lock().expect("recorder lock"))
                    .sent(d);
                self.dispatch(&poll, &mut pool, due_at, now, &mut rec);
            }
            if self.ctx.stopping() {
                pool.waiting.clear();
            }
            if due.peek().is_none() && pool.waiting.is_empty() && pool.busy == 0 {
                return Ok(last);
            }
            // Sleep until the next request is due (the poller counts whole
            // milliseconds, so the last one is polled through), or an answer comes.
            let wait = match due.peek() {
                Some(d) => {
                    let until = (self.ctx.started + *d).saturating_duration_since(now);
                    if until <= Duration::from_millis(1) || empty < SPIN_POLLS {
                        Duration::ZERO
                    } else {
                        (until - Duration::from_millis(1)).min(SCAN)
                    }
                }
                None if empty < SPIN_POLLS => Duration::ZERO,
                None => SCAN,
            };
            drop(rec);
            poll_spinning(&mut poll, &mut events, wait, &mut empty)?;
            let mut rec: Option<MutexGuard<'_, Recorder>> = None;
            let mut clock = None;
            for ev in events.iter() {
                let i = ev.token().0;
                if i < pool.slots.len() {
                    self.ready(&poll, &mut pool, i, ev, &mut scratch, &mut clock, &mut rec);
                }
            }
            let now = clock.unwrap_or_else(clock::now);
            if now >= next_scan {
                next_scan = now + SCAN;
                for i in 0..pool.slots.len() {
                    let s = &pool.slots[i];
                    if matches!(s.phase, Phase::Connecting | Phase::Writing | Phase::Reading)
                        && now - s.started >= self.ctx.cfg.timeout
                    {
                        self.finish(&poll, &mut pool, i, now, Err(Failure::Timeout), &mut rec);
                    }
                }
            }
            self.drain(&poll, &mut pool, now, &mut rec);
        }
    }

    /// Requests in line go out on the connections that came free.
    fn drain<'r>(
        &'r self,
        poll: &Poll,
        pool: &mut Pool,
        now: Instant,
        rec: &mut Option<MutexGuard<'r, Recorder>>,
    ) {
        while !pool.waiting.is_empty()
            && (!pool.idle.is_empty()
                || !pool.free.is_empty()
                || pool.slots.len() < self.max_connections)
        {
            let due_at = pool.waiting.pop_front().expect("not empty");
            self.dispatch(poll, pool, due_at, now, rec);
        }
    }

    /// A request due at `due_at` goes out on an idle connection, or a new one, or
    /// joins the line.
    fn dispatch<'r>(
        &'r self,
        poll: &Poll,
        pool: &mut Pool,
        due_at: Instant,
        now: Instant,
        rec: &mut Option<MutexGuard<'r, Recorder>>,
    ) {
        if let Some(i) = pool.idle.pop() {
            return self.start(poll, pool, i, due_at, now, rec);
        }
        // (The line is empty here or nothing is free: the main loop drains it first.)
        let i = match pool.free.pop() {
            Some(i) => i,
            None if pool.slots.len() < self.max_connections => {
                pool.slots.push(Slot::new(self.ctx.template.head_only, now));
                pool.slots.len() - 1
            }
            None => return pool.waiting.push_back(due_at),
        };
        self.start(poll, pool, i, due_at, now, rec);
    }

    /// Sends the request due at `due_at` on slot `i`, connecting first if it has no
    /// connection.
    fn start<'r>(
        &'r self,
        poll: &Poll,
        pool: &mut Pool,
        i: usize,
        due_at: Instant,
        now: Instant,
        rec: &mut Option<MutexGuard<'r, Recorder>>,
    ) {
        pool.busy += 1;
        let slot = &mut pool.slots[i];
        slot.started = due_at;
        slot.written = 0;
        slot.buf.clear();
        if slot.stream.is_none() {
            match connect(poll, self.ctx.addr, i) {
                Ok(s) => {
                    slot.stream = Some(s);
                    slot.phase = Phase::Connecting;
                }
                Err(f) => self.finish(poll, pool, i, now, Err(f), rec),
            }
            return;
        }
        slot.phase = Phase::Writing;
        match slot.write(&self.ctx.template.bytes) {
            Ok(true) => slot.phase = Phase::Reading,
            Ok(false) => {}
            Err(f) => self.finish(poll, pool, i, now, Err(f), rec),
        }
    }

    /// Something happened on slot `i`'s socket: take it as far as it goes.
    #[allow(clippy::too_many_arguments)]
    fn ready<'r>(
        &'r self,
        poll: &Poll,
        pool: &mut Pool,
        i: usize,
        ev: &Event,
        scratch: &mut [u8],
        clock: &mut Option<Instant>,
        rec: &mut Option<MutexGuard<'r, Recorder>>,
    ) {
        let closed = ev.is_read_closed() || ev.is_error();
        let mut now = || *clock.get_or_insert_with(clock::now);
        let slot = &mut pool.slots[i];
        match slot.phase {
            // An idle connection the server closed (its keep-alive timeout): gone.
            Phase::Idle if closed => {
                slot.drop_connection(poll, self.ctx.template.head_only);
                slot.phase = Phase::Done;
                pool.idle.retain(|j| *j != i);
                pool.free.push(i);
                return;
            }
            Phase::Connecting => match slot.connected() {
                Ok(true) => slot.phase = Phase::Writing,
                Ok(false) => return,
                Err(f) => return self.finish(poll, pool, i, now(), Err(f), rec),
            },
            _ => {}
        }
        if slot.phase == Phase::Writing {
            match slot.write(&self.ctx.template.bytes) {
                Ok(true) => slot.phase = Phase::Reading,
                Ok(false) => return,
                Err(f) => return self.finish(poll, pool, i, now(), Err(f), rec),
            }
            if !ev.is_readable() && !closed {
                return;
            }
        }
        if slot.phase == Phase::Reading
            && let Some(r) = slot.read(closed, scratch)
        {
            self.finish(poll, pool, i, now(), r, rec);
        }
    }

    /// Records the end of slot `i`'s request at `now` (its latency from when it was
    /// due), and makes the slot idle (its connection kept) or free.
    fn finish<'r>(
        &'r self,
        poll: &Poll,
        pool: &mut Pool,
        i: usize,
        now: Instant,
        result: Result<http::Response, Failure>,
        rec: &mut Option<MutexGuard<'r, Recorder>>,
    ) {
        pool.busy -= 1;
        let slot = &mut pool.slots[i];
        let outcome = match &result {
            Ok(r) => Outcome::Status(r.status),
            Err(f) => Outcome::Failed(*f),
        };
        rec.get_or_insert_with(|| self.ctx.rec.lock().expect("recorder lock"))
            .record(now - self.ctx.started, now - slot.started, outcome);
        let reuse = matches!(&result, Ok(r) if self.ctx.cfg.keep_alive && !r.close);
        if reuse {
            slot.buf.clear();
            slot.phase = Phase::Idle;
        } else {
            slot.drop_connection(poll, self.ctx.template.head_only);
            slot.phase = Phase::Done;
        }
        // The requests in line go out from the main loop (`drain`), not from here:
        // a start that fails at once ends here again, and would recurse.
        if reuse {
            pool.idle.push(i);
        } else {
            pool.free.push(i);
        }
    }
}
