#!/usr/bin/python3
"""A small HTTP server for tests/unit/test_http_source.cc (standard library only).

Usage: http_test_server.py BODY_FILE [--tls]
Listens on 127.0.0.1 (port chosen by the kernel) and prints "PORT <n>" on stdout.
With --tls it also listens for HTTPS with the self-signed test certificate
below (valid 2000..9999, for IP 127.0.0.1 only), writes that certificate and
its key next to BODY_FILE, and the line is
"PORT <http port> TLSPORT <https port> CA <certificate file>".

  /body[?size=N]               the first N bytes (default: all) of BODY_FILE, with Content-Length
  /chunked[?size=N]            the same, chunked transfer encoding, no Content-Length
  /close-no-length[?size=N]    the same, no Content-Length, end marked by closing the connection
  /truncated?size=N&send=M     Content-Length N, then M bytes and close
  /chunked-truncated?send=M    chunked, M bytes in chunks, then close without the final chunk
  /stall                       headers (Content-Length 1 MiB), then nothing
  /slow?rate=R                 all of BODY_FILE, with Content-Length, at R bytes/s
  /stall-after?send=M          Content-Length of all of BODY_FILE, M bytes, then nothing (open)
  /silent                      accepts, reads the request, never answers
  /redirect?n=K                K redirects (302), then /body
  /loop                        redirects to itself
  /to-ftp                      redirects to an ftp:// URL
  /to-plain                    redirects to /body on the plain HTTP port
  /no-location                 302 without Location, empty body
  anything else                404

A TLS ClientHello (first byte 0x16) gets a plain-text 400 and a close, as a
real plain-HTTP server would answer; without this, Python's request parser
might wait for a newline that never comes.
"""

import http.server
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse

BODY_FILE = sys.argv[1]
CHUNK = 64 * 1024
PLAIN_PORT = 0

