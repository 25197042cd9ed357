"""Turn exported weights (models/mario_ddqn.pt + .json) into an rl-zoo run folder that `rl_zoo3.enjoy` and
`DoubleDQN.load` read: models/ddqn/SuperMarioBros-1-1-v0_1/{SuperMarioBros-1-1-v0.zip, SuperMarioBros-1-1-v0/*.yml}.

    python scripts/ship_model.py models/mario_ddqn.pt <zoo run's SuperMarioBros-1-1-v0/ folder with config.yml>

The zip holds the Q-network weights (online and target) and a fresh optimizer, nothing of the replay buffer.
"""

import shutil
import sys
from pathlib import Path

import torch as th

from sb3_mario import DoubleDQN, MarioCNN, make_mario_env
from sb3_mario.weights import load_weights


def main() -> None:
    weights, config_dir = Path(sys.argv[1]), Path(sys.argv[2])
    policy, config = load_weights(weights)
    env_id = config["env_id"]
    run = weights.parent / "ddqn" / f"{env_id}_1"
    env = make_mario_env(env_id, n_envs=1, frame_stack=config["frame_stack"], wrapper_kwargs=config["wrapper_kwargs"])
    model = DoubleDQN("CnnPolicy", env, buffer_size=1000, gamma=0.9, device="cpu",
                      policy_kwargs=dict(features_extractor_class=MarioCNN))  # fmt: skip
    with th.no_grad():
        model.q_net.load_state_dict(policy.q_net.state_dict())
        model.q_net_target.load_state_dict(policy.q_net.state_dict())
    model.num_timesteps = config["num_timesteps"]
    model.save(run / f"{env_id}.zip")
    shutil.copytree(config_dir, run / env_id, dirs_exist_ok=True)
    env.close()
    print(f"wrote {run}")


if __name__ == "__main__":
    main()
