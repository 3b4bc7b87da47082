"""The Master gRPC service: the leader answers; followers point at the leader.

Handlers translate between the API and the application table; failures become gRPC codes a
client can act on: INVALID_ARGUMENT (bad input, names the field), NOT_FOUND, ALREADY_EXISTS,
ABORTED (a superseded AM attempt), FAILED_PRECONDITION (not the leader: retry elsewhere).
"""
import functools
import logging

import grpc

from gaia_common import edge, etcd as etcd_mod, rpc, spec as spec_mod
from gaia_common.security import identity as identity_mod
from gaia_common.pb import master_pb2, master_pb2_grpc, types_pb2
from gaia_common.resources import DIMENSIONS
from gaia_master import endpoints as endpoints_mod, events as events_mod, instance_ops, moves, rollouts, watch
from gaia_master import access as access_mod, tenancy_rpc
from gaia_master import enrol
from gaia_master.app_table import TERMINAL, Conflict, state_name
from gaia_master.node_view import instance_order, latest_container, resolvable
from gaia_master.pools import PoolTable
from gaia_master.store import NotLeader

log = logging.getLogger(__name__)
CONFLICT_CODES = {"exists": grpc.StatusCode.ALREADY_EXISTS, "not_found": grpc.StatusCode.NOT_FOUND,
                  # not FAILED_PRECONDITION: clients take that for "not the leader" and retry
                  "terminal": grpc.StatusCode.ABORTED, "stale": grpc.StatusCode.ABORTED}
MAX_REQUEST_COUNT = 10_000
# ControlInstances: the capability each action needs on the app's pool
CONTROL_CAPABILITY = {master_pb2.INSTANCE_ACTION_START: "scale", master_pb2.INSTANCE_ACTION_STOP: "kill",
                      master_pb2.INSTANCE_ACTION_RESTART: "kill", master_pb2.INSTANCE_ACTION_DELETE: "kill"}


def leader_only(handler):
    """Run `handler` on the leader; elsewhere answer FAILED_PRECONDITION naming the leader."""

    @functools.wraps(handler)
    def wrapper(self, request, context):
        if not self.m.is_serving():
            leader = self.m.election.leader()
            address = leader.address if leader and leader.address != self.m.address else ""
            if address:
                context.set_trailing_metadata(((rpc.LEADER_METADATA, address),))
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"not the leader; leader is {address or 'unknown'}")
        try:
            return handler(self, request, context)
        except spec_mod.SpecError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, edge.details(e))
        except Conflict as e:   # (details bounded: they quote what the caller sent)
            context.abort(CONFLICT_CODES[e.code], edge.details(e))
        except access_mod.Unauthenticated as e:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(e))
        except access_mod.Denied as e:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        except NotLeader as e:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"lost leadership: {e}")
        except etcd_mod.TRANSIENT as e:  # outcome unknown; retrying is safe (keys by name, idempotency keys)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"etcd unavailable: {type(e).__name__}")

    return wrapper


MAX_REPORT_MESSAGE = 4096


def _short_message(message: str) -> str:
    """An AM's report goes into the app's record, which must stay far below etcd's request
    limit: cut, not refused (a final report must land)."""
    return edge.details(message, MAX_REPORT_MESSAGE)


