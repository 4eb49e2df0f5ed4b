"""How many CPU threads a run gives torch: ``threads: auto | N | null``.

``threads=auto`` gives a run its share of the cores it was given, shared with the other rlaux
runs on the same machine that use those cores:

* **Given cores** (:func:`given_cpus`): the smallest of the physical cores in the CPU affinity
  mask (``os.sched_getaffinity``: set by SLURM, taskset, cpusets; hyperthreads of one core count
  once, as in torch's default thread count), the cgroup CPU quota (cgroup v2
  ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``: Docker ``--cpus``, Kubernetes
  limits) and the launchers' hints: ``SLURM_CPUS_PER_TASK`` (set by SLURM when ``-c`` /
  ``--cpus-per-task`` was asked for) and ``OMP_NUM_THREADS`` (Ray sets it to a task's or
  actor's ``num_cpus``, 1 when none was given; joblib's loky backend sets it to
  ``cpu_count() // n_jobs`` in its workers).
* **Other runs** (:class:`RunRegistry`): each ``auto`` run writes one small file, named by its
  pid and listing its given cores, to a folder shared by the user's runs (``RLAUX_RUNS_DIR``,
  else ``/tmp/rlaux-runs-<uid>``). Files of dead pids are pruned; a run's file is removed when
  it exits. Runs whose core sets overlap share those cores.
* **Share**: ``max(1, given // live runs sharing the cores)``. A run started first shrinks when
  a second one starts: the training run calls :meth:`AutoThreads.refresh` periodically; it
  reads the folder and calls ``torch.set_num_threads`` only when the share changed.

``threads=N`` uses exactly N threads (no registry); ``threads=null`` keeps torch's default.
"""

from __future__ import annotations

import atexit
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_SYSFS = Path("/sys/devices/system/cpu")
RUNS_DIR_ENV = "RLAUX_RUNS_DIR"
#: Launcher variables read as a cap on the given cores (see the module docstring).
HINT_VARIABLES = ("SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS")


def default_runs_dir() -> Path:
    """``$RLAUX_RUNS_DIR``, else ``/tmp/rlaux-runs-<uid>`` (one folder per user, on every launcher:
    ``$TMPDIR`` and ``$XDG_RUNTIME_DIR`` differ between a login shell and a batch job)."""
    if os.environ.get(RUNS_DIR_ENV):
        return Path(os.environ[RUNS_DIR_ENV])
    return Path("/tmp") / f"rlaux-runs-{os.getuid()}"


def _affinity() -> frozenset[int]:
    """The CPUs this process may run on (all of them where the OS has no affinity call)."""
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> int | None:
    """Whole CPUs allowed by the cgroup quota (rounded up), or None where there is no quota.

    Reads cgroup v2 ``<root>/cpu.max`` (``"max 100000"`` = none, ``"150000 100000"`` = 1.5 CPUs),
    else cgroup v1 ``<root>/cpu/cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` (quota -1 = none).
    """
    text = _read(root / "cpu.max")
    if text is not None:
        quota, _, period = text.partition(" ")
        if quota == "max" or not period:
            return None
        return max(1, math.ceil(int(quota) / int(period)))
    for folder in (root / "cpu", root / "cpu,cpuacct", root):
        quota_text, period_text = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
        if quota_text is not None and period_text is not None:
            quota, period = int(quota_text), int(period_text)
            return None if quota <= 0 or period <= 0 else max(1, math.ceil(quota / period))
    return None


def physical_cores(cpus: Iterable[int], sysfs: Path = CPU_SYSFS) -> int:
    """Distinct physical cores among the logical ``cpus`` (sysfs ``topology/physical_package_id``
    and ``core_id``); ``len(cpus)`` where the topology cannot be read."""
    cpus = list(cpus)
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        package, core = _read(topology / "physical_package_id"), _read(topology / "core_id")
        if package is None or core is None:
            return len(cpus)
        cores.add((package, core))
    return len(cores)