# For tests on 127.0.0.1 only; never trusted anywhere else.
TEST_CERT = """-----BEGIN CERTIFICATE-----
MIIBnTCCAUKgAwIBAgIBATAKBggqhkjOPQQDAjAsMSowKAYDVQQDDCFsaWJjbG91
ZGxldCB0ZXN0IHNlcnZlciAxMjcuMC4wLjEwIBcNMDAwMTAxMDAwMDAwWhgPOTk5
OTEyMzEyMzU5NTlaMCwxKjAoBgNVBAMMIWxpYmNsb3VkbGV0IHRlc3Qgc2VydmVy
IDEyNy4wLjAuMTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABEDGf1z67P0vztfK
fnmMGDfcFDv2Zcou7DiJgPhiNGRwP6f5mLh8CRnwyl7O997fBquot6VShy23PfFl
EO2WRy+jUzBRMA8GA1UdEwEB/wQFMAMBAf8wDgYDVR0PAQH/BAQDAgKEMA8GA1Ud
EQQIMAaHBH8AAAEwHQYDVR0OBBYEFCo7u/a4FAWPxO20tzmHzIAyf8DMMAoGCCqG
SM49BAMCA0kAMEYCIQDR8IO43BIIl9eoNqmR1ba3TbTDcC3VVjhvrreY127j9AIh
AKFeYt9l5J76NcutNdu00LQvgSiezOeS0s1vFR/VsxZw
-----END CERTIFICATE-----
"""
TEST_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgr8STeLzBaUbC7V8A
oszr8na6fD15H6Df/b3mQBjwRHuhRANCAARAxn9c+uz9L87Xyn55jBg33BQ79mXK
Luw4iYD4YjRkcD+n+Zi4fAkZ8Mpezvfe3warqLelUocttz3xZRDtlkcv
-----END PRIVATE KEY-----
"""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet: the test's output is the report
        pass

    def handle(self):
        try:
            first = b"" if isinstance(self.request, ssl.SSLSocket) else self.request.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b"\x16":
            try:
                self.request.sendall(b"HTTP/1.0 400 Bad Request\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            return
        try:
            super().handle()
        except (ConnectionError, BrokenPipeError, TimeoutError):
            pass

    def params(self):
        q = urllib.parse.urlparse(self.path)
        return q.path, {k: v[0] for k, v in urllib.parse.parse_qs(q.query).items()}

    def send_file_bytes(self, size, chunked=False):
        left = size
        with open(BODY_FILE, "rb") as f:
            while left > 0:
                data = f.read(min(CHUNK, left))
                if not data:
                    break
                left -= len(data)
                if chunked:
                    self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
                else:
                    self.wfile.write(data)

    def file_size(self, p):
        with open(BODY_FILE, "rb") as f:
            f.seek(0, 2)
            total = f.tell()
        return min(int(p.get("size", total)), total)

    def redirect(self, location):
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        path, p = self.params()
        self.close_connection = True
        if path == "/body":
            size = self.file_size(p)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.send_header("Connection", "close")
            self.end_headers()
            self.send_file_bytes(size)
        elif path == "/chunked":
            size = self.file_size(p)
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.send_file_bytes(size, chunked=True)
            self.wfile.write(b"0\r\n\r\n")
        elif path == "/close-no-length":
            size = self.file_size(p)
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.send_file_bytes(size)
        elif path == "/truncated":
            self.send_response(200)
            self.send_header("Content-Length", p["size"])
            self.send_header("Connection", "close")
            self.end_headers()
            self.send_file_bytes(int(p["send"]))
        elif path == "/chunked-truncated":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.send_file_bytes(int(p["send"]), chunked=True)
        elif path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", str(1 << 20))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            time.sleep(120)
        elif path == "/slow":
            size = self.file_size(p)
            rate = float(p["rate"])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Connection", "close")
            self.end_headers()
            start, sent = time.monotonic(), 0
            with open(BODY_FILE, "rb") as f:
                while sent < size:
                    data = f.read(min(16 * 1024, size - sent))
                    if not data:
                        break
                    self.wfile.write(data)
                    self.wfile.flush()
                    sent += len(data)
                    ahead = sent / rate - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)
        elif path == "/stall-after":
            size = self.file_size(p)
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.send_header("Connection", "close")
            self.end_headers()
            self.send_file_bytes(int(p["send"]))
            self.wfile.flush()
            time.sleep(120)
        elif path == "/silent":
            time.sleep(120)
        elif path == "/redirect":
            n = int(p.get("n", "0"))
            self.redirect("/body" if n <= 0 else "/redirect?n=%d" % (n - 1))
        elif path == "/loop":
            self.redirect("/loop")
        elif path == "/to-ftp":
            self.redirect("ftp://127.0.0.1:1/body")
        elif path == "/to-plain":
            self.redirect("http://127.0.0.1:%d/body" % PLAIN_PORT)
        elif path == "/no-location":
            self.send_response(302)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_error(404, "Not Found")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that hang up early are part of the tests


class TlsServer(Server):
    """The handshake happens on the connection's own thread, so a client that
    never completes it cannot block the accept loop."""

    def __init__(self, address, handler, context):
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request, client_address):
        tls = self.context.wrap_socket(request, server_side=True)
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def main():
    global PLAIN_PORT
    server = Server(("127.0.0.1", 0), Handler)
    PLAIN_PORT = server.server_address[1]
    line = "PORT %d" % PLAIN_PORT
    if "--tls" in sys.argv[2:]:
        directory = os.path.dirname(os.path.abspath(BODY_FILE))
        cert = os.path.join(directory, "test-cert.pem")
        key = os.path.join(directory, "test-key.pem")
        with open(cert, "w") as f:
            f.write(TEST_CERT)
        with open(key, "w") as f:
            f.write(TEST_KEY)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        tls_server = TlsServer(("127.0.0.1", 0), Handler, context)
        threading.Thread(target=tls_server.serve_forever, daemon=True).start()
        line += " TLSPORT %d CA %s" % (tls_server.server_address[1], cert)
    print(line, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
