"""Loopback TCP relay [::1]:PORT -> 127.0.0.1:PORT for the tailnet part.

The server under test binds 127.0.0.1 only (tests stay on loopback), but
`tailscale debug derp` insists on reaching every node over IPv6 as well. This
relay gives the same server (same key, same certificate) an IPv6 loopback
address without binding any non-loopback interface. Bytes are copied as they
come; a bounded number of connections keeps a misbehaving client from piling
up tasks.
"""
import asyncio
import sys

MAX_CONNECTIONS = 64
CHUNK_BYTES = 65536


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(CHUNK_BYTES)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


async def main(port):
    slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def handle(client_reader, client_writer):
        if slots.locked():
            client_writer.close()
            return
        async with slots:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))

    server = await asyncio.start_server(handle, "::1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
