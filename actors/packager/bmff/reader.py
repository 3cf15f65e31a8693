"""The incremental reader: FFmpeg's fMP4 pipe in arbitrary chunks → one init segment, then one
fragment per ``moof`` + ``mdat``."""

from __future__ import annotations

from typing import final

from actors.packager.bmff.boxes import FRAGMENT_PREFIX_TYPES, BmffError, InitDetails, parse_header
from actors.packager.bmff.fragments import fragment_info
from actors.packager.bmff.init import parse_init
from actors.packager.model import Fragment, InitSegment


@final
class FragmentedMp4Reader:
    """Splits a live single-track fMP4 byte stream into records, whatever the chunk boundaries.

    Top-level boxes are cut out as soon as they are complete: ftyp+moov become one
    :class:`InitSegment`; styp/prft/emsg + moof (+ anything between it and its mdat) + mdat
    become one :class:`Fragment`. sidx, free, udta, mfra and unknown boxes elsewhere are skipped.

    After a :class:`BmffError` the reader is dead: further ``feed`` calls raise again and
    ``close`` does nothing (the caller has already logged the first error).
    """

    __slots__ = (
        "_buf",
        "_closed",
        "_error",
        "_ftyp",
        "_init",
        "_need",
        "_pending",
        "_pos",
        "_prefix",
        "_saw_any",
        "_skipped_bytes",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0  # read offset into _buf; bytes before it are consumed
        self._need = 0  # size of the box at _pos once its header is known, else 0
        self._ftyp: bytes | None = None
        self._init: InitDetails | None = None
        self._prefix: list[bytes] = []  # styp/prft/emsg waiting for their moof
        self._pending: list[bytes] | None = None  # prefix + moof (+ in-between boxes), no mdat yet
        self._skipped_bytes = 0
        self._saw_any = False
        self._closed = False
        self._error: BmffError | None = None

    @property
    def init(self) -> InitDetails | None:
        """The parsed init segment once ftyp+moov have been read."""
        return self._init

    @property
    def skipped_bytes(self) -> int:
        """Bytes of top-level boxes that belong to no record (mfra, sidx, free, unknown…)."""
        return self._skipped_bytes

    def feed(self, data: bytes | bytearray | memoryview) -> list[InitSegment | Fragment]:
        """Take the next bytes of the stream; return the records they complete, in order."""
        return self._feed(data, final=False)

    def close(self) -> None:
        """Declare end of stream; raise :class:`BmffError` if it ended inside a box or fragment."""
        if self._error is not None or self._closed:
            return
        self._closed = True
        left = len(self._buf) - self._pos
        if left:
            what = f"a {self._need}-byte box" if self._need else "a box header"
            raise BmffError(f"stream truncated: {left} bytes of {what} left unfinished")
        if self._pending is not None:
            raise BmffError("stream truncated: a 'moof' was never followed by its 'mdat'")
        if self._prefix:
            raise BmffError("stream truncated: styp/prft/emsg box(es) without a following 'moof'")
        if self._saw_any and self._init is None:
            raise BmffError("stream ended before its init segment (ftyp+moov) was complete")

    def _feed(
        self, data: bytes | bytearray | memoryview, *, final: bool
    ) -> list[InitSegment | Fragment]:
        if self._error is not None:
            raise BmffError(f"reader already failed: {self._error}")
        if self._closed:
            raise BmffError("reader is closed")
        self._buf += data
        try:
            return self._drain(final=final)
        except BmffError as exc:
            self._error = exc
            raise

    def _drain(self, *, final: bool) -> list[InitSegment | Fragment]:
        records: list[InitSegment | Fragment] = []
        buf = self._buf
        end = len(buf)
        while True:
            if not self._need:
                parsed = parse_header(buf, self._pos, end, open_end=end if final else None)
                if parsed is None:
                    break
                self._need = parsed[2]
                self._saw_any = True
            if end - self._pos < self._need:
                break
            box = bytes(buf[self._pos : self._pos + self._need])
            self._pos += self._need
            self._need = 0
            record = self._on_box(box)
            if record is not None:
                records.append(record)
        # Compact only when the consumed prefix dominates, so each byte moves O(1) times.
        if self._pos and self._pos * 2 >= len(buf):
            del buf[: self._pos]
            self._pos = 0
        return records

    def _on_box(self, box: bytes) -> InitSegment | Fragment | None:
        box_type = box[4:8].decode("ascii")  # validated printable by parse_header
        if box_type in {"ftyp", "moov"}:
            if self._init is not None:
                raise BmffError(f"second {box_type!r} after the init segment: the stream restarted")
            if box_type == "ftyp":
                if self._ftyp is not None:
                    raise BmffError("duplicate 'ftyp' before 'moov'")
                self._ftyp = box
                return None
            init_bytes = (self._ftyp or b"") + box
            self._init = parse_init(init_bytes)
            return InitSegment(data=init_bytes, track=self._init.track)
        if self._pending is not None:
            if box_type == "moof":
                raise BmffError("'moof' followed by another 'moof' without an 'mdat'")
            self._pending.append(box)
            if box_type != "mdat":
                # Kept, not skipped: trun offsets are relative to the moof, so dropping bytes
                # between moof and mdat would make them point at the wrong samples.
                return None
            data = b"".join(self._pending)
            self._pending = None
            init = self._init
            assert init is not None  # a moof is only accepted after the init
            return fragment_info(data, defaults=init.defaults, track_id=init.track.track_id)
        if box_type in FRAGMENT_PREFIX_TYPES:
            self._prefix.append(box)
            return None
        if box_type == "moof":
            if self._init is None:
                raise BmffError("'moof' before the init segment (ftyp+moov)")
            self._pending = [*self._prefix, box]
            self._prefix = []
            return None
        if box_type == "mdat":
            raise BmffError("'mdat' without a preceding 'moof' (not a fragmented stream?)")
        self._skipped_bytes += len(box)
        return None


def split_stream(data: bytes) -> list[InitSegment | Fragment]:
    """Read a complete stream (a file): like feeding it all and closing, but a final size-0 box
    ("extends to end of file") is accepted because here the end is known."""
    reader = FragmentedMp4Reader()
    records = reader._feed(data, final=True)  # private on purpose: live callers must not use it
    reader.close()
    return records
