"""Training episodes that start where earlier ones failed: failure restarts.

An emulator can be put back into any state it was in. Go-Explore (Ecoffet, Huizinga, Lehman, Stanley and Clune,
"First return, then explore", Nature 2021, https://arxiv.org/abs/2004.12919) uses that to return to the states
it found and explore from them; Salimans and Chen ("Learning Montezuma's Revenge from a Single Demonstration",
2018, https://arxiv.org/abs/1812.03381) start episodes from states along a demonstration. Here the states are the
env's own: when a training episode fails (Mario dies, or the episode is cut for making no progress), the state it
was in a random 1..``steps_back`` agent steps before its end is kept, and each later episode starts, with
probability ``probability``, from one of the last ``pool_size`` states kept that way instead of from the stage's
start. Where every episode fails at the same place, the agent meets that place more often per agent step.
Cleared episodes keep nothing.

Nothing is placed by hand: the states are those the agent reached itself, and only training envs restart.
:class:`~sb3_mario.DoubleDQN` turns restarts on in its own training envs when it learns
(``failure_restarts=p``); evaluation envs, ``sb3_mario.evaluate``, ``record`` and rl-zoo's ``enjoy`` always play
from the stage's start.
"""

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

#: failure states an env keeps (the oldest go first)
POOL_SIZE = 64


@dataclass(frozen=True)
class SavedState:
    """One agent step's end, as an episode can start from it."""

    #: the emulator's state (nes-py's opaque ``dump_state()`` snapshot: RAM, CPU, PPU, mapper, screen)
    emulator: Any
    #: the action of the last NES frame (sticky actions repeat it)
    last_action: int


class FailureRestarts:
    """
    The states one env keeps for failure restarts (see the module), and the draws that use them.

    :param probability: chance that an episode starts from a kept failure state, in [0, 1]
    :param steps_back: a failed episode keeps the state of a uniformly random 1..``steps_back`` agent steps
        before its end (fewer where the episode was shorter)
    :param pool_size: how many failure states are kept; the oldest is dropped for a new one
    """

    def __init__(self, probability: float, steps_back: int, pool_size: int = POOL_SIZE) -> None:
        if not 0 <= probability <= 1 or steps_back < 1 or int(steps_back) != steps_back or pool_size < 1:
            raise ValueError(
                "Failure restarts need a probability in [0, 1], steps_back >= 1 (an integer) and pool_size >= 1, "
                f"got probability={probability}, steps_back={steps_back}, pool_size={pool_size}."
            )
        self.probability = float(probability)
        self.steps_back = int(steps_back)
        #: the last ``steps_back`` states of the episode under way, the newest last
        self.recent: deque[SavedState] = deque(maxlen=self.steps_back)
        #: the failure states kept, the newest last
        self.failures: deque[SavedState] = deque(maxlen=pool_size)

    def record(self, state: SavedState) -> None:
        """
        :param state: the state the episode under way has reached (at its start and after each agent step that
            did not end it)
        """
        self.recent.append(state)

    def episode_ended(self, failed: bool, rng: np.random.Generator) -> None:
        """
        Keep one of the episode's last states if it failed, then forget the episode.

        :param failed: whether the episode ended without clearing the stage (death, cut, time out)
        :param rng: the env's random generator
        """
        if failed and self.recent:
            back = int(rng.integers(1, len(self.recent) + 1))
            self.failures.append(self.recent[-back])
        self.recent.clear()

    def start(self, rng: np.random.Generator) -> SavedState | None:
        """
        :param rng: the env's random generator
        :return: the state the next episode starts from, or ``None`` for the stage's start
        """
        if self.failures and rng.random() < self.probability:
            return self.failures[int(rng.integers(len(self.failures)))]
        return None
