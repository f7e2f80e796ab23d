"""The benchmarks' local SMTP receiver: a few processes of their own sharing one port on 127.0.0.1
(SO_REUSEPORT), each speaking just enough SMTP for smtplib and Apprise (EHLO/HELO, MAIL, RCPT, DATA,
RSET, NOOP, QUIT) and writing one line per message: arrival time, recipient, subject.

aiosmtpd inside the benchmark's own process became the bottleneck once delivery got faster: one
event loop parsing each command and address with the email package, sharing the GIL with the
benchmark's polling. A relay is not what is being measured, so it should not be the slowest part.

    python bench/mailsink.py PORT FILE     # one receiver process (MailSink starts them)
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections import Counter
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from pathlib import Path

_HEADERS = BytesHeaderParser()


def _subject(message: bytes) -> str:
    head = message.split(b"\r\n\r\n", 1)[0]
    raw = _HEADERS.parsebytes(head)["Subject"] or ""
    return " ".join(str(make_header(decode_header(raw))).split())


class _Session(asyncio.Protocol):
    def __init__(self, out):
        self.out = out
        self.buffer = bytearray()
        self.recipients: list[str] = []
        self.in_data = False

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"220 sink.bench.test ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                message = bytes(self.buffer[:end + 2])
                del self.buffer[:end + 5]
                self.in_data = False
                at = time.time()
                subject = _subject(message).replace("\t", " ")
                self.out.write("".join(f"{at:.6f}\t{rcpt}\t{subject}\n" for rcpt in self.recipients))
                self.out.flush()
                self.transport.write(b"250 OK\r\n")
                continue
            newline = self.buffer.find(b"\r\n")
            if newline < 0:
                return
            line = bytes(self.buffer[:newline])
            del self.buffer[:newline + 2]
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.transport.write(b"250-sink.bench.test\r\n250-8BITMIME\r\n250 SIZE 33554432\r\n")
            elif verb == b"HELO":
                self.transport.write(b"250 sink.bench.test\r\n")
            elif verb in (b"MAIL", b"RSET"):
                self.recipients = []
                self.transport.write(b"250 OK\r\n")
            elif verb == b"RCPT":
                address = line.split(b":", 1)[1].strip().split(b" ")[0].strip(b"<>").decode()
                self.recipients.append(address)
                self.transport.write(b"250 OK\r\n")
            elif verb == b"DATA":
                self.in_data = True
                self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif verb == b"NOOP":
                self.transport.write(b"250 OK\r\n")
            elif verb == b"QUIT":
                self.transport.write(b"221 Bye\r\n")
                self.transport.close()
                return
            else:
                self.transport.write(b"502 Command not implemented\r\n")


def serve(port: int, file: Path) -> None:
    async def main():
        with open(file, "a", encoding="utf-8") as out:
            server = await asyncio.get_running_loop().create_server(
                lambda: _Session(out), "127.0.0.1", port, reuse_port=True, backlog=512)
            async with server:
                await server.serve_forever()

    asyncio.run(main())


class MailSink:
    """`processes` receivers on one port; `arrivals()` reads what they wrote so far."""

    def __init__(self, folder: Path, *, processes: int = 2):
        from appealflow.runtime.services import free_port

        self.port = free_port()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.files = [folder / f"sink-{n}.tsv" for n in range(processes)]
        self._read: dict[Path, int] = {}
        self._arrivals: list[tuple[float, str, str]] = []
        self._processes: list[subprocess.Popen] = []

    @property
    def apprise_url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=12345@appealflow.test"

    def start(self) -> MailSink:
        for file in self.files:
            file.touch()
            self._processes.append(subprocess.Popen([sys.executable, __file__, str(self.port), str(file)]))
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                    probe.recv(100)
                    probe.sendall(b"QUIT\r\n")
                return self
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.wait(10)

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *_) -> None:
        self.stop()

    def arrivals(self) -> list[tuple[float, str, str]]:
        """Every message so far: (arrival wall time, recipient, subject)."""
        for file in self.files:
            with open(file, "rb") as f:
                f.seek(self._read.get(file, 0))
                chunk = f.read()
            complete = chunk[:chunk.rfind(b"\n") + 1]
            self._read[file] = self._read.get(file, 0) + len(complete)
            for line in complete.decode("utf-8").splitlines():
                at, rcpt, subject = line.split("\t", 2)
                self._arrivals.append((float(at), rcpt, subject))
        return list(self._arrivals)

    def counts(self) -> Counter:
        """(recipient, subject) pairs and how often each arrived."""
        return Counter((rcpt, subject) for _, rcpt, subject in self.arrivals())

    def clear(self) -> None:
        self.arrivals()
        self._arrivals.clear()

    def __len__(self) -> int:
        return len(self.arrivals())


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
