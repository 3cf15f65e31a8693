#!/usr/bin/env python3
"""Example client for the hlsdash control API (standard library only).

    example_client.py start STREAM_ID SOURCE_URL [--qualities 720p,480p] [--no-dash] [--no-ll]
    example_client.py start STREAM_ID --ingest rtmp|srt|whip   # prints where to publish, the key
    example_client.py monitor STREAM_ID SECONDS   # heartbeats and prints the state
    example_client.py list
    example_client.py stop STREAM_ID

The API is taken from --api or $HLSDASH_API (default http://localhost:8083); a bearer token from
--token or $HLSDASH_TOKEN.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any


class ApiError(Exception):
    pass


def call(api: str, method: str, path: str, token: str | None, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{api.rstrip('/')}{path}", data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            raw = response.read()
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            detail = json.loads(raw)["error"]
            field = f" (field: {detail['field']})" if detail.get("field") else ""
            message = f"{error.code} {detail['code']}: {detail['message']}{field}"
        except (ValueError, KeyError, TypeError):
            message = f"{error.code} {error.reason}"
        raise ApiError(message) from None
    except urllib.error.URLError as error:
        raise ApiError(f"cannot reach the API at {api}: {error.reason}") from None
    return json.loads(raw) if raw else None


def describe(stream: dict[str, Any]) -> str:
    encoder = stream.get("encoder") or {}
    fps = encoder.get("fps")
    speed = encoder.get("speed")
    parts = [
        f"{stream['stream_id']}: {stream['state']}",
        f"qualities={','.join(stream.get('qualities_produced') or stream.get('qualities') or [])}",
        f"segments={stream.get('segments_produced', 0)}",
        f"restarts={stream.get('restarts', 0)}",
    ]
    if fps is not None:
        parts.append(f"fps={fps:g}")
    if speed is not None:
        parts.append(f"speed={speed:g}x")
    if stream.get("last_error"):
        parts.append(f"last_error={stream['last_error']!r}")
    return "  ".join(parts)


# How to publish to what ``--ingest`` created (the container FFmpeg writes to the publish URL).
_PUBLISH_COMMAND = {
    "rtmp": 'ffmpeg -re -i INPUT -c:v libx264 -g 60 -c:a aac -f flv "{publish_url}"',
    "srt": 'ffmpeg -re -i INPUT -c:v libx264 -g 60 -c:a aac -f mpegts "{publish_url}"',
    "whip": 'ffmpeg -re -i INPUT -c:v libx264 -g 60 -c:a libopus -f whip -authorization "{key}" '
    '"{publish_url}"',
}


def describe_ingest(ingest: dict[str, Any]) -> list[str]:
    """Where and how to publish; the key is in this answer only (the API keeps its hash)."""
    protocol = ingest["protocol"]
    key = ingest.get("stream_key")
    lines = [f"  publish   {ingest['publish_url']}"]
    if protocol == "rtmp":
        lines.append(f"  server    {ingest['server']}   (OBS: Custom..., Server)")
    if protocol == "srt":
        lines.append(f"  port      {ingest['port']} (UDP), latency {ingest['latency_ms']} ms")
    if key:
        lines.append(f"  key       {key}   (shown this once; ingest/rotate-key for a new one)")
    command = _PUBLISH_COMMAND.get(protocol)
    if command:
        lines.append("  e.g.      " + command.format(publish_url=ingest["publish_url"], key=key))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hlsdash example client")
    parser.add_argument("--api", default=os.environ.get("HLSDASH_API", "http://localhost:8083"))
    parser.add_argument("--token", default=os.environ.get("HLSDASH_TOKEN"))
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start a stream")
    start.add_argument("stream_id")
    start.add_argument("source_url", nargs="?", help="what the stream pulls (or --ingest)")
    start.add_argument(
        "--ingest",
        choices=["rtmp", "srt", "whip"],
        help="a push stream instead: publishers push to it (prints the publish URL and key)",
    )
    start.add_argument("--srt-latency-ms", type=int, help="--ingest srt: the receiver latency")
    start.add_argument("--qualities", help="comma-separated, e.g. 720p,480p,360p")
    start.add_argument("--no-hls", action="store_true")
    start.add_argument("--no-dash", action="store_true")
    start.add_argument("--no-ll", action="store_true", help="plain HLS/DASH, no low latency")
    monitor = commands.add_parser("monitor", help="send heartbeats and print the state")
    monitor.add_argument("stream_id")
    monitor.add_argument("seconds", type=float)
    monitor.add_argument("--interval", type=float, default=2.0)
    commands.add_parser("list", help="list streams")
    stop = commands.add_parser("stop", help="stop a stream and remove its files")
    stop.add_argument("stream_id")
    args = parser.parse_args(argv)
    if args.command == "start" and (args.source_url is None) == (args.ingest is None):
        parser.error("start takes a SOURCE_URL or --ingest rtmp|srt|whip (exactly one)")

    try:
        if args.command == "start":
            body: dict[str, Any] = {
                "stream_id": args.stream_id,
                "enable_hls": not args.no_hls,
                "enable_dash": not args.no_dash,
            }
            if args.ingest:
                body["ingest"] = args.ingest
                if args.srt_latency_ms is not None:
                    body["srt_latency_ms"] = args.srt_latency_ms
            else:
                body["source_url"] = args.source_url
            if args.no_ll:
                body["low_latency"] = False
            if args.qualities:
                body["qualities"] = [q.strip() for q in args.qualities.split(",") if q.strip()]
            stream = call(args.api, "POST", "/streams", args.token, body)
            print(describe(stream))
            if stream.get("ingest"):
                print("\n".join(describe_ingest(stream["ingest"])))
            for name, url in stream["urls"].items():
                print(f"  {name:9} {url}")
        elif args.command == "monitor":
            deadline = time.monotonic() + args.seconds
            while True:
                call(args.api, "POST", f"/streams/{args.stream_id}/heartbeat", args.token, {})
                stream = call(args.api, "GET", f"/streams/{args.stream_id}", args.token)
                print(time.strftime("%H:%M:%S"), describe(stream), flush=True)
                if time.monotonic() + args.interval > deadline:
                    break
                time.sleep(args.interval)
        elif args.command == "list":
            streams = call(args.api, "GET", "/streams", args.token)["streams"]
            if not streams:
                print("no streams")
            for stream in streams:
                print(describe(stream))
        elif args.command == "stop":
            stream = call(args.api, "DELETE", f"/streams/{args.stream_id}", args.token)
            print(f"{args.stream_id}: stopped ({stream['state']})")
    except ApiError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
