"""A TLS front for a plaintext Kafka broker, for the tests of Weir's Kafka client over TLS.

tls_proxy.py LISTEN_PORT TARGET_PORT CERT KEY: accepts TLS connections on 127.0.0.1:LISTEN_PORT
with the given certificate and forwards the decrypted bytes to 127.0.0.1:TARGET_PORT (the
broker, which advertises LISTEN_PORT, so every client connection goes through here). Failed
handshakes are printed, so a test can show the client was refused by TLS and not by the broker.
"""
import asyncio
import ssl
import sys

LISTEN, TARGET, CERT, KEY = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def handle(client_reader, client_writer):
    try:
        broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", TARGET)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, broker_writer), pipe(broker_reader, client_writer))


def on_error(loop, context):
    print("tls proxy:", context.get("exception") or context.get("message"), flush=True)


async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(CERT, KEY)
    asyncio.get_running_loop().set_exception_handler(on_error)
    server = await asyncio.start_server(handle, "127.0.0.1", LISTEN, ssl=ctx)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


asyncio.run(main())
