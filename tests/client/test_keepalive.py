"""client.transport.KeepAlive, the SDK's JSON-RPC transport, against a local HTTP server that
misbehaves on request: idle connections closed, error statuses, garbage answers."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from client.errors import RpcUnavailable
from client.transport import KeepAlive, http_web3, translate_errors


class Node(BaseHTTPRequestHandler):
    """Answers eth_blockNumber with the number of connections opened so far."""

    protocol_version = "HTTP/1.1"  # keep-alive
    mode = "ok"  # "ok" | "drop idle" (closes after answering, saying nothing) | "503"
    seen: list[dict] = []
    connections = 0

    def setup(self):
        super().setup()
        type(self).connections += 1

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.mode == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": hex(type(self).connections)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
        if self.mode == "drop idle":
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def node():
    Node.mode, Node.seen, Node.connections = "ok", [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Node)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _url(server, userinfo: str = "", path: str = "/") -> str:
    return f"http://{userinfo}127.0.0.1:{server.server_address[1]}{path}"


def test_one_connection_serves_many_requests_with_path_query_and_credentials(node):
    w3 = http_web3(_url(node, "alice:s%40cret@", "/v3/key?x=1"), 5)
    assert [w3.eth.block_number for _ in range(3)] == [1, 1, 1]  # one connection, kept alive
    assert {s["path"] for s in Node.seen} == {"/v3/key?x=1"}
    assert Node.seen[0]["auth"] == "Basic YWxpY2U6c0BjcmV0"  # base64("alice:s@cret")


def test_a_connection_the_node_closed_while_idle_is_reopened(node):
    Node.mode = "drop idle"
    w3 = http_web3(_url(node), 5)
    assert [w3.eth.block_number for _ in range(3)] == [1, 2, 3]  # a new connection each time


def test_error_statuses_and_dead_nodes_are_connection_errors(node):
    Node.mode = "503"
    w3 = http_web3(_url(node), 5)
    with pytest.raises(RpcUnavailable, match="HTTP 503"), translate_errors():
        w3.eth.block_number
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with pytest.raises(RpcUnavailable), translate_errors():
        http_web3(f"http://127.0.0.1:{dead}", 5).eth.block_number


def test_a_garbage_answer_is_a_connection_error():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer_garbage():
            conn, _ = server.accept()
            conn.recv(65536)
            conn.sendall(b"SSH-2.0-not-http\r\n\r\n")
            conn.close()

        threading.Thread(target=answer_garbage, daemon=True).start()
        poster = KeepAlive(f"http://127.0.0.1:{server.getsockname()[1]}", 5)
        with pytest.raises(ConnectionError, match="bad HTTP answer"):
            poster.make_post_request("", b"{}")


def test_only_http_urls():
    with pytest.raises(ValueError):
        KeepAlive("ws://127.0.0.1:8546", 5)


def test_connections_are_closed_when_their_thread_ends_on_close_and_when_collected(node):
    """No socket is left to the garbage collector (a ResourceWarning, and a descriptor held
    until then): an ended thread's connection is closed when another thread connects,
    all of them by close() or when the KeepAlive is collected; each thread keeps its own."""
    import gc
    import weakref

    poster = KeepAlive(_url(node), 5)
    request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []}).encode()

    def post() -> None:
        poster.make_post_request("", request)

    def sockets() -> list[socket.socket]:
        return [conn.sock for _, conn in poster._conns.values()]  # noqa: SLF001

    worker = threading.Thread(target=post)
    worker.start()
    worker.join()
    ended = sockets()
    assert len(ended) == 1 and ended[0].fileno() >= 0  # kept while nobody else connects
    post()  # the main thread's own connection; the ended thread's is closed meanwhile
    assert ended[0].fileno() == -1 and len(sockets()) == 1
    post()
    assert Node.connections == 2  # the main thread's connection served both requests
    mine = sockets()[0]
    poster.close()
    assert mine.fileno() == -1 and sockets() == []
    post()
    kept, gone = sockets()[0], weakref.ref(poster)
    del poster
    gc.collect()
    assert gone() is None and kept.fileno() == -1