def _positive_int(text: str | None) -> int | None:
    try:
        value = int(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 1 else None


def given_cpus(
    environ: Mapping[str, str] | None = None,
    affinity: Iterable[int] | None = None,
    cgroup_root: Path = CGROUP_ROOT,
    sysfs: Path = CPU_SYSFS,
) -> int:
    """The number of CPUs this run was given: the smallest of the physical cores in the affinity
    mask, the cgroup quota and the launcher hints in :data:`HINT_VARIABLES` (invalid values are
    ignored)."""
    environ = os.environ if environ is None else environ
    cpus = frozenset(_affinity() if affinity is None else affinity)
    limits = [physical_cores(cpus, sysfs) or 1]
    quota = cgroup_cpu_limit(cgroup_root)
    if quota is not None:
        limits.append(quota)
    limits += [v for v in (_positive_int(environ.get(name)) for name in HINT_VARIABLES) if v is not None]
    return min(limits)


def pid_alive(pid: int) -> bool:
    """True if a process with this pid exists (``os.kill(pid, 0)``; another user's counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunRegistry:
    """The live ``threads=auto`` runs on this machine: one JSON file per process in ``folder``.

    Each file is ``<pid>.json`` holding ``{"pid": ..., "cpus": [...]}``, the process's given CPU
    set. Reading the registry deletes the files of processes that no longer exist.
    """

    def __init__(self, folder: Path | None = None, is_alive: Callable[[int], bool] = pid_alive) -> None:
        self.folder = Path(folder) if folder is not None else default_runs_dir()
        self.is_alive = is_alive

    def path_for(self, pid: int) -> Path:
        """The registry file of process ``pid``."""
        return self.folder / f"{pid}.json"

    def register(self, pid: int, cpus: Iterable[int]) -> Path:
        """Write (atomically) the entry of process ``pid`` using ``cpus``; return its path."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path_for(pid)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": int(pid), "cpus": sorted(int(c) for c in cpus)}))
        tmp.replace(path)
        return path

    def unregister(self, pid: int) -> None:
        """Remove the entry of process ``pid`` (no error if it is gone)."""
        self.path_for(pid).unlink(missing_ok=True)

    def entries(self) -> dict[int, frozenset[int]]:
        """pid -> CPU set of every live registered run; prunes the files of dead pids."""
        live: dict[int, frozenset[int]] = {}
        if not self.folder.is_dir():
            return live
        for path in self.folder.glob("*.json"):
            try:
                entry: dict[str, Any] = json.loads(path.read_text())
                pid, cpus = int(entry["pid"]), frozenset(int(c) for c in entry["cpus"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # being written, or not ours: leave it alone
            if self.is_alive(pid):
                live[pid] = cpus
            else:
                path.unlink(missing_ok=True)
        return live


def set_interop_threads(count: int) -> None:
    """Set torch's inter-op pool size once; torch refuses after any parallel work has run
    (RuntimeError), and then the pool keeps its size."""
    try:
        torch.set_num_interop_threads(count)
    except RuntimeError:
        pass


class AutoThreads:
    """``threads=auto``: a run's share of its given cores, kept current by :meth:`refresh`.

    Args:
        given: CPUs this run was given (:func:`given_cpus`).
        cpus: the CPU ids they are (for finding the runs that share them).
        registry: where live runs are listed.
        pid: this process's id (the registry key).
        set_threads: called with the new share when it changes (``torch.set_num_threads``).
    """

    def __init__(
        self,
        given: int,
        cpus: Iterable[int],
        registry: RunRegistry,
        pid: int | None = None,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        self.given = max(1, int(given))
        self.cpus = frozenset(cpus)
        self.registry = registry
        self.pid = os.getpid() if pid is None else int(pid)
        self.set_threads = set_threads
        self.threads: int | None = None

    def start(self) -> int:
        """Register this run, apply its share and return it; the entry is removed at exit."""
        self.registry.register(self.pid, self.cpus)
        atexit.register(self.close)
        return self.refresh()

    def share(self) -> int:
        """``max(1, given // live runs sharing the cores)``; this run counts once, registered or not."""
        runs = self.registry.entries()
        runs[self.pid] = self.cpus
        sharing = sum(1 for cpus in runs.values() if cpus & self.cpus)
        return max(1, self.given // max(1, sharing))

    def refresh(self) -> int:
        """Re-read the registry; call ``set_threads`` only when the share changed. Returns it."""
        share = self.share()
        if share != self.threads:
            self.set_threads(share)
            self.threads = share
        return share

    def close(self) -> None:
        """Remove this run's registry entry."""
        self.registry.unregister(self.pid)
        atexit.unregister(self.close)


def configure_threads(setting: int | str | None, registry: RunRegistry | None = None) -> AutoThreads | None:
    """Apply a run's ``threads`` setting; return the :class:`AutoThreads` to refresh for ``auto``.

    ``None``: torch's default, nothing changes. An integer N: ``torch.set_num_threads(N)``.
    ``"auto"``: start an :class:`AutoThreads` on this process's given cores (also sizing torch's
    inter-op pool to the starting share, once).
    """
    if setting is None:
        return None
    if setting == "auto":
        cpus = _affinity()
        auto = AutoThreads(given_cpus(affinity=cpus), cpus, registry or RunRegistry())
        set_interop_threads(auto.start())
        return auto
    if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
        raise ValueError(f"threads={setting!r} is invalid; expected auto, null or an integer >= 1")
    torch.set_num_threads(setting)
    return None
