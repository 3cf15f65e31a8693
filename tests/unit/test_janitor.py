from pathlib import Path

from actors.janitor import expired_media_files, list_names, orphan_stream_dirs, sweep_orphans


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


def test_sweep_removes_orphans_and_asks_again_before_each(tmp_path: Path) -> None:
    for name in ("old", "live", "racing"):
        (tmp_path / name / "240p").mkdir(parents=True)
    (tmp_path / "keep me").mkdir()
    asked: list[str] = []

    def is_live(name: str) -> bool:
        asked.append(name)
        return name in {"live", "racing"}

    assert sweep_orphans(tmp_path, is_live) == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep me", "live", "racing"]
    assert sorted(asked) == ["live", "old", "racing"]
    assert sweep_orphans(tmp_path / "missing", is_live) == []


def test_an_unreadable_rendition_folder_lists_as_empty(tmp_path: Path) -> None:
    # an OSError other than "missing" (here ENOTDIR; EIO on a failing disk) skips the round
    # instead of escaping the janitor loop and ending the stream
    (tmp_path / "240p").write_bytes(b"not a folder")
    assert list_names(tmp_path / "240p") == []
