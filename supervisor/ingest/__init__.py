"""Push-ingest front ends that live with the service (the RTMP listener; SRT port allocation)."""
