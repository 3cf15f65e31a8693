"""ops/varnish/edge.py: the edge VCL, checked by Varnish's own test tool (``varnishtest``).

Each case is a VTC script: a scripted origin (``server s1``), varnishd running the edge's VCL, and
scripted players (``client``). ``varnish v1 -expect COUNTER`` waits for Varnish's own counters, so
"a player is waiting on the first player's fetch" is a fact the test waits for, not a sleep.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ops.edge.upstream import HostPort
from ops.varnish import edge
from ops.varnish.edge import edge_vcl

VARNISHTEST = shutil.which("varnishtest") or "/usr/bin/varnishtest"
PLAYLIST = "/s/240p/playlist.m3u8"


def vtc_vcl() -> str:
    """The edge VCL for varnishtest: the origin is the scripted server s1, and the ``vcl 4.1;``
    line goes (varnishtest writes its own)."""
    first, _, rest = edge_vcl(origin=HostPort("127.0.0.1", 1), origin_timeout_s=65).partition("\n")
    assert first == "vcl 4.1;"
    return rest.replace('.host = "127.0.0.1";', '.host = "${s1_addr}";').replace(
        '.port = "1";', '.port = "${s1_port}";'
    )


def run_vtc(tmp_path: Path, title: str, body: str) -> None:
    script = tmp_path / "edge.vtc"
    script.write_text(
        f'varnishtest "{title}"\n\n'
        + body.replace("VARNISH", "varnish v1 -vcl {\n" + vtc_vcl() + "\n} -start")
    )
    result = subprocess.run(
        [VARNISHTEST, "-q", "-t", "60", str(script)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]


def test_concurrent_blocking_reloads_make_one_origin_request_and_wake_on_its_answer(
    tmp_path: Path,
) -> None:
    run_vtc(
        tmp_path,
        "two players, one blocking reload: one origin request, the second player woken by it",
        f"""
barrier b1 cond 2

server s1 {{
    rxreq
    expect req.url == "{PLAYLIST}?_HLS_msn=5&_HLS_part=1&session=a"
    expect req.http.Accept-Encoding == <undef>
    # held like the origin holds a blocking reload, until the second player waits too
    barrier b1 sync
    txresp -hdr "Content-Type: application/vnd.apple.mpegurl" \\
        -hdr "Cache-Control: public, max-age=6" -body "EXTM3U-part-5-1"
}} -start

VARNISH

client c1 {{
    txreq -url "{PLAYLIST}?_HLS_msn=5&_HLS_part=1&session=a"
    rxresp
    expect resp.status == 200
    expect resp.http.X-Cache-Status == "MISS"
    expect resp.body == "EXTM3U-part-5-1"
}} -start

varnish v1 -expect MAIN.backend_req == 1

# another player, another session tag, directives in another order, gzip: the same object
client c2 {{
    txreq -url "{PLAYLIST}?_HLS_part=1&session=b&_HLS_msn=5" -hdr "Accept-Encoding: gzip"
    rxresp
    expect resp.status == 200
    expect resp.http.X-Cache-Status == "HIT"
    expect resp.http.Content-Encoding == "gzip"
    expect resp.http.Vary == "Accept-Encoding"
    gunzip
    expect resp.body == "EXTM3U-part-5-1"
}} -start

# c2 sleeps on the waiting list of c1's fetch; the origin answers only then
varnish v1 -expect MAIN.busy_sleep == 1
barrier b1 sync
client c1 -wait
client c2 -wait
varnish v1 -expect MAIN.busy_wakeup == 1
varnish v1 -expect MAIN.backend_req == 1
""",
    )


def test_cache_key_is_the_path_and_the_ll_hls_directives_only(tmp_path: Path) -> None:
    run_vtc(
        tmp_path,
        "cache key: path + _HLS_msn/_HLS_part/_HLS_skip, nothing else",
        f"""
server s1 {{
    rxreq
    expect req.url == "/s/240p/part_5_1.m4s?session=a"
    txresp -hdr "Content-Type: video/mp4" -hdr "Cache-Control: public, max-age=31536000, immutable" \\
        -bodylen 1000
    rxreq
    expect req.url == "{PLAYLIST}?_HLS_msn=5&_HLS_part=2"
    txresp -hdr "Cache-Control: public, max-age=6" -body "part-5-2"
    rxreq
    expect req.url == "{PLAYLIST}?_HLS_msn=5&_HLS_part=2&_HLS_skip=YES"
    txresp -hdr "Cache-Control: public, max-age=6" -body "part-5-2-delta"
}} -start

VARNISH

client c1 {{
    txreq -url "/s/240p/part_5_1.m4s?session=a"
    rxresp
    expect resp.http.X-Cache-Status == "MISS"
    txreq -url "/s/240p/part_5_1.m4s?session=b"
    rxresp
    expect resp.http.X-Cache-Status == "HIT"
    expect resp.bodylen == 1000
    txreq -url "{PLAYLIST}?_HLS_msn=5&_HLS_part=2"
    rxresp
    expect resp.body == "part-5-2"
    txreq -url "{PLAYLIST}?_HLS_msn=5&_HLS_part=2&_HLS_skip=YES"
    rxresp
    expect resp.body == "part-5-2-delta"
    txreq -url "{PLAYLIST}?_HLS_skip=YES&_HLS_part=2&_HLS_msn=5&session=c"
    rxresp
    expect resp.http.X-Cache-Status == "HIT"
    expect resp.body == "part-5-2-delta"
}} -run

varnish v1 -expect MAIN.backend_req == 3
""",
    )


def test_what_the_origin_forbids_to_store_goes_to_it_every_time(tmp_path: Path) -> None:
    run_vtc(
        tmp_path,
        "no-store (/time) and no-cache (a growing segment) reach the origin each time; OPTIONS too",
        """
