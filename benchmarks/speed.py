"""Speed of sb3-mario's fast path against SB3's DQN, measured in one process on one machine.

    python benchmarks/speed.py --n-envs 16 32 --repeats 3 --seconds 15 --plot docs/speed.png  # docs/speed.md's table
    python benchmarks/speed.py --only learner env                       # a subset: env, learner, e2e, memory
    python benchmarks/speed.py --only prioritized --batch-sizes 32 64   # the learner with prioritized replay
    python benchmarks/speed.py --only prioritized-e2e --n-envs 16 --repeats 3 --seconds 30   # and end to end
    python benchmarks/speed.py --only learner e2e --plot speed.png      # also bar charts of those rows

Prints one table: env pipeline per process vs the raw emulator; learner updates/s at batch 32 (SB3
``DQN.train`` vs ``DoubleDQN(cuda_graph=True)``, with a check that the graphed update equals the eager one);
for each ``--n-envs``, the emulator's ceiling (every env process stepping at once, no learner) and
end-to-end agent steps/s at one batch-32 gradient step per 4 transitions (SB3 DQN + SubprocVecEnv vs
DoubleDQN with ``cuda_graph``, ``overlap_env_step`` and ``FrameReplayBuffer``, with ``async_envs`` and/or
lock-step); replay memory for 1M transitions; with ``--only prioritized``, the learner with
``PrioritizedFrameReplayBuffer`` against the same learner with ``FrameReplayBuffer``, and with
``--only prioritized-e2e`` the same two end to end (the fast path above, at the first ``--batch-sizes``, 3-step
returns, interleaved). Every ratio compares two
runs of this process. The end-to-end runs act at the start of the exploration schedule (epsilon ~1, random
actions) unless ``--greedy`` puts them at its final epsilon (0.05), where most of a training run acts.
"""

import argparse
import multiprocessing
import os
import time

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger

from sb3_mario import DoubleDQN, MarioCNN, MarioWrapper, PrioritizedFrameReplayBuffer, make_mario_env
from sb3_mario.buffers import FrameReplayBuffer
from sb3_mario.ddqn.graph import GraphedUpdate, make_optimizer_capturable

ENV_ID = "SuperMarioBros-1-1-v0"
ROWS: list[tuple[str, str, str, str]] = []
#: for --plot: (n_steps, ours, SB3) updates/s; (n_envs, mode, our rates, SB3 rates, env ceiling) agent steps/s
LEARNER: list[tuple[int, float, float]] = []
E2E: list[tuple[int, str, list[float], list[float], float]] = []
PROFILE = False
#: end to end: the exploration schedule's fraction; 1e-9 acts at the final epsilon (0.05) from the first step
EXPLORATION_FRACTION = 0.1


def row(what: str, ours: str, baseline: str, ratio: str) -> None:
    ROWS.append((what, ours, baseline, ratio))
    print(f"{what}: ours {ours} | baseline {baseline} | {ratio}", flush=True)


def raw_fps(seconds: float) -> float:
    # the gym-super-mario-bros env itself, one NES frame per step, scripted actions: frames per second
    raw = gym.make(ENV_ID)
    raw.reset(seed=0)
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = raw.step(128 if frames % 40 < 30 else 129)  # run right, jump now and then
        frames += 1
        if terminated or truncated:
            raw.reset()
    return frames / (time.perf_counter() - start)


def bench_env(seconds: float, rounds: int = 3) -> None:
    # raw emulator and our pipeline in turn, `rounds` times (the machine's speed drifts): medians
    raw, pipeline = [], []
    for _ in range(rounds):
        raw.append(raw_fps(seconds) / 4)
        pipeline.append(count_steps(seconds, seed=0) / seconds)
    ratio = float(np.median(np.array(pipeline) / np.array(raw)))
    row(f"env pipeline, 1 process (agent steps/s, median of {rounds} runs in turn; baseline: raw emulator fps / 4)",
        f"{np.median(pipeline):.0f}", f"{np.median(raw):.0f}", f"{ratio:.2f} of the emulator")  # fmt: skip


