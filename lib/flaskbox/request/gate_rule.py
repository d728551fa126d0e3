"""The gate's rule (admission.py), one window's figures and what they say:
lower the limit, raise it, hold it, or rest the worker. Requests that
compute (the process's CPU a request, in Python's lock or out of it) and
wait for the lock or for a CPU: fewer at once, down to none while the
pool's other workers cover the CPUs. Requests that queue for a worker
while neither is busy: more. No I/O here: test_gate_rule.py drives every
case."""

from __future__ import annotations

# Of a window's probes: this share or more found the lock taken, it is
# contended; this share or less, it has room for twice as many requests
# (doubled, they keep it under TAKEN_MOST). Between, the limit holds. (At
# a tenth, a search whose engines parse on threads of their own, a fifth of
# the lock at two requests a process, never rose past two, and left a CPU
# idle.)
TAKEN_MOST, FREE_MOST = 0.5, 0.25
# Requests that compute this long on average (CPU seconds of the process,
# every thread's, over the requests that ended: CPython's switch interval,
# a turn at the lock) are lowered for. Shorter ones end within their turn:
# 5 ms waits at 64 clients keep the CPUs as busy, and need every thread.
COMPUTES = 0.005
# Seconds the process's threads waited for a CPU for each second they ran:
# this much or more, the CPUs are oversubscribed (on 2 CPUs, four
# processes running one request each wait as long as they run: 1.0; two
# each, 3.0); this little or less, there is room for more at once.
CPU_WAIT_MOST, CPU_WAIT_FEW = 1.5, 0.5
# Seconds the requests that reached the worker waited for one, on average,
# that say more would have run at once had they been let in.
QUEUED = 0.002


class Decision:
    """One window's figures and what they say: lower, raise or hold.
    `cpu_wait`: seconds the process's threads waited for a CPU for each
    second they ran (cpu_meter.CpuMeter)."""

    def __init__(self, taken: float, cpu_wait: float, waited: float, full: bool, limit: int, threads: int,
                 held_long: bool = False, free_before: bool = True, computes: bool = False,
                 others: int = 0, cpus: int = 0):
        self.taken, self.cpu_wait, self.waited = taken, cpu_wait, waited
        if limit < 1:
            self.limit = limit  # at rest: a quiet spell sets it back at one
        # Every place let in held by a request that has computed long (an
        # export): one more, so a quick page is not left behind it; but not
        # while they wait for a CPU, where one more only slows them all (a
        # login of half a second of CPU on a busy host: 504s, issue 69).
        elif held_long and limit < threads and not (computes and cpu_wait >= CPU_WAIT_MOST):
            self.limit = min(threads, limit * 2)
        # Requests that each compute for longer than a turn at the lock,
        # wherever they compute, and wait for the lock or for a CPU: more at
        # once only make each wait longer.
        elif computes and (taken >= TAKEN_MOST or cpu_wait >= CPU_WAIT_MOST) and limit > 1:
            # Taken in every probe, or waiting for a CPU four times as long
            # as that: a quarter, so that 16 become one in a second.
            self.limit = max(1, limit // (4 if taken >= 1.0 or cpu_wait >= 4 * CPU_WAIT_MOST else 2))
        # One request at once that still waits for a CPU, while the pool's
        # other workers let in as many as the container has CPUs (`others`,
        # their limits; `cpus`): this worker rests, taking none, until a
        # quiet spell sets it back at one (admission.IDLE_WINDOWS). Four
        # processes of one login each on the one CPU a busy host left them
        # each took four times its CPU to answer, and those let in near
        # their deadline passed it (docs/BENCHMARKS.md, "Overload, a worker at rest").
        elif computes and cpu_wait >= CPU_WAIT_MOST and limit == 1 and others >= cpus > 0:
            self.limit = 0
        # Requests waited, or none could have reached it: every thread let in
        # holds one (a stream, a long poll). The lock free for two windows in
        # a row (a page that lets it go for part of its work may leave it
        # free for the five probes of one), and CPUs to spare for the
        # requests that compute.
        elif taken <= FREE_MOST and free_before and not (computes and cpu_wait > CPU_WAIT_FEW) \
                and (waited >= QUEUED or full) and limit < threads:
            # Requests that hardly compute cost nothing more at once: fourfold.
            self.limit = min(threads, limit * (2 if computes else 4))
        else:
            self.limit = limit
