"""Tests for rlaux.threads: given cores, the run registry and the ``threads=auto`` share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlaux.threads import AutoThreads, RunRegistry, cgroup_cpu_limit, configure_threads, given_cpus, physical_cores

DEAD_PID = 2**22 + 12345  # above Linux's default pid_max (4194304): never a live process


@pytest.fixture
def no_cgroup(tmp_path: Path) -> Path:
    """A cgroup root with no quota files."""
    root = tmp_path / "cgroup"
    root.mkdir()
    return root


# --------------------------------------------------------------------------- given cores
def test_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2  # 1.5 CPUs: rounded up
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    folder = tmp_path / "cpu"
    folder.mkdir()
    (folder / "cpu.cfs_period_us").write_text("100000")
    (folder / "cpu.cfs_quota_us").write_text("300000")
    assert cgroup_cpu_limit(tmp_path) == 3
    (folder / "cpu.cfs_quota_us").write_text("-1")
    assert cgroup_cpu_limit(tmp_path) is None


def test_no_cgroup_quota(no_cgroup: Path) -> None:
    assert cgroup_cpu_limit(no_cgroup) is None


def _fake_sysfs(root: Path, cores_of_cpus: list[int]) -> Path:
    """A sysfs cpu folder where logical cpu i sits on physical core ``cores_of_cpus[i]``."""
    for cpu, core in enumerate(cores_of_cpus):
        topology = root / f"cpu{cpu}" / "topology"
        topology.mkdir(parents=True)
        (topology / "physical_package_id").write_text("0\n")
        (topology / "core_id").write_text(f"{core}\n")
    return root


def test_physical_cores_count_hyperthreads_once(tmp_path: Path) -> None:
    sysfs = _fake_sysfs(tmp_path, [0, 1, 2, 3, 0, 1, 2, 3])  # 4 cores, 2 threads each
    assert physical_cores(range(8), sysfs) == 4
    assert physical_cores([0, 4], sysfs) == 1
    assert physical_cores([0, 1, 9], sysfs) == 3  # cpu9 has no topology: count logical CPUs


def test_given_cpus_is_the_smallest_limit(tmp_path: Path, no_cgroup: Path) -> None:
    cpus = range(8)
    sysfs = _fake_sysfs(tmp_path / "cpu", list(range(8)))
    assert given_cpus({}, cpus, no_cgroup, sysfs) == 8
    assert given_cpus({"SLURM_CPUS_PER_TASK": "4"}, cpus, no_cgroup, sysfs) == 4
    assert given_cpus({"OMP_NUM_THREADS": "2", "SLURM_CPUS_PER_TASK": "4"}, cpus, no_cgroup, sysfs) == 2
    assert given_cpus({"OMP_NUM_THREADS": "16"}, range(3), no_cgroup, sysfs) == 3  # never more than the mask
    assert given_cpus({"OMP_NUM_THREADS": "zero", "SLURM_CPUS_PER_TASK": "0"}, cpus, no_cgroup, sysfs) == 8
    (tmp_path / "cpu.max").write_text("200000 100000")
    assert given_cpus({}, cpus, tmp_path, sysfs) == 2
    hyperthreaded = _fake_sysfs(tmp_path / "ht", [0, 1, 2, 3, 0, 1, 2, 3])
    assert given_cpus({}, cpus, no_cgroup, hyperthreaded) == 4


# --------------------------------------------------------------------------- registry
def test_registry_prunes_dead_pids_and_counts_a_live_child(tmp_path: Path) -> None:
    registry = RunRegistry(tmp_path / "runs")
    assert registry.entries() == {}  # no folder yet
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        registry.register(child.pid, [0, 1])
        registry.register(DEAD_PID, [0])
        assert registry.entries() == {child.pid: frozenset({0, 1})}
        assert not registry.path_for(DEAD_PID).exists()  # the stale file is gone
    finally:
        child.communicate(b"")
    assert registry.entries() == {}  # the child exited: its entry is pruned too
    assert list((tmp_path / "runs").iterdir()) == []


def test_registry_ignores_unreadable_files(tmp_path: Path) -> None:
    registry = RunRegistry(tmp_path, is_alive=lambda pid: True)
    (tmp_path / "garbage.json").write_text("{not json")
    registry.register(7, [0])
    assert registry.entries() == {7: frozenset({0})}
    assert (tmp_path / "garbage.json").exists()


# --------------------------------------------------------------------------- share
def _auto(registry: RunRegistry, pid: int, given: int = 4, cpus: range = range(4)) -> tuple[AutoThreads, list[int]]:
    calls: list[int] = []
    return AutoThreads(given, cpus, registry, pid=pid, set_threads=calls.append), calls


def test_first_run_shrinks_when_a_second_starts_and_grows_back(tmp_path: Path) -> None:
    alive = {1, 2, 3}
    registry = RunRegistry(tmp_path, is_alive=lambda pid: pid in alive)
    first, first_calls = _auto(registry, pid=1)
    assert first.start() == 4 and first_calls == [4]
    assert first.refresh() == 4 and first_calls == [4]  # unchanged: torch is not called again
    second, second_calls = _auto(registry, pid=2)
    assert second.start() == 2 and second_calls == [2]
    assert first.refresh() == 2 and first_calls == [4, 2]
    third, _ = _auto(registry, pid=3)
    assert third.start() == 1  # 4 // 3
    alive -= {2, 3}  # two runs died without cleaning up
    assert first.refresh() == 4 and first_calls == [4, 2, 4]


def test_share_is_at_least_one_thread(tmp_path: Path) -> None:
    registry = RunRegistry(tmp_path, is_alive=lambda pid: True)
    for pid in range(10, 15):
        registry.register(pid, [0, 1])
    auto, _ = _auto(registry, pid=1, given=2, cpus=range(2))
    assert auto.start() == 1


def test_runs_on_other_cores_do_not_count(tmp_path: Path) -> None:
    registry = RunRegistry(tmp_path, is_alive=lambda pid: True)
    registry.register(50, [4, 5, 6, 7])  # e.g. another SLURM task pinned elsewhere
    auto, _ = _auto(registry, pid=1)
    assert auto.start() == 4
    registry.register(51, [3, 4])  # overlaps one of ours
    assert auto.refresh() == 2


def test_close_removes_the_entry(tmp_path: Path) -> None:
    registry = RunRegistry(tmp_path, is_alive=lambda pid: True)
    auto, _ = _auto(registry, pid=1)
    auto.start()
    assert registry.path_for(1).exists()
    auto.close()
    assert not registry.path_for(1).exists()


def test_entry_is_removed_when_the_process_exits(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from rlaux.threads import RunRegistry, configure_threads; "
            "auto = configure_threads('auto', RunRegistry(Path(sys.argv[1]))); "
            "assert RunRegistry(Path(sys.argv[1])).path_for(auto.pid).exists(); print(auto.threads)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    assert int(out.stdout) >= 1
    assert list(tmp_path.glob("*.json")) == []


# --------------------------------------------------------------------------- settings
def test_integer_and_null_settings(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    try:
        assert configure_threads(None, RunRegistry(tmp_path)) is None
        assert torch.get_num_threads() == before
        assert configure_threads(1, RunRegistry(tmp_path)) is None
        assert torch.get_num_threads() == 1
        assert list(tmp_path.iterdir()) == []  # an integer needs no registry
    finally:
        torch.set_num_threads(before)
    for bad in (0, -2, "many", True):
        with pytest.raises(ValueError, match="threads"):
            configure_threads(bad, RunRegistry(tmp_path))
