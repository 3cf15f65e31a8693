"""Push ingest: publishers that send media to us (WHIP today), feeding a push stream's FFmpeg."""
