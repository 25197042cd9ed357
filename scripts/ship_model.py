"""Ship a trained agent into models/: the weights-only files and an rl-zoo run folder.

    python scripts/ship_model.py <run>/exported/rl_model_<steps>_steps.pt <run>/<env_id>   # the folder with config.yml

writes models/<env_id>.pt + .json (weights only, for ``python -m sb3_mario.evaluate`` and ``record``) and
models/ddqn/<env_id>_1/{<env_id>.zip, <env_id>/*.yml} (for ``rl_zoo3.enjoy -f models`` and ``DoubleDQN.load``).
The ``.pt`` holds float16 weights when their greedy actions on the 20 evaluation episodes of
``python -m sb3_mario.evaluate`` (seeds 0..19, 0-30 no-op frames; for a model trained with sticky actions, with
and without them) are exactly those of the float32 weights, else
float16 for the largest tensors only (the first linear layer) when those play the same, else float32; the script
says which. A model saved with ``DoubleDQN(float16_checkpoints=True)`` (the package's config) holds float16 numbers
already, so its float16 file plays the same by construction. The zip holds the float32 Q-network (online and
target) and a fresh optimizer, nothing of the replay buffer.
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch as th

from sb3_mario import DoubleDQN, MarioCNN, make_mario_env
from sb3_mario.evaluation import compare_greedy_actions, make_pipeline_env, trained_and_plain_sticky_actions
from sb3_mario.weights import export_weights, largest_tensors, load_weights

MODELS = Path(__file__).resolve().parent.parent / "models"


def main() -> None:
    weights, config_dir = Path(sys.argv[1]), Path(sys.argv[2])
    policy, config = load_weights(weights)
    env_id = config["env_id"]
    env = make_mario_env(env_id, n_envs=1, frame_stack=config["frame_stack"], wrapper_kwargs=config["wrapper_kwargs"])
    model = DoubleDQN("CnnPolicy", env, buffer_size=1000, gamma=0.9, device="cpu",
                      policy_kwargs=dict(features_extractor_class=MarioCNN))  # fmt: skip
    with th.no_grad():
        model.q_net.load_state_dict(policy.q_net.state_dict())
        model.q_net_target.load_state_dict(policy.q_net.state_dict())
    model.num_timesteps = config["num_timesteps"]
    pipeline = dict(env_id=env_id, wrapper_kwargs=config["wrapper_kwargs"], frame_stack=config["frame_stack"])
    # the smallest file whose greedy actions are those of the float32 weights: every tensor as float16, else the
    # largest ones only (the first linear layer holds ~95% of a CNN's weights), else float32; on the 20 evaluation
    # episodes as trained and, for a model trained with sticky actions, also without them (both are reported)
    eval_envs = {p: make_pipeline_env(config, env_id=env_id, sticky_actions=p)
                 for p in trained_and_plain_sticky_actions(config)}  # fmt: skip
    half: bool | list[str] = False
    with tempfile.TemporaryDirectory() as tmp:
        for candidate, name in ((True, "every tensor"), (largest_tensors(policy), "the largest tensors")):
            halved, _ = load_weights(export_weights(model, Path(tmp) / "half", half=candidate, **pipeline)[0])
            same = True
            for sticky, eval_env in eval_envs.items():
                steps, mismatch = compare_greedy_actions(policy, halved, eval_env, n_episodes=20)
                where = "" if mismatch is None else f", first difference at (episode, step) {mismatch}"
                print(f"float16 for {name}: {'the same' if mismatch is None else 'other'} greedy actions on the 20 "
                      f"evaluation episodes, sticky actions {sticky} ({steps} steps compared{where})")  # fmt: skip
                same = same and mismatch is None
            if same:
                half = candidate
                break
    for eval_env in eval_envs.values():
        eval_env.close()
    shipped = export_weights(model, MODELS / env_id, half=half, **pipeline)
    run = MODELS / "ddqn" / f"{env_id}_1"
    model.save(run / f"{env_id}.zip")
    if config_dir.resolve() != (run / env_id).resolve():
        shutil.copytree(config_dir, run / env_id, dirs_exist_ok=True)
    env.close()
    dtype = json.loads(shipped[1].read_text())["dtype"]
    print(f"wrote {shipped[0]} ({dtype}, {shipped[0].stat().st_size / 2**20:.1f} MiB), {shipped[1]} and {run}")


if __name__ == "__main__":
    main()
