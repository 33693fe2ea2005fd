#!/usr/bin/env python3
"""tcp_collector.py - example collector for tcp_sink: receives one connection on
127.0.0.1 and appends what arrives to OUT until the sender closes.

usage: tcp_collector.py OUT
Prints the port it listens on (an ephemeral one) as its first line of output,
then, at the end, the number of bytes and of recv() calls it saw.
"""
import socket
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: tcp_collector.py OUT")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        print(srv.getsockname()[1], flush=True)
        conn, _ = srv.accept()
        total = calls = 0
        with conn, open(sys.argv[1], "ab") as out:
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    break
                out.write(data)
                total += len(data)
                calls += 1
        print(f"received {total} bytes in {calls} recv calls", flush=True)


if __name__ == "__main__":
    main()
