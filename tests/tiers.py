"""The suite's tiers and the parallel phase's order, given at collection
(conftest.py's hook calls mark_and_order): which tests need the engine,
which run alone, which prove what differs between Pythons or nginx
versions, and which modules xdist's workers take first (docs/testing.md)."""

from __future__ import annotations

import collections

import pytest

# The suite's tiers (docs/testing.md), marked at collection:
# - `container`: the test needs the engine: it uses the image (every image
#   and container fixture starts from `image`) or a volume, directly or
#   through other fixtures, or its module drives docker itself. `-m "not
#   container"` is the in-process tier, under a minute.
# - `timed`: the test measures time or load, which other tests running
#   beside it would distort: tests/run.sh runs these alone, after the rest
#   ran on parallel workers. The `slow` ones, every user of `figure`, and
#   those below, whose bounds are a few seconds or less. In process too:
#   the in-process tier holds no test that measures time (a busy machine
#   would make it red, and end the run); its timed ones run once, alone,
#   before the serial phases.
# - `interpreter`: the test proves what differs between Pythons (uWSGI's
#   forks and threads, reloads, the hop from nginx, the dev server's
#   reloader, packages pinned by apps): the default base's timed tests in
#   CI, and on Debian 13 three of these modules (docs/testing.md).
# - `nginx`: the test proves what differs between nginx versions (HTTP/2's
#   and TLS's directives, header limits, the request parser, the proxy's
#   framing, caching and logs): with `interpreter`, what CI runs of the
#   untimed tests on the default base, whose nginx is the oldest.
CONTAINER_FIXTURES = {"image", "volume"}
INTERPRETER_MODULES = {"test_uwsgi_reports.py", "test_upstream_hop.py", "test_worker_pool.py",
                       "test_reload.py", "test_gevent_pins.py", "test_your_app.py", "test_debugger.py"}
NGINX_MODULES = {
    "test_tls.py", "test_tls_files.py", "test_proxy.py", "test_host.py", "test_host_header.py",
    "test_allowed_hosts.py", "test_forwarded_lines.py", "test_long_links.py", "test_header_limits.py",
    "test_client_limits.py", "test_limits.py", "test_request_framing.py", "test_request_bodies.py",
    "test_cut_responses.py", "test_compression.py", "test_ranges.py", "test_traversal.py", "test_static.py",
    "test_static_caching.py", "test_vary.py", "test_security_headers.py", "test_websockets.py",
    "test_request_id.py", "test_trace_context.py", "test_logs.py", "test_json_logs.py",
}
DOCKER_MODULES = {"test_bench.py", "test_bench_modes.py", "test_build.py"}
# Every container test there waits for a save to be served within a 2 s
# budget (the debug modules), or times when streams end at a stop or a
# reload (test_stream_finish.py), or judges what a load made of the pool
# (test_adaptive_threads.py, test_overload_goodput.py, which runs busy
# loops of its own beside it).
TIMED_MODULES = {"test_debug.py", "test_debug_errors.py", "test_stream_finish.py", "test_adaptive_threads.py",
                 "test_overload_goodput.py"}
# Slow, but measuring nothing it asserts on: the benchmark's smoke runs
# prove the harness runs and writes every figure (bounds of 10 s and up),
# so they run beside the other untimed tests (3 minutes off the serial
# phase, where they were the three slowest tests); and a build with a
# compiled wheel added (a new lock: the whole venv and uWSGI again).
UNTIMED_SLOW_MODULES = {"test_bench.py", "test_bench_modes.py", "test_build.py"}
# Slow tests that only wait, asserting no bound a busy machine could break:
# an export that takes its own 45 s, a disk that fills under a slow download
# (a minute off the serial phase: docs/testing.md).
UNTIMED_SLOW_TESTS = {
    "test_request_timeout.py": {"test_a_45_second_export_arrives_whole_with_the_defaults"},
    "test_cut_responses.py": {"test_a_download_whose_spool_disk_fills_up_is_cut_visibly"},
}
# The parallel phase's longest modules, longest first (by a full run's JUnit
# times; docs/testing.md, what it saved): tests/run.sh hands xdist's workers whole modules in
# collection order (--no-loadscope-reorder), so these start first and the
# rest fill in behind them. xdist's own order (most tests first) left the
# one-test bench smoke runs to the end, on one worker, the others idle.
LONGEST_FIRST = ("test_your_app.py", "test_bench_modes.py", "test_wsgi_bodies.py", "test_bench.py",
                 "test_pyproject_uv.py", "test_metrics.py", "test_install_on_start.py", "test_first_hour.py",
                 "test_gevent_pins.py", "test_reload.py", "test_resource_limits.py", "test_writable_paths.py",
                 "test_request_timeout.py")  # (its 45 s export: UNTIMED_SLOW_TESTS)
