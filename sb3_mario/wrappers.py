"""The classic Super Mario Bros. pixel pipeline as one gymnasium wrapper.

``MarioWrapper(env, **kwargs)`` is what rl-zoo's ``env_wrapper:`` names (as the dotted path
``sb3_mario.wrappers.MarioWrapper``). Frame stacking is left to SB3's ``VecFrameStack`` (the zoo's
``frame_stack: 4``), so the replay buffer stores each frame's stack the way SB3 expects.

SB3's ``make_vec_env`` (and so rl-zoo) puts ``Monitor`` *under* the env wrapper. A Monitor there would
count NES frames and gym-super-mario-bros' own reward, and it would never see an episode that the wrapper
cuts (``stuck_steps``), so SB3's ``evaluate_policy`` and ``EvalCallback``, which count only the episodes
that Monitor reports, would wait for ever on an agent that stands still. ``MarioWrapper`` therefore does
its work in :class:`MarioCore`, placed beneath such a Monitor: Monitor, ``monitor.csv``,
``rollout/ep_rew_mean``, ``evaluate_policy`` and :func:`sb3_mario.evaluate_mario` all see the same agent
steps, the same episode ends and the same reward.
"""

import multiprocessing
import threading
from typing import Any, SupportsFloat

import cv2
import gymnasium as gym
import numpy as np
from gym_super_mario_bros.actions import COMPLEX_MOVEMENT, RIGHT_ONLY, SIMPLE_MOVEMENT
from nes_py import NESEnv
from nes_py.wrappers import JoypadSpace
from stable_baselines3.common.monitor import Monitor

from sb3_mario.restarts import FailureRestarts, SavedState
from sb3_mario.worker_signals import shield_worker

#: JoypadSpace action sets by name. ``right_only`` is the seed's 5 actions.
ACTION_SETS: dict[str, list[list[str]]] = {
    "right_only": RIGHT_ONLY,
    "simple": SIMPLE_MOVEMENT,
    "complex": COMPLEX_MOVEMENT,
}
REWARDS = ("classic", "native")
#: info fields that ``reward="classic"`` is computed from
CLASSIC_REWARD_FIELDS = ("x_pos", "time", "is_dying", "is_dead")
#: largest x_pos jump per frame that counts as progress (larger ones are resets, pipes or warps)
MAX_X_STEP = 5
DEATH_PENALTY = -15.0
REWARD_CLIP = 15.0
#: the wrappers that record episode statistics; MarioWrapper's frames are processed beneath them
EPISODE_RECORDERS: tuple[type[gym.Wrapper], ...] = (Monitor, gym.wrappers.RecordEpisodeStatistics)


def level_x(x_pos: int) -> int:
    """
    gym-super-mario-bros' ``x_pos`` (the screen page * 256 + x, 16 bits) as a signed number. The maze castles'
    loops (4-4, 7-4) send Mario back a few pages, below page 0 when the loop comes early: the page reads 255 and
    ``x_pos`` 65,000-odd, where Mario is in fact a few pixels before the level's start.

    :param x_pos: the info field
    :return: the same position, negative where the page is 128 or more
    """
    return x_pos - 0x10000 if x_pos >= 0x8000 else x_pos


def classic_reward(info: dict[str, Any], x_last: int, time_last: int) -> float:
    """
    The reward of the seed (gym-super-mario-bros 7.x) for one NES frame, from the info fields of that frame:
    x progress (0 for jumps larger than 5 pixels), -1 per tick of the game clock, -15 when Mario dies,
    clipped to [-15, 15].

    :param info: the info dict of the frame
    :param x_last: ``level_x(x_pos)`` of the frame before
    :param time_last: ``time`` (game clock) of the frame before
    :return: the frame's reward
    """
    dx = level_x(int(info["x_pos"])) - x_last
    progress = dx if -MAX_X_STEP <= dx <= MAX_X_STEP else 0
    clock = min(0, int(info["time"]) - time_last)
    death = DEATH_PENALTY if info["is_dying"] or info["is_dead"] else 0.0
    return float(np.clip(progress + clock + death, -REWARD_CLIP, REWARD_CLIP))


def configure_env_worker() -> None:
    """
    In a ``SubprocVecEnv`` worker process:

    - leave Ctrl-C and a SIGTERM sent to the trainer's process group to the trainer, which saves the run and then
      closes its workers (:func:`sb3_mario.worker_signals.shield_worker`);
    - run OpenCV single-threaded: one worker per core is the parallelism; a thread pool in each would fight
      over the cores.
    """
    if multiprocessing.parent_process() is not None and threading.current_thread() is threading.main_thread():
        shield_worker()
        cv2.setNumThreads(1)