server s1 {
    rxreq
    expect req.url == "/time"
    txresp -hdr "Cache-Control: no-store" -body "t1"
    rxreq
    expect req.url == "/time"
    txresp -hdr "Cache-Control: no-store" -body "t2"
    rxreq
    expect req.url == "/s/240p/seg_9.m4s"
    txresp -hdr "Cache-Control: no-cache" -bodylen 10
    rxreq
    expect req.url == "/s/240p/seg_9.m4s"
    txresp -hdr "Cache-Control: no-cache" -bodylen 20
    rxreq
    expect req.method == "OPTIONS"
    txresp -status 204 -hdr "Access-Control-Allow-Origin: *"
} -start

VARNISH

client c1 {
    txreq -url "/time"
    rxresp
    expect resp.body == "t1"
    expect resp.http.X-Cache-Status == "MISS"
    txreq -url "/time"
    rxresp
    expect resp.body == "t2"
    expect resp.http.X-Cache-Status == "MISS"
    txreq -url "/s/240p/seg_9.m4s"
    rxresp
    expect resp.bodylen == 10
    txreq -url "/s/240p/seg_9.m4s"
    rxresp
    expect resp.bodylen == 20
    txreq -req OPTIONS -url "/s/240p/seg_9.m4s"
    rxresp
    expect resp.status == 204
} -run

varnish v1 -expect MAIN.backend_req == 5
""",
    )


def test_playlists_are_fetched_identity_and_gunzipped_for_players_without_gzip(
    tmp_path: Path,
) -> None:
    run_vtc(
        tmp_path,
        "one identity copy from the origin, gzip at the edge, plain for players that do not ask",
        f"""
server s1 {{
    rxreq
    expect req.http.Accept-Encoding == <undef>
    txresp -hdr "Content-Type: application/vnd.apple.mpegurl" -hdr "Vary: Accept-Encoding" \\
        -hdr "Cache-Control: public, max-age=1" -body "EXTM3U-live"
}} -start

VARNISH

client c1 {{
    txreq -url "{PLAYLIST}" -hdr "Accept-Encoding: gzip"
    rxresp
    expect resp.http.Content-Encoding == "gzip"
    gunzip
    expect resp.body == "EXTM3U-live"
    txreq -url "{PLAYLIST}"
    rxresp
    expect resp.http.Content-Encoding == <undef>
    expect resp.body == "EXTM3U-live"
    expect resp.http.X-Cache-Status == "HIT"
}} -run

varnish v1 -expect MAIN.backend_req == 1
""",
    )


def test_an_expired_not_found_is_asked_again_not_served_stale(tmp_path: Path) -> None:
    run_vtc(
        tmp_path,
        "a 404 (max-age=1) for a part asked for early is never served after it expired",
        """
server s1 {
    rxreq
    expect req.url == "/s/240p/seg_7.m4s"
    txresp -status 404 -hdr "Cache-Control: public, max-age=1" -body "not yet"
    rxreq
    expect req.url == "/s/240p/seg_7.m4s"
    txresp -hdr "Cache-Control: public, max-age=31536000, immutable" -bodylen 500
} -start

VARNISH

client c1 {
    txreq -url "/s/240p/seg_7.m4s"
    rxresp
    expect resp.status == 404
    # the segment appears; the 404's max-age runs out (TTL semantics, not a timing assertion)
    delay 1.5
    txreq -url "/s/240p/seg_7.m4s"
    rxresp
    expect resp.status == 200
    expect resp.bodylen == 500
} -run
""",
    )


def test_a_live_playlist_is_never_served_more_than_twice_its_max_age_late(tmp_path: Path) -> None:
    run_vtc(
        tmp_path,
        "grace no longer than the TTL: a 1 s playlist is not served 10 s stale",
        f"""
server s1 {{
    rxreq
    txresp -hdr "Cache-Control: public, max-age=1" -body "playlist-v1"
    rxreq
    txresp -hdr "Cache-Control: public, max-age=1" -body "playlist-v2"
}} -start

VARNISH

client c1 {{
    txreq -url "{PLAYLIST}"
    rxresp
    expect resp.body == "playlist-v1"
    # past max-age + grace (1 s + 1 s): Varnish's default grace (10 s) would still answer v1
    delay 2.5
    txreq -url "{PLAYLIST}"
    rxresp
    expect resp.body == "playlist-v2"
}} -run
""",
    )


def test_varnishd_runs_in_the_foreground_with_the_instance_in_the_workdir(tmp_path: Path) -> None:
    argv = edge.varnishd_argv(
        workdir=tmp_path,
        vcl=tmp_path / "edge.vcl",
        listen=HostPort("::1", 8090),
        cache_max_size_mb=64,
    )
    assert argv[0] == edge.VARNISHD
    assert argv[1] == "-F"
    assert argv[argv.index("-n") + 1] == str(tmp_path / "varnish")
    assert argv[argv.index("-a") + 1] == "[::1]:8090"
    assert argv[argv.index("-s") + 1] == "malloc,64m"
    logger = edge.varnishncsa_argv(workdir=tmp_path, access_log=tmp_path / "access.log")
    assert logger[logger.index("-n") + 1] == str(tmp_path / "varnish")
    assert logger[logger.index("-w") + 1] == str(tmp_path / "access.log")


@pytest.mark.parametrize("directive", edge.LL_HLS_DIRECTIVES)
def test_every_ll_hls_directive_is_in_the_key(directive: str) -> None:
    vcl = edge_vcl(origin=HostPort("127.0.0.1", 8084), origin_timeout_s=65)
    assert f'"[?&]{directive}="' in vcl
