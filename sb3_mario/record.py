"""Record a greedy episode of a trained agent as an animated GIF (or MP4).

    python -m sb3_mario.record models/SuperMarioBros-1-1-v0.pt --out docs/mario.gif --seed 0

The picture is the NES screen (256x240) at every agent step (15 frames/s of game time at frame skip 4).
"""

import argparse
from pathlib import Path

import numpy as np

from sb3_mario.evaluation import make_pipeline_env, pipeline_env_id
from sb3_mario.loading import ALGORITHMS, load_model


def record(
    model_path: str,
    out: str,
    env_id: str | None = None,
    seed: int = 0,
    noop_max: int = 30,
    algo: str = "ddqn",
    every: int = 1,
    max_steps: int = 5000,
) -> dict:
    """
    Play one greedy episode and write its screens to ``out`` (``.gif`` or ``.mp4``).

    :param model_path: an SB3 ``.zip`` or exported weights (``.pt``)
    :param out: the file to write
    :param env_id: gym-super-mario-bros id (default: the model's, else 1-1)
    :param seed: the episode's seed (no-op start)
    :param noop_max: random no-op frames at the start
    :param algo: algorithm of a ``.zip``
    :param every: keep one screen every ``every`` agent steps
    :param max_steps: stop after this many agent steps
    :return: the env id, the stage the emulator played (``world-stage``), the episode's ``flag_get``,
        ``max_x_pos``, ``steps`` and number of frames written
    """
    model, pipeline = load_model(model_path, algo=algo, device="cpu")
    env_id = pipeline_env_id(pipeline, env_id)
    env = make_pipeline_env(pipeline, env_id, noop_max, env_kwargs=dict(render_mode="rgb_array"))
    env.seed(seed)
    obs = env.reset()
    frames, info, steps = [np.array(env.render())], {}, 0
    while steps < max_steps:
        action, _ = model.predict(obs, deterministic=True)  # type: ignore[arg-type]
        obs, _, dones, infos = env.step(action)
        steps += 1
        info = infos[0]
        if dones[0]:
            break
        if steps % every == 0:
            frames.append(np.array(env.render()))
    env.close()
    write_animation(frames, Path(out), fps=max(1, 15 // every))
    return {
        "env_id": env_id,
        "stage": f"{info.get('world')}-{info.get('stage')}",
        "flag_get": bool(info.get("flag_get")),
        "max_x_pos": info.get("max_x_pos"),
        "steps": steps,
        "frames": len(frames),
    }


def write_animation(frames: list[np.ndarray], out: Path, fps: int) -> None:
    """
    :param frames: RGB screens
    :param out: ``.gif`` (Pillow) or ``.mp4`` (imageio-ffmpeg, installed with moviepy)
    :param fps: frames per second
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".gif":
        from PIL import Image

        images = [Image.fromarray(frame).convert("P", palette=Image.Palette.ADAPTIVE) for frame in frames]
        images[0].save(out, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0, optimize=True)
    else:
        import imageio_ffmpeg

        writer = imageio_ffmpeg.write_frames(str(out), frames[0].shape[1::-1], fps=fps, macro_block_size=8)
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()


def main(argv: list[str] | None = None) -> dict:
    """
    Command-line entry point.

    :param argv: arguments (default: ``sys.argv[1:]``)
    :return: what :func:`record` returns
    """
    parser = argparse.ArgumentParser(prog="python -m sb3_mario.record", description=__doc__.split("\n")[0])
    parser.add_argument("model", help="SB3 .zip or exported weights .pt")
    parser.add_argument("--out", default="mario.gif", help=".gif or .mp4")
    parser.add_argument("--env", default=None, help="gym-super-mario-bros env id (default: the model's, else 1-1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noop-max", type=int, default=30)
    parser.add_argument("--algo", default="ddqn", choices=sorted(ALGORITHMS))
    parser.add_argument("--every", type=int, default=1, help="keep one screen every N agent steps")
    args = parser.parse_args(argv)
    result = record(args.model, args.out, args.env, args.seed, args.noop_max, args.algo, args.every)
    print(f"wrote {args.out}: {result}")
    return result


if __name__ == "__main__":
    main()
