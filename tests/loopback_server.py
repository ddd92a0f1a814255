"""An HTTP server on 127.0.0.1 for the download tests: files, status codes, lies about their length.

    with LoopbackServer() as server:
        server.serve("/w.pth", path_or_bytes)                    # 200 with the file
        server.serve("/cut.pth", data, content_length=10**6)     # claims more than it sends, then closes
        server.serve("/gone.pth", b"", status=404)
        server.url("/w.pth"); server.gets("/w.pth")              # its URL; how many GETs it answered
"""
import os
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    def __init__(self):
        self.routes, self.requests = {}, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                outer.requests.append(("GET", self.path))
                route = outer.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                body = route["body"]
                size = os.path.getsize(body) if isinstance(body, str) else len(body)
                self.send_response(route["status"])
                for key, value in route["headers"].items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(route["content_length"] or size))
                self.end_headers()
                time.sleep(route["delay_s"])
                if isinstance(body, str):  # a file: streamed, not held in memory
                    with open(body, "rb") as f:
                        shutil.copyfileobj(f, self.wfile, 1 << 20)
                else:
                    self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):  # quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def serve(self, path, body, status=200, content_length=None, delay_s=0.0, headers=None):
        """``body``: bytes or a file path (read when requested)."""
        self.routes[path] = dict(body=body if isinstance(body, (bytes, str)) else bytes(body), status=status,
                                 content_length=content_length, delay_s=delay_s, headers=headers or {})

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def gets(self, path):
        return sum(1 for method, p in self.requests if method == "GET" and p == path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url(path="/w.pth"):
    """A loopback URL nothing listens on (connection refused): the test's stand-in for no network."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


__all__ = ["LoopbackServer", "closed_port_url"]
