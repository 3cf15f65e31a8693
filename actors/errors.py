"""What a stream actor raises about its own encoder (the supervision library's errors, such as
``StallDetected``, are in ``supervisor.otp.errors``)."""

from __future__ import annotations


class EncoderExited(Exception):  # noqa: N818 - it reports an exit, it is not an "error" call
    """The encoder process ended while it was supposed to run.

    ``last_error`` is the encoder's last meaningful stderr line ("" when it said nothing).
    """

    def __init__(self, returncode: int, last_error: str = "") -> None:
        detail = f": {last_error}" if last_error else ""
        super().__init__(f"encoder exited with code {returncode}{detail}")
        self.returncode = returncode
        self.last_error = last_error

