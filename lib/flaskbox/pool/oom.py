"""When the container runs out of memory, the kernel's OOM killer ends the
process with the highest score in its cgroup (with --memory; without a
limit, when the whole host runs out, on the host, where the workers are
then the first choice too). A uWSGI master killed takes
the container down (the arbiter stops it, an orchestrator replaces it); a
worker killed is replaced by its master in a moment, and only the requests
it held are lost. So each worker makes itself the first choice, as soon as
it is forked: its score is raised to the top (raising one's own needs no
privilege; lowering would), and among workers the largest goes first, the
one whose request asked for the memory. The masters, nginx, PID 1 and the
helpers keep the score Docker gave them, below every worker's. The
processes an app starts in a request inherit the worker's score."""

from __future__ import annotations

from ..log import error

# The top of the range: added to a process's share of memory (out of 1000),
# it puts every worker above every other process, whatever their sizes.
WORKER_SCORE_ADJ = 1000


def worker_first(path: str = "/proc/self/oom_score_adj") -> None:
    """In a worker just forked: the OOM killer's first choice."""
    try:
        with open(path, "w") as adj:
            adj.write(str(WORKER_SCORE_ADJ))
    except OSError as exc:
        error(f"cannot make this worker the OOM killer's first choice ({exc.strerror}): a master may be "
              "chosen instead")
