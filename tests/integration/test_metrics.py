"""/health, /ready and /metrics over real HTTP, checked against the real processes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.http_helpers import running_front, stream_body, wait_live_segments
from tests.integration.live import ffmpeg_pids, wait_for
from tests.integration.tmpfs import fill, small_tmpfs

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def parse(text: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    families: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        families[family.name] = [(s.name, dict(s.labels), s.value) for s in family.samples]
    return families


def value(families: dict[str, list[tuple[str, dict[str, str], float]]], name: str) -> float:
    (sample,) = families[name]
    return sample[2]


async def test_health_ready_metrics(tmp_path: Path) -> None:
    async with running_front(tmp_path) as front:
        api = front.api
        health = await api.get("/health")
        assert health.status_code == 200
        assert health.headers["content-type"] == "application/json"
        assert health.json()["status"] == "ok"
        ready = await api.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        assert ready.json()["checks"] == {
            "supervisor_running": True,
            "ffmpeg": True,
            "output_dir_writable": True,
        }
        assert (await front.origin.get("/health")).status_code == 200

        families = parse((await api.get("/metrics")).text)
        assert value(families, "streaming_active_streams") == 0
        assert value(families, "streaming_ffmpeg_processes") == 0

        for sid in ("m1", "m2"):
            assert (await api.post("/streams", json=stream_body(sid))).status_code == 201
        for sid in ("m1", "m2"):
            await wait_live_segments(front, sid, 2)
        await front.origin.get("/m1/240p/init_1.mp4")
        await front.origin.get("/m1/nope")

        response = await api.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        families = parse(response.text)
        live = [a for a in front.service.list() if a.status.state.value == "live"]
        assert value(families, "streaming_active_streams") == len(live) == 2
        # FFmpeg children of this process == the streams' encoders == what the gauge says
        encoder_pids = {a.status.encoder_pid for a in live}
        children = ffmpeg_pids()
        assert children == encoder_pids
        assert value(families, "streaming_ffmpeg_processes") == len(children) == 2
        for pid in children:
            assert psutil.Process(pid).ppid() == psutil.Process().pid
        assert value(families, "streaming_cpu_percent") >= 0
        assert value(families, "streaming_memory_bytes") > 50 * 1024 * 1024

        states = {
            (labels["stream_id"], labels["state"]): v
            for _, labels, v in families["hlsdash_stream_state"]
        }
        for sid in ("m1", "m2"):
            assert states[(sid, "live")] == 1
            assert sum(v for (s, _), v in states.items() if s == sid) == 1
        produced = {
            labels["stream_id"]: v
            for name, labels, v in families["hlsdash_segments_produced"]
            if name.endswith("_total")
        }
        assert produced["m1"] >= 2
        assert produced["m2"] >= 2
        served = {
            labels["stream_id"]: v
            for name, labels, v in families["hlsdash_origin_bytes_served"]
            if name.endswith("_total")
        }
        assert served["m1"] > 0
        fps = {labels["stream_id"]: v for _, labels, v in families["hlsdash_encoder_fps"]}
        assert fps["m1"] > 0

        requests = families["hlsdash_http_requests"]
        by_key = {
            (labels["listener"], labels["route"], labels["status"]): v
            for name, labels, v in requests
            if name.endswith("_total")
        }
        assert by_key[("api", "/streams", "201")] == 2
        assert by_key[("origin", "/{id}/init", "200")] == 1
        assert by_key[("origin", "/{id}/other", "404")] == 1
        assert ("api", "/health", "200") in by_key
        histogram = families["hlsdash_http_request_duration_seconds"]
        assert any(name.endswith("_bucket") for name, _, _ in histogram)
        counts = [v for name, labels, v in histogram if name.endswith("_count")]
        assert sum(counts) >= 4

        # after a delete the gauges follow the processes
        assert (await api.delete("/streams/m2")).status_code == 200
        await wait_for(lambda: len(ffmpeg_pids()) == 1, 10, "one FFmpeg left")
        families = parse((await api.get("/metrics")).text)
        assert value(families, "streaming_active_streams") == 1
        assert value(families, "streaming_ffmpeg_processes") == 1
        assert ("m2", "live") not in {
            (labels["stream_id"], labels["state"])
            for _, labels, _ in families["hlsdash_stream_state"]
        }


async def test_ready_fails_without_ffmpeg(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ffmpeg"
    async with running_front(tmp_path / "out", FFMPEG_PATH=str(missing)) as front:
        ready = await front.api.get("/ready")
        assert ready.status_code == 503, ready.text
        payload = ready.json()
        assert payload["status"] == "not_ready"
        assert payload["checks"]["ffmpeg"] is False
        assert payload["checks"]["supervisor_running"] is True
        # liveness is not readiness
        assert (await front.api.get("/health")).status_code == 200
        assert (await front.api.get("/metrics")).status_code == 200


async def wait_until_async(
    predicate: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 15
) -> None:
    poll_s = 0.2
    for _ in range(int(timeout_s / poll_s)):
        if await predicate():
            return
        await trio.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def test_ready_is_503_while_the_output_dir_is_full(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        # no free-space floor: the 4 KiB probe write alone must notice the full disk
        async with running_front(disk, READY_MIN_FREE_MB="0") as front:
            assert (await front.api.get("/ready")).status_code == 200
            filler = await trio.to_thread.run_sync(fill, disk)
            # a 0-byte write (the old check) still succeeds on the full file system
            (disk / "empty").write_bytes(b"")
            (disk / "empty").unlink()
            statuses: list[int] = []

            async def probe() -> bool:
                response = await front.api.get("/ready")
                statuses.append(response.status_code)
                return response.status_code == 503

            await wait_until_async(probe, "/ready to say 503 on the full disk")
            full = await front.api.get("/ready")
            assert full.status_code == 503, full.text
            assert full.json()["checks"]["output_dir_writable"] is False
            assert "No space left" in full.json()["errors"]["output_dir_writable"]
            assert full.json()["checks"]["supervisor_running"] is True
            assert (await front.api.get("/health")).status_code == 200  # alive, not ready

            filler.unlink()  # space is back: ready again without a restart
            statuses.clear()

            async def recovered() -> bool:
                return not await probe()

            await wait_until_async(recovered, "/ready to say 200 once space is back")
            assert statuses[-1] == 200
            assert "errors" not in (await front.api.get("/ready")).json()