class MasterService(master_pb2_grpc.MasterServicer):
    def __init__(self, master):
        self.m = master
        self.tenancy_rpc = tenancy_rpc.TenancyRpc(master)

    @property
    def pools(self) -> PoolTable:
        return self.m.pool_table()

    @property
    def access(self) -> access_mod.Access:
        return self.m.access

    def _caller(self) -> access_mod.Principal:
        """Who calls (first, before anything is looked up: an unknown caller learns nothing)."""
        return self.access.who(identity_mod.current(), identity_mod.bearer_token())

    def _app(self, caller, name: str, capability: str):
        """The app `name` if `caller` may `capability` it; one it may not see is NOT_FOUND word
        for word as a missing one (AppTable.get's), so no tenant learns another's apps exist."""
        record = self.m.table.get(name)
        try:
            self.access.require_app(caller, record, capability)
        except access_mod.Hidden:
            raise Conflict("not_found", f"no application named {name!r}") from None
        return record

    def _resolvable(self, caller, name: str):
        record = self.m.table.get(name)
        if not self.access.resolvable_app(caller, record):   # a private app of another tenant
            raise Conflict("not_found", f"no application named {name!r}")
        return record

    def _check_name_free(self, caller, name: str):
        """App names are cluster-wide (DNS names). One held by an app the caller may not see,
        running or finished, stays its owner's: a new submission would replace a finished one,
        erasing its record and events and taking over its name for whoever resolves it. The
        refusal names no state, so it says only that the name is taken."""
        with self.m.table.lock:
            old = self.m.table.apps.get(name)
        if old is not None and not self.access.visible_app(caller, old):
            raise Conflict("exists", f"the name {name!r} is taken by an application you may not see")

    def _visible_pool(self, caller, path: str):
        """NOT_FOUND, as PoolTable.get says it, for a pool the caller may not see."""
        if not self.pools.exists(path) or not self.access.sees_pool(caller, path):
            raise Conflict("not_found", f"no pool {path!r}")

    def _pool_change(self, caller, pool, what: str):
        """Changing a pool needs admin on its parent; a tenant gives pools to itself only."""
        self.access.require_pool_admin(caller, pool.path, what)
        if pool.tenant and not self.access.full(caller) and pool.tenant != caller.tenant:
            raise access_mod.Denied(f"{caller} may not give pool {pool.path!r} to another tenant")

    # ---- users ----

    @leader_only
    def SubmitApp(self, request, context):
        caller = self._caller()
        spec = spec_mod.validate(request.spec)
        if len(request.idempotency_key) > 128:
            raise spec_mod.SpecError("idempotency_key", "longer than 128 characters")
        pools = self.pools
        with pools.lock:  # a pool is not deleted between this check and the app's write
            if not pools.exists(spec.pool) or not self.access.sees_pool(caller, spec.pool):  # not theirs: as missing
                raise spec_mod.SpecError("pool", f"no pool {spec.pool!r}; create it with `gaia pool create`")
            self.access.require(caller, "submit", spec.pool)
            tenancy_rpc.require_privileged(self.access, caller, spec)
            spec_mod.check_host_paths(spec, self.m.cfg.host_path_allow)   # after: only the privileged see the list
            self._check_name_free(caller, spec.name)
            record, existed = self.m.table.submit(spec, tenancy_rpc.idempotency_key(caller, request.idempotency_key))
        self.m.reconciler.wake()
        return master_pb2.SubmitAppResponse(app_id=record.app_id, existed=existed)

    @leader_only
    def GetApp(self, request, context):
        record = self._app(self._caller(), request.name, "read")
        status = self._app_status(record)
        status.events.extend(self.m.events.recent(record.app_id))
        return status

    @leader_only
    def ListApps(self, request, context):
        caller = self._caller()
        return master_pb2.ListAppsResponse(apps=[self._app_status(r) for r in self.m.table.records()
                                                 if self.access.readable_app(caller, r)])

    @leader_only
    def ScaleApp(self, request, context):
        caller = self._caller()
        if not 0 <= request.instances <= spec_mod.MAX_INSTANCES:
            raise spec_mod.SpecError("instances", f"must be between 0 and {spec_mod.MAX_INSTANCES}")
        before = self._app(caller, request.name, "scale").spec.instances
        record = instance_ops.scale(self.m.table, request.name, request.instances, request.instance_ids)
        self.m.events.record(record.app_id, [instance_ops.scale_event(before, record, "user")])
        return self._app_status(record)

    @leader_only
    def KillApp(self, request, context):
        record = self._app(self._caller(), request.name, "kill")
        if record.state not in TERMINAL:
            record = self.m.table.update(record, state=types_pb2.APP_STATE_KILLED, message="killed by user")
        self.m.reconciler.wake()  # its containers are stopped by the next pass
        return self._app_status(record)

    @leader_only
    def ListNodes(self, request, context):
        self.access.require_admin(self._caller(), "list the cluster's nodes")   # nodes are the operators'
        return master_pb2.ListNodesResponse(nodes=[self._node_status(n) for n in
                                                   sorted(self.m.node_view.node_list(), key=lambda n: n.node_id)])

    @leader_only
    def GetNode(self, request, context):
        self.access.require_admin(self._caller(), "see the cluster's nodes")
        info = self.m.node_view.node(request.node_id)
        if info is None:
            raise Conflict("not_found", f"no live node named {request.node_id!r}")
        status = self._node_status(info)
        report = self.m.nodes.report(info)  # live use is asked of the node, not stored
        if report is not None:
            status.used.CopyFrom(report.used)
            status.running.extend(s for s in report.containers if s.state == types_pb2.CONTAINER_STATE_RUNNING)
            status.events.extend(report.events)
        return status

    @leader_only
    def Resolve(self, request, context):
        self._resolvable(self._caller(), request.app)  # NOT_FOUND for an unknown app, rather than an empty list
        endpoints = []
        for e in self.m.node_view.endpoints(request.app):
            if not resolvable(e):  # its health check says starting or unhealthy
                continue
            if request.port and request.port not in e.ports:
                continue
            if request.port:
                e = types_pb2.ServiceEndpoint(app=e.app, instance_id=e.instance_id, host=e.host,
                                              node_id=e.node_id, container_id=e.container_id, health=e.health,
                                              ports={request.port: e.ports[request.port]})
            endpoints.append(e)
        return master_pb2.ResolveResponse(endpoints=endpoints)

    @leader_only
    def WatchEndpoints(self, request, context):
        self._resolvable(self._caller(), request.app)  # NOT_FOUND for an unknown app, as Resolve
        if request.after_revision < 0:
            raise spec_mod.SpecError("after_revision", "must not be negative")
        return endpoints_mod.serve(self.m, request, context)

    @leader_only
    def Logs(self, request, context):
        """Proxy the stream of the node that runs the instance's latest container."""
        record = self._app(self._caller(), request.app, "logs")
        allocations = self.m.table.app_allocations(record.app_id)
        instance_id = request.instance_id or next(
            (i for i in sorted(allocations, key=instance_order) if i != "am"), "0")
        status = latest_container(self.m.node_view.app_containers(record.app_id), instance_id)
        if status is None:
            raise Conflict("not_found", f"instance {instance_id!r} of {request.app!r} has no container yet")
        node = self.m.node_view.node(status.node_id)
        if node is None:
            context.abort(grpc.StatusCode.UNAVAILABLE,
                          f"node {status.node_id!r} that ran {status.container_id} is not live")
        return self._relay(node, status.container_id, request, context)

    def _relay(self, node, container_id: str, request, context):
        """The node's stream, relayed while it holds a long-stream place (a worker is held
        throughout, here and on the node): past the caller's caps or the node's, RESOURCE_EXHAUSTED
        before the node is asked."""
        per_node = edge.Limit(("logs-node", node.node_id), watch.LOGS_PER_NODE, f"node {node.node_id}",
                              "LOGS_PER_NODE")
        with self.m.watches.slot(context, "close another log stream first", more=[per_node]):
            call = self.m.nodes.logs(node, container_id, request.follow, request.tail_bytes)
            context.add_callback(call.cancel)  # the user went away: so does the node's stream
            try:
                yield from call
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED or context.is_active():
                    context.abort(e.code(), f"node: {e.details()}")

    # ---- operators: resource pools ----

    @leader_only
    def CreatePool(self, request, context):
        caller = self._caller()
        parent = request.pool.path.rpartition("/")[0]
        if parent and not (self.pools.exists(parent) and self.access.sees_pool(caller, parent)):
            raise spec_mod.SpecError("path", f"parent pool {parent!r} does not exist; create it first")
        self._pool_change(caller, request.pool, "create this pool")
        return self.pools.create(request.pool)

    @leader_only
    def UpdatePool(self, request, context):
        caller = self._caller()
        self._visible_pool(caller, request.pool.path)
        self._pool_change(caller, request.pool, "change this pool")
        return self.pools.update(request.pool)

    @leader_only
    def DeletePool(self, request, context):
        caller = self._caller()
        pools = self.pools
        with pools.lock:  # no app is submitted to it while we look
            if request.path != "default":   # "cannot be deleted" says nothing of anyone's
                self._visible_pool(caller, request.path)
            self.access.require_pool_admin(caller, request.path, "delete this pool")
            return pools.delete(request.path, self.m.table.records(), self.m.tenancy.pool_policy_ops(request.path))

    @leader_only
    def ListPools(self, request, context):
        caller = self._caller()
        return master_pb2.ListPoolsResponse(pools=[p for p in self.pools.list() if self.access.sees_pool(caller, p.path)])

    # ---- ApplicationMasters ----

    @leader_only
    def RegisterAM(self, request, context):
        record = self._am_record(request.app_id, request.attempt)
        if record.state == types_pb2.APP_STATE_PENDING:
            record = self.m.table.update(record, state=types_pb2.APP_STATE_RUNNING, message="")
        return self._app_status(record)

    @leader_only
    def RequestContainers(self, request, context):
        """Record the app's ask (idempotent), wake the scheduler and answer once a cycle has
        decided on it, or after wait_seconds: grants also reach the AM through GetApp."""
        record = self._am_record(request.app_id, request.attempt)
        target = self._target(record, request)
        # the shape is the app spec's, whatever the AM sends: an AM (whose key tenant code may
        # reach) cannot hold more capacity than its app asked for (nodes check the same)
        if request.HasField("resources") and request.resources != record.spec.resources:
            raise spec_mod.SpecError("resources", "must be the app spec's resources (the master holds them)")
        shape = record.spec.resources.request
        first = record.next_instance
        mark = self.m.book.mark()
        self.m.book.ask_instances(record.app_id, record.am_attempt, target, shape, request.gang)
        self.m.scheduling.wake()
        if request.wait_seconds > 0:
            self.m.book.wait_cycle(mark, min(request.wait_seconds, 5.0))
        record = self.m.table.by_id(record.app_id)
        allocations = self.m.table.app_allocations(record.app_id)
        grants = [a for i, a in sorted(allocations.items(), key=lambda kv: instance_order(kv[0]))
                  if i.isdigit() and int(i) >= first]
        pending = max(0, target - self.m.table.index.app_held.get(record.app_id, 0))
        return master_pb2.Grants(allocations=grants, message=record.message if pending else "", pending=pending)

    @leader_only
    def ReleaseContainers(self, request, context):
        record = self._am_record(request.app_id, request.attempt)
        if "am" in request.instance_ids:
            raise spec_mod.SpecError("instance_ids", "the AM's own allocation is released by the master")
        instance_ops.release(self.m.table, record, list(request.instance_ids))   # and from remove_instances
        self.m.book.drop(record.app_id)      # an older, larger ask must not grow it back
        self.m.scheduling.wake()             # what was freed may be someone else's turn
        return self._app_status(self.m.table.by_id(record.app_id))

    @leader_only
    def ReportAppState(self, request, context):
        record = self._am_record(request.app_id, request.attempt)
        if request.state not in TERMINAL:
            raise spec_mod.SpecError("state", "an AM reports only succeeded, failed or killed")
        record = self.m.table.update(record, state=request.state, message=_short_message(request.message))
        self.m.reconciler.wake()
        return self._app_status(record)

    # ---- moves and drains (gaia_master/moves.py) ----

    @leader_only
    def MoveInstances(self, request, context):
        """Queue the moves and answer once a cycle has decided (or after wait_seconds): the
        moved allocations name their new nodes; the rest are still pending."""
        record = self._am_record(request.app_id, request.attempt)
        mark = self.m.book.mark()
        before = {i: a.migrations for i, a in self.m.table.app_allocations(record.app_id).items()}
        asked = moves.ask_moves(self.m, record, request)
        if asked and request.wait_seconds > 0:
            self.m.book.wait_cycle(mark, min(request.wait_seconds, 5.0))
        mine = self.m.table.app_allocations(record.app_id)
        moved = [mine[i] for i in request.instance_ids if i in mine and mine[i].migrations > before.get(i, 0)]
        pending = sum(1 for i in asked if i in mine and mine[i].migrations == before.get(i, 0))
        return master_pb2.Grants(allocations=moved, pending=pending,
                                 message=self.m.table.by_id(record.app_id).message if pending else "")

    @leader_only
    def FinishMoves(self, request, context):
        record = self._am_record(request.app_id, request.attempt)
        moves.finish_moves(self.m.table, record, list(request.instance_ids))
        self.m.scheduling.wake()             # the old places are free again
        return self._app_status(self.m.table.by_id(record.app_id))

    @leader_only
    def DrainNode(self, request, context):
        self.access.require_admin(self._caller(), "drain nodes")
        info = self.m.node_view.node(request.node_id)
        if info is None and not request.undo:
            raise Conflict("not_found", f"no live node named {request.node_id!r}")
        self.m.drains.mark(request.node_id, request.undo)
        self.m.watches.notifier.notify_all()   # AMs learn at once that their instances must move
        self.m.scheduling.wake()
        if info is None:
            return master_pb2.NodeStatus(info=types_pb2.NodeInfo(node_id=request.node_id))
        return self._node_status(info)

    # ---- instance control: per-instance control, scaling by id, autoscaling (gaia_master/instance_ops.py) ----

    @leader_only
    def ControlInstances(self, request, context):
        record = self._app(self._caller(), request.name, CONTROL_CAPABILITY.get(request.action, "kill"))
        containers = self.m.node_view.app_containers(record.app_id)
        record = instance_ops.control(self.m.table, request.name, request.action, request.instance_ids, containers)
        self.m.events.record(record.app_id, instance_ops.control_events(request.action, request.instance_ids))
        if request.action == master_pb2.INSTANCE_ACTION_DELETE:
            self._drop_instance_ask(record.app_id)   # the app's older, larger ask must not regrow it
            self.m.reconciler.wake()                 # the deleted instances' containers are stopped
        return self._app_status(record)

    @leader_only
    def AutoscaleApp(self, request, context):
        record = self._am_record(request.app_id, request.attempt)
        before = record.spec.instances
        record = instance_ops.autoscale(self.m.table, record, request.instances)
        self.m.events.record(record.app_id, [instance_ops.scale_event(before, record, "autoscale", request.reason)])
        return self._app_status(record)

    def _drop_instance_ask(self, app_id: str):
        ask = self.m.book.asks()[0].get(app_id)
        if ask is not None:
            self.m.book.drop_instances(app_id, ask)
        self.m.scheduling.wake()

    # ---- rollouts: versions and rolling updates (gaia_master/rollouts.py) ----

    @leader_only
    def UpdateApp(self, request, context):
        caller = self._caller()
        self._app(caller, request.name, "submit")
        spec = spec_mod.validate(request.spec)
        tenancy_rpc.require_privileged(self.access, caller, spec)
        spec_mod.check_host_paths(spec, self.m.cfg.host_path_allow)
        record = rollouts.update_app(self.m.table, request.name, spec, list(request.instance_ids))
        self.m.events.record(record.app_id, [rollouts.event(record, "user")])
        return self._app_status(record)

    @leader_only
    def RollbackApp(self, request, context):
        self._app(self._caller(), request.name, "submit")
        record = rollouts.rollback_app(self.m.table, request.name)
        self.m.events.record(record.app_id, [rollouts.event(record, "user")])
        return self._app_status(record)

    @leader_only
    def SetInstanceVersions(self, request, context):
        record = self._am_record(request.app_id, request.attempt)
        return self._app_status(rollouts.set_instance_versions(
            self.m.table, record, list(request.instance_ids), request.version))

    @leader_only
    def ReportRollout(self, request, context):
        record = self._am_record(request.app_id, request.attempt)
        message = _short_message(request.message)
        log.info("rollout of %s: %s %s", record.spec.name, request.state, message)
        before = record.rollout.state
        record = rollouts.report_rollout(self.m.table, record, request.state, message)
        if record.rollout.state != before:   # not a repeated report
            self.m.events.record(record.app_id, [rollouts.event(record, "am")])
        return self._app_status(record)

    # ---- events: the app's events, retry charges, the AM's watch (gaia_master/events.py, watch.py) ----

    @leader_only
    def RecordEvents(self, request, context):
        record = self._am_record(request.app_id, request.attempt)
        return self._app_status(self.m.events.append(record.app_id, list(request.events), request.attempt))

    @leader_only
    def ListEvents(self, request, context):
        record = self._app(self._caller(), request.name, "read")
        limit = request.limit or events_mod.DEFAULT_LIMIT
        if not 0 < limit <= events_mod.MAX_KEPT:
            raise spec_mod.SpecError("limit", f"must be between 1 and {events_mod.MAX_KEPT}")
        return master_pb2.ListEventsResponse(events=self.m.events.latest(record.app_id, limit, request.instance_id))

    @leader_only
    def WatchApp(self, request, context):
        if request.attempt:   # an AM's watch; attempt 0: an observer's (tests, tools)
            self._am_record(request.app_id, request.attempt)
        else:
            caller = self._caller()
            record = self.m.table.by_id(request.app_id)
            if record is None or not self.access.readable_app(caller, record):   # another's: as missing
                raise Conflict("not_found", f"no application with id {request.app_id!r}")
        return watch.serve(self.m, request, context, self._app_status)

    # ---- security: who am I, tenants, users, ACL policies (gaia_master/tenancy_rpc.py) ----

    @leader_only
    def WhoAmI(self, request, context):
        return tenancy_rpc.who_am_i(self._caller())

    @leader_only
    def CreateTenant(self, request, context):
        return self.tenancy_rpc.create_tenant(self._caller(), request)

    @leader_only
    def DeleteTenant(self, request, context):
        return self.tenancy_rpc.delete_tenant(self._caller(), request.name)

    @leader_only
    def ListTenants(self, request, context):
        return self.tenancy_rpc.list_tenants(self._caller())

    @leader_only
    def CreateUser(self, request, context):
        return self.tenancy_rpc.create_user(self._caller(), request)

    @leader_only
    def DeleteUser(self, request, context):
        return self.tenancy_rpc.delete_user(self._caller(), request.name)

    @leader_only
    def ListUsers(self, request, context):
        return self.tenancy_rpc.list_users(self._caller(), request.tenant)

    @leader_only
    def SetAcl(self, request, context):
        return self.tenancy_rpc.set_acl(self._caller(), request)

    @leader_only
    def DeleteAcl(self, request, context):
        return self.tenancy_rpc.delete_acl(self._caller(), request.id)

    @leader_only
    def ListAcl(self, request, context):
        return self.tenancy_rpc.list_acl(self._caller(), request.subject, request.pool)

    @leader_only
    def CreateJoinToken(self, request, context):
        caller = self._caller()
        self.access.require_admin(caller, "create join tokens")
        try:
            return self.m.join_tokens.create(request.ttl_seconds, request.node_id, created_by=str(caller))
        except enrol.Refused as e:
            context.abort(e.code, e.message)

    # ---- helpers ----

    def _target(self, record, request) -> int:
        if request.target:
            if not 0 < request.target <= spec_mod.MAX_INSTANCES:
                raise spec_mod.SpecError("target", f"must be between 1 and {spec_mod.MAX_INSTANCES}")
            return request.target
        if not 0 < request.count <= MAX_REQUEST_COUNT:
            raise spec_mod.SpecError("count", f"must be between 1 and {MAX_REQUEST_COUNT}")
        with self.m.table.lock:
            return self.m.table.index.app_held.get(record.app_id, 0) + request.count

    def _active(self, name: str):
        record = self.m.table.get(name)
        if record.state in TERMINAL:
            raise Conflict("terminal", f"application {name!r} is {state_name(record.state)}")
        return record

    def _am_record(self, app_id: str, attempt: int):
        self.access.require_am(self._caller(), app_id)   # before the lookup: nothing learnt of others
        record = self.m.table.by_id(app_id)
        if record is None:
            raise Conflict("not_found", f"no application with id {app_id!r}")
        if attempt != record.am_attempt:
            raise Conflict("stale", f"AM attempt {attempt} was superseded by attempt {record.am_attempt}")
        return record

    def _app_status(self, record) -> master_pb2.AppStatus:
        allocations = self.m.table.app_allocations(record.app_id)
        by_instance = {}     # grouped once: a thousand instances must not scan every container each
        for c in self.m.node_view.app_containers(record.app_id):
            by_instance.setdefault(c.instance_id, []).append(c)
        out = master_pb2.AppStatus(app=record, epoch=self.m.election.epoch)
        draining = self.m.drains.nodes
        for instance_id in sorted(allocations, key=instance_order):
            alloc = allocations[instance_id]
            view = master_pb2.InstanceView(allocation=alloc, node_lost=self.m.node_view.node(alloc.node_id) is None,
                                           node_draining=alloc.node_id in draining)
            containers = by_instance.get(instance_id, ())
            status = latest_container(containers, instance_id, alloc.node_id)
            if status is not None:
                view.status.CopyFrom(status)
            if alloc.from_node_id:
                old = latest_container(containers, instance_id, alloc.from_node_id)
                if old is not None:
                    view.from_status.CopyFrom(old)
            if instance_id == "am":
                out.am.CopyFrom(view)
            else:
                out.instances.append(view)
        return out

    def _node_status(self, info) -> master_pb2.NodeStatus:
        index = self.m.table.index
        with self.m.table.lock:
            vector = index.node_allocated.get(info.node_id)
            count = index.node_count.get(info.node_id, 0)
        allocated = types_pb2.Resources(**({d: int(v) for d, v in zip(DIMENSIONS, vector)} if vector is not None else {}))
        return master_pb2.NodeStatus(info=info, allocated=allocated, containers=count, alive=True,
                                     draining=info.node_id in self.m.drains.nodes)
