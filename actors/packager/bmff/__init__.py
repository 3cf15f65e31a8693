"""ISO-BMFF (fragmented MP4 / CMAF) box reader: FFmpeg's fMP4 pipe → init segment + fragments.

Pure: no trio, no I/O. The packager feeds whatever the pipe hands it to
:class:`FragmentedMp4Reader` and gets back one :class:`~actors.packager.model.InitSegment`
followed by one :class:`~actors.packager.model.Fragment` per ``moof``+``mdat`` (a CMAF chunk, i.e.
an LL-HLS part).

Everything the reader reads comes from another process, so every malformed input ends in
:class:`BmffError` (a ``ValueError``) and never in ``struct.error``/``IndexError``: the caller
catches one exception type, logs it and restarts the encoder.

Modules, along the seams: ``boxes`` (headers, cursors, constants), ``init`` (``moov``),
``codecs`` (RFC 6381 strings), ``fragments`` (``moof``), ``rebase`` (``tfdt`` shifting),
``reader`` (the incremental reader). Box layout reference: ISO/IEC 14496-12 (boxes), 14496-14
(esds), 14496-15 (avcC, hvcC and the codec strings in its Annex E).
"""

from actors.packager.bmff.boxes import MAX_BOX_SIZE_BYTES, BmffError, InitDetails, TrackDefaults
from actors.packager.bmff.codecs import hevc_codec_string, mp4a_codec_string
from actors.packager.bmff.fragments import fragment_info
from actors.packager.bmff.init import parse_init, parse_init_segment
from actors.packager.bmff.reader import FragmentedMp4Reader, split_stream
from actors.packager.bmff.rebase import rebase_fragment

__all__ = [
    "MAX_BOX_SIZE_BYTES",
    "BmffError",
    "FragmentedMp4Reader",
    "InitDetails",
    "TrackDefaults",
    "fragment_info",
    "hevc_codec_string",
    "mp4a_codec_string",
    "parse_init",
    "parse_init_segment",
    "rebase_fragment",
    "split_stream",
]
