"""What a reliability case hands back, and the one CLI every case shares.

A case never stops at the first broken promise: it records each one in ``problems`` and carries
on, so a full run prints every figure and every failure. Tests assert ``problems == []``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Report:
    case: str
    count: int
    figures: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def figure(self, name: str, value: object) -> None:
        self.figures[name] = str(value)

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def expect(self, ok: bool, text: str) -> bool:
        if not ok:
            self.problem(text)
        return ok

    def render(self) -> str:
        lines = [f"== reliability: {self.case} (count {self.count}) =="]
        lines += [f"  {name}: {value}" for name, value in self.figures.items()]
        lines.append(f"  wall time: {time.monotonic() - self.began:.1f} s")
        if self.problems:
            lines.append(f"  PROBLEMS ({len(self.problems)}):")
            lines += [f"    - {p}" for p in self.problems[:50]]
        else:
            lines.append("  problems: none")
        return "\n".join(lines)


def main(
    run: Callable[..., Report],
    *,
    description: str,
    default_count: int,
    with_player: bool = False,
) -> None:
    """``python -m ops.reliability.NAME --count N [--player]``: run, print, exit 1 on a problem."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--count", type=int, default=default_count, help="how many times")
    if with_player:
        parser.add_argument(
            "--player", action="store_true", help="also watch the stream in hls.js (Chromium)"
        )
    args = parser.parse_args()
    if with_player and args.player:
        from ops.reliability.player import hlsjs_player  # noqa: PLC0415

        with hlsjs_player() as player:
            report = run(count=args.count, player=player)
    else:
        report = run(count=args.count)
    print(report.render(), flush=True)
    sys.exit(1 if report.problems else 0)
