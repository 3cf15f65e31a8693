"""glibc allocator tuning: the threshold is pinned unless the operator chose one; trim works."""

from __future__ import annotations

import ctypes

import pytest

from supervisor import allocator


class _RecordingLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad, 0))
        return 1


def test_the_threshold_is_pinned_at_64_kib(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _RecordingLibc()
    monkeypatch.setattr(allocator, "_libc", lambda: libc)
    assert allocator.fix_mmap_threshold({}) is True
    assert libc.calls == [("mallopt", allocator.M_MMAP_THRESHOLD, 65536)]


def test_an_operators_own_threshold_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    libc = _RecordingLibc()
    monkeypatch.setattr(allocator, "_libc", lambda: libc)
    assert allocator.fix_mmap_threshold({"MALLOC_MMAP_THRESHOLD_": "131072"}) is False
    assert libc.calls == []


def test_without_glibc_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator, "_libc", lambda: None)
    assert allocator.fix_mmap_threshold({}) is False
    assert allocator.give_back_free_memory() is False


def test_the_real_glibc_takes_both_calls() -> None:
    """On this (glibc) machine the real calls succeed: mallopt returns 1 on success."""
    libc = allocator._libc()
    assert isinstance(libc, ctypes.CDLL)
    assert allocator.fix_mmap_threshold({}) is True
    big = bytearray(1 << 20)  # above the threshold: its own mapping, given back on free
    del big
    allocator.give_back_free_memory()  # 0 or 1 (whether any page was returned): no error
