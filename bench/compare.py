"""--before COMMIT: an earlier version of flaskbox measured beside this one,
in the same run and on the same image (its Python and nginx templates
mounted over this image's), and the chart of before against after and
issue 48's goals (prices.png)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from harness import REPO
from variants import WRAPPER_EDITS

# A lone worker (no master, no fork) freezes the app as a forked one starts
# (wsgi.prepare_the_master); an earlier version's wsgi.py, measured beside this
# one (--before), is given the same two lines, so that both are counted alike.
LONE_WORKER_FREEZE = "\n    if not uwsgi.masterpid():\n        gc.freeze()\n"
# The line that wraps the app, in an earlier version's wsgi.py (--before):
# the whole wrapper out, as WRAPPER_EDITS takes it out of this one's.
EARLIER_WRAPPERS = ("    return unread.Drained(outbound.wrap(serve, settings, uwsgi_option, uwsgi))",
                    "    return Serve(found.app, timeout, **common)",
                    "    serve = Serve(found.app, timeout, **common)")


def earlier(ref: str, out_dir: Path) -> tuple[Path, dict[str, str], dict[str, str]]:
    """Version `ref` (a git commit) of flaskbox's Python (a folder to mount
    over the image's), of its worker's wsgi.py without the wrapper (if known), and of
    nginx.conf and nginx-static.conf (file in the image: text)."""
    folder = out_dir / f"before-{ref}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "lib/flaskbox"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder), "--strip-components=2"], input=archive, check=True)
    # wsgi.py's place in that version's floor plan.
    inside = "pool/wsgi.py" if (folder / "pool" / "wsgi.py").exists() else "wsgi.py"
    wsgi = folder / inside
    wsgi.write_text(wsgi.read_text().rstrip("\n") + LONE_WORKER_FREEZE)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    folder.chmod(0o755)
    bare = wsgi.read_text()
    for line in EARLIER_WRAPPERS:
        bare = bare.replace(line, "    return found.app")
    for name, old, new in WRAPPER_EDITS["the whole wrapper (uWSGI calls the app)"]:  # as this one's
        if name == inside:
            bare = bare.replace(old, new)
    show = {name: subprocess.run(["git", "-C", str(REPO), "show", f"{ref}:{name}"], check=True,
                                 capture_output=True, text=True).stdout
            for name in ("nginx.conf", "nginx-static.conf")}
    # Empty where the wrapper is one no line above knows (prices.py needs it).
    unwrapped = {f"/usr/local/lib/flaskbox/flaskbox/{inside}": bare} if bare != wsgi.read_text() else {}
    return (folder, unwrapped,
            {"/etc/flaskbox/nginx.conf": show["nginx.conf"],
             "/etc/flaskbox/nginx-static.conf": show["nginx-static.conf"]})



# The goals, instructions a hello request (a static one for nginx's static
# file), as the chart draws them: issue 79's for the wrapper, issue 48's for nginx.
GOALS = {"the wrapper": 40000, "nginx, hello": 55000, "nginx, static file": 45000}


def before_after(results: dict) -> dict[str, tuple[int, int]]:
    """(before, after) instructions a request: the wrapper (a worker with it
    less one without), nginx on hello world and on the static file."""
    before, ref = results["before"], results["before"]["version"]
    workers = (before["uWSGI worker (instructions a hello request)"],
               results["uWSGI worker (instructions a hello request)"])
    wrapper = [workers[0][ref] - workers[0][f"{ref} without the whole wrapper"],
               workers[1]["flaskbox"] - workers[1]["without the whole wrapper (uWSGI calls the app)"]]
    nginx = (before["nginx (instructions a request, per route)"],
             results["nginx (instructions a request, per route)"]["flaskbox"])
    return {"the wrapper": (wrapper[0], wrapper[1]),
            "nginx, hello": (nginx[0]["hello"], nginx[1]["hello"]),
            "nginx, static file": (nginx[0]["static"], nginx[1]["static"])}


def chart(results: dict, path: Path) -> None:
    """Before and after, each against its goal (--before)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = before_after(results)
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for number, (name, (was, now)) in enumerate(pairs.items()):
        ax.bar(number - 0.2, was / 1000, 0.38, color="#a6d", label="before" if number == 0 else None)
        ax.bar(number + 0.2, now / 1000, 0.38, color="#2a7", label="after" if number == 0 else None)
        ax.hlines(GOALS[name] / 1000, number - 0.42, number + 0.42, colors="#d62", linestyles="--",
                  label="goal" if number == 0 else None)
        for offset, value in ((-0.2, was), (0.2, now)):
            ax.annotate(f"{value / 1000:.1f}k", (number + offset, value / 1000), ha="center", va="bottom",
                        fontsize=8)
    ax.set_xticks(range(len(pairs)), list(pairs))
    ax.set_ylabel("thousand instructions a request (callgrind)")
    ax.set_title(f"before ({results['before']['version']}) and after, in one run", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