def is_mario_env(env: gym.Env) -> bool:
    """
    :param env: any gymnasium env, wrapped or not
    :return: whether the innermost env is a gym-super-mario-bros NES env
    """
    base = env.unwrapped
    return isinstance(base, NESEnv) and type(base).__module__.startswith("gym_super_mario_bros")


class MarioCore(gym.Wrapper):
    """
    The work of :class:`MarioWrapper`, on the env beneath any ``Monitor`` (see the module): JoypadSpace action
    set, frame skip (rewards summed, stops at episode end, optional max over the last two frames), optional
    sticky actions, grayscale, resize to ``screen_size`` x ``screen_size`` uint8, random no-op starts, the
    reward, and the cut of episodes without progress, with :class:`MarioWrapper`'s settings; and the failure
    restarts that a trainer may turn on (:meth:`set_failure_restarts`).
    """

    def __init__(self, env: gym.Env, settings: dict[str, Any]) -> None:
        """
        :param env: the gym-super-mario-bros env (or the wrappers beneath a Monitor)
        :param settings: :class:`MarioWrapper`'s arguments, checked (its ``mario_kwargs``)
        """
        actions, frame_skip, screen_size = settings["actions"], settings["frame_skip"], settings["screen_size"]
        max_pool, grayscale, stuck_steps = settings["max_pool"], settings["grayscale"], settings["stuck_steps"]
        reward, reward_scale, noop_max = settings["reward"], settings["reward_scale"], settings["noop_max"]
        sticky_actions = settings["sticky_actions"]
        super().__init__(JoypadSpace(env, ACTION_SETS[actions]))
        self.stuck_steps = stuck_steps
        self._steps_since_progress = 0
        self.frame_skip = frame_skip
        self.max_pool = max_pool
        self.screen_size = screen_size
        self.grayscale = grayscale
        self.reward_mode = reward
        self.reward_scale = reward_scale
        self.noop_max = noop_max
        self.sticky_actions = sticky_actions
        self._nes: NESEnv = env.unwrapped
        channels = 1 if grayscale else 3
        self.observation_space = gym.spaces.Box(0, 255, (screen_size, screen_size, channels), np.uint8)
        # full-size screens, written in place by the emulator's copy functions
        full = (240, 256) if grayscale else (240, 256, 3)
        self._screens = np.zeros((2, *full), dtype=np.uint8)
        self._x_last = 0
        self._time_last = 0
        self._max_x = 0
        self._last_action = 0  # the action of the previous NES frame (sticky actions repeat it)
        #: the failure restarts of a training env (:meth:`set_failure_restarts`); ``None``: every episode starts
        #: at the stage's start
        self.restarts: FailureRestarts | None = None
        self._restarted = False  # whether the episode under way started from a failure state

    def set_failure_restarts(self, probability: float, steps_back: int) -> None:
        """
        Start episodes, with probability ``probability``, from the state 1..``steps_back`` agent steps before
        the end of an earlier failed episode (:mod:`sb3_mario.restarts`); 0 turns restarts off. Calling again
        with the same settings keeps the failure states kept so far.

        :param probability: chance that an episode starts from a failure state, in [0, 1]
        :param steps_back: how many agent steps before a failure its kept state may lie, at most
        """
        kept = self.restarts
        if probability == 0:
            self.restarts = None
        elif kept is None or (kept.probability, kept.steps_back) != (probability, steps_back):
            self.restarts = FailureRestarts(probability, steps_back)

    def _saved_state(self) -> SavedState:
        return SavedState(self._nes.dump_state(), self._last_action)

    def _restore(self, state: SavedState) -> dict[str, Any]:
        # the emulator back into the saved state; gym-super-mario-bros' reward bookkeeping restarts from it, as
        # its own reset does after the start screen
        self._nes.load_state(state.emulator)
        self._nes._did_reset()
        self._last_action = state.last_action
        return self._nes._get_info()

    def _grab(self, slot: int) -> None:
        mode = "grayscale" if self.grayscale else "rgb_array_contiguous"
        self._nes.observation(mode, output=self._screens[slot])

    def _observation(self, pooled: bool) -> np.ndarray:
        frame = np.maximum(self._screens[0], self._screens[1]) if pooled else self._screens[1]
        obs = cv2.resize(frame, (self.screen_size, self.screen_size), interpolation=cv2.INTER_AREA)
        return obs.reshape(self.observation_space.shape)

    def _track(self, info: dict[str, Any]) -> None:
        self._x_last = level_x(int(info["x_pos"]))
        self._time_last = int(info.get("time", 0))
        self._max_x = max(self._max_x, self._x_last)
        info["max_x_pos"] = self._max_x

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """
        Reset the game, then do a random number of no-op frames in [0, noop_max]; with failure restarts on, the
        episode may instead start from a failure state (:meth:`set_failure_restarts`).

        :param seed: seed for the env's random generator (no-op count, sticky actions)
        :param options: passed to the env
        :return: first observation and info
        """
        _, info = self.env.reset(seed=seed, options=options)
        if self.reward_mode == "classic":
            missing = [key for key in CLASSIC_REWARD_FIELDS if key not in info]
            if missing:
                name = self.spec.id if self.spec is not None else type(self._nes).__name__
                raise ValueError(
                    f"reward='classic' needs the info fields {missing}, which {name} does not report. "
                    "Use MarioWrapper(env, reward='native')."
                )
        self._last_action = 0
        saved = self.restarts.start(self.np_random) if self.restarts is not None else None
        if saved is not None:
            info = self._restore(saved)
        else:
            noops = int(self.np_random.integers(0, self.noop_max + 1)) if self.noop_max > 0 else 0
            for _ in range(noops):
                _, _, terminated, truncated, info = self.env.step(0)
                if terminated or truncated:
                    _, info = self.env.reset(options=options)
        self._max_x = 0
        self._steps_since_progress = 0
        self._track(info)
        self._restarted = info["restarted"] = saved is not None
        if self.restarts is not None:
            self.restarts.record(self._saved_state())
        self._grab(1)
        return self._observation(pooled=False), info

    def _frame_action(self, action: int) -> int:
        # sticky actions (Machado et al. 2018): each NES frame, with probability p, the previous frame's action
        if self.sticky_actions > 0 and self.np_random.random() < self.sticky_actions:
            return self._last_action
        self._last_action = action
        return action

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """
        Repeat ``action`` for ``frame_skip`` frames (fewer if the episode ends) and sum the rewards.

        :param action: index into the action set
        :return: observation, summed reward, terminated, truncated, info of the last frame
        """
        total = 0.0
        pooled = False
        terminated = truncated = False
        max_x_before = self._max_x
        info: dict[str, Any] = {}
        for frame in range(self.frame_skip):
            _, reward, terminated, truncated, info = self.env.step(self._frame_action(int(action)))
            if self.reward_mode == "classic":
                total += classic_reward(info, self._x_last, self._time_last)
            else:
                total += float(reward)
            self._track(info)
            if terminated or truncated:
                break
            if self.max_pool and frame == self.frame_skip - 2:
                self._grab(0)
                pooled = True
        if self.stuck_steps is not None and not (terminated or truncated):
            self._steps_since_progress = 0 if self._max_x > max_x_before else self._steps_since_progress + 1
            truncated = self._steps_since_progress >= self.stuck_steps
        if self.restarts is not None:
            if terminated or truncated:
                self.restarts.episode_ended(failed=not info.get("flag_get", False), rng=self.np_random)
            else:
                self.restarts.record(self._saved_state())
        info["restarted"] = self._restarted
        self._grab(1)
        return self._observation(pooled), total * self.reward_scale, terminated, truncated, info


