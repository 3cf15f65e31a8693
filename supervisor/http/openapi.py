"""The control API's OpenAPI 3.1 document, written by hand next to the code it describes.

A test compares it with the app's URL map both ways, so a route cannot be added or removed
without this document following. (We validate requests ourselves in ``supervisor.requests`` to
give field-precise errors; generating this from pydantic models would add a heavy dependency for
five endpoints.)
"""

from __future__ import annotations

from typing import Any

from actors.packager.layout import STREAM_ID_PATTERN
from actors.status import QUALITY_NAMES, StreamState

_ERROR = {"$ref": "#/components/schemas/Error"}
_STREAM = {"$ref": "#/components/schemas/Stream"}
_STREAM_ID_PARAM = {
    "name": "stream_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": STREAM_ID_PATTERN.pattern},
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


# OpenAPI links: the stream a 201 describes is the one the per-stream operations address, so
# clients (and stateful API testers such as Schemathesis) can follow create → read → delete.
_STREAM_LINKS = {
    name: {
        "operationId": operation_id,
        "parameters": {"stream_id": "$response.body#/stream_id"},
    }
    for name, operation_id in (
        ("GetStream", "getStream"),
        ("Heartbeat", "heartbeat"),
        ("DeleteStream", "deleteStream"),
        ("RotateKey", "rotateKey"),
    )
}


