#!/usr/bin/python3
"""Byte relays for bench_handoff's baseline, run inside the WAN network namespace.

  wan_relay.py unix2tcp PATH PORT   listen on the unix socket PATH (mode 0777, so QEMU can
                                    connect), forward what arrives to 127.0.0.1:PORT
  wan_relay.py sink PORT            accept one TCP connection on 127.0.0.1:PORT, read it to
                                    the end, print the byte count

QEMU runs in the host's namespace; a unix socket is a file, reachable from both, so its
migration stream enters the shaped loopback here.
"""
import os
import socket
import sys


def unix2tcp(path, port):
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o777)
    srv.listen(1)
    print("ready", flush=True)
    conn, _ = srv.accept()
    out = socket.create_connection(("127.0.0.1", int(port)))
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        out.sendall(data)
    out.shutdown(socket.SHUT_WR)
    out.recv(1)


def sink(port):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", int(port)))
    srv.listen(1)
    print("ready", flush=True)
    conn, _ = srv.accept()
    n = 0
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        n += len(data)
    print(n, flush=True)


if __name__ == "__main__":
    {"unix2tcp": lambda: unix2tcp(sys.argv[2], sys.argv[3]), "sink": lambda: sink(sys.argv[2])}[sys.argv[1]]()
