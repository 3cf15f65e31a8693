"""ops/bench/cluster_scale.py at a small count: real nodes (membership, leases, reconciler) over
the real Redis registry, synthetic streams. Checks what the figures rest on, not their values:
every stream of the killed nodes is owned again by a live node under a new epoch and writes
positions from there, nothing is left unowned, and the load was measured."""

from __future__ import annotations

import argparse

import pytest

from ops.bench.cluster_scale import run

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_small_cluster_fails_over_every_stream_of_the_killed_nodes() -> None:
    args = argparse.Namespace(
        nodes=6,
        streams=60,
        processes=3,
        lease_ttl_s=3.0,
        segment_s=1.0,
        steady_s=3.0,
        failover_timeout_s=60.0,
    )
    result = run(args)
    print(result)
    assert result.nodes == 6
    assert result.streams == 60
    assert result.killed_nodes == 2
    assert result.moved_streams == 20
    assert result.failover_s is not None, "the killed nodes' streams did not all move"
    assert result.unowned_at_end == 0
    # renewals (one script each) and positions were counted, and Redis did measurable work
    assert result.calls_by_command.get("evalsha", 0) > 0
    assert result.client_ops_per_stream_s > 0
