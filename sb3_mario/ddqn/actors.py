"""Env workers that do not wait for each other: ``DoubleDQN(async_envs=True)``.

SB3's loop is lock-step: send every env its action, wait for the slowest worker, then stack frames, store the
transition and pick the next actions while every worker idles. With ``async_envs=True`` each
``SubprocVecEnv`` worker is served as soon as its step arrives: its frames are stacked, its next action
picked (in one forward pass with the other workers that arrived at the same time) and sent, and it steps
again while the trainer waits for the rest, takes the pending gradient steps in between, and stores
the vec-env step. A worker may run up to ``AHEAD`` (8) steps ahead of the slowest one, so that a worker that
loses its core to the scheduler for a few milliseconds seldom holds the others back. When the learner runs on
a GPU (the trainer is then one busy Python thread), the workers run at a lower scheduling priority (``nice``
+5) than the trainer: it serves them all, and should not lose its core to each worker it wakes. A learner on
the CPU uses every core itself, and the workers keep their priority.

Replay rows, callbacks, ``num_timesteps`` and the exploration schedule stay per vec-env step (all envs):
the row of step ``t`` is stored once every env has returned step ``t``, as SB3 stores it. Two things differ
from SB3's loop, as with ``overlap_env_step``: an env's actions for its next steps (up to ``AHEAD`` ahead) are
picked, by the weights and the exploration rate of that moment (with ``cuda_graph`` on a GPU, by a copy of
the weights taken after one of the last two batches of gradient steps: :mod:`sb3_mario.ddqn.acting`), before
step ``t`` is stored, and epsilon-greedy draws "explore or not" once per batch of envs served together instead
of once per vec-env step. No env is sent a step beyond the last one ``learn`` will take, so
``learn(total_timesteps)`` ends at the same ``num_timesteps`` as SB3's loop. When a callback stops it early,
the stopping step (which SB3 counts but does not store) and the steps in flight are collected and stored (the
envs behind step up to the others): no env is left mid-step, and the replay rows stay consecutive.

A callback may call ``get_attr``, ``set_attr``, ``env_method``, ``env_is_wrapped`` or ``render`` on the
training env (or on ``model.get_env()``) during ``learn``: the steps in flight return first (they are kept
for their rows), then the workers answer the call.
"""

import os
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import SubprocVecEnv, VecEnv, VecEnvWrapper, VecFrameStack, VecTransposeImage
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

#: how much nicer (lower scheduling priority) than the trainer the env workers run
WORKER_NICENESS = 5
#: how many steps an env may run ahead of the slowest one (on an H100 box, 512 was no faster end to end:
#: benchmarks/README.md)
AHEAD = 8
#: the wrappers that may sit between ``SubprocVecEnv`` and the algorithm (rl-zoo's image pipeline)
SUPPORTED_WRAPPERS = (VecFrameStack, VecTransposeImage)
#: the ``SubprocVecEnv`` methods that send a worker a command other than a step (callbacks may call them)
WORKER_COMMANDS = ("get_attr", "set_attr", "env_method", "env_is_wrapped", "get_images")
StepResult = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]
#: what ``SubprocVecEnv`` raises when a worker process is gone
WORKER_GONE = (EOFError, BrokenPipeError, ConnectionResetError)


def async_layers(venv: VecEnv) -> tuple[SubprocVecEnv, list[VecEnvWrapper]] | None:
    """
    :param venv: a VecEnv, wrappers included
    :return: its ``SubprocVecEnv`` and the wrappers above it (innermost first), or ``None`` when the env is
        not a ``SubprocVecEnv`` under ``VecFrameStack`` / ``VecTransposeImage`` wrappers only
    """
    layers: list[VecEnvWrapper] = []
    while isinstance(venv, VecEnvWrapper):
        if not isinstance(venv, SUPPORTED_WRAPPERS):
            return None
        layers.insert(0, venv)
        venv = venv.venv
    return (venv, layers) if isinstance(venv, SubprocVecEnv) else None