def count_steps(seconds: float, seed: int | None = None) -> int:
    # one process stepping a MarioWrapper env with scripted actions, no learner: agent steps in `seconds`
    env = MarioWrapper(gym.make(ENV_ID))
    env.reset(seed=os.getpid() if seed is None else seed)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, terminated, truncated, _ = env.step(1 if steps % 10 < 8 else 2)
        steps += 1
        if terminated or truncated:
            env.reset()
    return steps


def bench_ceiling(n_envs: int, seconds: float) -> float:
    """The emulator's ceiling on this machine: n_envs processes stepping at once, nothing else running."""
    with multiprocessing.get_context("forkserver").Pool(n_envs) as pool:
        single = pool.apply(count_steps, (seconds,)) / seconds
        ceiling = sum(pool.map(count_steps, [seconds] * n_envs)) / seconds
    row(f"env ceiling, {n_envs} processes at once, no learner (agent steps/s; baseline: {n_envs} x 1 process alone)",
        f"{ceiling:.0f}", f"{n_envs * single:.0f}", f"{ceiling / (n_envs * single):.2f}")  # fmt: skip
    return ceiling


def fast_path(buffer_class: type = FrameReplayBuffer, **buffer_kwargs) -> dict:
    """
    DoubleDQN's fast-path keyword arguments: MarioCNN, the graphed update, replay stored on the GPU if any.

    :param buffer_class: the replay buffer class
    :param buffer_kwargs: its keyword arguments beside ``storage_device``
    :return: keyword arguments for ``DoubleDQN``
    """
    return dict(
        policy_kwargs=dict(features_extractor_class=MarioCNN),
        cuda_graph=True,
        replay_buffer_class=buffer_class,
        replay_buffer_kwargs=dict(storage_device="auto", **buffer_kwargs),
    )


