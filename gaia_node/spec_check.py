"""An ApplicationMaster's StartContainer, checked against what the master granted and accepted.

The master checks a spec's privileged asks against the submitter's capabilities (privileged,
volumes, devices, host network: README, security) and the scheduler grants each instance its
resources and GPUs. An AM then builds the container spec from the app's record and sends it to
a node; the AM runs the tenant's own code, so its key may be in a tenant's hands, and a node that
took the spec as sent would let it ask for anything the master refused. So before it starts an
AM's container the node reads, in one etcd transaction, the instance's allocation
(allocations/<app_id>/<instance_id>) and the app's record (apps/<app_name>), and requires:

  - the allocation exists (else FAILED_PRECONDITION: released, or never granted) and names this
    node; the record is the spec's app (its app_id);
  - resources.request is the allocation's (what the scheduler counted) and, with the limits, the
    app spec's; gpu_indices are the allocation's;
  - everything that decides what the container may touch or how it is isolated is exactly the
    app spec's: privileged, devices, volumes, host_network (spec network "host"), driver, image,
    command, workdir, ports, health_check (an exec check runs a command), gpu_mode, priority
    (reclaim order), private (DNS exposure); no extra namespaces and no credentials (only the
    master hands an AM its certificate);
  - the spec is that of a version the app's record holds (`spec.version`, 0 meaning 1). Any
    version it holds was accepted by the master, and during a rolling update or a rollback the
    AM starts the new or the old one depending on how far it has got: both must pass.

Left to the AM: env (the tenant's own process environment, which the tenant sets freely by
updating the app; Gaia's own variables are set by the node and win), stop_on_partition, and the
container id's counter. A mismatch is PERMISSION_DENIED naming the field.
"""
import grpc
from etcd3 import exceptions as etcd_exceptions

from gaia_common.pb import types_pb2


class NoGrant(Exception):
    """No allocation (or app) stands behind the container: FAILED_PRECONDITION."""


class NotGranted(Exception):
    """The spec asks for something the master did not grant or accept: PERMISSION_DENIED."""


class CannotCheck(Exception):
    """etcd could not be read: UNAVAILABLE (the AM tries again)."""


# spec field -> how the app spec (AppSpec) says it; compared exactly
FROM_APP_SPEC = (
    ("privileged", lambda s: s.privileged),
    ("devices", lambda s: list(s.devices)),
    ("volumes", lambda s: list(s.volumes)),
    ("host_network", lambda s: s.network == "host"),
    ("driver", lambda s: s.driver),
    ("image", lambda s: s.image),
    ("command", lambda s: list(s.command)),
    ("workdir", lambda s: s.workdir),
    ("ports", lambda s: list(s.ports)),
    ("health_check", lambda s: s.health_check if s.health_check.kind else types_pb2.HealthCheck()),
    ("gpu_mode", lambda s: s.gpu_mode),
    ("priority", lambda s: s.priority),
    ("private", lambda s: s.private),
    ("resources", lambda s: s.resources),
)


def _as_sent(spec, field: str):
    value = getattr(spec, field)
    return list(value) if field in ("devices", "volumes", "command", "ports") else value


def grant_reader(etcd, keys, errors):
    """(app_id, instance_id, app_name) -> (Allocation or None, AppRecord or None), in one
    transaction; CannotCheck when etcd does not answer."""
    def read(app_id: str, instance_id: str, app_name: str):
        tx = etcd.transactions
        try:
            _, (alloc, record) = etcd.transaction(
                compare=[], success=[tx.get(keys.allocation(app_id, instance_id)), tx.get(keys.app(app_name))],
                failure=[])
        except (*errors, etcd_exceptions.Etcd3Exception, grpc.RpcError) as e:   # also a denied read
            raise CannotCheck(f"cannot read the grant of {app_id}/{instance_id} from etcd: {e}") from None
        return _parse(alloc, types_pb2.Allocation), _parse(record, types_pb2.AppRecord)
    return read


def _parse(kvs, cls):
    if not kvs:
        return None
    out = cls()
    out.ParseFromString(kvs[0][0])
    return out


def version_spec(record, version: int):
    """The AppSpec of `version` (0 means 1) the record holds, or None. Records from before
    versions hold only `spec`, which is then every version (as the AM reads them)."""
    version = version or 1
    if not record.versions:
        return record.spec
    return record.versions[version] if version in record.versions else None


class SpecCheck:
    def __init__(self, node_id: str, read_grant):
        self.node_id = node_id
        self._read = read_grant

    def check(self, spec) -> None:
        """Raise NoGrant, NotGranted or CannotCheck unless `spec` is what the master granted."""
        for field in ("instance_id", "app_name"):
            value = getattr(spec, field)
            if not value or "/" in value:   # both become etcd keys below
                raise NotGranted(f"spec.{field}: {value[:100]!r} must be set and contain no '/'")
        alloc, record = self._read(spec.app_id, spec.instance_id, spec.app_name)
        if alloc is None:
            raise NoGrant(f"instance {spec.instance_id} of {spec.app_id} has no allocation "
                          "(released, or never granted)")
        if alloc.node_id != self.node_id:
            raise NotGranted(f"spec.instance_id: instance {spec.instance_id} of {spec.app_id} is allocated to "
                             f"node {alloc.node_id!r}, not this node ({self.node_id})")
        if record is None:
            raise NoGrant(f"spec.app_name: no application {spec.app_name!r} (it finished or was removed)")
        if record.app_id != spec.app_id:
            raise NotGranted(f"spec.app_name: application {spec.app_name!r} is not app {spec.app_id}")
        app_spec = version_spec(record, spec.version)
        if app_spec is None:
            raise NotGranted(f"spec.version: {spec.version} is not a version of {spec.app_name!r} "
                             f"(it holds {sorted(record.versions)})")
        self._compare(spec, alloc, app_spec)

    @staticmethod
    def _compare(spec, alloc, app_spec) -> None:
        if spec.resources.request != alloc.request:
            raise NotGranted("spec.resources.request: not the allocation's request")
        if list(spec.gpu_indices) != list(alloc.gpu_indices):
            raise NotGranted(f"spec.gpu_indices: {list(spec.gpu_indices)} are not the GPUs allocated "
                             f"({list(alloc.gpu_indices)})")
        for field, expected in FROM_APP_SPEC:
            if _as_sent(spec, field) != expected(app_spec):
                raise NotGranted(f"spec.{field}: not what version {spec.version or 1} of the app's spec says")
        if spec.namespaces:
            raise NotGranted("spec.namespaces: an ApplicationMaster's container gets none beyond the default")
        if spec.HasField("tls"):
            raise NotGranted("spec.tls: only the master hands out credentials")
