"""The env side of ``async_envs`` alone: how fast 16 Mario envs are served under its rule, for worker layouts.

    python benchmarks/serving_loop.py --layouts 16x1x0 4x4x4 8x2x2 2x8x8 --repeats 2 --seconds 10
    python benchmarks/serving_loop.py --layouts 16x1x0 --rotate-ms 0 50 --repeats 3  # workers moved round the cores

A layout ``PxExT`` is P worker processes of E envs each, stepped on T threads per process (0: in the process's
own loop, one env at a time; ``16x1x0`` is what ``SubprocVecEnv`` does). A bare trainer (no SB3, no learner)
answers each returned step at once with a random action, and lets an env run at most ``--ahead`` steps beyond
the slowest one, as :class:`sb3_mario.ddqn.actors.AsyncEnvs` does; a row is a vec-env step every env has
returned (the rows' rate is printed with all envs' steps, in rows or not). Each repeat first measures the
ceiling as ``benchmarks/speed.py`` does (one-env processes stepping scripted play at once, nobody waiting), then
each layout in turn. A diagnostic for ``speed.py``'s end-to-end rows: benchmarks/README.md quotes it.
"""

import argparse
import multiprocessing
import os
import queue
import threading
import time
from multiprocessing.connection import Connection, wait

import gymnasium as gym
import numpy as np
from speed import ENV_ID, count_steps  # benchmarks/speed.py

from sb3_mario import MarioWrapper
from sb3_mario.ddqn.actors import AHEAD
from sb3_mario.wrappers import configure_env_worker


def worker(conn: Connection, n_envs: int, n_threads: int, seed: int) -> None:
    # n_envs envs; steps asked for as (env, action) run on n_threads threads (0: here, in turn); None ends it
    configure_env_worker()
    envs = [MarioWrapper(gym.make(ENV_ID)) for _ in range(n_envs)]
    for j, env in enumerate(envs):
        env.reset(seed=seed + j)
    send_lock = threading.Lock()

    def step(j: int, action: int) -> None:
        obs, reward, terminated, truncated, info = envs[j].step(action)
        if terminated or truncated:
            obs, _ = envs[j].reset()
        with send_lock:
            conn.send((j, obs, reward, terminated or truncated, info))

    asked: queue.SimpleQueue = queue.SimpleQueue()

    def serve() -> None:
        while (item := asked.get()) is not None:
            step(*item)

    threads = [threading.Thread(target=serve, daemon=True) for _ in range(n_threads)]
    for thread in threads:
        thread.start()
    conn.send(envs[0].action_space.n)  # ready
    while (message := conn.recv()) is not None:
        if threads:
            asked.put(message)
        else:
            step(*message)
    for _ in threads:
        asked.put(None)


def start(processes: int, envs: int, threads: int) -> tuple[list[multiprocessing.Process], list[Connection], int]:
    # the worker processes, their pipes, and the envs' number of actions
    context = multiprocessing.get_context("forkserver")
    pipes = [context.Pipe() for _ in range(processes)]
    workers = [
        context.Process(target=worker, args=(child, envs, threads, 1000 * p), daemon=True)
        for p, (_, child) in enumerate(pipes)
    ]
    for process in workers:
        process.start()
    conns = [parent for parent, _ in pipes]
    ready = [conn.recv() for conn in conns]  # each worker's number of actions, once its envs are made
    return workers, conns, ready[0]


def ceiling(n_envs: int, seconds: float) -> tuple[float, float]:
    """:return: agent steps/s of n_envs one-env processes stepping at once, and the slowest one's share of the mean"""
    with multiprocessing.get_context("forkserver").Pool(n_envs) as pool:
        rates = np.array(pool.map(count_steps, [seconds] * n_envs)) / seconds
    return float(rates.sum()), float(rates.min() / rates.mean())


