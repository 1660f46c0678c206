"""A loopback TCP proxy the outage tests put in front of the broker, to cut its connections and restore them.

Freezing Tansu (SIGSTOP) shows a hung broker; cutting connections shows a network partition or a broker
restart, which Tansu's memory-only storage cannot survive for real. Clients are given the proxy's address
(Tansu advertises it too), so every connection, including those opened after metadata, goes through here.
Written by hand: no library in the field list forwards and cuts TCP connections on demand.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class TcpProxy:
    """Forwards ``127.0.0.1:listen_port`` to ``target``; ``cut`` drops every connection and refuses new ones."""

    def __init__(self, listen_port: int, target: tuple[str, int]) -> None:
        self.listen_port, self.target = listen_port, target
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self.connections = 0

    # --- control
    def start(self) -> TcpProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.listen_port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), name="tcp-proxy-accept", daemon=True).start()
        return self

    def cut(self) -> None:
        """Close the listener and every open connection: clients see resets, then refused connections."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self.start()

    def close(self) -> None:
        self._stopping.set()
        self.cut()

    # --- forwarding
    def _accept(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut or closed
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream), name="tcp-proxy-pump", daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        try:
            while True:
                for key, _ in selector.select(timeout=1.0):
                    data = key.fileobj.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
                if self._stopping.is_set():
                    return
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            with self._lock:
                self._sockets -= {a, b}
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()
