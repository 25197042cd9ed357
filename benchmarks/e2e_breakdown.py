"""Where the trainer's wall-clock goes in end-to-end training, and how busy the env workers are.

    python benchmarks/e2e_breakdown.py --n-envs 16 --seconds 40
    python benchmarks/e2e_breakdown.py --async-envs --n-envs 16 --seconds 25 --ahead 512  # envs free to run ahead
    python benchmarks/e2e_breakdown.py --async-envs --n-envs 16 --seconds 25 --ceiling   # vs speed.py's ceiling
    python benchmarks/e2e_breakdown.py --package-config --seconds 60 --ceiling   # what the main command trains
    python benchmarks/e2e_breakdown.py --package-config --seconds 20 --torch-setting tf32   # a PyTorch setting on
    python benchmarks/e2e_breakdown.py --package-config --seconds 30 --profile 40   # the trainer's functions too
    python benchmarks/e2e_breakdown.py --package-config --seconds 20 --sample-chunk 8   # 8 gradient steps a call

By default the model is ``speed.py``'s end-to-end one (uniform replay, batch 32, one update per 4 transitions, no
sticky actions); ``--package-config`` builds it and its envs from the package's ``zoo_configs/ddqn.yml`` section of
1-1 instead, as ``python -m rl_zoo3.train --algo ddqn --env SuperMarioBros-1-1-v0`` does (prioritized replay,
failure restarts, sticky actions, its batch size and updates per transition, async envs), with epsilon at its floor
as in all but the first 200k steps of a run.

Wraps the VecEnv layers and DoubleDQN's methods with timers (exclusive time per layer) and reads the
workers' CPU time from /proc. With ``--ceiling`` it first measures ``speed.py``'s ceiling (the env processes
stepping alone, each on a core all the time) and compares the workers' steps per CPU-second with it. With
``--profile N`` it also runs cProfile over the trainer's process during the window and prints its N functions of
most own time (the timers' overhead included). On a machine with ``nvidia-smi`` it also samples the GPU's
utilization (the share of time a kernel runs) through the window: whether the GPU or the trainer's CPU side is
what the run waits for.
A diagnostic for benchmarks/speed.py's end-to-end row, not a benchmark.
"""

import argparse
import collections
import cProfile
import functools
import os
import pstats
import shutil
import subprocess
import time

import profile_learner  # benchmarks/profile_learner.py
import torch as th
import yaml
from speed import ENV_ID, bench_ceiling, replay_ratio  # benchmarks/speed.py
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import SubprocVecEnv, VecFrameStack, VecTransposeImage

import sb3_mario
from sb3_mario import DoubleDQN, MarioCNN, make_mario_env
from sb3_mario.buffers import FrameReplayBuffer
from sb3_mario.ddqn import actors, learner, overlap
from sb3_mario.ddqn.actors import AsyncEnvs
from sb3_mario.ddqn.overlap import OverlappedLoop
from sb3_mario.zoo import config_dir

# keys of a zoo config section that build the envs or the run, not the model
ZOO_ONLY = ("env_wrapper", "frame_stack", "monitor_kwargs", "n_envs", "n_timesteps", "policy")

TOTALS: collections.Counter = collections.Counter()
STACK: list[float] = []  # child time of the enclosing timed call


