"""The dispatch bench's SMTP server: aiosmtpd accepting every message, counting them.

Run as its own process (`python -m bench.dispatch_smtp --port N --stats FILE`), so its
event loop has a core of its own to compete for, as a real MTA would. Per
X-Rapport-Workspace it counts messages received, distinct X-Rapport-Message ids and
duplicates, kept current in FILE (JSON, rewritten at most 4 times a second); on
SIGUSR1 it also writes every id received per workspace to FILE.ids.json. The headers
are found with a byte search in the message head: parsing each message would make
this server slower than the senders it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.smtp import SMTP


@dataclass
class Tally:
    received: int = 0
    unique: int = 0
    duplicates: int = 0
    ids: Counter[int] = field(default_factory=Counter)


def header_value(head: bytes, name: bytes) -> bytes:
    at = head.find(b"\n" + name + b":")
    if at < 0:
        return b""
    start = at + len(name) + 2
    end = head.find(b"\r\n", start)
    return head[start:end if end >= 0 else len(head)].strip()


class CountingHandler:
    def __init__(self) -> None:
        self.tallies: dict[str, Tally] = defaultdict(Tally)
        self.changed = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content or envelope.content
        head = raw[: raw.find(b"\r\n\r\n")]
        workspace = header_value(head, b"X-Rapport-Workspace").decode() or "-"
        number = header_value(head, b"X-Rapport-Message")
        tally = self.tallies[workspace]
        tally.received += 1
        if number.isdigit():
            message_id = int(number)
            if tally.ids[message_id]:
                tally.duplicates += 1
            else:
                tally.unique += 1
            tally.ids[message_id] += 1
        self.changed = True
        return "250 OK"


def write_json(path: str, data: Any) -> None:
    with open(path + ".tmp", "w") as out:
        json.dump(data, out)
    os.replace(path + ".tmp", path)  # readers never see half a file


async def serve(host: str, port: int, stats: str) -> None:
    handler = CountingHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="bench.localhost"), host, port)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def dump_ids() -> None:
        write_json(stats + ".ids.json", {ws: sorted(t.ids) for ws, t in handler.tallies.items()})

    loop.add_signal_handler(signal.SIGUSR1, dump_ids)
    write_json(stats, {})
    print(f"counting SMTP server on {host}:{port}", flush=True)
    while not stop.is_set():
        if handler.changed:
            handler.changed = False
            write_json(stats, {ws: {"received": t.received, "unique": t.unique, "duplicates": t.duplicates}
                               for ws, t in handler.tallies.items()})
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except TimeoutError:
            pass
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--stats", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.stats))


if __name__ == "__main__":
    main()
