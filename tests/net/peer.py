# peer.py: an independent HTTP/1.1 peer for the net tests (Python's http.server and ssl):
# usage: peer.py [certfile keyfile]; prints the port it listens on, serves until killed.
import http.server
import socketserver
import ssl
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world" * 1000):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/retry":
            self._send(503, b"busy", [("Retry-After", "120")])
        elif self.path == "/retry-date":
            self._send(429, b"slow down", [("Retry-After", "Fri, 31 Dec 1999 23:59:59 GMT")])
        else:
            self._send(200, ("path=%s conn=%d" % (self.path, id(self.connection))).encode())

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        enc = self.headers.get("Content-Encoding", "")
        if enc == "gzip":
            import gzip
            body = gzip.decompress(body)
        auth = self.headers.get("Authorization", "")
        self._send(200, b"auth=" + auth.encode() + b" body=" + body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", 0), Handler)
if len(sys.argv) == 3:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