def serve(layout: tuple[int, int, int], seconds: float, ahead: int, rotate_ms: float, nice: int) -> tuple[float, float]:
    """
    :return: rows (vec-env steps of every env) per second x number of envs, and all envs' steps per second
        (rows or not), after 2 s of warm-up
    """
    processes, envs, threads = layout
    workers, conns, n_actions = start(processes, envs, threads)
    for process in workers:  # as AsyncEnvs does with a GPU learner
        os.setpriority(os.PRIO_PROCESS, process.pid, os.getpriority(os.PRIO_PROCESS, 0) + nice)
    n = processes * envs
    returned, sent = np.zeros(n, dtype=int), np.zeros(n, dtype=int)
    rng = np.random.default_rng(0)
    cores = sorted(os.sched_getaffinity(0))
    shift, moved = 0, time.perf_counter()

    def send(i: int) -> None:
        conns[i // envs].send((i % envs, int(rng.integers(n_actions))))
        sent[i] += 1

    for i in range(n):
        send(i)
    begin = time.perf_counter()
    rows_at_start, steps_at_start, measured_from = 0, 0, 0.0
    while (now := time.perf_counter()) - begin < seconds + 2:
        if not measured_from and now - begin > 2:
            rows_at_start, steps_at_start, measured_from = int(returned.min()), int(returned.sum()), now
        if rotate_ms and now - moved > rotate_ms / 1000:  # worker k to core k + shift
            shift, moved = shift + 1, now
            for k, process in enumerate(workers):
                os.sched_setaffinity(process.pid, {cores[(k + shift) % len(cores)]})
        for conn in wait(conns, timeout=rotate_ms / 1000 if rotate_ms else None):
            j, *_ = conn.recv()
            returned[conns.index(conn) * envs + j] += 1
            rows = returned.min()
            for i in np.flatnonzero((sent == returned) & (sent - rows <= ahead)):
                send(int(i))
    rate = (returned.min() - rows_at_start) * n / (now - measured_from)
    all_steps = (returned.sum() - steps_at_start) / (now - measured_from)
    for conn in conns:
        conn.send(None)
    for process in workers:
        process.join(5)
    return float(rate), float(all_steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layouts", nargs="+", default=["16x1x0", "4x4x4"], help="PxExT: processes x envs x threads")
    parser.add_argument("--rotate-ms", type=float, nargs="+", default=[0.0],
                        help="move one-env workers to the next core every this many ms (0: never)")  # fmt: skip
    parser.add_argument("--ahead", type=int, default=AHEAD, help="steps an env may run beyond the slowest")
    parser.add_argument("--nice", type=int, default=5, help="the workers' niceness above this process's")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    layouts = [tuple(int(x) for x in layout.split("x")) for layout in args.layouts]
    # rotation pins each worker to one core: for one-env workers only
    runs = [(layout, rotate) for layout in layouts for rotate in args.rotate_ms if not rotate or layout[1] == 1]
    rates: dict = {run: [] for run in runs}
    print(f"{os.cpu_count()} CPU cores; up to {args.ahead} steps ahead; workers nice +{args.nice}", flush=True)
    n_envs = layouts[0][0] * layouts[0][1]
    for _ in range(args.repeats):  # interleaved, so that a slow spell of the machine hits every layout
        total, slowest = ceiling(n_envs, args.seconds)
        print(f"ceiling, {n_envs} one-env processes, nobody waiting: {total:.0f} agent steps/s "
              f"(slowest process at {slowest:.2f} of the mean)", flush=True)  # fmt: skip
        for layout, rotate in runs:
            rows, all_steps = serve(layout, args.seconds, args.ahead, rotate, args.nice)
            rates[layout, rotate].append(rows)
            print(f"  {'x'.join(map(str, layout))}, rotate {rotate:g} ms: {rows:.0f} in rows "
                  f"({rows / total:.0%} of the ceiling; all envs' steps {all_steps:.0f}, {all_steps / total:.0%})",
                  flush=True)  # fmt: skip
    base = float(np.median(rates[runs[0]]))
    print("\n| layout | rotate (ms) | agent steps/s (median, runs) | vs first |\n| --- | --- | --- | --- |")
    for (layout, rotate), got in rates.items():
        median = float(np.median(got))
        print(f"| {'x'.join(map(str, layout))} | {rotate:g} | {median:.0f} {[round(x) for x in got]} | "
              f"{median / base:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
