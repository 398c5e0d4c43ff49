# Like bcrypt_app.wsgi, but the application wraps the ImportError in its own exception, as
# frameworks do ("password hashing is unavailable"): the sub-interpreter message is then only in
# the chained exception.
try:
    import bcrypt
except ImportError as e:
    raise RuntimeError("password hashing is unavailable") from e


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"bcrypt-ok"]