def lower_priority(pid: int | None, by: int) -> None:
    """
    Let process ``pid`` run at least ``by`` nicer than this one (a no-op where the OS does not allow it).

    :param pid: process id
    :param by: how much higher its niceness should be than this process's (higher: lower priority)
    """
    try:
        niceness = os.getpriority(os.PRIO_PROCESS, 0) + by
        if pid is not None and os.getpriority(os.PRIO_PROCESS, pid) < niceness:
            os.setpriority(os.PRIO_PROCESS, pid, niceness)
    except (OSError, AttributeError):  # no such process, not permitted, or no setpriority on this OS
        pass


class _FrameStacks:
    """
    What ``VecFrameStack`` (and ``VecTransposeImage``) do to the observations, one env at a time: the stacks
    of every env, in the layout the algorithm sees (the frames' channels first when transposed).
    """

    def __init__(self, layers: list[VecEnvWrapper]) -> None:
        self.frame_stack = next((layer for layer in layers if isinstance(layer, VecFrameStack)), None)
        transposes = [layer for layer in layers if isinstance(layer, VecTransposeImage)]
        self.transpose = bool(transposes) and not transposes[0].skip
        stacked = self.frame_stack.stacked_obs if self.frame_stack is not None else None
        if stacked is not None and stacked.channels_first == self.transpose:
            raise ValueError(
                "async_envs supports VecFrameStack on channel-first images, or on channel-last images followed by "
                "VecTransposeImage (rl-zoo's order); use async_envs=False with this VecEnv."
            )
        #: (n_envs, stacked frames...) as the algorithm sees them; set by start()
        self.stacks = np.zeros(0)

    def _frame(self, obs: np.ndarray) -> np.ndarray:
        return np.moveaxis(obs, -1, -3) if self.transpose else obs  # VecTransposeImage: (H, W, C) -> (C, H, W)

    def start(self, venv: VecEnv) -> None:
        """
        Take the stacks of the whole VecEnv.

        :param venv: the VecEnv under the wrapper that holds these stacks
        """
        if self.frame_stack is not None:
            self.stacks = self._frame(self.frame_stack.stacked_obs.stacked_obs).copy()

    def hand_back(self) -> None:
        """Give the stacks back to the whole VecEnv's ``VecFrameStack``, so that it can be stepped lock-step."""
        if self.frame_stack is not None and self.stacks.size:
            whole = self.frame_stack.stacked_obs.stacked_obs
            whole[...] = np.moveaxis(self.stacks, -3, -1) if self.transpose else self.stacks

    def update(self, i: int, obs: np.ndarray, done: bool, info: dict[str, Any]) -> np.ndarray:
        """
        Add env ``i``'s new observation to its stack, as ``StackedObservations.update`` does.

        :param i: env index
        :param obs: the worker's observation
        :param done: whether its episode ended (``obs`` is then the first of the next one)
        :param info: its info; a ``terminal_observation`` there is stacked (and transposed) in place
        :return: the stacked observation, a copy, with a leading env axis of 1
        """
        frame = self._frame(obs)
        if self.frame_stack is None:
            if done and "terminal_observation" in info:
                info["terminal_observation"] = self._frame(info["terminal_observation"])
            return frame[None].copy()
        stack, c = self.stacks[i], frame.shape[0]
        stack[:-c] = stack[c:].copy()  # the oldest frame drops out
        if done:
            if "terminal_observation" in info:
                info["terminal_observation"] = np.concatenate((stack[:-c], self._frame(info["terminal_observation"])))
            stack[...] = 0
        stack[-c:] = frame
        return stack[None].copy()


