"""Resend our first DTLS flight early: 1 s off FFmpeg publishers' connect time.

As the DTLS client (the publisher's offer says ``a=setup:passive``, FFmpeg's does) aiortc sends
its ClientHello the moment ICE connects. FFmpeg's ``whip`` muxer is not listening for DTLS yet at
that moment and drops it; OpenSSL retransmits only when its timer expires — after 1 s, the whole
of which is spent in every FFmpeg publish (measured: handshake 1.01–1.02 s, one "DTLS handling
timeout" each time; pyOpenSSL exposes no way to shorten the timer). So while nothing has come
back from the peer we send the very same datagram again at RESEND_AFTER_S; a retransmitted
ClientHello is what DTLS expects on loss (RFC 6347 §4.2.4), and a server that did see the first
answers the duplicate with its own retransmission at worst.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import rtcdtlstransport

RESEND_AFTER_S = (0.15, 0.4)


def install() -> None:
    """Patch aiortc's DTLS transport in this process (call once, before any connection)."""
    original = rtcdtlstransport.RTCDtlsTransport._write_ssl

    async def write_ssl(self: Any) -> None:
        first_flight = (
            self._role == "client"
            and not self.encrypted
            and not getattr(self, "_whip_first_flight_sent", False)
        )
        if not first_flight:
            await original(self)
            return
        self._whip_first_flight_sent = True
        data = self._ssl.bio_read(1500)
        if not data:
            return
        await self.transport._send(data)
        received_before = self._RTCDtlsTransport__rx_packets

        async def resend() -> None:
            for delay_s in RESEND_AFTER_S:
                await asyncio.sleep(delay_s)
                if self.encrypted or self._RTCDtlsTransport__rx_packets != received_before:
                    return
                try:
                    await self.transport._send(data)
                except ConnectionError:
                    return

        task = asyncio.get_running_loop().create_task(resend())
        self._whip_resend_task = task  # kept referenced until it ends

    rtcdtlstransport.RTCDtlsTransport._write_ssl = write_ssl  # type: ignore[method-assign]
