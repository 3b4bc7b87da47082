"""gRPC plumbing shared by the servers and clients: limits, deadlines, the leader redirect."""
from concurrent import futures

import grpc

# Below etcd's 1.5 MiB request limit, so nothing a client sends can become an unstorable write.
MAX_MESSAGE_BYTES = 1024 * 1024
LEADER_METADATA = "gaia-leader"      # trailing metadata a follower answers with
NODE_METADATA = "gaia-node"          # request metadata naming the node meant (one process may serve many: hollow nodes)
DEFAULT_DEADLINE = 10.0
CHANNEL_OPTIONS = [("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                   ("grpc.max_receive_message_length", 16 * MAX_MESSAGE_BYTES)]


def make_server(max_workers: int = 32) -> grpc.Server:
    return grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers),
                       options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                                ("grpc.so_reuseport", 0)])


def bind(server: grpc.Server, listen: str) -> str:
    """Bind `listen` (host:port, port 0 = any free) and return the bound host:port."""
    host = listen.rsplit(":", 1)[0]
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return f"{host}:{port}"


def channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


def leader_of(error: grpc.RpcError) -> str:
    """The leader's address a follower named in its answer, or ''."""
    for key, value in (error.trailing_metadata() or ()):
        if key == LEADER_METADATA:
            return value
    return ""
