# bcrypt is built with PyO3, which refuses to be imported by a second interpreter in a process.
import bcrypt


def application(environ, start_response):
    hashed = bcrypt.hashpw(b"secret", bcrypt.gensalt(4))
    body = b"bcrypt-ok " + str(bcrypt.checkpw(b"secret", hashed)).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
