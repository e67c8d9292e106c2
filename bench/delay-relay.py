#!/usr/bin/env python3
"""A delaying TCP relay for pullmail's benchmark (a stand-in for distance).

Listens on 127.0.0.1, one free port per --upstream, and forwards each
connection to its upstream port byte for byte (TLS passes through
untouched), holding every chunk back by --delay-ms in each direction: a
delay line, not stop-and-wait.  A chunk read at time t is written at
t + delay whatever happened to the chunks before it, order is kept, and
the round trip grows by twice the delay.  The bandwidth stays that of
loopback.

Many connections at once are fine (the scale benchmark opens a thousand):
the listen backlog is long and the open-file limit is raised to its hard
limit, two descriptors a connection.

It writes the ports it listens on to --port-file (one a line, in the order
of the --upstream options) and ends by itself after --max-seconds, or as
soon as the process --parent-pid is gone.

Usage: delay-relay.py --delay-ms MS --port-file FILE [--max-seconds S]
                      [--parent-pid PID] --upstream PORT [--upstream PORT]...
"""
import argparse
import asyncio
import os
import resource
import socket
import sys

CHUNK = 65536
# Connections waiting to be accepted (a daemon starting opens hundreds).
BACKLOG = 4096
# Reading stops while this much is held back in one direction (loopback
# fills far more than a 10 ms delay line needs otherwise).
MAX_HELD = 8 * 1024 * 1024


async def pipe(reader, writer, delay):
    """Copy reader to writer, each chunk written delay seconds after it
    was read."""
    loop = asyncio.get_running_loop()
    held = asyncio.Queue()
    room = asyncio.Condition()
    size = [0]

    async def read_side():
        try:
            while True:
                data = await reader.read(CHUNK)
                now = loop.time()
                await held.put((now + delay, data))
                if not data:
                    return
                async with room:
                    size[0] += len(data)
                    await room.wait_for(lambda: size[0] < MAX_HELD)
        except (ConnectionError, OSError):
            await held.put((loop.time() + delay, b""))

    async def write_side():
        try:
            while True:
                due, data = await held.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:
                    if writer.can_write_eof():
                        writer.write_eof()
                    await writer.drain()
                    return
                writer.write(data)
                await writer.drain()
                async with room:
                    size[0] -= len(data)
                    room.notify_all()
        except (ConnectionError, OSError):
            return

    r = asyncio.ensure_future(read_side())
    await write_side()
    r.cancel()


def nodelay(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def relay(client_r, client_w, upstream, delay):
    nodelay(client_w)
    try:
        server_r, server_w = await asyncio.open_connection("127.0.0.1",
                                                           upstream)
    except OSError:
        client_w.close()
        return
    nodelay(server_w)
    await asyncio.gather(pipe(client_r, server_w, delay),
                         pipe(server_r, client_w, delay))
    for w in (client_w, server_w):
        w.close()


async def watch(parent, max_seconds):
    loop = asyncio.get_running_loop()
    end = loop.time() + max_seconds
    while loop.time() < end:
        if parent:
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                return
        await asyncio.sleep(0.5)


def raise_nofile():
    """The open-file limit up to its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(args):
    raise_nofile()
    delay = args.delay_ms / 1000.0
    servers, ports = [], []
    for upstream in args.upstream:
        srv = await asyncio.start_server(
            lambda r, w, u=upstream: relay(r, w, u, delay), "127.0.0.1", 0,
            backlog=BACKLOG)
        servers.append(srv)
        ports.append(srv.sockets[0].getsockname()[1])
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(f"{p}\n" for p in ports))
    os.rename(tmp, args.port_file)
    await watch(args.parent_pid, args.max_seconds)
    for srv in servers:
        srv.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description="a delaying TCP relay")
    p.add_argument("--delay-ms", type=float, required=True,
                   help="delay of each direction (half the round trip)")
    p.add_argument("--upstream", type=int, action="append", required=True,
                   help="a port on 127.0.0.1 to forward to")
    p.add_argument("--port-file", required=True)
    p.add_argument("--max-seconds", type=float, default=3600)
    p.add_argument("--parent-pid", type=int, default=0)
    sys.exit(asyncio.run(main(p.parse_args())))
