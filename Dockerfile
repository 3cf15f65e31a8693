# hlsdash: the service image. FFmpeg comes from the imageio-ffmpeg wheel (static, libx264/aac/srt).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OUTPUT_DIR=/var/www/streams

WORKDIR /app
COPY pyproject.toml README.md ./
COPY supervisor ./supervisor
COPY actors ./actors
RUN pip install . \
    && useradd --system --uid 10001 --home /app hlsdash \
    && mkdir -p /var/www/streams \
    && chown hlsdash /var/www/streams

USER hlsdash
EXPOSE 8083 8084
VOLUME ["/var/www/streams"]

HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8083/health', timeout=2).status == 200 else 1)"]

# exec form: hlsdash runs as PID 1 and receives SIGTERM directly; it stops every
# stream (no FFmpeg left) and exits 0 within ~10 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["hlsdash"]
CMD ["serve"]
