"""A driver's pool registry, as python-oracledb 2 keeps it: its import
starts a thread that waits for the main thread to end and then closes
every pool still open."""
import threading

OPEN: list = []


def close_pools_gracefully():
    threading.main_thread().join()
    for pool in OPEN:
        pool.close()


threading.Thread(target=close_pools_gracefully).start()
