import json
import os
from pathlib import Path

from actors.janitor import (
    STREAM_MARKER,
    create_stream_folder,
    expired_media_files,
    list_names,
    orphan_stream_dirs,
    sweep_orphans,
)


def test_expired_media_files_keeps_the_window_playlists_and_live_inits() -> None:
    names = [
        "seg_3.m4s",
        "seg_4.m4s",
        "seg_5.m4s",
        "part_4_1.m4s",
        "init_1.mp4",
        "init_2.mp4",
        "playlist.m3u8",
        ".seg_9.m4s.abcd.tmp",
        "notes.txt",
    ]
    expired = expired_media_files(names, oldest_retained_number=5, live_init_names={"init_2.mp4"})
    assert expired == ["init_1.mp4", "part_4_1.m4s", "seg_3.m4s", "seg_4.m4s"]


def test_nothing_expires_before_anything_is_retained() -> None:
    assert (
        expired_media_files(["seg_1.m4s"], oldest_retained_number=None, live_init_names=set()) == []
    )


def test_orphans_are_valid_stream_ids_nobody_owns() -> None:
    assert orphan_stream_dirs(["a", "b", "not ok", ".hidden"], {"b"}) == ["a"]


def test_sweep_removes_marked_orphans_and_asks_again_before_each(tmp_path: Path) -> None:
    for name in ("old", "live", "racing"):
        create_stream_folder(tmp_path / name)
        (tmp_path / name / "240p").mkdir()
    (tmp_path / "keep me").mkdir()
    asked: list[str] = []

    def is_live(name: str) -> bool:
        asked.append(name)
        return name in {"live", "racing"}

    result = sweep_orphans(tmp_path, is_live)
    assert (result.removed, result.unmarked) == (["old"], [])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep me", "live", "racing"]
    assert sorted(asked) == ["live", "old", "racing"]
    missing = sweep_orphans(tmp_path / "missing", is_live)
    assert (missing.removed, missing.unmarked) == ([], [])


def test_sweep_never_deletes_a_folder_this_service_did_not_make(tmp_path: Path) -> None:
    # an OUTPUT_DIR pointed at someone's web root by mistake
    (tmp_path / "photos" / "2024").mkdir(parents=True)
    (tmp_path / "photos" / "2024" / "beach.jpg").write_bytes(b"jpeg")
    (tmp_path / "cam1" / "240p").mkdir(parents=True)  # stream-id shaped, no marker
    (tmp_path / "cam1" / "240p" / "seg_1.m4s").write_bytes(b"x")
    create_stream_folder(tmp_path / "ours")
    (tmp_path / "linked").mkdir()  # a marker that is a symlink to a file is not a marker
    os.symlink(tmp_path / "ours" / STREAM_MARKER, tmp_path / "linked" / STREAM_MARKER)

    result = sweep_orphans(tmp_path, lambda _name: False)

    assert result.removed == ["ours"]
    assert result.unmarked == ["cam1", "linked", "photos"]
    assert (tmp_path / "photos" / "2024" / "beach.jpg").read_bytes() == b"jpeg"
    assert (tmp_path / "cam1" / "240p" / "seg_1.m4s").exists()
    assert (tmp_path / "linked").is_dir()


def test_the_marker_says_who_made_the_folder(tmp_path: Path) -> None:
    create_stream_folder(tmp_path / "cam1")
    create_stream_folder(tmp_path / "cam1")  # an existing folder (id reused) is fine
    marker = json.loads((tmp_path / "cam1" / STREAM_MARKER).read_text())
    assert marker["made_by"] == "hlsdash"
    assert marker["stream_id"] == "cam1"
    assert marker["pid"] == os.getpid()


def test_an_unreadable_rendition_folder_lists_as_empty(tmp_path: Path) -> None:
    # an OSError other than "missing" (here ENOTDIR; EIO on a failing disk) skips the round
    # instead of escaping the janitor loop and ending the stream
    (tmp_path / "240p").write_bytes(b"not a folder")
    assert list_names(tmp_path / "240p") == []
