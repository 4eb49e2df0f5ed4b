"""Evaluation of checkpoints (``rlaux.evaluate``), score normalisation and suites
(``rlaux.scores``), and the linear probe (``rlaux.probe``)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from rlaux import scores
from rlaux.checkpoint import list_checkpoints, load_checkpoint

TINY_PPO = ["agent=ppo", "env=CartPole-v1", "steps=1024", "eval_every=512", "eval_episodes=3", "logger=none",
            "progress=false", "threads=1", "device=cpu", "seed=3", "agent.num_steps=64", "env.num_envs=4"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def count_frames(path: Path) -> int:
    with imageio.get_reader(path) as reader:
        return sum(1 for _ in reader)


@pytest.fixture(scope="module")
def ppo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from rlaux.train import train

    run_dir = tmp_path_factory.mktemp("eval") / "ppo_run"
    summary = train(TINY_PPO, run_dir=run_dir)
    assert not summary["interrupted"]
    return run_dir


# --------------------------------------------------------------------------- normalisation
def test_human_normalised_scores_by_hand() -> None:
    # Breakout: random 1.7, human 30.5; Alien: random 227.8, human 7127.7 (pinned table)
    assert scores.human_normalized("ALE/Breakout-v5", 30.5) == pytest.approx(1.0)
    assert scores.human_normalized("ALE/Breakout-v5", 1.7) == pytest.approx(0.0)
    assert scores.human_normalized("ALE/Breakout-v5", 16.1) == pytest.approx((16.1 - 1.7) / 28.8)
    assert scores.human_normalized("ALE/Alien-v5", 3677.75) == pytest.approx(0.5)
    assert scores.human_normalized("PongNoFrameskip-v4", -3.05) == pytest.approx(0.5)  # (-3.05+20.7)/35.3
    assert scores.human_normalized("ALE/Pong-v5", 21.0) == pytest.approx(41.7 / 35.3)
    assert scores.normalize("cheetah-run", "dmc", 734.0) == pytest.approx(0.734)
    assert scores.normalize("CartPole-v1", "gym", 321.0) == 321.0
    assert scores.normalize("ALE/Pong-v5", "atari", -20.7, method="none") == -20.7


def test_atari_table_is_the_pinned_57_game_table() -> None:
    table = scores.atari_table()
    assert len(table) == 57
    assert table["Defender"] == (2874.5, 18688.9) and table["Surround"] == (-10.0, 6.5)
    assert table["VideoPinball"] == (16256.9, 17667.9)
    assert all(human != random for random, human in table.values())


def test_unknown_game_and_method_are_clear_errors() -> None:
    with pytest.raises(KeyError, match="normalize=none"):
        scores.human_normalized("ALE/Adventure-v5", 0.0)
    with pytest.raises(ValueError, match="valid choices: auto, none"):
        scores.normalize("ALE/Pong-v5", "atari", 0.0, method="minmax")


def test_named_suites() -> None:
    atari100k = scores.suite("atari100k")
    assert len(atari100k) == 26 and "ALE/UpNDown-v5" in atari100k and "ALE/Pong-v5" in atari100k
    assert set(atari100k) <= set(scores.suite("atari57"))
    assert len(scores.suite("atari57")) == 57
    tcrl = scores.suite("dmc-tcrl")
    parts = [scores.suite(f"dmc-tcrl-{k}") for k in ("easy", "medium", "hard")]
    assert len(tcrl) == 24 and sorted(tcrl) == sorted(sum(parts, []))
    assert len(scores.suite("dmc-drqv2")) == 23 and scores.suite("dmc-drqv2-hard") == ["humanoid-run", "humanoid-stand",
                                                                                         "humanoid-walk"]
    with pytest.raises(ValueError, match="Did you mean dmc-tcrl"):
        scores.suite("dmc-tcr")


def test_suite_names_are_valid_env_names() -> None:
    import envs

    for name in ("atari100k", "dmc-tcrl", "dmc-drqv2"):
        for env_name in scores.suite(name):
            assert envs.env_kind(env_name) == ("atari" if name.startswith("atari") else "dmc"), env_name


# --------------------------------------------------------------------------- evaluate
def test_evaluate_reproduces_the_final_eval_and_writes_csv_video(ppo_run: Path, tmp_path: Path) -> None:
    from rlaux.evaluate import evaluate_checkpoint

    out = tmp_path / "ev"
    summary = evaluate_checkpoint(run=ppo_run, episodes=3, out=out, verbose=False)
    final = json.loads((ppo_run / "summary.json").read_text())
    # same checkpoint, same eval seeds, deterministic policy: the run's own final evaluation
    assert summary["step"] == final["step"]
    assert summary["return"]["mean"] == pytest.approx(final["eval_return"])
    assert summary["deterministic"] and summary["episodes"] == 3 and summary["score"] is None

    rows = read_rows(out / "episodes.csv")
    assert [r["episode"] for r in rows] == ["0", "1", "2"]
    returns = [float(r["return"]) for r in rows]
    assert np.mean(returns) == pytest.approx(summary["return"]["mean"])
    assert [int(r["length"]) for r in rows] == [int(x) for x in returns]  # CartPole: +1 per step

    video = Path(summary["video"])
    assert video.suffix == ".mp4" and video.is_file()
    first_length = int(rows[0]["length"])
    assert count_frames(video) == first_length + 1 == summary["video_frames"]  # reset frame + one per step
    frame = imageio.get_reader(video).get_data(0)
    assert frame.shape == (400, 600, 3) and frame.std() > 5  # a real picture, not a blank frame
    assert json.loads((out / "summary.json").read_text())["return"] == summary["return"]


def test_evaluate_gif_stochastic_and_default_folder(ppo_run: Path) -> None:
    from rlaux.evaluate import evaluate_checkpoint

    ckpt = list_checkpoints(ppo_run / "checkpoints")[-1]
    summary = evaluate_checkpoint(checkpoint=ckpt, episodes=2, deterministic=False, video_format="gif",
                                  video_max_frames=7, verbose=False)
    out = ppo_run / "evaluation" / f"step_{summary['step']:010d}"
    assert Path(summary["episodes_csv"]).parent == out
    assert not summary["deterministic"]
    assert summary["video_frames"] == 7 and summary["video_truncated"]
    # GIF (Pillow) merges identical consecutive frames, adding up their durations: 7 frames at 50 fps
    from PIL import Image

    with Image.open(summary["video"]) as gif:
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert 1 <= len(durations) <= 7 and sum(durations) == pytest.approx(7 * 1000 / 50)


def test_atari_protocol_and_episodes() -> None:
    import envs
    from rlaux.evaluate import default_episodes, protocol_description

    cfg = envs.resolve_env_config({"name": "ALE/Pong-v5", "protocol": "100k"})
    assert default_episodes(cfg, 10) == 100
    assert "no sticky actions" in protocol_description(cfg) and "108,000 frames" in protocol_description(cfg)
    cfg.protocol = "v5"
    assert "sticky actions p=0.25" in protocol_description(cfg)
    assert default_episodes(envs.resolve_env_config({"name": "cartpole-swingup"}), 3) == 10
    assert default_episodes(envs.resolve_env_config({"name": "CartPole-v1"}), 3) == 3


@pytest.mark.parametrize("name, shape, fps", [("ALE/Pong-v5", (210, 160, 3), 15),  # 60 Hz, frame skip 4
                                              ("cartpole-swingup", (168, 168, 3), 50)])  # 100 Hz control, repeat 2
def test_first_episode_recorder(tmp_path: Path, name: str, shape: tuple[int, ...], fps: int) -> None:
    import envs
    from rlaux.video import FirstEpisodeRecorder, VideoUnavailable, enable_rgb_rendering, video_fps

    cfg = envs.resolve_env_config({"name": name})
    env = envs.make_env(cfg, seed=0, mode="eval")
    try:
        try:
            enable_rgb_rendering(env)
        except VideoUnavailable as exc:  # no headless OpenGL on this machine
            pytest.skip(str(exc))
        assert video_fps(env, cfg.action_repeat) == fps
        env.reset()
        rec = FirstEpisodeRecorder(env, tmp_path / "v.mp4", fps=fps)
        assert rec(0, None)
        for t in range(1, 5):
            env.step(env.action_space.sample())
            assert rec(t, np.array([t == 4])) is (t != 4)  # stops at the end of env 0's episode
    finally:
        env.close()
    with imageio.get_reader(tmp_path / "v.mp4") as reader:
        frames = [f for f in reader]
    assert len(frames) == 5 == rec.frames and frames[0].shape == shape and frames[-1].std() > 1


@pytest.mark.parametrize("args, expected", [
    ([], "give run=... or checkpoint=..."),
    (["run=/does/not/exist"], "no such folder"),
    (["rn=x"], "Did you mean run"),
    (["checkpoint=/nope.pt"], "no such file"),
    (["run=x", "video_format=avi"], "valid choices: mp4, gif"),
    (["run=x", "episodes=many"], "not an integer"),
])
def test_evaluate_cli_errors(capsys: pytest.CaptureFixture, args: list[str], expected: str) -> None:
    from rlaux.evaluate import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rlaux: error:") and expected in err, err


def test_tools_print_any_user_error_as_one_line(capsys: pytest.CaptureFixture) -> None:
    from rlaux.errors import UserError
    from rlaux.kvargs import run_cli

    class FolderMistake(UserError):
        pass

    def body(values: dict) -> None:
        raise FolderMistake("run=x holds no run; give a run folder")

    with pytest.raises(SystemExit) as exit_info:
        run_cli("rlaux.tool", {}, [], body)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "rlaux: error: run=x holds no run; give a run folder\n"


def test_evaluate_protocol_needs_atari(ppo_run: Path, capsys: pytest.CaptureFixture) -> None:
    from rlaux.evaluate import main

    with pytest.raises(SystemExit) as exit_info:
        main([f"run={ppo_run}", "protocol=100k", "video=false"])
    assert exit_info.value.code == 2
    assert "applies to Atari envs only" in capsys.readouterr().err


# --------------------------------------------------------------------------- probe
def test_linear_probe_freezes_the_source_encoder(ppo_run: Path, tmp_path: Path) -> None:
    from rlaux.probe import run_probe
    from rlaux.report import load_run

    out = tmp_path / "probe"
    report = run_probe(run=ppo_run, steps=400, eval_every=200, eval_episodes=2, out=out, device="cpu",
                       override=["threads=1", "agent.learning_starts=100", "agent.update_every=50",
                                 "agent.num_updates=5", "agent.target_update_every=5"], verbose=False)
    assert report["probe_agent"] == "dqn" and report["source_algorithm"] == "ppo"
    assert math.isfinite(report["probe_return"])
    source = load_checkpoint(list_checkpoints(ppo_run / "checkpoints")[-1])["agent"]
    probe = load_checkpoint(list_checkpoints(out / "checkpoints")[-1])
    enc = {k: v for k, v in source.items() if k.startswith("encoder.")}
    for k, v in enc.items():  # frozen: bit-identical after training
        assert torch.equal(probe["agent"][k], v), k
        assert torch.equal(probe["agent"]["target_" + k], v), k
    head = [k for k in probe["agent"] if k.startswith("head.")]
    assert [k.split(".")[-1] for k in head] == ["weight", "bias"]  # one linear layer
    assert probe["agent"]["head.q.0.weight"].shape == (2, enc["encoder.net.2.weight"].shape[0])
    assert "q" in probe["optimizers"] and probe["optimizers"]["q"]["state"]  # the head was trained
    assert report["trainable_parameters"] == 2 * enc["encoder.net.2.weight"].shape[0] + 2
    assert load_run(out).algorithm == "probe[dqn] of ppo"
