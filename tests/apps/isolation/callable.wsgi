# No `application` here: only the callables named by WSGICallableObject / callable-object=.


def app_main(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"app_main"]


def other(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"other"]
