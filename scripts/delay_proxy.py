#!/usr/bin/env python3
"""A TCP proxy that adds a fixed latency to every request (Python stdlib only).

For benchmarking remote reads against a local S3 server as if it were across a network:

    python3 scripts/delay_proxy.py --listen 127.0.0.1:0 --target 127.0.0.1:9000 \
        --delay-ms 20 --port-file /tmp/proxy.port

It binds, writes the port it got to --port-file (if given, atomically), prints
`listening on HOST:PORT` (flushed), then serves until killed.

Semantics, per connection:

- Client->server bytes are read as soon as they arrive and stamped with their arrival time. A
  burst that starts a new request -- the first bytes of the connection, bytes after the client
  has sent nothing for at least --idle-ms (default 2), or bytes after the server has sent
  something since the client's last bytes (the next request on a keep-alive connection) -- is
  held until arrival + --delay-ms, then forwarded. The rest of that request's bytes follow as they
  arrive, without extra delay, in order.
- Server->client bytes are forwarded immediately.
- Every connection has its own pair of tasks, so concurrent requests' delays overlap.
- When the client closes, its end-of-stream is passed on to the server (after the pending
  bytes); when the server closes, the client connection is closed. A reset on either side
  closes both.
"""

import argparse
import asyncio
import os
import sys

READ_SIZE = 256 * 1024


def parse_hostport(text, what):
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{what} must be HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class Connection:
    """One proxied connection: a reader, a delayed forwarder and a server->client pump."""

    def __init__(self, loop, delay, idle):
        self.loop = loop
        self.delay = delay
        self.idle = idle
        self.last_client_arrival = None
        self.server_spoke = False
        # (release time, bytes) in arrival order; None marks the client's end of stream.
        self.pending = asyncio.Queue(maxsize=256)

    async def read_client(self, reader):
        release = 0.0
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                now = self.loop.time()
                new_request = (
                    self.last_client_arrival is None
                    or now - self.last_client_arrival >= self.idle
                    or self.server_spoke
                )
                self.last_client_arrival = now
                self.server_spoke = False
                if new_request:
                    release = now + self.delay
                await self.pending.put((release, data))
        finally:
            await self.pending.put(None)

    async def forward_client(self, server_writer):
        while True:
            item = await self.pending.get()
            if item is None:
                if server_writer.can_write_eof():
                    server_writer.write_eof()
                return
            release, data = item
            wait = release - self.loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            server_writer.write(data)
            await server_writer.drain()

    async def pump_server(self, server_reader, client_writer):
        while True:
            data = await server_reader.read(READ_SIZE)
            if not data:
                return
            self.server_spoke = True
            client_writer.write(data)
            await client_writer.drain()


def close(writer):
    try:
        writer.close()
    except Exception:
        pass


async def handle(client_reader, client_writer, target, delay, idle):
    try:
        server_reader, server_writer = await asyncio.open_connection(*target)
    except OSError as e:
        print(f"cannot connect to {target[0]}:{target[1]}: {e}", file=sys.stderr, flush=True)
        close(client_writer)
        return
    conn = Connection(asyncio.get_running_loop(), delay, idle)
    upstream = asyncio.gather(conn.read_client(client_reader), conn.forward_client(server_writer))
    downstream = asyncio.ensure_future(conn.pump_server(server_reader, client_writer))
    try:
        # The connection ends when the server side ends (it closed, or either side failed);
        # a client's end of stream is half-closed through to the server, which then closes.
        done, _ = await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        if upstream in done and upstream.exception() is None:
            await downstream
    except (OSError, asyncio.CancelledError):
        pass
    finally:
        for task in (upstream, downstream):
            if not task.done():
                task.cancel()
        await asyncio.gather(upstream, downstream, return_exceptions=True)
        close(server_writer)
        close(client_writer)


async def serve(args):
    delay = args.delay_ms / 1000.0
    idle = args.idle_ms / 1000.0
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args.target, delay, idle), *args.listen, backlog=1024
    )
    host, port = server.sockets[0].getsockname()[:2]
    if args.port_file:
        tmp = f"{args.port_file}.tmp{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"listening on {host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", required=True, type=lambda s: parse_hostport(s, "--listen"),
                   help="HOST:PORT to bind (port 0: any free port)")
    p.add_argument("--target", required=True, type=lambda s: parse_hostport(s, "--target"),
                   help="HOST:PORT to forward to")
    p.add_argument("--delay-ms", type=float, default=20.0,
                   help="latency added to each request (default 20)")
    p.add_argument("--idle-ms", type=float, default=2.0,
                   help="client silence that starts a new request (default 2)")
    p.add_argument("--port-file", help="write the bound port to this file")
    args = p.parse_args()
    if args.delay_ms < 0 or args.idle_ms < 0:
        p.error("--delay-ms and --idle-ms must not be negative")
    try:
        asyncio.run(serve(args))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
