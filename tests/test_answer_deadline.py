"""Whether a request that waited for a worker could still be answered
within REQUEST_TIMEOUT, in process (request/deadline.py): by the time this
worker's answers of its kind take to start, the slowest of the last 16 and
a quarter, or the pool's last word where the worker has none. The
containers' side: test_overload_goodput.py."""

from __future__ import annotations

import os
import time

from flaskbox.request import deadline


def environ(path: str, method: str = "GET") -> dict:
    return {"PATH_INFO": path, "REQUEST_METHOD": method}


def test_a_kind_is_the_method_and_the_path_with_each_numbered_segment_one():
    assert deadline.kind(environ("/users/12/edit")) == deadline.kind(environ("/users/34/edit")) == \
        "GET /users/#/edit"
    assert deadline.kind(environ("/static/app.0123abcd.css")) == "GET /static/#"
    assert deadline.kind(environ("/login", "POST")) == "POST /login" != deadline.kind(environ("/login"))
    assert deadline.kind(environ("/")) == "GET /"


def test_a_request_is_refused_once_its_answer_could_not_start_in_time():
    answers = deadline.AnswerTimes()
    login = environ("/login")
    for seconds in (0.6, 0.8, 0.7):
        answers.took(login, seconds)
    assert answers.expected(login) == 0.8 * deadline.MARGIN
    # 3 s of REQUEST_TIMEOUT: 1.9 s waited leaves 1.1 s, more than 0.8 and a quarter; 2.1 does not.
    assert not answers.too_late(login, 1.9, 3.0)
    assert answers.too_late(login, 2.1, 3.0)


def test_a_slow_kind_never_refuses_a_quick_one_nor_an_unknown_one():
    answers = deadline.AnswerTimes()
    answers.took(environ("/sleep/2"), 2.0)
    answers.took(environ("/"), 0.002)
    # A page that waited two seconds behind the report still answers in time.
    assert not answers.too_late(environ("/"), 2.0, 3.0)
    assert answers.too_late(environ("/sleep/5"), 2.0, 3.0)  # the same kind as /sleep/2
    assert not answers.too_late(environ("/never-seen"), 2.9, 3.0)


def test_the_recent_answers_count_and_the_kinds_kept_are_bounded():
    answers = deadline.AnswerTimes()
    page = environ("/page")
    answers.took(page, 5.0)
    for _ in range(deadline.KEPT):
        answers.took(page, 0.1)
    assert answers.expected(page) == 0.1 * deadline.MARGIN  # the slow one has left the window
    for number in range(deadline.KINDS + 10):
        answers.took(environ(f"/slug-{chr(97 + number % 26)}{number // 26 * 'x'}"), 0.1)
    assert len(answers.recent) == deadline.KINDS


class Running:
    """A request still running, as the watchdog keeps it: its environ and
    when its handler began."""

    def __init__(self, path: str, seconds_ago: float):
        self.environ, self.since = environ(path), time.monotonic() - seconds_ago


def test_a_request_still_running_longer_than_the_answers_counts_at_once():
    # The machine slowed down: a login runs 2 s where the last ones took 0.8.
    answers = deadline.AnswerTimes()
    login = environ("/login")
    answers.took(login, 0.8)
    running = [Running("/login", 2.0), Running("/", 5.0)]  # another kind's long one says nothing
    assert 2.0 * deadline.MARGIN <= answers.expected(login, running) < 2.1 * deadline.MARGIN
    assert answers.too_late(login, 0.6, 3.0, running) and not answers.too_late(login, 0.6, 3.0)


def answer_elsewhere(path, *seconds) -> None:
    """Another worker of the pool (a fork) answers logins in these times."""
    pid = os.fork()
    if pid == 0:
        try:
            answering = shared(path)
            for each in seconds:
                answering.took(environ("/login"), each)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_a_worker_goes_by_the_longer_of_its_own_answers_and_the_pools_last_word(tmp_path, monkeypatch):
    path = tmp_path / "answer-times"
    answer_elsewhere(path, 2.0, 2.4)
    fresh = shared(path)
    login = environ("/login")
    assert fresh.expected(login) == 2.4 * deadline.MARGIN
    assert fresh.too_late(login, 0.5, 3.0)  # where it would have let it in, and seen it run past
    assert fresh.expected(environ("/")) == 0.0  # a kind nobody answered: let in
    # Its own answers, once it has them, count beside the pool's word.
    fresh.took(login, 0.3)
    assert fresh.expected(login) == 0.3 * deadline.MARGIN  # its own answer is the pool's last word now
    answer_elsewhere(path, 1.6)  # another worker's logins slow down (more ran at once there)
    assert fresh.expected(login) == 1.6 * deadline.MARGIN
    fresh.took(login, 0.4)
    assert fresh.expected(login) == 0.4 * deadline.MARGIN
    # The pool's word grows old: a minute on, a fresh worker measures afresh.
    later = time.monotonic() + deadline.BELIEVED + 1
    monkeypatch.setattr(deadline, "monotonic", lambda: later)
    assert shared(path).expected(login) == 0.0


def shared(path) -> deadline.AnswerTimes:
    """A worker's answer times, the pool's record at `path`."""
    answers = deadline.AnswerTimes()
    answers.shared_in(path)
    return answers


def test_a_folder_it_cannot_write_leaves_each_worker_its_own(tmp_path):
    answers = shared(tmp_path / "missing" / "answer-times")
    answers.took(environ("/login"), 0.5)
    assert answers.pool is None and answers.expected(environ("/login")) == 0.5 * deadline.MARGIN