def timed(name: str, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        STACK.append(0.0)
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            child = STACK.pop()
            TOTALS[name] += elapsed - child
            if STACK:
                STACK[-1] += elapsed

    return wrapper


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class GpuUtilization:
    """``nvidia-smi``'s GPU utilization (percent of time a kernel ran), sampled every 250 ms between start and stop
    in a process of its own (no load on the trainer); nothing where there is no ``nvidia-smi``."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        if shutil.which("nvidia-smi") and th.cuda.is_available():
            query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "250",
                     "-i", str(th.cuda.current_device())]  # fmt: skip
            self.process = subprocess.Popen(query, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    def stop(self) -> list[float]:
        """:return: the samples, in percent"""
        if self.process is None:
            return []
        self.process.terminate()
        out, _ = self.process.communicate()
        return [float(sample) for sample in out.split() if sample.replace(".", "", 1).isdigit()]


def package_section() -> dict:
    """:return: the package's 1-1 section of ``zoo_configs/ddqn.yml``"""
    with open(config_dir() / "ddqn.yml") as f:
        return dict(yaml.safe_load(f)[ENV_ID])


def package_model(section: dict, n_envs: int, device: str) -> tuple[DoubleDQN, object]:
    """
    The model and envs of a zoo config section, as rl-zoo builds them, but with a constant learning rate (the
    same speed) and epsilon at its final value from the start, as in all but the first 200k steps of a run.

    :param section: the zoo config section
    :param n_envs: how many envs
    :param device: the model's device
    :return: the model and its VecEnv
    """
    ((wrapper, wrapper_kwargs),) = section["env_wrapper"][0].items()
    assert wrapper == "sb3_mario.wrappers.MarioWrapper", wrapper
    env = make_mario_env(ENV_ID, n_envs=n_envs, seed=0, vec_env_cls="subproc", wrapper_kwargs=wrapper_kwargs,
                         frame_stack=section["frame_stack"])  # fmt: skip
    kwargs = {k: v for k, v in section.items() if k not in ZOO_ONLY}
    names = {"sb3_mario": sb3_mario, "dict": dict}
    for key in ("policy_kwargs", "replay_buffer_kwargs", "replay_buffer_class"):
        kwargs[key] = eval(kwargs[key], names)  # the zoo's python strings, as rl-zoo reads them
    kwargs["learning_rate"] = float(str(kwargs["learning_rate"]).removeprefix("lin_"))
    kwargs["exploration_initial_eps"] = kwargs["exploration_final_eps"]
    kwargs["cuda_graph"] = kwargs["cuda_graph"] and device == "cuda"
    return DoubleDQN(section["policy"], env, device=device, seed=0, **kwargs), env


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-envs", type=int, default=None, help="default: 16, or the package config's")
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument("--vec-env", default="subproc")
    parser.add_argument("--async-envs", action="store_true")
    parser.add_argument("--ahead", type=int, default=actors.AHEAD, help="with --async-envs: steps an env may run "
                        "ahead of the slowest one (default: the package's AHEAD)")  # fmt: skip
    parser.add_argument("--ceiling", action="store_true", help="first measure speed.py's env ceiling, for comparison")
    parser.add_argument("--package-config", action="store_true", help="the model and envs of the package's 1-1 "
                        "config (zoo_configs/ddqn.yml) instead of speed.py's")  # fmt: skip
    parser.add_argument("--torch-setting", choices=sorted(profile_learner.SETTINGS | profile_learner.MODEL_SETTINGS),
                        help="turn this PyTorch setting on first (profile_learner.py --compare)")  # fmt: skip
    parser.add_argument("--profile", type=int, metavar="N", help="also cProfile the trainer in the window: top N")
    parser.add_argument("--sample-chunk", type=int, default=learner.SAMPLE_CHUNK, help="gradient steps per train "
                        "call with async envs, batches per replay-buffer call under a CUDA graph (default: the "
                        "package's SAMPLE_CHUNK)")  # fmt: skip
    args = parser.parse_args()
    learner.SAMPLE_CHUNK = overlap.SAMPLE_CHUNK = args.sample_chunk
    if args.torch_setting:
        profile_learner.set_process_setting(args.torch_setting, True)
    device = "cuda" if th.cuda.is_available() else "cpu"
    section = package_section() if args.package_config else {}
    args.n_envs = args.n_envs or section.get("n_envs", 16)
    ceiling = bench_ceiling(args.n_envs, seconds=10) if args.ceiling else None
    if args.package_config:
        model, env = package_model(section, args.n_envs, device)
    else:
        env = make_mario_env(ENV_ID, n_envs=args.n_envs, seed=0, vec_env_cls=args.vec_env)
        train_freq, gradient_steps = replay_ratio(args.n_envs)
        model = DoubleDQN("CnnPolicy", env, buffer_size=100_000, learning_starts=2000, train_freq=train_freq,
                          gradient_steps=gradient_steps, device=device, seed=0, cuda_graph=True,
                          overlap_env_step=True, async_envs=args.async_envs, replay_buffer_class=FrameReplayBuffer,
                          replay_buffer_kwargs=dict(storage_device=device),
                          policy_kwargs=dict(features_extractor_class=MarioCNN))  # fmt: skip
    if args.torch_setting:
        profile_learner.set_model_setting(args.torch_setting, model)
    classes = [SubprocVecEnv, VecFrameStack, VecTransposeImage, AsyncEnvs]
    for cls in classes:
        for method in ("step_async", "step_wait"):
            setattr(cls, method, timed(f"{cls.__name__}.{method}", getattr(cls, method)))
    AsyncEnvs._send = timed("AsyncEnvs._send (pipe)", AsyncEnvs._send)
    actors._FrameStacks.update = timed("frame stacks (async)", actors._FrameStacks.update)
    actors.wait = timed("connection.wait (async)", actors.wait)
    venv = model.env.unwrapped
    for method in ("predict", "_store_transition", "train", "_on_step", "_update_info_buffer", "_sample_action"):
        setattr(model, method, timed(f"DoubleDQN.{method}", getattr(model, method)))
    for method in ("train_pending", "explore"):
        setattr(OverlappedLoop, method, timed(f"OverlappedLoop.{method}", getattr(OverlappedLoop, method)))
    model.replay_buffer.add = timed("buffer.add", model.replay_buffer.add)
    workers = [p.pid for p in getattr(venv, "processes", [])]
    state: dict[str, float] = {}
    profiler = cProfile.Profile() if args.profile else None
    gpu, gpu_samples = GpuUtilization(), []

    class Window(BaseCallback):
        def _on_step(self) -> bool:
            if isinstance(self.locals["env"], AsyncEnvs):
                self.locals["env"].ahead = args.ahead
            now = time.perf_counter()
            if not state and self.num_timesteps >= start_timing:
                TOTALS.clear()
                state.update(t0=now, n0=self.num_timesteps, cpu0=sum(cpu_seconds(p) for p in workers),
                             own0=time.process_time())  # fmt: skip
                gpu.start()
                if profiler is not None:
                    profiler.enable()
            if state and now - state["t0"] >= args.seconds:
                gpu_samples.extend(gpu.stop())
                if profiler is not None:
                    profiler.disable()
                return False
            return True

    start_timing = max(20_000, model.learning_starts + 10_000)  # the CUDA graphs captured, learning under way
    start = time.perf_counter()
    model.learn(10**9, callback=Window())
    wall = time.perf_counter() - state["t0"]
    steps = model.num_timesteps - state["n0"]
    vec_steps = steps / args.n_envs
    print(f"{steps / wall:.0f} agent steps/s over {wall:.0f} s ({time.perf_counter() - start:.0f} s in all)")
    if workers:
        busy = (sum(cpu_seconds(p) for p in workers) - state["cpu0"]) / (wall * len(workers))
        trainer = (time.process_time() - state["own0"]) / wall
        print(f"env workers busy {busy:.0%} of the wall-clock; trainer CPU {trainer:.0%}")
        per_cpu = steps / wall / (busy * len(workers))
        alone = f" (ceiling: {ceiling / args.n_envs:.0f} per process)" if ceiling else ""
        print(f"agent steps per worker CPU-second {per_cpu:.0f}{alone}")
    if gpu_samples:
        samples = sorted(gpu_samples)
        print(
            f"GPU utilization (nvidia-smi, {len(samples)} samples): mean {sum(samples) / len(samples):.0f}%, "
            f"median {samples[len(samples) // 2]:.0f}%, range {samples[0]:.0f}-{samples[-1]:.0f}%"
        )
    accounted = sum(TOTALS.values())
    for name, total in TOTALS.most_common():
        print(f"{name:45s} {1000 * total / vec_steps:7.3f} ms/vec-step {total / wall:6.1%}")
    print(f"{'(rest of the SB3 loop)':45s} {1000 * (wall - accounted) / vec_steps:7.3f} ms/vec-step")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
    env.close()


if __name__ == "__main__":
    main()