class AsyncEnvs(VecEnvWrapper):
    """
    Serves each worker of a ``SubprocVecEnv`` as soon as its step arrives (see the module).

    Until ``act`` is set it is the wrapped VecEnv, unchanged.

    :param venv: the training VecEnv: a ``SubprocVecEnv``, optionally under ``VecFrameStack`` and
        ``VecTransposeImage`` (see :func:`async_layers`)
    :param train_some: takes a few of the pending gradient steps; returns False when none is pending
    :param ahead: how many steps an env may run ahead of the slowest one
    :param nice_workers: run the workers at a lower priority than this process (see the module)
    :param rows_left: how many vec-env steps the algorithm will still take, the one being collected included
        (``None``: not known); no env is sent a step beyond them, so ``learn`` ends with none in flight
    """

    def __init__(
        self,
        venv: VecEnv,
        train_some: Callable[[], bool],
        ahead: int = AHEAD,
        nice_workers: bool = False,
        rows_left: Callable[[], int | None] | None = None,
    ) -> None:
        found = async_layers(venv)
        if found is None:
            raise ValueError(
                "async_envs needs a SubprocVecEnv (rl-zoo: --vec-env subproc) wrapped only by "
                "VecFrameStack / VecTransposeImage; use async_envs=False with this VecEnv."
            )
        if isinstance(venv.observation_space, spaces.Dict):
            raise ValueError("async_envs supports Box observations, not Dict ones; use async_envs=False.")
        super().__init__(venv)
        self.base = found[0]
        self.stacks = _FrameStacks(found[1])
        self.remotes = self.base.remotes
        self.discrete = isinstance(venv.action_space, spaces.Discrete)
        self.train_some = train_some
        self.ahead = ahead
        self.rows_left = rows_left
        for process in self.base.processes if nice_workers else []:
            lower_priority(process.pid, WORKER_NICENESS)
        #: picks the actions of some envs from their observations and indices (set by the learn loop; None: not yet)
        self.act: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
        self._started = False  # the stacks are ours (taken from the whole VecEnv)
        self._sent: list[deque] = []  # per env: actions sent whose step is not yet in a returned row
        self._returned: list[deque] = []  # per env: (obs, reward, done, info) not yet in a returned row
        self._stepping = np.zeros(venv.num_envs, dtype=bool)  # per env: a step is in flight

    @property
    def in_flight(self) -> np.ndarray | None:
        """The actions of the next vec-env step (already sent), or ``None`` when none was sent."""
        if not self._sent or any(not sent for sent in self._sent):
            return None
        return np.array([sent[0] for sent in self._sent])

    def reset(self) -> VecEnvObs:
        assert self.in_flight is None, "collect the step in flight (drain()) before resetting"
        self._started = False
        return self.venv.reset()

    def step_async(self, actions: np.ndarray) -> None:
        if self.act is None:
            return self.venv.step_async(actions)
        sent = self.in_flight if self._started else None
        if sent is not None:
            # sent env by env during the previous step_wait
            assert np.array_equal(actions, sent), "with async_envs, a step's actions are those already sent"
            return
        if not self._started:
            self.stacks.start(self.venv)
            self._started = True
            self._sent = [deque() for _ in range(self.num_envs)]
            self._returned = [deque() for _ in range(self.num_envs)]
            for name in WORKER_COMMANDS:  # until the hand-back, other commands wait for the steps in flight
                setattr(self.base, name, self._after_steps(getattr(self.base, name)))
        for i in range(self.num_envs):
            self._send(i, actions[i : i + 1])

    def step_wait(self) -> VecEnvStepReturn:
        if self.act is None:
            return self.venv.step_wait()
        sent_up_to = self.ahead + 1
        left = self.rows_left() if self.rows_left is not None else None
        if left is not None:
            sent_up_to = max(1, min(sent_up_to, left))  # no step beyond the algorithm's last one
        obs, rewards, dones, infos = self._collect(sent_up_to)[1:]
        return obs, rewards, dones, infos

    def drain(self) -> list[StepResult]:
        """
        Collect the vec-env steps in flight: the envs that ran ahead stop, the others step up to them, and every
        env ends at the same step. The frame stacks go back to the wrapped VecEnv.

        :return: ``(actions, obs, rewards, dones, infos)`` of each vec-env step collected (none if none was sent)
        """
        rows: list[StepResult] = []
        if self._started and self.in_flight is not None:
            rows_sent = max(len(sent) for sent in self._sent)
            while len(rows) < rows_sent:
                rows.append(self._collect(sent_up_to=rows_sent - len(rows)))
        self._hand_back()
        return rows

    def settle(self) -> None:
        """After an error in ``learn`` (not a dead worker): receive the steps in flight (their rows are dropped) and
        give the frame stacks back, so that the workers answer the next command in order."""
        if self._started:
            for i in np.flatnonzero(self._stepping):
                self._receive(int(i))
        self._hand_back()

    def abandon(self) -> None:
        """Forget the steps in flight (after an error: the workers may be gone)."""
        self._started = False
        self._sent, self._returned = [], []
        self._stepping[:] = False
        for name in WORKER_COMMANDS:
            self.base.__dict__.pop(name, None)  # the SubprocVecEnv's own methods again

    def _after_steps(self, command: Callable[..., Any]) -> Callable[..., Any]:
        # a SubprocVecEnv command that first receives the steps in flight: a worker answers in order, and its
        # step must not be read as the command's answer
        def call(*args: Any, **kwargs: Any) -> Any:
            for i in np.flatnonzero(self._stepping):
                self._receive(int(i))
            return command(*args, **kwargs)

        return call

    def _receive(self, i: int) -> None:
        # env i's step returns: its frames are stacked, the step waits for its row
        obs, reward, done, info, _ = self.remotes[i].recv()
        stacked = self.stacks.update(i, obs, done, info)
        self._returned[i].append((stacked, reward, done, info))
        self._stepping[i] = False

    def _send(self, i: int, action: np.ndarray) -> None:
        self.remotes[i].send(("step", int(action[0]) if self.discrete else action[0]))
        self._sent[i].append(action[0])
        self._stepping[i] = True

    def _serve(self, envs: list[int]) -> None:
        # one forward pass picks the next action of every env in envs, from its latest observation
        assert self.act is not None
        if envs:
            actions = self.act(np.concatenate([self._returned[i][-1][0] for i in envs]), np.array(envs))
            for k, i in enumerate(envs):
                self._send(i, actions[k : k + 1])

    def _collect(self, sent_up_to: int) -> StepResult:
        # wait until every env has returned its step of the next row; an env that returns a step is sent its
        # next one at once while it has fewer than sent_up_to steps sent beyond the last returned row
        actions = np.array([sent[0] for sent in self._sent])
        may_step = [len(sent) < sent_up_to for sent in self._sent]
        # envs that stopped ahead of the slowest one step on now
        self._serve([i for i in range(self.num_envs) if may_step[i] and not self._stepping[i] and self._returned[i]])
        stepping = {self.remotes[i]: int(i) for i in np.flatnonzero(self._stepping)}
        missing = sum(not returned for returned in self._returned)
        may_train = True
        while missing:
            assert stepping, "an env is neither stepping nor returned"
            ready = wait(list(stepping), timeout=0) if may_train else []
            if not ready:
                may_train = may_train and self.train_some()
                if may_train:
                    continue  # gradient steps while no worker waits for us
                ready = wait(list(stepping))
            arrived = []
            for i in sorted(stepping.pop(remote) for remote in ready):
                self._receive(i)
                missing -= len(self._returned[i]) == 1
                if len(self._sent[i]) < sent_up_to:
                    arrived.append(i)
            self._serve(arrived)
            stepping.update((self.remotes[i], i) for i in arrived)
        while may_train and self.train_some():
            pass
        row = [returned.popleft() for returned in self._returned]
        for sent in self._sent:
            sent.popleft()
        return (
            actions,
            np.concatenate([step[0] for step in row]),
            np.array([step[1] for step in row]),
            np.array([step[2] for step in row]),
            [step[3] for step in row],
        )

    def _hand_back(self) -> None:
        if self._started:
            self.stacks.hand_back()
        self.abandon()
