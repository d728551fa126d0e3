"""What the entry-point starts and does not own takes the stop signals as
any program expects. The entry-point holds (blocks) SIGTERM, SIGINT and
SIGQUIT from the ENTRYPOINT's env on, so that PID 1 never drops a stop in
bash's start (test_stop_anytime.py); a blocked signal is inherited, so a
hook, PRE_START_PATH, a one-off command and the dev server get them
unblocked again: a SIGTERM a hook sends its own `sleep 10` ends it at once,
not 10 s later, and `docker stop` ends a one-off `sleep 30` at once, with
143."""

from __future__ import annotations

import re
import signal
import time

import pytest

from helpers import docker

STOP_SIGNALS = (1 << signal.SIGTERM - 1) | (1 << signal.SIGINT - 1) | (1 << signal.SIGQUIT - 1)

# Says its mask, then times a SIGTERM to a child of its own. (Not
# `timeout 1 sleep 30`: coreutils' timeout unblocks the signal for its
# child itself, held or not.)
HOOK = """#!/bin/sh
blocked=$(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/self/status)
start=$(date +%s%N)
sleep 10 &
child=$!
kill -TERM "$child"
wait "$child"
code=$?
echo "HOOK_NAME blocked=$blocked code=$code ms=$(( ($(date +%s%N) - start) / 1000000 ))" >&2
"""


def held(mask_hex: str) -> bool:
    return bool(int(mask_hex, 16) & STOP_SIGNALS)


def test_a_hooks_own_children_take_sigterm(containers, tmp_path):
    tmp_path.chmod(0o755)
    hooks = tmp_path / "hooks"
    hooks.mkdir(mode=0o755)
    hook = hooks / "10-timeout.sh"
    hook.write_text(HOOK.replace("HOOK_NAME", "drop-in"))
    hook.chmod(0o755)
    prestart = tmp_path / "prestart.sh"
    prestart.write_text(HOOK.replace("HOOK_NAME", "prestart"))
    prestart.chmod(0o644)
    c = containers.serving(env={"PRE_START_PATH": "/prestart/prestart.sh"}, docker_args=(
        "-v", f"{hooks}:/docker-entrypoint.d:ro", "-v", f"{tmp_path}:/prestart:ro"))
    logs = c.logs()
    for name in ("drop-in", "prestart"):
        said = re.search(rf"^{name} blocked=(\w+) code=(\d+) ms=(\d+)$", logs, re.M)
        assert said, logs
        blocked, code, ms = said.group(1), int(said.group(2)), int(said.group(3))
        # 143: the SIGTERM ended sleep; held, it waited its 10 s out (0).
        assert not held(blocked) and code == 128 + signal.SIGTERM and ms < 3000, said.group(0)


def test_docker_stop_ends_a_one_off_command_at_once(containers):
    c = containers.run("sleep", "30")
    c.wait_until(lambda: c.pids("sleep 30"), "the one-off command")
    status = c.exec("cat", f"/proc/{c.pids('sleep 30')[0]}/status").stdout
    assert not held(re.search(r"^SigBlk:\s*(\w+)", status, re.M).group(1)), status
    sent = time.time()
    docker("stop", "-t", "10", c.name, timeout=40)
    took = c.signal_to_exit_seconds(sent)
    # tini's exit for a child ended by SIGTERM; held, Docker's SIGKILL (137) after 10 s.
    assert c.exit_code() == 128 + signal.SIGTERM and took < 3, f"exit {c.exit_code()} after {took:.2f}s"


@pytest.mark.parametrize("argv", [("-d", "debug"), ()], ids=["debug", "production"])
def test_the_servers_hold_no_stop_signal_once_serving(containers, argv):
    # The dev server (under tini) and the arbiter (which unblocks them
    # once its handlers are set) take a stop at once.
    c = containers.serving(*argv)
    for pid, _, command in c.processes():
        if command.startswith(("python", "tini")):
            status = c.exec("cat", f"/proc/{pid}/status").stdout
            mask = re.search(r"^SigBlk:\s*(\w+)", status, re.M)
            assert mask is None or not held(mask.group(1)), f"{command}: {mask.group(0)}"

