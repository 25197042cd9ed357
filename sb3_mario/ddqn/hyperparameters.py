"""The ranges of ``DoubleDQN``'s hyperparameters, checked before any env or buffer is built."""

from typing import Any

import numpy as np

#: the hyperparameters that :func:`check_hyperparameters` checks: (what they must be, the test)
HYPERPARAMETER_RULES: dict[str, tuple[str, Any]] = {
    "buffer_size": ("an integer >= 1", lambda v: v >= 1),
    "learning_starts": ("an integer >= 0", lambda v: v >= 0),
    "batch_size": ("an integer >= 1", lambda v: v >= 1),
    "tau": ("in (0, 1]", lambda v: 0 < v <= 1),
    "gamma": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "gradient_steps": ("-1 or an integer >= 0", lambda v: v == -1 or v >= 0),
    "n_steps": ("an integer >= 1", lambda v: v >= 1),
    "target_update_interval": ("an integer >= 1", lambda v: v >= 1),
    "exploration_fraction": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "exploration_initial_eps": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "exploration_final_eps": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "max_grad_norm": ("> 0", lambda v: v > 0),
    "ez_greedy_mu": ("> 0, or None for epsilon-greedy", lambda v: v > 0),
    "ez_greedy_max_duration": ("an integer >= 1", lambda v: v >= 1 and int(v) == v),
    "failure_restarts": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "failure_restart_steps": ("an integer >= 1", lambda v: v >= 1 and int(v) == v),
    "learning_rate_final": (">= 0", lambda v: v >= 0),
    "learning_rate_fraction": ("in (0, 1]", lambda v: 0 < v <= 1),
}


def check_hyperparameters(**values: Any) -> None:
    """
    Raise a ``ValueError`` naming each hyperparameter that is out of range, and the range it must be in.

    :param values: hyperparameter names and values, as passed to :class:`DoubleDQN` (those in
        :data:`HYPERPARAMETER_RULES`)
    """
    problems = []
    for name, value in values.items():
        expected, ok = HYPERPARAMETER_RULES[name]
        if not isinstance(value, int | float | np.integer | np.floating) or not ok(value):
            problems.append(f"{name}={value!r} (must be {expected})")
    if values.get("buffer_size", 1) < values.get("batch_size", 0) and not problems:
        problems.append(
            f"batch_size={values['batch_size']} is larger than buffer_size={values['buffer_size']} "
            "(the replay buffer must hold at least one batch)"
        )
    if problems:
        raise ValueError("Invalid DoubleDQN hyperparameters: " + "; ".join(problems) + ".")
