"""An HL7 v2 MLLP peer that is not Soi's code: python-hl7's asyncio server in a thread."""

from __future__ import annotations

import asyncio
import ssl
import threading
from typing import Any

import hl7
import hl7.mllp

from tests.support.net import LOOPBACK, free_port

__all__ = ["Hl7Peer"]


class Hl7Peer:
    """python-hl7's MLLP server in a thread with its own event loop.

    ``behaviour`` maps control ids to what the peer does with that message; any other
    message gets ``AA``.
    """

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.behaviour: dict[str, str] = {}
        self.received: list[str] = []
        self.port = 0
        self._ssl = ssl_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> Hl7Peer:
        self._thread.start()
        last: OSError | None = None
        for _ in range(5):
            port = free_port()
            start = hl7.mllp.start_hl7_server(
                self._handle, LOOPBACK, port, encoding="utf-8", ssl=self._ssl
            )
            try:
                self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(5)
            except OSError as exc:  # the port was taken meanwhile
                last = exc
                continue
            self.port = port
            return self
        raise RuntimeError(f"the MLLP peer could not bind a port: {last}")

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _handle(self, reader: Any, writer: Any) -> None:
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                self.received.append(str(message))
                if not await self._answer(message, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(self, message: hl7.Message, writer: Any) -> bool:
        """Answer one message; return whether to keep the connection open."""
        control_id = str(message.segment("MSH")(10))
        behaviour = self.behaviour.get(control_id, "AA")
        if behaviour == "silent":
            await asyncio.sleep(3600)
        if behaviour == "close":
            return False
        if behaviour == "garbage":
            writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            await writer.drain()
            return False
        if behaviour == "partial":
            writer.write(b"\x0bMSH|^~\\&|HIS||SOI||20261123||ACK|1|P|2.5\rMSA|AA|")
            await writer.drain()
            return False
        if behaviour == "legacy-AE":
            # A v2.3 peer: ERR-1 is segment^sequence^field^code&text, MSA-3 escaped.
            writer.writeblock(
                f"MSH|^~\\&|HIS||SOI||20261123||ACK|A1|P|2.3\r"
                f"MSA|AE|{control_id}|PID-3 \\F\\ missing\r"
                f"ERR|PID^1^3^101&Required field missing&HL70357\r".encode()
            )
            await writer.drain()
            return True
        code = {"wrong-id": "AA"}.get(behaviour, behaviour)
        ack = message.create_ack(code, message_id=f"ACK-{control_id}")
        if behaviour == "wrong-id":
            ack.segment("MSA").assign_field("SOMEONE-ELSE", 2)
        if code in {"AE", "AR"}:
            text = "Thiếu mã bệnh nhân " + message.escape("(PID-3 | MR)")
            ack.segment("MSA").assign_field(text, 3)
            err = ack.create_segment([ack.create_field(["ERR"])])
            err.assign_field("101", 3, 1, 1)
            err.assign_field("Required field missing", 3, 1, 2)
            err.assign_field("HL70357", 3, 1, 3)
            err.assign_field("E", 4)
            ack.append(err)
        writer.writemessage(ack)
        await writer.drain()
        return True
