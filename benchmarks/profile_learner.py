"""Where the time of ``DoubleDQN(cuda_graph=True).train`` goes, for one replay buffer and batch size.

    python benchmarks/profile_learner.py --n-steps 3 --updates 300      # the CPU side (cProfile)
    python benchmarks/profile_learner.py --prioritized --batch-size 64   # the package config's replay and batch
    python benchmarks/profile_learner.py --prioritized --batch-size 64 --kernels    # the GPU kernels of one step
    python benchmarks/profile_learner.py --prioritized --batch-size 64 --compare tf32   # a PyTorch setting, off/on
    python benchmarks/profile_learner.py --prioritized --batch-size 64 --compare channels-last

``--kernels`` times the CUDA kernels of eager gradient steps (torch.profiler): what a captured graph replays.
``--compare`` builds the model again for each three timings, with a process-wide PyTorch setting
(``tf32``: TF32 matrix multiplications; ``cudnn-benchmark``: cuDNN's autotuned convolution algorithms, which a
captured graph keeps) or a setting of the model (``channels-last``: weights and batches in channels-last memory
order, as on a CPU) off and on in turn, and prints the updates per second of each. A diagnostic for the learner
row of benchmarks/speed.py, not a benchmark.
"""

import argparse
import cProfile
import pstats

import torch as th
from speed import filled, time_train

from sb3_mario import DoubleDQN, MarioCNN
from sb3_mario.buffers import FrameReplayBuffer
from sb3_mario.ddqn.update import double_dqn_step
from sb3_mario.prioritized_replay import PrioritizedFrameReplayBuffer

#: the process-wide settings that --compare turns off and on
SETTINGS = {"tf32": (th.backends.cuda.matmul, "allow_tf32"), "cudnn-benchmark": (th.backends.cudnn, "benchmark")}


def use_channels_last(model: DoubleDQN) -> None:
    """Weights and batches of a model in channels-last memory order, as DoubleDQN has them on a CPU (same math)."""
    model._channels_last = True
    model.policy.to(memory_format=th.channels_last)


#: the settings of one model that --compare turns off and on
MODEL_SETTINGS = {"channels-last": use_channels_last}


def set_process_setting(setting: str, on: bool) -> None:
    """:param setting: a key of :data:`SETTINGS` (set it before building the model), else nothing is done"""
    if setting in SETTINGS:
        setattr(*SETTINGS[setting], on)


def set_model_setting(setting: str, model: DoubleDQN) -> None:
    """:param setting: a key of :data:`MODEL_SETTINGS` (turned on before the first gradient step), else nothing"""
    if setting in MODEL_SETTINGS:
        MODEL_SETTINGS[setting](model)


def build(args: argparse.Namespace, device: str, cuda_graph: bool = True) -> DoubleDQN:
    """:return: a DoubleDQN with a filled replay buffer of the kind and n-step setting asked for"""
    return filled(DoubleDQN, device, gamma=0.9, policy_kwargs=dict(features_extractor_class=MarioCNN),
                  cuda_graph=cuda_graph,
                  replay_buffer_class=PrioritizedFrameReplayBuffer if args.prioritized else FrameReplayBuffer,
                  replay_buffer_kwargs=dict(storage_device=device, n_steps=args.n_steps, gamma=0.9))  # fmt: skip


def kernels(args: argparse.Namespace, device: str) -> None:
    """Print the CUDA kernels of 20 eager gradient steps on one batch, by their total time."""
    from torch.profiler import ProfilerActivity, profile

    model = build(args, device, cuda_graph=False)
    assert model.replay_buffer is not None
    b = model.replay_buffer.sample(args.batch_size)
    discounts = b.discounts if b.discounts is not None else model.gamma
    weights = getattr(b, "weights", None)

    def step() -> None:
        double_dqn_step(model.policy, b.observations, b.actions, b.next_observations, b.rewards, b.dones, discounts,
                        model.max_grad_norm, weights=weights)  # fmt: skip

    for _ in range(5):
        step()
    th.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(20):
            step()
        th.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25, max_name_column_width=70))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-steps", type=int, default=3)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--prioritized", action="store_true", help="PrioritizedFrameReplayBuffer (alpha 0.6)")
    parser.add_argument("--kernels", action="store_true", help="time the CUDA kernels of one step (needs a GPU)")
    parser.add_argument("--compare", choices=sorted(SETTINGS | MODEL_SETTINGS),
                        help="updates/s with this setting off and on")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=2, help="with --compare: builds of each, in turn")
    args = parser.parse_args()
    device = "cuda" if th.cuda.is_available() else "cpu"
    if args.kernels:
        if device != "cuda":
            parser.error("--kernels needs a GPU")
        kernels(args, device)
        return
    if args.compare:
        for _ in range(args.repeats):
            for on in (False, True):
                set_process_setting(args.compare, on)
                model = build(args, device)
                if on:
                    set_model_setting(args.compare, model)
                rate = time_train(model, args.updates, repeats=3, batch_size=args.batch_size)
                print(f"{args.compare} {'on ' if on else 'off'}: {rate:,.0f} updates/s (median of 3 timings)")
        return
    model = build(args, device)
    model.train(gradient_steps=20, batch_size=args.batch_size)  # warm-up and capture
    profiler = cProfile.Profile()
    profiler.runcall(model.train, gradient_steps=args.updates, batch_size=args.batch_size)
    pstats.Stats(profiler).sort_stats("tottime").print_stats(22)


if __name__ == "__main__":
    main()
