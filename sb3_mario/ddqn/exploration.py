"""Temporally-extended epsilon-greedy exploration ("ez-greedy"), per env.

Paper: "Temporally-Extended epsilon-Greedy Exploration", Dabney, Ostrovski and Barreto, ICLR 2021,
https://arxiv.org/abs/2006.01782

Epsilon-greedy explores one agent step at a time: a random action, then the greedy ones again. In Mario a jump
is as high as A is held, and getting past an enemy may need a wait; a single random step does neither. With
ez-greedy an env that is not already exploring starts, with probability epsilon, to repeat one random action for
``n`` agent steps, ``n`` drawn from a zeta distribution (``p(n)`` proportional to ``n ** -mu``, the paper's
``mu = 2``) on ``1..max_duration``; the other steps are greedy. An episode's end ends its env's repetition.
"""

import numpy as np

#: :meth:`ExtendedExploration.actions`'s entry for an env that acts greedily
GREEDY = -1


class ExtendedExploration:
    """
    Which envs explore, and with which action, under ez-greedy (see the module). Random draws come from NumPy's
    global generator, as SB3's epsilon-greedy ones do, so that ``set_random_seed`` makes them reproducible.

    :param n_envs: number of envs
    :param n_actions: size of the Discrete action space
    :param mu: exponent of the zeta distribution of the durations (> 0; larger: shorter repetitions)
    :param max_duration: the longest repetition, in agent steps (>= 1)
    """

    def __init__(self, n_envs: int, n_actions: int, mu: float = 2.0, max_duration: int = 100) -> None:
        if mu <= 0 or max_duration < 1:
            raise ValueError(f"ez-greedy needs mu > 0 and max_duration >= 1, got mu={mu}, max_duration={max_duration}.")
        self.n_envs = n_envs
        self.n_actions = n_actions
        weights = np.arange(1, max_duration + 1, dtype=np.float64) ** -mu
        #: probability of each duration 1..max_duration
        self.duration_probabilities = weights / weights.sum()
        #: per env: agent steps of its repetition still to come (0: not exploring)
        self.remaining = np.zeros(n_envs, dtype=np.int64)
        #: per env: the action it repeats
        self.held = np.zeros(n_envs, dtype=np.int64)

    def actions(self, envs: np.ndarray, epsilon: float) -> np.ndarray:
        """
        The next step of the given envs: those that explore, and their action.

        :param envs: indices of the envs whose next action is being picked
        :param epsilon: the probability that an env not exploring starts to
        :return: per env of ``envs``, the action it takes while exploring, or :data:`GREEDY`
        """
        envs = np.asarray(envs, dtype=np.int64)
        # Envs not repeating an action start a repetition with probability epsilon
        idle = envs[self.remaining[envs] == 0]
        starting = idle[np.random.rand(len(idle)) < epsilon]
        if len(starting):
            # ... of a uniformly random action, for a zeta-distributed number of steps
            self.held[starting] = np.random.randint(self.n_actions, size=len(starting))
            durations = np.random.choice(len(self.duration_probabilities), size=len(starting),
                                         p=self.duration_probabilities) + 1  # fmt: skip
            self.remaining[starting] = durations
        exploring = self.remaining[envs] > 0
        # This step uses up one step of each repetition
        self.remaining[envs[exploring]] -= 1
        return np.where(exploring, self.held[envs], GREEDY)

    def choose(self, envs: np.ndarray, epsilon: float, greedy: np.ndarray) -> np.ndarray:
        """
        :param envs: indices of the envs whose next action is being picked
        :param epsilon: the probability that an env not exploring starts to
        :param greedy: the greedy action of each of ``envs``
        :return: their actions: the repeated one where an env explores (:meth:`actions`), else the greedy one
        """
        held = self.actions(envs, epsilon)
        return np.where(held == GREEDY, greedy, held)

    def episodes_ended(self, dones: np.ndarray) -> None:
        """
        :param dones: per env, whether its episode just ended: its repetition ends with it
        """
        self.remaining[np.asarray(dones, dtype=bool)] = 0
