"""Worker counts follow the container's CPU quota, and can be overridden."""

import re

import pytest

from helpers import share_with_container

# "up to" and ADAPTIVE_THREADS' words with sync (request/admission.py).
SUMMARY = re.compile(r"(\d+) CPU\(s\) available: uWSGI (\d+) processes x (?:up to )?(\d+) threads"
                     r"(?: \(ADAPTIVE_THREADS[^)]*\))?, nginx (\d+) workers")


def summary(container) -> tuple[int, int, int, int]:
    match = SUMMARY.search(container.logs())
    assert match, container.logs()
    return tuple(int(n) for n in match.groups())


def running_workers(container) -> tuple[int, int]:
    """(uWSGI workers, nginx workers) actually running."""
    uwsgi = container.pids("flaskbox uWSGI worker")
    nginx = container.pids("nginx: worker process")
    return len(uwsgi), len(nginx)


# uWSGI: a process per CPU, at least 2, of 32 threads; nginx: a worker per CPU.
@pytest.mark.parametrize("cpus, expected", [("1", (1, 2, 32, 1)), ("2", (2, 2, 32, 2)),
                                            ("0.5", (1, 2, 32, 1))])
def test_counts_follow_the_cpu_quota(containers, cpus, expected):
    c = containers.serving(docker_args=("--cpus", cpus))
    assert summary(c) == expected
    _, processes, _, nginx_workers = expected
    assert running_workers(c) == (processes, nginx_workers)


def test_one_and_two_cpus_give_different_counts(containers):
    one = containers.serving(docker_args=("--cpus", "1"))
    two = containers.serving(docker_args=("--cpus", "2"))
    # uWSGI's floor of 2 processes holds at both: nginx's workers differ.
    assert running_workers(one) != running_workers(two)
    assert summary(one)[3] < summary(two)[3]


def test_counts_can_be_overridden(containers):
    c = containers.serving(env={"UWSGI_PROCESSES": "3", "UWSGI_THREADS": "3", "NGINX_WORKER_PROCESSES": "3"},
                           docker_args=("--cpus", "1"))
    assert summary(c) == (1, 3, 3, 3)
    assert running_workers(c) == (3, 3)
    # Three threads per worker: uWSGI reports 3 cores for each.
    assert "spawned uWSGI worker 1 (pid: " in c.logs() and "cores: 3)" in c.logs()


@pytest.mark.parametrize("cpu_max, cpus, capacity", [("150000 100000", 2, 1.5), ("50000 100000", 1, 0.5),
                                                     ("max 100000", None, None)])
def test_cgroup_v2_cpu_max_is_read(containers, tmp_path, cpu_max, cpus, capacity):
    # A cgroup v2 view mounted over /sys/fs/cgroup, whatever the host runs.
    fake = tmp_path / "cgroup"
    fake.mkdir()
    (fake / "cpu.max").write_text(f"{cpu_max}\n")
    tmp_path.chmod(0o755)
    share_with_container(fake)
    result = containers.run_once(
        "bash", "-c",
        "python3 -c 'from flaskbox.host import Host; h = Host(); print(h.cpus(), h.cpu_capacity())'; nproc",
        docker_args=("-v", f"{fake}:/sys/fs/cgroup:ro"))
    counted, worth, nproc = result.stdout.split()
    nproc = int(nproc)
    # The quota rounded up, never more than the CPUs it may run on (nproc);
    # no quota ("max") leaves nproc. The CPUs' worth it may use: the quota
    # itself, as the count's one source.
    assert int(counted) == (min(cpus, nproc) if cpus is not None else nproc)
    assert float(worth) == (min(capacity, nproc) if capacity is not None else nproc)
