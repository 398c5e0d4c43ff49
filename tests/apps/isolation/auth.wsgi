# Reports the Authorization header as the application sees it.


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ.get("HTTP_AUTHORIZATION", "<unset>").encode("latin-1")]
