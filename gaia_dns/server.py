"""The sockets: one UDP loop and a TCP acceptor on the same host:port.

UDP is the path that must be fast: one thread in a tight recvfrom/answer/sendto loop, with a
large receive buffer so a burst waits in the kernel rather than being dropped. TCP (clients
retrying a truncated reply, zone-less tools) gets a thread per connection, bounded.
"""
import logging
import socket
import threading

log = logging.getLogger(__name__)

RCVBUF = 4 << 20


def split_listen(listen: str):
    """'127.0.0.1:5353' / '[::1]:5353' -> (host, port, family)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise ValueError(f"listen {listen!r}: expected HOST:PORT")
    host = host.strip("[]")
    return host, int(port), socket.AF_INET6 if ":" in host else socket.AF_INET


class DnsServer:
    def __init__(self, responder, listen: str, tcp_connections: int = 128, tcp_idle_timeout: float = 10.0):
        self.responder = responder
        self.tcp_slots = threading.BoundedSemaphore(tcp_connections)
        self.tcp_idle_timeout = tcp_idle_timeout
        self.stopping = False
        self.udp, self.tcp = _bind(*split_listen(listen))
        self.address = self.udp.getsockname()[:2]
        self._threads = []

    def start(self) -> "DnsServer":
        for target, name in ((self._serve_udp, "dns-udp"), (self._serve_tcp, "dns-tcp")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info("serving DNS on udp and tcp %s:%d", *self.address)
        return self

    def stop(self):
        self.stopping = True
        for sock in (self.udp, self.tcp):
            try:
                sock.shutdown(socket.SHUT_RDWR)   # wakes the thread blocked in recvfrom / accept
            except OSError:
                pass
            sock.close()
        for thread in self._threads:
            thread.join(2)

    # ---- UDP ----

    def _serve_udp(self):
        recvfrom, sendto, answer = self.udp.recvfrom, self.udp.sendto, self.responder.answer
        while not self.stopping:
            try:
                data, peer = recvfrom(4096)
                reply = answer(data)
                if reply:
                    sendto(reply, peer)
            except OSError:
                if self.stopping:
                    return
            except Exception:  # a bug answering one query must not stop the server
                log.exception("answering a UDP query failed")

    # ---- TCP ----

    def _serve_tcp(self):
        while not self.stopping:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                if self.stopping:
                    return
                continue
            if not self.tcp_slots.acquire(blocking=False):
                conn.close()          # too many clients: they retry or fail over, we stay up
                continue
            threading.Thread(target=self._serve_connection, args=(conn,), name="dns-tcp-conn", daemon=True).start()

    def _serve_connection(self, conn):
        try:
            conn.settimeout(self.tcp_idle_timeout)
            while not self.stopping:
                size = _recv_exact(conn, 2)
                data = size and _recv_exact(conn, int.from_bytes(size, "big"))
                if not data:
                    return
                reply = self.responder.answer(data, tcp=True)
                if reply:
                    conn.sendall(len(reply).to_bytes(2, "big") + reply)
        except OSError:   # idle timeout, reset: the client goes away
            pass
        except Exception:
            log.exception("answering a TCP query failed")
        finally:
            conn.close()
            self.tcp_slots.release()


def _recv_exact(conn, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            return b""
        out += chunk
    return out


def _bind(host: str, port: int, family):
    """A UDP and a TCP socket on the same port; port 0 picks one free for both."""
    for _ in range(20 if port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        udp.bind((host, port))
        tcp = socket.socket(family, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind((host, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            if port:
                raise
            continue          # the free UDP port is taken for TCP: pick another
        tcp.listen(128)
        return udp, tcp
    raise OSError(f"no port free for both UDP and TCP on {host}")
