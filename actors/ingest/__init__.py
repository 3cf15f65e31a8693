"""Push ingest: publishers (RTMP, SRT, WHIP) feeding a push stream's FFmpeg (see ``publisher``)."""
