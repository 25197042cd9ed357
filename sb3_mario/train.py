"""``python -m sb3_mario.train``: rl-zoo's ``train.py`` with ``--algo ddqn`` and the Mario configs.

The explicit equivalent of ``python -m rl_zoo3.train`` with the start-up hook (the SBX ``train_sbx.py``
pattern): it takes exactly rl-zoo's arguments, e.g.::

    python -m sb3_mario.train --algo ddqn --env SuperMarioBros-1-1-v0 -n 100000 -tb runs/
"""

from sb3_mario.zoo import patch_all


def main() -> None:
    """Patch rl_zoo3 and run its ``train()`` on ``sys.argv``."""
    patch_all()
    from rl_zoo3.train import train

    train()


if __name__ == "__main__":
    main()
