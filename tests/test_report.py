"""``rlaux.report``: run discovery and grouping, rliable aggregates, plots and the Markdown
report, from a few tiny real runs and from hand-made run folders."""

from __future__ import annotations

import csv
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from rlaux.report import (
    ReportError,
    RunRecord,
    aggregate_metrics,
    algorithm_label,
    find_run_dirs,
    make_report,
    read_reference,
    score_matrices,
)

TINY = ["env=CartPole-v1", "steps=1024", "eval_every=256", "eval_episodes=2", "logger=none", "progress=false",
        "threads=1", "device=cpu", "agent.num_steps=64", "env.num_envs=4"]


def fake_run(folder: Path, env: str, kind: str, seed: int, returns: list[float], agent: str = "sac",
             aux: tuple[str, ...] = (), obs: str = "state", frames: list[int] | None = None) -> Path:
    """A run folder as rlaux.train writes it (config.yaml + eval.csv), without training."""
    folder.mkdir(parents=True)
    aux_yaml = "aux: {}" if not aux else "aux:\n" + "".join(f"  {a}: {{}}\n" for a in aux)
    (folder / "config.yaml").write_text(
        f"agent:\n  name: {agent}\nenv:\n  name: {env}\n  kind: {kind}\n  obs: {obs}\n  protocol: v5\n{aux_yaml}\nseed: {seed}\n")
    frames = frames or [1000 * (i + 1) for i in range(len(returns))]
    with (folder / "eval.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "frame", "return", "return_std", "length", "episodes"])
        for x, r in zip(frames, returns):
            w.writerow([x // 2, x, r, 0.0, 10, 10])
    return folder


def png_ok(path: Path, min_w: int = 300, min_h: int = 150) -> None:
    """The PNG decodes, is reasonably large and is not blank (enough non-background pixels)."""
    img = np.asarray(imageio.imread(path))[..., :3].astype(int)
    h, w = img.shape[:2]
    assert w >= min_w and h >= min_h, (path, img.shape)
    background = img[0, 0]
    differs = np.abs(img - background).sum(-1) > 30
    assert differs.mean() > 0.01, (path, differs.mean())
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 20, path  # lines, text and fills, not a flat image


# --------------------------------------------------------------------------- metrics
FIXED = {
    "a": np.array([[0.1, 0.9, 0.5], [0.2, 0.8, 0.4], [0.3, 1.2, 0.6], [0.0, 1.0, 0.7]]),
    "b": np.array([[0.5, 0.5, 0.5], [0.6, 0.4, 0.3], [0.7, 0.6, 0.2], [0.4, 0.5, 0.1]]),
}


def test_aggregates_match_rliable_on_a_fixed_matrix() -> None:
    from rliable import library, metrics

    names, points, intervals = aggregate_metrics(FIXED, gap_threshold=1.0, reps=300, seed=7)
    assert names == ["IQM", "Mean", "Median", "Optimality gap"]
    a = FIXED["a"]
    # by hand: IQM = mean of the middle 6 of the 12 sorted scores; mean/median of per-task means
    middle = np.sort(a.ravel())[3:9]
    assert points["a"][0] == pytest.approx(middle.mean())
    assert points["a"][1] == pytest.approx(a.mean(0).mean())
    assert points["a"][2] == pytest.approx(np.median(a.mean(0)))
    assert points["a"][3] == pytest.approx(1.0 - np.minimum(a, 1.0).mean())
    # rliable itself, same bootstrap random state
    def func(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x), metrics.aggregate_median(x),
                         metrics.aggregate_optimality_gap(x, 1.0)])

    np.random.seed(7)  # rliable's bootstrap draws from numpy's global RNG
    ref_points, ref_intervals = library.get_interval_estimates(FIXED, func, reps=300)
    for alg in FIXED:
        np.testing.assert_allclose(points[alg], ref_points[alg])
        np.testing.assert_allclose(intervals[alg], ref_intervals[alg])
        assert intervals[alg].shape == (2, 4)
        assert np.all(intervals[alg][0] <= points[alg] + 1e-12) and np.all(points[alg] <= intervals[alg][1] + 1e-12)
    assert not np.allclose(intervals["a"][0], intervals["a"][1])  # a real interval


def test_raw_scores_leave_out_the_gap_unless_a_threshold_is_given() -> None:
    names, points, _ = aggregate_metrics(FIXED, gap_threshold=None, reps=50)
    assert names == ["IQM", "Mean", "Median"] and points["a"].shape == (3,)


def test_score_matrix_is_rectangular_over_common_tasks() -> None:
    def rec(alg: str, task: str, seed: int, score: float) -> RunRecord:
        r = RunRecord(path=Path(f"/{alg}/{task}/{seed}"), algorithm=alg, task=task, env_name=task, kind="dmc", seed=seed,
                      frames=np.array([1]), returns=np.array([score]))
        r.score = score
        return r

    records = [rec("x", "t1", 1, 0.1), rec("x", "t1", 2, 0.2), rec("x", "t1", 3, 0.3), rec("x", "t2", 1, 0.4),
               rec("x", "t2", 2, 0.5), rec("y", "t1", 1, 0.6), rec("y", "t2", 1, 0.7), rec("y", "t3", 1, 0.8)]
    notes: list[str] = []
    matrices, tasks, _ = score_matrices(records, notes)
    assert tasks == ["t1", "t2"]
    np.testing.assert_allclose(matrices["x"], [[0.1, 0.4], [0.2, 0.5]])  # lowest 2 seeds of t1
    np.testing.assert_allclose(matrices["y"], [[0.6, 0.7]])
    assert any("t3" in n for n in notes) and any("leaving out" in n for n in notes)
    with pytest.raises(ReportError, match="no task was run by every algorithm"):
        score_matrices([rec("x", "t1", 1, 0.1), rec("y", "t2", 1, 0.2)], [])


def test_labels() -> None:
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"agent": {"name": "ppo", "lr": 0.001}, "aux": {"tcrl": {}, "predictive": {}}, "seed": 1})
    assert algorithm_label(cfg) == "ppo+predictive+tcrl"
    assert algorithm_label(cfg, ["agent.name", "aux", "agent.lr"]) == "ppo+predictive+tcrl lr=0.001"
    assert algorithm_label(OmegaConf.create({"agent": {"name": "dqn"}, "aux": {}})) == "dqn"


