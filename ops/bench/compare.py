"""Before/after: the same benchmarks against the service of two commits, interleaved, in one run.

    python -m ops.bench.compare --base a1a0253                       # blocking + origin, 2 rounds
    python -m ops.bench.compare --base a1a0253 --bench blocking --rounds 3
    python -m ops.bench.compare --base a1a0253 --tiny                # the smoke test's size

The bench code is this checkout's for both sides (one way of measuring); only the service under
test changes: ``--base`` is checked out into a temporary git worktree and the benchmark starts its
service from there (``HLSDASH_BENCH_SERVICE_TREE``). Rounds alternate base, this tree, base, …, so
a machine that gets busier mid-run hurts both sides alike. Prints each round's summary lines and
ends with them side by side; the ratio of medians is for the reader to take with the spread.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ops.bench.common import ROOT, SERVICE_TREE_VARIABLE

# the lines of each benchmark's output that carry its result
SUMMARY_PREFIXES = {
    "blocking": ("all rounds:", "round "),
    "origin": ("hlsdash origin", "nginx", "ratios"),
    "first_part": ("POST →", "first part", "p50"),
    "control_plane": ("N =", "p99"),
}


def summary_lines(bench: str, output: str) -> list[str]:
    prefixes = SUMMARY_PREFIXES.get(bench, ("",))
    return [line for line in output.splitlines() if line.strip().startswith(prefixes)]


def run_bench(bench: str, tree: Path | None, tiny: bool) -> str:
    env = dict(os.environ)
    if tree is not None:
        env[SERVICE_TREE_VARIABLE] = str(tree)
    argv = [sys.executable, "-m", f"ops.bench.{bench}", *(["--tiny"] if tiny else [])]
    done = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        return f"FAILED (exit {done.returncode}): {done.stdout[-1500:]}{done.stderr[-1500:]}"
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare this tree against")
    parser.add_argument("--bench", action="append", choices=sorted(SUMMARY_PREFIXES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    benches = args.bench or ["blocking", "origin"]
    rev_parse = ["git", "rev-parse", "--short", "HEAD"]
    head = subprocess.run(rev_parse, cwd=ROOT, capture_output=True, text=True, check=True)
    head_rev = head.stdout.strip()
    with tempfile.TemporaryDirectory(prefix="hlsdash-base-") as temp:
        base_tree = Path(temp) / "base"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(base_tree), args.base],
            cwd=ROOT,
            check=True,
        )
        results: dict[tuple[str, str], list[list[str]]] = {}
        try:
            for round_index in range(1, args.rounds + 1):
                for bench in benches:
                    for label, tree in ((args.base, base_tree), (f"HEAD {head_rev}", None)):
                        print(f"== {bench} / {label} / round {round_index}", flush=True)
                        lines = summary_lines(bench, run_bench(bench, tree, args.tiny))
                        print("\n".join(lines) or "(no summary lines)", flush=True)
                        results.setdefault((bench, label), []).append(lines)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(base_tree)], cwd=ROOT, check=False
            )
    print("\n== side by side")
    for (bench, label), rounds in results.items():
        for index, lines in enumerate(rounds, 1):
            for line in lines:
                print(f"{bench:10} {label:16} r{index}  {line.strip()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
