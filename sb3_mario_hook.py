"""Start-up hook that teaches rl-baselines3-zoo about sb3-mario.

``sb3_mario_hook.pth`` (installed next to this module in site-packages) imports this module when
Python starts and calls :func:`install`. It only puts a small finder on ``sys.meta_path``: nothing
heavy is imported at start-up. When a program later imports ``rl_zoo3.utils``,
``rl_zoo3.hyperparams_opt`` or ``rl_zoo3.exp_manager``, the finder lets the module load as usual and
then hands it to :func:`sb3_mario.zoo.patch`, which registers ``--algo ddqn``, its Optuna sampler,
the Mario environments and the package's default ``zoo_configs/``.

Set ``SB3_MARIO_NO_ZOO_HOOK=1`` to switch the hook off. If ``sb3_mario`` is missing or broken, the
hook warns once and rl_zoo3 runs unchanged.
"""

import sys

WATCHED = ("rl_zoo3.utils", "rl_zoo3.hyperparams_opt", "rl_zoo3.exp_manager")


def _patch(module):
    try:
        from sb3_mario.zoo import patch
    except Exception as exc:  # a half-installed package must never break rl_zoo3 or Python
        import warnings

        warnings.warn(
            f"sb3-mario's rl-zoo hook could not import sb3_mario ({exc!r}); rl_zoo3 runs without --algo ddqn. "
            "Reinstall sb3-mario, or set SB3_MARIO_NO_ZOO_HOOK=1 to silence this.",
            stacklevel=2,
        )
        return
    patch(module)


class _PatchingLoader:
    """Runs the real loader, then patches the fresh module."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _patch(module)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class ZooFinder:
    """A meta-path finder that only wraps the loaders of the watched rl_zoo3 modules."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name not in WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is cls or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


def install():
    """Put :class:`ZooFinder` first on ``sys.meta_path`` (once)."""
    if ZooFinder not in sys.meta_path:
        sys.meta_path.insert(0, ZooFinder)
