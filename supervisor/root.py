"""The root supervisor: OTP ``simple_one_for_one`` over dynamic children (one per stream).

Each child runs ``supervise()`` in its own cancel scope inside the root's one nursery, so:

- a child that crashes is restarted (or marked failed) by its own ``supervise()``; nothing reaches
  its siblings or the root;
- stopping a child is cancelling its scope (with a reason); its shielded, time-bounded cleanup
  runs while we wait up to ``timeout_s``;
- shutdown cancels every child at once and waits for them together (OTP stops
  ``simple_one_for_one`` children in parallel), so it costs the slowest cleanup, not the sum.

The registry learns about ends through ``on_child_exit`` and about everything else through
``on_event``; the root itself keeps no status beyond "which ids are running".
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import final

import structlog
import trio

from supervisor.otp.backoff import Backoff
from supervisor.otp.errors import DuplicateChild, TooManyChildren, UnknownChild
from supervisor.otp.policy import Intensity, RestartType
from supervisor.otp.supervise import (
    ChildExited,
    ChildFn,
    ChildRestarting,
    OutcomeState,
    SupervisionOutcome,
    SupervisorEvent,
    describe_exception,
    supervise,
)

_log = structlog.get_logger(__name__)

DEFAULT_MAX_CHILDREN = 64
DEFAULT_TERMINATE_TIMEOUT_S = 10.0


@dataclass(slots=True)
class _Child:
    """Book-keeping for one running child; mutable, private to the root."""

    scope: trio.CancelScope
    done: trio.Event
    restarts: int = 0
    last_error: str | None = None
    stop_reason: str | None = None


@dataclass(frozen=True, slots=True)
class _ChildSpec:
    """Everything ``_run_child`` needs, bundled (``nursery.start`` passes positionals only)."""

    entry: _Child
    child_fn: ChildFn
    restart_type: RestartType
    intensity: Intensity
    backoff: Backoff


class _StatusOnce:
    """Forwards ``started()`` and remembers it was called.

    If a child is terminated before its first run reported ready, ``supervise()`` ends without
    calling ``started()``; the root then calls it itself so ``start_child`` returns instead of
    failing with trio's "exited without calling started()".
    """

    __slots__ = ("called", "inner")

    def __init__(self, inner: trio.TaskStatus[None]) -> None:
        self.inner = inner
        self.called = False

    def started(self, value: None = None) -> None:
        self.called = True
        self.inner.started(value)


@final
class RootSupervisor:
    def __init__(
        self,
        *,
        max_children: int = DEFAULT_MAX_CHILDREN,
        on_child_exit: Callable[[str, SupervisionOutcome], None] | None = None,
        on_event: Callable[[str, SupervisorEvent], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if max_children < 1:
            raise ValueError(f"max_children must be >= 1, got {max_children}")
        self._max_children = max_children
        self._on_child_exit = on_child_exit
        self._on_event = on_event
        # Jitter only spreads restarts out; it needs no cryptographic randomness.
        self._rng = rng if rng is not None else random.Random()  # noqa: S311
        self._children: dict[str, _Child] = {}
        self._nursery: trio.Nursery | None = None
        self._closing = False
        self._closed = trio.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the children's nursery until ``shutdown()`` has finished (or we are cancelled)."""
        if self._nursery is not None or self._closed.is_set():
            raise RuntimeError("RootSupervisor.run() can only be called once")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                task_status.started()
                await self._closed.wait()
        finally:
            self._closing = True
            self._nursery = None

    def children(self) -> tuple[str, ...]:
        """Ids of the running children, in start order."""
        return tuple(self._children)

    async def start_child(
        self,
        child_id: str,
        child_fn: ChildFn,
        *,
        restart_type: RestartType,
        intensity: Intensity | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        """Start ``child_fn`` under supervision; returns once its first run reported ready.

        (Or once that first run ended without reporting ready; restarts then continue in the
        background and ``on_event``/``on_child_exit`` say how it goes.) Like OTP, start is
        synchronous, so the caller knows the child exists when this returns.
        """
        if self._nursery is None or self._closing:
            raise RuntimeError("the root supervisor is not running")
        if child_id in self._children:
            raise DuplicateChild(child_id)
        if len(self._children) >= self._max_children:
            raise TooManyChildren(self._max_children)
        # Register before the first await so a concurrent start_child with the same id fails.
        entry = _Child(scope=trio.CancelScope(), done=trio.Event())
        self._children[child_id] = entry
        try:
            spec = _ChildSpec(
                entry=entry,
                child_fn=child_fn,
                restart_type=restart_type,
                intensity=intensity if intensity is not None else Intensity(),
                backoff=backoff if backoff is not None else Backoff(),
            )
            await self._nursery.start(self._run_child, child_id, spec)
        except BaseException:
            # When start() raises, the child task has either finished (it deregisters itself)
            # or never ran at all (e.g. the nursery is closing): don't leak the reserved id.
            if self._children.get(child_id) is entry and not entry.done.is_set():
                del self._children[child_id]
            raise

    async def terminate_child(
        self, child_id: str, *, reason: str, timeout_s: float = DEFAULT_TERMINATE_TIMEOUT_S
    ) -> bool:
        """Cancel one child with ``reason`` and wait up to ``timeout_s`` for its cleanup.

        Returns ``True`` if it finished in time. On ``False`` its cleanup is still running
        (trio cannot kill a shielded scope); the child's own cleanup deadline must bound it.
        """
        entry = self._children.get(child_id)
        if entry is None:
            raise UnknownChild(child_id)
        self._cancel(entry, reason)
        with trio.move_on_after(timeout_s):
            await entry.done.wait()
        if not entry.done.is_set():
            _log.warning("child_terminate_timeout", child_id=child_id, timeout_s=timeout_s)
        return entry.done.is_set()

    async def shutdown(self, timeout_s: float = DEFAULT_TERMINATE_TIMEOUT_S) -> tuple[str, ...]:
        """Stop every child in parallel; afterwards ``run()`` returns.

        Returns the ids still cleaning up after ``timeout_s`` (empty when all stopped in time).
        ``run()`` still waits for those, since trio never abandons a task.
        """
        self._closing = True
        entries = dict(self._children)
        for entry in entries.values():
            self._cancel(entry, "shutdown")
        with trio.move_on_after(timeout_s):
            for entry in entries.values():
                # Sequential waits on parallel work: the total is the slowest cleanup.
                await entry.done.wait()
        stragglers = tuple(cid for cid, entry in entries.items() if not entry.done.is_set())
        if stragglers:
            _log.warning("shutdown_timeout", still_running=stragglers, timeout_s=timeout_s)
        self._closed.set()
        return stragglers

    @staticmethod
    def _cancel(entry: _Child, reason: str) -> None:
        if entry.stop_reason is None:
            entry.stop_reason = reason
        entry.scope.cancel(reason=reason)

    async def _run_child(
        self,
        child_id: str,
        spec: _ChildSpec,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        entry = spec.entry
        status = _StatusOnce(task_status)
        outcome: SupervisionOutcome | None = None

        def on_event(event: SupervisorEvent) -> None:
            if isinstance(event, ChildExited):
                if event.error is not None:
                    entry.last_error = event.error
            elif isinstance(event, ChildRestarting):
                entry.restarts += 1
            if self._on_event is not None:
                self._on_event(child_id, event)

        try:
            with entry.scope:
                outcome = await supervise(
                    spec.child_fn,
                    restart_type=spec.restart_type,
                    intensity=spec.intensity,
                    backoff=spec.backoff,
                    rng=self._rng,
                    on_event=on_event,
                    task_status=status,
                )
        except Exception as exc:
            # supervise() only raises for bugs (e.g. in on_event); contain them to this child.
            error = describe_exception(exc)
            _log.exception("child_supervision_crashed", child_id=child_id)
            outcome = SupervisionOutcome(
                state=OutcomeState.FAILED,
                last_error=error,
                reason=f"supervision crashed: {error}",
                restarts=entry.restarts,
            )
        finally:
            if outcome is None:  # cancelled: terminate_child, shutdown, or the root going away
                outcome = SupervisionOutcome(
                    state=OutcomeState.TERMINATED,
                    last_error=entry.last_error,
                    reason=entry.stop_reason or "supervisor cancelled",
                    restarts=entry.restarts,
                )
            if self._children.get(child_id) is entry:
                del self._children[child_id]
            entry.done.set()
            self._report_exit(child_id, outcome)
            if not status.called:
                status.started()

    def _report_exit(self, child_id: str, outcome: SupervisionOutcome) -> None:
        _log.info(
            "child_exited",
            child_id=child_id,
            state=str(outcome.state),
            reason=outcome.reason,
            last_error=outcome.last_error,
            restarts=outcome.restarts,
        )
        if self._on_child_exit is None:
            return
        try:
            self._on_child_exit(child_id, outcome)
        except Exception:
            # A broken registry callback must not take the root (and every stream) down.
            _log.exception("on_child_exit_failed", child_id=child_id)
