"""Signals in worker processes: the trainer decides when its workers stop.

Ctrl-C reaches every process of the terminal's foreground process group, and ``timeout`` and ``kill -- -PGID``
send SIGTERM to every process of a group. The trainer turns either signal into a clean stop that saves the run
(:mod:`sb3_mario.resume`) and then closes its workers; a worker that died of the same signal first would turn that
stop into a broken pipe, or leave a lock of a ``multiprocessing.Pool`` held and the trainer's exit hanging on it.

So a worker (an env process of a ``SubprocVecEnv``, an evaluation process) moves to a process group of its own
and ignores SIGINT: signals sent to the trainer's group reach the trainer alone, while a SIGTERM sent to the worker
itself (``Process.terminate()``, ``Pool.terminate()``, Python's exit ending daemon processes) still ends it. As the
trainer's group no longer holds its workers, each worker ends itself when the trainer is gone, whatever killed it.
"""

import multiprocessing
import os
import signal
import threading


def shield_worker() -> None:
    """
    In a worker process (called from its main thread): ignore SIGINT, leave the trainer's process group for a group
    of its own, and end when the parent process ends. Does nothing in the main process, and nothing more on a second
    call.
    """
    parent = multiprocessing.parent_process()
    if parent is None or threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not hasattr(os, "setpgid") or os.getpgid(0) == os.getpid():
        return
    os.setpgid(0, 0)

    def end_with_parent() -> None:
        parent.join()  # returns when the parent process has ended
        os._exit(1)

    threading.Thread(target=end_with_parent, name="sb3-mario-end-with-parent", daemon=True).start()
