"""How pytest-xdist shares the suite between its workers (``scripts/test`` runs ``-n 3``).

A unit of work ("scope") is given to one worker and runs there in collection order:

- every player test (``tests/e2e``) is one unit, ``chromium``: one headless Chromium at a time.
  Three Chromiums decoding live streams at once on 2 cores froze pictures and drifted players off
  the live edge (seen when they were spread over three workers). Nothing else is queued behind
  it on its worker, so the player group never delays other tests.
- the tests that load the CPU most (the benchmark smoke runs with their load generators, the
  fault runs with 100 viewers, 2,000 blocking reloads) are one unit, ``cpu``: they never run at
  the same time as each other (three of them at once beside a player starved the real-time
  encoders of the others, seen in a measured run), and nothing is queued behind them either.
- every other test file outside ``tests/unit`` is one unit: its tests share module-scoped live
  services and publishers, which then start once instead of once per worker.
- every unit test is a unit of its own: they are many and quick and fill the gaps.

Units start largest first (xdist orders them by test count), so the player group starts at once.

xdist's own ``--dist loadgroup`` would do the grouping from ``xdist_group`` marks, but with
pytest 9 it silently puts every test in no group (it renames ``item._nodeid``, which pytest 9 no
longer reads), so the grouping is done here from the test's path instead.
"""

from __future__ import annotations

from xdist.scheduler import LoadScopeScheduling
from xdist.workermanage import WorkerController

PLAYER_GROUP = "chromium"
CPU_GROUP = "cpu"
CPU_HUNGRY_FILES = frozenset(
    {
        "tests/bench/test_bench_smoke.py",
        "tests/reliability/test_faults.py",
        "tests/integration/test_blocking_waiters.py",
    }
)
EXCLUSIVE_GROUPS = (PLAYER_GROUP, CPU_GROUP)


def work_unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to (see the module docstring)."""
    path = nodeid.split("::", 1)[0]
    directory = path.split("/")[1] if path.startswith("tests/") else ""
    if directory == "e2e":
        return PLAYER_GROUP
    if directory == "unit":
        return nodeid
    if path in CPU_HUNGRY_FILES:
        return CPU_GROUP
    return path


class SuiteScheduling(LoadScopeScheduling):
    """``loadscope`` with the scopes of ``work_unit_of``, nothing queued behind the two groups."""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit_of(nodeid)

    def _reschedule(self, node: WorkerController) -> None:
        assigned = self.assigned_work.get(node, {})
        for group in EXCLUSIVE_GROUPS:
            if not all(assigned.get(group, {}).values()):
                return  # busy with this group until it is done; then it takes more work
        super()._reschedule(node)
