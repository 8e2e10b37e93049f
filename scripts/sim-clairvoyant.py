#!/usr/bin/env python3
"""What a clairvoyant autoscaler could do on a trace: a reference for `bellows sim`.

For every minute of the trace it picks the instance count that would have been best
for that minute's actual per-second requests, knowing them in advance, with instances
that take no time to start and are billed only for the minutes they are chosen. A
real policy knows less and pays for start-ups, so the frontier printed (instance-hours
against seconds over the SLO) is, up to the queue each minute starts with (see below),
a floor under every policy's point on the same trace.

It uses the simulator's instance model (crates/bellows-core/src/sim/model.rs: a fluid
backlog, the p99 of a processor-sharing queue at the utilisation smoothed over 5 s,
capped at 0.95; a second is over the SLO when its p99 is, or when more than 1% of its
requests are turned away) with the load spread evenly; each minute's seconds over the
SLO at N instances come from running the whole trace at N, so the queue a minute
starts with is the one N instances would have left. Keep it in step with model.rs.

    scripts/sim-clairvoyant.py TRACE SCALE DAYS [NAME=INSTANCE_HOURS,SECONDS_OVER ...]

Defaults match examples/sim (100 requests a second per instance, 50 ms, p99 SLO 1 s,
a 60 s queue). Pure Python: about two minutes for 14 days.
"""
import gzip
import math
import sys

CAPACITY, SERVICE_S, SLO_S = 100.0, 0.05, 1.0
MAX_IN_FLIGHT = CAPACITY * 60.0
P99_OF_MEAN = math.log(100.0)
ALPHA = 1.0 - math.exp(-1.0 / 5.0)
MAX_N = 32


def over_per_minute(counts, scale, n):
    """Seconds over the SLO in each minute with n instances throughout."""
    out = [0] * ((len(counts) + 59) // 60)
    q, rate = 0.0, -1.0
    for i, c in enumerate(counts):
        arrivals = c * scale / n
        work = q + arrivals
        left = work - min(work, CAPACITY)
        rejected = 0.0
        if left > MAX_IN_FLIGHT:
            rejected, left = left - MAX_IN_FLIGHT, MAX_IN_FLIGHT
        q = left
        rate = arrivals if rate < 0 else rate + (arrivals - rate) * ALPHA
        rho = min(rate / CAPACITY, 0.95)
        p99 = P99_OF_MEAN * SERVICE_S / (1 - rho) + left / CAPACITY if arrivals > 0 else 0.0
        if p99 > SLO_S or (c > 0 and rejected > 0.01 * arrivals):
            out[i // 60] += 1
    return out


def frontier(table, price):
    """Per minute, the n minimising over + price * n: (instance-hours, seconds over)."""
    ih, over = 0.0, 0
    for m in range(len(table[1])):
        best = min(table, key=lambda n: table[n][m] + price * n)
        ih += best / 60
        over += table[best][m]
    return ih, over


def interpolate(hull, x_key, y_key, x):
    """y at x along the hull's points sorted by x (mixing two per-minute choices)."""
    pts = sorted(hull, key=lambda p: p[x_key])
    # Past either end, the end's value: more than the clairvoyant ever uses buys nothing.
    if x <= pts[0][x_key]:
        return pts[0][y_key]
    for a, b in zip(pts, pts[1:]):
        if a[x_key] <= x <= b[x_key]:
            f = (x - a[x_key]) / (b[x_key] - a[x_key]) if b[x_key] > a[x_key] else 0
            return a[y_key] + f * (b[y_key] - a[y_key])
    return pts[-1][y_key]


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    path, scale, days = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        counts = [int(x) for _, x in zip(range(int(days * 86400)), f)]
    table = {n: over_per_minute(counts, scale, n) for n in range(1, MAX_N + 1)}
    hull = [frontier(table, 0.05 * 1.15**k) for k in range(60)]
    print("instance-hours  seconds over the SLO  (clairvoyant, per minute)")
    for ih, over in hull[::6]:
        print(f"{ih:14.1f}  {over:20d}")
    # Each point given as NAME=INSTANCE_HOURS,SECONDS_OVER: the clairvoyant at its cost.
    for arg in sys.argv[4:]:
        name, point = arg.split("=")
        ih, over = (float(v) for v in point.split(","))
        at_cost = interpolate(hull, 0, 1, ih)
        for_slo = interpolate(hull, 1, 0, over)
        print(
            f"{name}: {ih:.1f} instance-hours, {over:.0f} s over the SLO; the clairvoyant: "
            f"{at_cost:.0f} s at {ih:.1f} instance-hours, {for_slo:.1f} instance-hours for {over:.0f} s"
        )


if __name__ == "__main__":
    main()