def openapi_document(version: str) -> dict[str, Any]:
    stream_request = {
        "type": "object",
        "additionalProperties": False,
        "required": ["stream_id"],
        # a stream pulls (source_url) or is pushed to (ingest): exactly one of the two;
        # srt_latency_ms only with "ingest": "srt"
        "oneOf": [
            {
                "required": ["source_url"],
                "not": {"anyOf": [{"required": ["ingest"]}, {"required": ["srt_latency_ms"]}]},
            },
            {
                "required": ["ingest"],
                "properties": {"ingest": {"enum": ["rtmp", "whip"]}},
                "not": {"anyOf": [{"required": ["source_url"]}, {"required": ["srt_latency_ms"]}]},
            },
            {
                "required": ["ingest"],
                "properties": {"ingest": {"const": "srt"}},
                "not": {"required": ["source_url"]},
            },
        ],
        "properties": {
            "stream_id": {"type": "string", "pattern": STREAM_ID_PATTERN.pattern},
            "ingest": {
                "type": "string",
                "enum": ["rtmp", "srt", "whip"],
                "description": "Instead of source_url: publishers push to the service. The 201 "
                "carries ingest.publish_url and ingest.stream_key (shown once; rotate with "
                "POST /streams/{id}/ingest/rotate-key). The stream is waiting until a publisher "
                "connects and again when it leaves; a new publisher continues the timeline.",
            },
            "srt_latency_ms": {
                "type": "integer",
                "minimum": 20,
                "maximum": 8000,
                "description": "SRT receiver latency (default SRT_LATENCY, 120).",
            },
            "source_url": {
                "type": "string",
                "maxLength": 2048,
                "description": "A source to pull, on a protocol in ALLOWED_PROTOCOLS "
                "(default http, https, rtmp, rtmps, rtsp, rtsps, srt, udp, rtp), at a host the "
                "source host policy allows (never cloud metadata or link-local by default). "
                "Listener-mode URLs (srt mode=listener, udp://@:port, unicast udp/rtp, listen "
                "options) are refused: 422 source_refused.",
            },
            # null means "the default" for these four (supervisor.requests always took it so)
            "qualities": {
                "type": ["array", "null"],
                "minItems": 1,
                "items": {"type": "string", "enum": [*QUALITY_NAMES, "source"]},
                "description": "Rungs to produce; rungs above the source height are dropped.",
            },
            "enable_hls": {"type": ["boolean", "null"], "default": True},
            "enable_dash": {"type": ["boolean", "null"], "default": True},
            "low_latency": {
                "type": ["boolean", "null"],
                "description": "Defaults to LOW_LATENCY_HLS.",
            },
        },
    }
    stream = {
        "type": "object",
        "properties": {
            "stream_id": {"type": "string"},
            "state": {
                "type": "string",
                "enum": [s.value for s in StreamState],
                "description": "starting → live → (restarting → live)* → stopping → stopped, "
                "or failed / stale. A push stream starts waiting (no publisher) and goes back "
                "to waiting when its publisher leaves. degraded: running, but OUTPUT_DIR refuses "
                "writes (full, quota, I/O error); the live edge is served from memory and the "
                "writes retried, back to live by itself once the disk takes them (last_error "
                "says why).",
            },
            "source_url": {"type": "string", "description": "Credentials redacted."},
            "qualities": {"type": "array", "items": {"type": "string"}},
            "qualities_produced": {"type": "array", "items": {"type": "string"}},
            "qualities_dropped": {"type": "array", "items": {"type": "string"}},
            "audio": {"type": "boolean"},
            "enable_hls": {"type": "boolean"},
            "enable_dash": {"type": "boolean"},
            "low_latency": {"type": "boolean"},
            "created_at": {"type": "string", "format": "date-time"},
            "uptime_s": {"type": ["number", "null"]},
            "last_heartbeat_at": {"type": "string", "format": "date-time"},
            "lease_expires_at": {"type": "string", "format": "date-time"},
            "restarts": {"type": "integer"},
            "last_error": {"type": ["string", "null"]},
            "source": {"type": ["object", "null"]},
            "encoder": {"type": "object"},
            "segments_produced": {"type": "integer"},
            "bitrate_out_bps": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
                "description": "rendition id → bits per second of its newest committed segment "
                "(bytes × 8 / duration); empty until the first segment",
            },
            "viewers": {
                "type": "integer",
                "description": "clients that polled a playlist or the MPD in the last 30 s "
                "(a session query parameter, else address + user agent; behind a CDN, edges)",
            },
            "last_segment_at": {"type": ["string", "null"], "format": "date-time"},
            "ingest": {
                "type": ["object", "null"],
                "description": "Push streams: protocol, publish_url, stream_key (only in the "
                "answers that issue it, else null), RTMP server (OBS), SRT port and latency_ms, "
                "publisher (address, protocol, codec, bitrate_in_bps, bytes_in, connected_since; "
                "null while waiting), publishes, reconnects, bytes_in_total. null for pulls.",
            },
            "urls": {
                "type": "object",
                "properties": {
                    k: {"type": "string"}
                    for k in ("hls", "dash", "cdn_hls", "cdn_dash", "dashboard")
                },
            },
        },
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "field"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                },
            }
        },
    }
    playback_param = {
        "name": "relative",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "playlist.m3u8, manifest.mpd, {rendition}/playlist.m3u8, "
        "{rendition}/init_{v}.mp4, {rendition}/seg_{n}.m4s, {rendition}/part_{n}_{k}.m4s",
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "hlsdash control API", "version": version},
        "components": {
            "schemas": {"StreamRequest": stream_request, "Stream": stream, "Error": error},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                # WHIP: the push stream's key, shown once in POST /streams' 201 body
                "streamKey": {"type": "http", "scheme": "bearer"},
            },
        },
        "paths": {
            "/streams": {
                "post": {
                    "summary": "Start a stream",
                    "operationId": "createStream",
                    "security": [{"bearer": []}, {}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/StreamRequest"}
                            }
                        },
                    },
                    "responses": {
                        "201": {
                            **_json("Created; the stream starts in the background", _STREAM),
                            "links": _STREAM_LINKS,
                        },
                        "400": _error("Malformed JSON"),
                        "401": _error("Missing or wrong bearer token (when API_TOKEN is set)"),
                        "409": _error("A stream with this id exists"),
                        "413": _error("Body too large"),
                        "422": _error("Validation failed; error.field names the field"),
                        "503": _error(
                            "At MAX_STREAMS (at_capacity), every SRT_PORT_RANGE port in use "
                            "(no_ingest_port), or the stream registry is not answering "
                            "(registry_unavailable); nothing was started"
                        ),
                    },
                },
                "get": {
                    "summary": "List streams",
                    "security": [{"bearer": []}, {}],
                    "responses": {
                        "200": _json(
                            "Streams",
                            {
                                "type": "object",
                                "properties": {"streams": {"type": "array", "items": _STREAM}},
                            },
                        )
                    },
                },
            },
            "/streams/{stream_id}": {
                "parameters": [_STREAM_ID_PARAM],
                "get": {
                    "summary": "A stream's state",
                    "operationId": "getStream",
                    "responses": {"200": _json("The stream", _STREAM), "404": _error("Unknown")},
                },
                "delete": {
                    "summary": "Stop a stream, remove its files and its registry record",
                    "operationId": "deleteStream",
                    "responses": {
                        "200": _json("Stopped", _STREAM),
                        "404": _error("Unknown"),
                        "503": _error(
                            "The stream registry is not answering (registry_unavailable): "
                            "the stream keeps running, try again"
                        ),
                    },
                },
            },
            "/streams/{stream_id}/heartbeat": {
                "parameters": [_STREAM_ID_PARAM],
                "post": {
                    "summary": "Renew the stream's lease (STALE_THRESHOLD)",
                    "operationId": "heartbeat",
                    "responses": {
                        "200": _json("New expiry", {"type": "object"}),
                        "404": _error("Unknown or ended"),
                    },
                },
            },
            "/streams/{stream_id}/whip": {
                "parameters": [_STREAM_ID_PARAM],
                "post": {
                    "summary": "WHIP (RFC 9725): publish WebRTC to a push stream (ingest whip)",
                    "description": "Body: the SDP offer (application/sdp, ≤ 16 KiB, H.264 video"
                    " required, Opus audio optional), Authorization: Bearer <stream_key>. No"
                    " trickle ICE: send the offer once gathering is complete. CORS enabled.",
                    "operationId": "whipPublish",
                    "security": [{"streamKey": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/sdp": {"schema": {"type": "string"}}},
                    },
                    "responses": {
                        "201": {
                            "description": "The answer SDP; Location is the session URL",
                            "headers": {"Location": {"schema": {"type": "string"}}},
                            "content": {"application/sdp": {"schema": {"type": "string"}}},
                        },
                        "400": _error("Not SDP, no video, no H.264, or not answerable"),
                        "401": _error("Missing or wrong stream key"),
                        "404": _error("No such stream taking WHIP"),
                        "409": _error("The stream already has a publisher"),
                        "413": _error("Offer over 16 KiB"),
                        "415": _error("Not application/sdp"),
                        "503": _error("Too many WHIP sessions"),
                    },
                },
            },
            "/streams/{stream_id}/whip/{session_id}": {
                "parameters": [
                    _STREAM_ID_PARAM,
                    {
                        "name": "session_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "delete": {
                    "summary": "End a WHIP session (the stream goes back to waiting)",
                    "operationId": "whipEnd",
                    "responses": {
                        "200": {"description": "Ended"},
                        "404": _error("No such session"),
                    },
                },
            },
            "/streams/{stream_id}/ingest/rotate-key": {
                "parameters": [_STREAM_ID_PARAM],
                "post": {
                    "summary": "Issue a new stream key for a push stream (shown once)",
                    "operationId": "rotateKey",
                    "responses": {
                        "200": _json("The stream with ingest.stream_key set", _STREAM),
                        "404": _error("Unknown or ended"),
                        "409": _error("Not a push stream"),
                        "503": _error("The registry does not answer (the old key stays valid)"),
                    },
                },
            },
            "/cluster": {
                "get": {
                    "summary": "The cluster's nodes: URLs, load, streams, draining, alive "
                    "(REGISTRY_URL=redis://…)",
                    "operationId": "clusterView",
                    "responses": {
                        "200": _json("Nodes", {"type": "object"}),
                        "404": _error("Not a cluster (not_clustered)"),
                    },
                },
            },
            "/cluster/nodes/{node_id}/drain": {
                "parameters": [
                    {
                        "name": "node_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "post": {
                    "summary": "Move a node's streams to the other nodes (rolling deploys)",
                    "operationId": "drainNode",
                    "responses": {
                        "202": _json("Draining", {"type": "object"}),
                        "404": _error("Unknown node, or not a cluster"),
                    },
                },
            },
            "/streams/{stream_id}/{relative}": {
                "parameters": [_STREAM_ID_PARAM, playback_param],
                "get": {
                    "summary": "Playback: playlists, manifest, init segments, segments, parts",
                    "responses": {
                        "200": {"description": "The object"},
                        "206": {"description": "Range"},
                        "304": {"description": "Not modified"},
                        "400": _error("A malformed or too far ahead LL-HLS directive"),
                        "404": _error("No such object"),
                        "416": _error("Range outside the object"),
                        "503": _error("A blocking reload not satisfied within 3 × TD"),
                    },
                },
            },
            "/health": {
                "get": {"summary": "Liveness", "responses": {"200": {"description": "Alive"}}}
            },
            "/ready": {
                "get": {
                    "summary": "Readiness: FFmpeg found, output dir writable, supervisor running",
                    "responses": {
                        "200": {"description": "Ready"},
                        "503": {"description": "Not ready"},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "Text format"}},
                }
            },
            "/time": {
                "get": {
                    "summary": "UTC time for DASH UTCTiming (ISO 8601)",
                    "responses": {"200": {"description": "Time"}},
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI"}},
                }
            },
            "/docs": {
                "get": {
                    "summary": "Human-readable API docs",
                    "responses": {"200": {"description": "HTML"}},
                }
            },
            "/": {
                "get": {"summary": "Dashboard page", "responses": {"200": {"description": "HTML"}}}
            },
            "/static/{name}": {
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "get": {
                    "summary": "Dashboard assets and vendored players",
                    "responses": {"200": {"description": "File"}, "404": _error("No such file")},
                },
            },
        },
    }