# --------------------------------------------------------------------------- reports
@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PPO and PPO+predictive on CartPole, 2 seeds each, laid out like a Hydra multirun."""
    from rlaux.train import train

    root = tmp_path_factory.mktemp("sweep")
    for aux in ("none", "predictive"):
        for seed in (1, 2):
            summary = train(["agent=ppo", f"aux={aux}", f"seed={seed}", *TINY], run_dir=root / "day" / f"aux={aux},seed={seed}")
            assert not summary["interrupted"]
    return root


def test_report_from_tiny_runs(tiny_sweep: Path, tmp_path: Path) -> None:
    ref = tmp_path / "ref.csv"
    ref.write_text("task,env_steps,mean_return,std_return,seeds\nCartPole-v1,256,30,5,3\nCartPole-v1,1024,120,20,3\n"
                   "cheetah-run,1000,10,1,5\n")
    out = tmp_path / "report"
    result = make_report([tiny_sweep], out=out, reps=200, points=5, gap_threshold=500.0, reference=ref,
                         reference_label="paper", title="tiny", verbose=False)
    assert result["runs"] == 4 and result["tasks"] == ["CartPole-v1"]
    assert set(result["table"]) == {"ppo", "ppo+predictive"}
    for row in result["table"].values():
        assert list(row) == ["IQM", "Mean", "Median", "Optimality gap"]
        iqm, lo, hi = row["IQM"]
        assert lo <= iqm <= hi and 0 <= iqm <= 500
        assert row["Optimality gap"][0] == pytest.approx(500 - row["Mean"][0])  # no score above 500
    for name in ("aggregate_metrics", "performance_profile", "sample_efficiency", "task_curves"):
        png_ok(out / f"{name}.png")
    md = (out / "report.md").read_text()
    assert "| ppo | 2 |" in md and "| ppo+predictive | 2 |" in md and "![task_curves](task_curves.png)" in md
    assert "raw return" in md and "reference curves (paper" in md
    with (out / "scores.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {r["seed"] for r in rows} == {"1", "2"}
    # the score of a run is its last eval.csv row
    for r in rows:
        with (Path(r["run_dir"]) / "eval.csv").open() as f:
            last = list(csv.DictReader(f))[-1]
        assert float(r["return"]) == pytest.approx(float(last["return"])) and r["frame"] == last["frame"]


def test_report_budget_and_normalised_dmc(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # two spellings of one task group together; scores are return / 1000
    fake_run(runs / "a1", "cup-catch", "dmc", 1, [100.0, 500.0, 900.0])
    fake_run(runs / "a2", "ball_in_cup-catch", "dmc", 2, [200.0, 600.0, 800.0])
    fake_run(runs / "b1", "ball_in_cup-catch", "dmc", 1, [0.0, 300.0, 400.0], aux=("tcrl",))
    fake_run(runs / "b2", "cup-catch", "dmc", 2, [0.0, 100.0, 200.0], aux=("tcrl",))
    fake_run(runs / "nested" / "p1", "cup-catch", "dmc", 1, [1.0], obs="pixels")  # another task: left out
    (runs / "empty").mkdir()
    (runs / "empty" / "config.yaml").write_text("agent: {name: sac}\n")  # no eval.csv: not a run
    assert len(find_run_dirs([runs])) == 5
    result = make_report([runs], out=tmp_path / "r", budget=2500, reps=100, points=3, verbose=False)
    assert result["tasks"] == ["ball_in_cup-catch"]
    table = result["table"]
    assert table["sac"]["Mean"][0] == pytest.approx(0.55)  # 500 and 600 at 2000 frames
    assert table["sac+tcrl"]["Mean"][0] == pytest.approx(0.2)
    assert table["sac"]["Optimality gap"][0] == pytest.approx(0.45)  # threshold 1 for normalised scores
    assert any("ball_in_cup-catch (pixels)" in n for n in result["notes"])
    md = (tmp_path / "r" / "report.md").read_text()
    assert "return / 1000" in md and "2500 env frames" in md


def test_reference_csv_checks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("name,x\nfoo,1\n")
    with pytest.raises(ReportError, match="needs columns task"):
        read_reference(bad)
    good = tmp_path / "good.csv"
    good.write_text("task,env_steps,mean_return\nfinger-turn-easy,2,20\nfinger-turn-easy,1,10\n")
    ref = read_reference(good)
    x, y, std = ref["finger-turn_easy"]
    assert list(x) == [1, 2] and list(y) == [10, 20] and std is None


@pytest.mark.parametrize("args, expected", [
    ([], "give runs=..."),
    (["runs=/does/not/exist"], "no such folder"),
    (["runs=.", "normalize=minmax"], "valid choices: auto, none"),
    (["run=."], "Did you mean runs"),
])
def test_report_cli_errors(capsys: pytest.CaptureFixture, args: list[str], expected: str) -> None:
    from rlaux.report import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("rlaux: error:") and expected in err, err


def test_report_cli_with_no_runs_found(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from rlaux.report import main

    with pytest.raises(SystemExit) as exit_info:
        main([f"runs={tmp_path}"])
    assert exit_info.value.code == 2 and "no run folders" in capsys.readouterr().err
