"""PID 1 in production (`python3 -I -m flaskbox.arbiter`, which the entry
point execs once its bash steps are done): the process tree's supervisor,
shaped as gunicorn's arbiter is. Signal handlers only queue; one loop waits
on children, the marks it awaits and deadlines, and acts; it reaps every
child, as PID 1 must.

    loop.py        the loop: signals taken, children reaped, marks written, deadlines due
    system.py      the real operating system under it (tests give a fake)
    events.py      inotify, through which a mark written wakes the loop
    kernel.py      what the kernel's tables say of processes and pools
    arbiter.py     the Arbiter: the start, the signals, the deaths, the end
    generation.py  a uWSGI generation: starting, serving, retiring, gone
    reload.py      SIGHUP's steps
    stop.py        docker stop, and a server's death: the order, one budget
    nginx.py       nginx's master: started, judged, reloaded
    helpers.py     the metrics server, certificate watcher, JSON log relay

docs/architecture.md tells the story; tests/test_arbiter_*.py drive it in
process, with fake processes and a fake clock.
"""
