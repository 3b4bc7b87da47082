"""What the node tells the cluster about a container: its status and its service entry.

Both keys are bound to the node's lease (see registration.py). The service entry exists only
while the container runs; it is removed only if it is still ours, because a later attempt of
the same instance on another node writes the same key.
"""
from gaia_common.keys import Keys
from gaia_common.pb import types_pb2


def endpoint(spec: types_pb2.ContainerSpec, status: types_pb2.ContainerStatus) -> types_pb2.ServiceEndpoint:
    return types_pb2.ServiceEndpoint(app=spec.app_name, instance_id=spec.instance_id, host=status.host_ip,
                                     ports=dict(status.host_ports), node_id=status.node_id,
                                     container_id=spec.container_id, health=status.health,
                                     private=spec.private)


def registers_service(spec: types_pb2.ContainerSpec, status: types_pb2.ContainerStatus) -> bool:
    """Running user containers are addressable; an AM only when it exposes ports."""
    return status.state == types_pb2.CONTAINER_STATE_RUNNING and (bool(status.host_ports) or not spec.is_am)


class Publisher:
    def __init__(self, registration, keys: Keys):
        self.registration = registration
        self.keys = keys

    def publish(self, spec: types_pb2.ContainerSpec, status: types_pb2.ContainerStatus) -> None:
        self.registration.set(self.keys.container(spec.app_id, spec.container_id), status.SerializeToString())
        service_key = self.keys.service(spec.app_name, spec.instance_id)
        if registers_service(spec, status):
            self.registration.set(service_key, endpoint(spec, status).SerializeToString())
        else:  # the entry it had while running (maybe written before a node-manager restart)
            self.registration.remove(service_key, only_if_ours=True, ours=endpoint(spec, status).SerializeToString())

    def forget(self, spec: types_pb2.ContainerSpec) -> None:
        self.registration.remove(self.keys.container(spec.app_id, spec.container_id))
        self.registration.remove(self.keys.service(spec.app_name, spec.instance_id), only_if_ours=True)