def filled(algorithm, device: str, **kwargs):
    env = make_mario_env(ENV_ID, n_envs=1, seed=0)
    model = algorithm("CnnPolicy", env, buffer_size=20_000, learning_starts=10**9, device=device, seed=0, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    buffer = model.replay_buffer
    rng = np.random.default_rng(0)
    obs = rng.integers(1, 256, (1, 4, 84, 84), dtype=np.uint8)
    for i in range(5000):
        nxt = np.concatenate([obs[:, 1:], rng.integers(1, 256, (1, 1, 84, 84), dtype=np.uint8)], axis=1)
        buffer.add(obs, nxt, np.array([i % 5]), np.array([rng.normal()]), np.array([i % 300 == 299]), [{}])
        obs = nxt
    return model


def time_train(model, updates: int, repeats: int = 3, batch_size: int = 32) -> float:
    model.train(gradient_steps=20, batch_size=batch_size)  # warm-up (and the CUDA graph capture)
    rates = []
    for _ in range(repeats):
        if th.cuda.is_available():
            th.cuda.synchronize()
        start = time.perf_counter()
        model.train(gradient_steps=updates, batch_size=batch_size)
        if th.cuda.is_available():
            th.cuda.synchronize()
        rates.append(updates / (time.perf_counter() - start))
    return float(np.median(rates))


def bench_learner(device: str, updates: int, batch_sizes: tuple[int, ...] = (32,)) -> None:
    for batch_size in batch_sizes:
        for n_steps in (1, 3):  # 3: the shipped zoo config's n-step returns
            learner_row(device, updates, batch_size, n_steps)
    _graphed_equals_eager(device)


def learner_row(device: str, updates: int, batch_size: int, n_steps: int) -> None:
    sb3 = filled(DQN, device, n_steps=n_steps, gamma=0.9)
    ours = filled(DoubleDQN, device, gamma=0.9, **fast_path(n_steps=n_steps, gamma=0.9))
    sb3_rate = time_train(sb3, updates, batch_size=batch_size)
    our_rate = time_train(ours, updates, batch_size=batch_size)
    if batch_size == 32:
        LEARNER.append((n_steps, our_rate, sb3_rate))
    row(
        f"learner, batch {batch_size}, n_steps={n_steps} (updates/s)",
        f"{our_rate:.0f}",
        f"{sb3_rate:.0f} (SB3 DQN.train)",
        f"{our_rate / sb3_rate:.2f}x",
    )


def prioritized_row(device: str, updates: int, batch_size: int) -> None:
    """The learner with prioritized replay against the same learner with uniform replay (3-step returns)."""
    rates = {}
    for name, buffer_class in (("uniform", FrameReplayBuffer), ("prioritized", PrioritizedFrameReplayBuffer)):
        model = filled(DoubleDQN, device, gamma=0.9, **fast_path(buffer_class, n_steps=3, gamma=0.9))
        rates[name] = time_train(model, updates, batch_size=batch_size)
    row(
        f"learner, batch {batch_size}, n_steps=3, prioritized replay (updates/s)",
        f"{rates['prioritized']:.0f}",
        f"{rates['uniform']:.0f} (uniform FrameReplayBuffer)",
        f"{rates['prioritized'] / rates['uniform']:.2f}x",
    )


def bench_prioritized_e2e(device: str, n_envs: int, seconds: float, repeats: int, batch_size: int) -> None:
    """End to end, DoubleDQN's fast path with prioritized replay against the same with uniform replay."""
    rates: dict[str, list[float]] = {"uniform": [], "prioritized": []}
    for _ in range(repeats):  # interleaved, so that a slow spell of the machine hits both
        for name, buffer_class in (("uniform", FrameReplayBuffer), ("prioritized", PrioritizedFrameReplayBuffer)):
            fast = fast_path(buffer_class, n_steps=3, gamma=0.9)
            rates[name].append(e2e(DoubleDQN, n_envs, seconds, device, gamma=0.9, batch_size=batch_size,
                                   overlap_env_step=True, async_envs=True, **fast))  # fmt: skip
    runs = f"median of {repeats} runs (range)" if repeats > 1 else "one run"
    ratio = np.median(rates["prioritized"]) / np.median(rates["uniform"])
    row(f"end to end, {n_envs} subprocess envs, 1 update of {batch_size} / 4 transitions, n_steps=3, prioritized "
        f"replay (agent steps/s, {runs})", spread(rates["prioritized"]),
        f"{spread(rates['uniform'])} (uniform FrameReplayBuffer)", f"{ratio:.2f}x")  # fmt: skip


def _graphed_equals_eager(device: str) -> None:
    # the graphed update equals the eager one on the same batch (same capturable Adam); eager twice = noise floor
    model = filled(DoubleDQN, device, policy_kwargs=dict(features_extractor_class=MarioCNN))
    batch = model.replay_buffer.sample(32)
    state = {k: v.clone() for k, v in model.policy.state_dict().items()}
    results = []
    for use_graph in (False, False, True):
        model.policy.load_state_dict(state)
        model.policy.optimizer = th.optim.Adam(model.policy.parameters(), lr=1e-3)
        if device.startswith("cuda"):
            make_optimizer_capturable(model.policy.optimizer, th.device(device))
        update = GraphedUpdate(model.policy, model.max_grad_norm, use_graph=use_graph)
        for _ in range(3):
            update(batch, 0.9)
        results.append(th.cat([p.detach().flatten() for p in model.q_net.parameters()]))
    rel = [((r - results[0]).norm() / results[0].norm()).item() for r in results[1:]]
    row("graphed vs eager update, 3 Adam steps (relative L2 difference of the weights)", f"{rel[1]:.1e}",
        f"{rel[0]:.1e} (eager run twice)", "")  # fmt: skip


class Rate(BaseCallback):
    def __init__(self, warmup_steps: int):
        super().__init__()
        self.warmup_steps, self.t0, self.n0 = warmup_steps, 0.0, 0

    def _on_step(self) -> bool:
        if self.t0 == 0.0 and self.num_timesteps >= self.warmup_steps:
            self.t0, self.n0 = time.perf_counter(), self.num_timesteps
        return True

    def rate(self) -> float:
        if self.t0 == 0.0:
            return float("nan")  # the run ended before the warm-up did
        return (self.num_timesteps - self.n0) / (time.perf_counter() - self.t0)


def replay_ratio(n_envs: int) -> tuple[int, int]:
    """``(train_freq, gradient_steps)`` for one gradient step per 4 transitions (vec steps of n_envs transitions)."""
    return max(1, 4 // n_envs), max(1, n_envs // 4)


def e2e(algorithm, n_envs: int, seconds: float, device: str, **kwargs) -> float:
    env = make_mario_env(ENV_ID, n_envs=n_envs, seed=0, vec_env_cls="subproc")
    train_freq, gradient_steps = replay_ratio(n_envs)
    model = algorithm("CnnPolicy", env, buffer_size=100_000, learning_starts=2000, train_freq=train_freq,
                      gradient_steps=gradient_steps, exploration_fraction=EXPLORATION_FRACTION, device=device, seed=0,
                      **kwargs)  # fmt: skip
    callback = Rate(warmup_steps=4000)
    deadline = time.perf_counter() + seconds

    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            return time.perf_counter() < deadline

    if PROFILE and algorithm is DoubleDQN:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(model.learn, 10**9, callback=[callback, Stop()])
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    else:
        model.learn(10**9, callback=[callback, Stop()])
    env.close()
    return callback.rate()


def spread(rates: list[float]) -> str:
    # the median of the runs, and their range when there are several
    median = float(np.median(rates))
    return f"{median:.0f}" + (f" ({min(rates):.0f}-{max(rates):.0f})" if len(rates) > 1 else "")


def bench_e2e(device: str, n_envs: int, seconds: float, modes: list[str], repeats: int) -> None:
    ceiling = bench_ceiling(n_envs, seconds=10)
    rates: dict[str, list[float]] = {mode: [] for mode in ["sb3", *modes]}
    for _ in range(repeats):  # interleaved, so that a slow spell of the machine hits both
        rates["sb3"].append(e2e(DQN, n_envs, seconds, device, optimize_memory_usage=True,
                                replay_buffer_kwargs=dict(handle_timeout_termination=False)))  # fmt: skip
        for mode in modes:
            kwargs = dict(overlap_env_step=True, async_envs=mode == "async", **fast_path())  # as the zoo config
            rates[mode].append(e2e(DoubleDQN, n_envs, seconds, device, **kwargs))
    sb3 = float(np.median(rates["sb3"]))
    runs = f"median of {repeats} runs (range)" if repeats > 1 else "one run"
    for mode in modes:
        ours = float(np.median(rates[mode]))
        how = "async envs" if mode == "async" else "lock-step"
        how += ", epsilon 0.05" if EXPLORATION_FRACTION < 1e-3 else ""
        E2E.append((n_envs, how, rates[mode], rates["sb3"], ceiling))
        row(f"end to end, {n_envs} subprocess envs, 1 update / 4 transitions, ours {how} (agent steps/s, {runs})",
            spread(rates[mode]), f"{spread(rates['sb3'])} (SB3 DQN)", f"{ours / sb3:.2f}x; ours {ours / ceiling:.0%} "
            f"and SB3 {sb3 / ceiling:.0%} of the env ceiling")  # fmt: skip


def bench_memory() -> None:
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    ours = FrameReplayBuffer.estimate_bytes(1_000_000, space)
    sb3 = 1_000_000 * (2 * 4 * 84 * 84 + 8 + 12)
    sb3_opt = 1_000_000 * (4 * 84 * 84 + 8 + 12)
    gib = 1024**3
    row("replay memory, 1M transitions of 4x84x84 (GiB)", f"{ours / gib:.2f}",
        f"{sb3 / gib:.1f} (SB3) / {sb3_opt / gib:.1f} (optimize_memory_usage)", f"{sb3 / ours:.1f}x less")  # fmt: skip


def plot(path: str, card: str) -> None:
    """Bar charts of this run's learner and end-to-end rows: ours, SB3 DQN and the env ceiling, with ranges."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [panel for panel in (LEARNER, E2E) if panel]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    axes = list(axes[0])
    if LEARNER:
        ax = axes.pop(0)
        x = np.arange(len(LEARNER))
        ax.bar(x - 0.2, [sb3 for _, _, sb3 in LEARNER], 0.4, label="SB3 DQN.train", color="tab:gray")
        ax.bar(x + 0.2, [ours for _, ours, _ in LEARNER], 0.4, label="sb3-mario DoubleDQN", color="tab:red")
        ax.set_xticks(x, [f"n_steps={n}" for n, _, _ in LEARNER])
        ax.set_ylabel("updates / s (batch 32)")
        ax.set_title("learner")
        ax.set_ylim(top=1.3 * max(max(ours, sb3) for _, ours, sb3 in LEARNER))  # room for the legend
        ax.legend(loc="upper left", ncol=2, fontsize="small")
    if E2E:
        ax = axes.pop(0)
        x = np.arange(len(E2E))

        def bars(offset: float, runs: list[list[float]], **kwargs) -> None:
            medians = np.array([np.median(r) for r in runs])
            spans = np.array([[m - min(r), max(r) - m] for m, r in zip(medians, runs, strict=True)]).T
            ax.bar(x + offset, medians, 0.27, yerr=spans, capsize=3, **kwargs)

        bars(-0.27, [sb3 for _, _, _, sb3, _ in E2E], label="SB3 DQN", color="tab:gray")
        bars(0.0, [ours for _, _, ours, _, _ in E2E], label="sb3-mario DoubleDQN", color="tab:red")
        ax.bar(x + 0.27, [c for *_, c in E2E], 0.27, label="env ceiling (no learner)", color="white",
               edgecolor="black", hatch="//")  # fmt: skip
        ax.set_xticks(x, [f"{n} envs\n{how}" for n, how, *_ in E2E])
        ax.set_ylabel("agent steps / s (1 update per 4 transitions)")
        ax.set_title("end to end (median, range)")
        top = max(max(*ours, *sb3, ceiling) for _, _, ours, sb3, ceiling in E2E)
        ax.set_ylim(top=1.45 * top)  # room for the legend
        ax.legend(loc="upper left", ncol=2, fontsize="small")
    fig.suptitle(f"benchmarks/speed.py on {card}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="*", default=["env", "learner", "e2e", "memory"])
    parser.add_argument("--device", default="cuda" if th.cuda.is_available() else "cpu")
    parser.add_argument("--n-envs", type=int, nargs="+", default=[min(16, os.cpu_count() or 1)],
                        help="end to end: one set of rows (ceiling, SB3, ours) for each number of envs")  # fmt: skip
    parser.add_argument("--modes", nargs="+", default=["async"], choices=["async", "lockstep"],
                        help="end to end: ours with async_envs, lock-step, or both")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=60, help="wall-clock per end-to-end run")
    parser.add_argument("--repeats", type=int, default=1, help="end-to-end runs of each (median and range)")
    parser.add_argument("--updates", type=int, default=500, help="updates per learner timing")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32], help="learner rows for these batch sizes")
    parser.add_argument("--greedy", action="store_true",
                        help="end to end: act at the final epsilon (0.05: a forward pass for most actions), not at "
                             "the start of the schedule (epsilon ~1: random actions)")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="print where the trainer's time goes (ours, e2e)")
    parser.add_argument("--plot", metavar="PNG", help="also draw the learner and end-to-end rows as bar charts")
    args = parser.parse_args()
    global PROFILE, EXPLORATION_FRACTION
    PROFILE = args.profile
    if args.greedy:
        EXPLORATION_FRACTION = 1e-9
    card = th.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    print(f"machine: {card}; torch {th.__version__}; {os.cpu_count()} CPU cores", flush=True)
    if "env" in args.only:
        bench_env(seconds=5)
    if "learner" in args.only:
        bench_learner(args.device, args.updates, tuple(args.batch_sizes))
    if "prioritized" in args.only:
        for batch_size in args.batch_sizes:
            prioritized_row(args.device, args.updates, batch_size)
    if "e2e" in args.only:
        for n_envs in args.n_envs:
            bench_e2e(args.device, n_envs, args.seconds, args.modes, args.repeats)
    if "prioritized-e2e" in args.only:
        for n_envs in args.n_envs:
            bench_prioritized_e2e(args.device, n_envs, args.seconds, args.repeats, args.batch_sizes[0])
    if "memory" in args.only:
        bench_memory()
    print(f"\n| what ({card}) | sb3-mario | baseline | ratio |\n| --- | --- | --- | --- |")
    for what, ours, baseline, ratio in ROWS:
        print(f"| {what} | {ours} | {baseline} | {ratio} |")
    if args.plot:
        plot(args.plot, card)


if __name__ == "__main__":
    main()