class MarioWrapper(gym.Wrapper):
    """
    Super Mario Bros. preprocessing: JoypadSpace action set, frame skip (rewards summed, stops at episode end,
    optional max over the last two frames), grayscale, resize to ``screen_size`` x ``screen_size`` uint8,
    optional random no-op starts, the reward, optional sticky actions and the cut of episodes without progress.

    Grayscale frames come straight from nes-py's native ``observation('grayscale', output=...)`` and are
    resized with OpenCV's ``INTER_AREA``. Observations are channel-last ``(screen_size, screen_size, 1)``
    (3 channels with ``grayscale=False``); stack them with ``VecFrameStack`` (zoo: ``frame_stack: 4``).

    The info dict keeps gym-super-mario-bros' fields of the last frame (``flag_get``, ``x_pos``, ...) and
    adds ``max_x_pos``, the farthest ``x_pos`` of the episode so far (read by :func:`level_x`, so that a castle's
    loop, which sends Mario back, does not count as a jump forward; the classic reward and ``stuck_steps`` read it
    so too), and ``restarted``: whether the episode started from a failure state (only ever true where a trainer
    turned failure restarts on: :meth:`set_failure_restarts`, which ``DoubleDQN(failure_restarts=p)`` calls on its
    training envs).

    When ``env`` is a ``Monitor`` (or gymnasium's ``RecordEpisodeStatistics``), as SB3's ``make_vec_env`` and
    rl-zoo build it, the work is done by a :class:`MarioCore` placed beneath it, so that the Monitor records
    agent steps, this wrapper's reward and every episode end, the ``stuck_steps`` cut included (see the module).

    :param env: a gym-super-mario-bros env, e.g. ``gym.make("SuperMarioBros-1-1-v0")``, optionally in ``Monitor``
    :param actions: ``"right_only"`` (5 actions, the seed's), ``"simple"`` (7) or ``"complex"`` (12)
    :param frame_skip: NES frames per agent step (the action is repeated), >= 1
    :param max_pool: take the pixel-wise max of the last two frames of each step (removes sprite flicker)
    :param screen_size: side of the square observation, in pixels
    :param grayscale: one gray channel (True) or RGB (False)
    :param reward: ``"classic"``: the seed's reward (x progress, -1 per clock tick, -15 on death, clipped to
        +-15 per frame); ``"native"``: gym-super-mario-bros 9.x's shaped reward
    :param reward_scale: factor applied to the summed reward of each step
    :param noop_max: at reset, do a random number of no-op frames in [0, noop_max]
    :param stuck_steps: end the episode as truncated (``TimeLimit.truncated``) when Mario has not gone farther
        right for this many agent steps; ``None`` waits for the game clock (up to ~2,400 steps)
    :param sticky_actions: each NES frame, with this probability the previous frame's action is repeated instead
        of the chosen one (Machado et al. 2018, ALE v5 uses 0.25), drawn from the env's seeded random generator;
        0 (the default) plays every chosen action, as the NES is deterministic
    """

    def __init__(
        self,
        env: gym.Env,
        actions: str = "right_only",
        frame_skip: int = 4,
        max_pool: bool = False,
        screen_size: int = 84,
        grayscale: bool = True,
        reward: str = "classic",
        reward_scale: float = 1.0,
        noop_max: int = 0,
        stuck_steps: int | None = None,
        sticky_actions: float = 0.0,
    ) -> None:
        if not is_mario_env(env):
            spec_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
            raise ValueError(
                f"MarioWrapper only wraps gym-super-mario-bros envs, got {spec_id!r} "
                f"({type(env.unwrapped).__name__}). Create one with gym.make('SuperMarioBros-1-1-v0') or "
                "sb3_mario.make_mario_env(...); for Atari use stable_baselines3.common.atari_wrappers.AtariWrapper."
            )
        if actions not in ACTION_SETS:
            raise ValueError(f"Unknown action set {actions!r}: choose one of {sorted(ACTION_SETS)}.")
        if reward not in REWARDS:
            raise ValueError(f"Unknown reward {reward!r}: choose one of {list(REWARDS)}.")
        if frame_skip < 1 or screen_size < 1 or noop_max < 0 or (stuck_steps is not None and stuck_steps < 1):
            raise ValueError(
                f"Need frame_skip >= 1, screen_size >= 1, noop_max >= 0 and stuck_steps >= 1 (or None); got "
                f"frame_skip={frame_skip}, screen_size={screen_size}, noop_max={noop_max}, stuck_steps={stuck_steps}."
            )
        if not 0 <= sticky_actions < 1:
            raise ValueError(f"sticky_actions is a probability in [0, 1), got {sticky_actions} (ALE v5 uses 0.25).")
        configure_env_worker()
        self.mario_kwargs: dict[str, Any] = dict(
            actions=actions,
            frame_skip=frame_skip,
            max_pool=max_pool,
            screen_size=screen_size,
            grayscale=grayscale,
            reward=reward,
            reward_scale=reward_scale,
            noop_max=noop_max,
            stuck_steps=stuck_steps,
            sticky_actions=sticky_actions,
        )
        # beneath the Monitor(s) directly under this wrapper, if any; else directly under it
        recorder: gym.Wrapper | None = None
        below: gym.Env = env
        while isinstance(below, EPISODE_RECORDERS):
            recorder, below = below, below.env
        self.core = MarioCore(below, self.mario_kwargs)
        if recorder is None:
            super().__init__(self.core)
        else:
            recorder.env = self.core
            super().__init__(env)
        self.frame_skip = frame_skip
        self.stuck_steps = stuck_steps
        self.sticky_actions = sticky_actions

    def set_failure_restarts(self, probability: float, steps_back: int) -> None:
        """
        Training only: start episodes, with probability ``probability``, from the state 1..``steps_back`` agent
        steps before the end of an earlier failed episode of this env (:mod:`sb3_mario.restarts`); 0 turns
        restarts off. ``DoubleDQN(failure_restarts=...)`` calls it on its training envs through ``env_method``.

        :param probability: chance that an episode starts from a failure state, in [0, 1]
        :param steps_back: how many agent steps before a failure its kept state may lie, at most
        """
        self.core.set_failure_restarts(probability, steps_back)
