"""The WHIP peer: aiortc in an asyncio child process (``python -m actors.ingest.whip_peer``).

asyncio stays out of the trio service: the service spawns one child per WHIP session, sends it
the offer over a control socket (``control``), gets the answer back, and reads MPEG-TS of the
publisher's *undecoded* H.264 access units (+ Opus packets) from the child's stdout, which it
feeds to the stream's FFmpeg — so video is decoded exactly once, by FFmpeg.
"""