TIMED_TESTS = {
    "test_gevent.py": {"test_request_timeout_bounds_the_handler_not_the_stream",  # 504 within 3.5 s
                       "test_idle_and_overlong_streams_end_cleanly",  # ends 1.8 to 3.5 s in
                       "test_a_websocket_is_closed_at_stream_max_duration",  # 1.8 to 4 s
                       "test_streams_leave_a_tenth_of_the_slots_to_ordinary_requests"},  # under 2 s
    "test_streams.py": {"test_a_text_generator_flows_to_requests_with_gzip"},  # each chunk within 100 ms
    "test_supervision.py": {"test_helpers_dying_while_a_reload_waits_for_new_code_come_back_at_once",  # 5 s
                            "test_a_relay_killed_while_the_app_floods_stderr_comes_back_and_nothing_hangs"},
    "test_kubernetes_consistency.py": {"test_readiness_fails_as_soon_as_the_stop_starts",  # under 1 s
                                       "test_stop_with_a_stuck_request_ends_within_the_grace_period"},
    "test_request_timeout.py": {"test_a_stream_gone_silent_is_cut_visibly"},  # within 3 s of the timeout
    "test_shutdown.py": {"test_stop_while_the_app_is_still_importing"},  # under 5 s
    "test_reload.py": {"test_a_stop_after_reloads_still_loses_nothing"},  # under load
    "test_queue_depth.py": {"test_the_metric_counts_requests_queued_behind_a_busy_worker"},  # within 4 s
    # In process: a real watchdog thread, real child processes, a real
    # client, each against its budget of a second or less.
    "test_request_path.py": {"test_a_stuck_request_is_answered_504_on_its_connection_and_its_worker_retires",
                             "test_a_request_beside_a_stuck_one_keeps_its_worker_until_it_ends",
                             "test_time_writing_to_a_slow_client_does_not_count",  # under 0.1 s
                             "test_a_body_that_keeps_sending_is_never_cut_however_long",  # parts 0.04 s apart
                             "test_until_the_first_part_the_queue_and_the_handler_count_together",
                             "test_a_body_past_the_timeout_stops_and_is_not_sent",
                             "test_time_in_the_queue_counts"},
    # Under 3 s; 2 to 3 s.
    "test_spawn_guard.py": {"test_the_workers_still_up_end_as_at_a_stop_before_the_master_gives_up",
                            "test_a_worker_past_the_budget_is_killed_and_the_log_names_it"},
    "test_worker_exit.py": {"test_the_watchdog_exit_runs_the_handlers_to_their_end",  # 0.8 s of a 5 s budget
                            "test_handlers_past_the_budget_are_ended_and_named",
                            "test_uwsgis_exit_first_runs_them_once_and_the_watchdog_waits",
                            "test_the_watchdog_first_keeps_the_process_exit_from_running_them_again"},
    "test_gate_path.py": {"test_one_that_could_no_longer_be_answered_in_time_is_refused_with_503"},  # < 1 s
    # A p50 under 50 ms; 20 ms services; none over 150 ms.
    "test_bench_openloop.py": {"test_a_stall_is_charged_to_every_request_that_arrived_during_it",
                               "test_a_closed_loop_keeps_each_client_waiting_on_its_answer",
                               "test_a_closed_loop_counts_nothing_of_its_warm_up"},
}


def shared_module_fixtures(item) -> set[str]:
    """The fixtures of a module or class scope the test uses: a server that
    its module's tests share, and whose state may carry from one to the next."""
    definitions = item._fixtureinfo.name2fixturedefs  # pytest keeps no public view of these
    return {name for name in item.fixturenames
            if definitions.get(name) and definitions[name][-1].scope in ("module", "class")}


def mark_and_order(items) -> None:
    """Before -m selects: the `container` and `timed` markers. A test that
    shares a module's server with a timed one is timed too, so that the
    module's tests on that server still run in their order, in one phase."""
    timed_servers: dict[str, set[str]] = {}
    for item in items:
        module = item.path.name
        if CONTAINER_FIXTURES & set(item.fixturenames) or module in DOCKER_MODULES:
            item.add_marker(pytest.mark.container)
        if module in INTERPRETER_MODULES:
            item.add_marker(pytest.mark.interpreter)
        if module in NGINX_MODULES:
            item.add_marker(pytest.mark.nginx)
        slow = (item.get_closest_marker("slow") and module not in UNTIMED_SLOW_MODULES
                and item.originalname not in UNTIMED_SLOW_TESTS.get(module, ()))
        timed_module = module in TIMED_MODULES and item.get_closest_marker("container")
        if (slow or "figure" in item.fixturenames or timed_module
                or item.originalname in TIMED_TESTS.get(module, ())):
            item.add_marker(pytest.mark.timed)
            timed_servers.setdefault(module, set()).update(shared_module_fixtures(item))
    for item in items:
        if shared_module_fixtures(item) & timed_servers.get(item.path.name, set()):
            item.add_marker(pytest.mark.timed)
    # Stable, and one key a module: each module's tests stay together, in order.
    counts = collections.Counter(item.path.name for item in items)
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: (rank.get(item.path.name, len(rank)), -counts[item.path.name]))
