"""WSGI application used by the oxwsgi benchmark (bench/run).

Mounted at /wsgi; one callable, routed on PATH_INFO:

  /hello   13-byte text/plain "Hello, world!" (keep-alive and Connection: close scenarios)
  /body1m  a 1 MiB body returned as a one-element list
  /body16m a 16 MiB body yielded in 1 MiB pieces (what the slow clients of `slow64` download)
  /file5m  the 5 MiB file data/5m.bin through environ['wsgi.file_wrapper']
  /echo    POST: reads CONTENT_LENGTH bytes of wsgi.input and sends them back
  /upload  POST: reads all of wsgi.input and answers "LENGTH CRC32" (what the slow clients of
           `slowup64` upload, checked by them)

The same file is copied next to the configuration of every server variant, so every server
runs exactly the same code.
"""

import os
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
FILE_5M = os.path.join(HERE, "data", "5m.bin")

HELLO = b"Hello, world!"
BODY_1M = b"x" * (1 << 20)


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/hello":
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(HELLO)))])
        return [HELLO]
    if path == "/body1m":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(BODY_1M)))])
        return [BODY_1M]
    if path == "/body16m":
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(16 * len(BODY_1M)))])
        return (BODY_1M for _ in range(16))
    if path == "/file5m":
        f = open(FILE_5M, "rb")
        size = os.fstat(f.fileno()).st_size
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(size))])
        return environ["wsgi.file_wrapper"](f, 65536)
    if path == "/echo":
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/upload":
        body = environ["wsgi.input"].read()
        answer = b"%d %08x" % (len(body), zlib.crc32(body))
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(answer)))])
        return [answer]
    start_response("404 Not Found", [("Content-Type", "text/plain"),
                                     ("Content-Length", "9")])
    return [b"not found"]
