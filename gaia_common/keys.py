"""The etcd key layout: everything of a cluster lives under /gaia/<cluster>/.

One place names every key so that several clusters can share one etcd and no daemon
invents paths of its own. Who writes each prefix (one writer per key):
  masters/election/<lease>   each master replica (its own key, bound to its lease)
  masters/leader             the leader (fenced)
  apps/<name>                the leader (fenced)
  idempotency/<key>          the leader (fenced), same transaction as the app
  allocations/<app_id>/<instance_id>   the leader (fenced)
  events/<app_id>/<seq:020d>           the leader (fenced, with the record's next_event)
  events/<app_id>/charged/<instance_id>  the leader: the last container charged to retry_times
  pools/<path>               the leader (fenced); path is a/b/c, so a pool's children share its prefix
  tenants/<name>, users/<name>, acl/<id>   the leader (fenced): tenancy (users hold token hashes only)
  join-tokens/<id>           the leader makes them (fenced); any master marks one used (a transaction on
                             the token's own revision, so two joins cannot both take it)
  secrets/etcd-<kind>        `gaia etcd setup` (root): the node and client etcd credentials masters hand
                             to enrolling nodes and to AMs (only masters and root may read secrets/)
  nodes/<node_id>            that node (bound to its lease)
  containers/<app_id>/<container_id>   the node running it (bound to its lease)
  services/<app_name>/<instance_id>    the node running it (bound to its lease)
"""
import re

_CLUSTER_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def valid_cluster_name(name: str) -> bool:
    return bool(_CLUSTER_NAME.fullmatch(name or ""))


class Keys:
    """Keys of one cluster."""

    def __init__(self, cluster: str):
        if not valid_cluster_name(cluster):
            raise ValueError(f"cluster name {cluster!r}: use lowercase letters, digits and '-'")
        self.cluster = cluster
        self.root = f"/gaia/{cluster}/"

    # masters
    @property
    def masters(self) -> str:
        return self.root + "masters/"

    @property
    def election(self) -> str:
        return self.root + "masters/election/"

    def election_key(self, lease_id: int) -> str:
        return f"{self.election}{lease_id:016x}"

    @property
    def leader(self) -> str:
        return self.root + "masters/leader"

    # applications
    @property
    def apps(self) -> str:
        return self.root + "apps/"

    def app(self, name: str) -> str:
        return self.apps + name

    def idempotency(self, key: str) -> str:
        return self.root + "idempotency/" + key

    @property
    def allocations(self) -> str:
        return self.root + "allocations/"

    def app_allocations(self, app_id: str) -> str:
        return f"{self.allocations}{app_id}/"

    def allocation(self, app_id: str, instance_id: str) -> str:
        return f"{self.allocations}{app_id}/{instance_id}"

    # events of an app: seqs zero-padded so key order is seq order; the charge markers sort
    # after every seq ('c' > '9'), so a range of seqs never includes them
    def app_events(self, app_id: str) -> str:
        return f"{self.root}events/{app_id}/"

    def event(self, app_id: str, seq: int) -> str:
        return f"{self.app_events(app_id)}{seq:020d}"

    def charged(self, app_id: str, instance_id: str) -> str:
        return f"{self.app_events(app_id)}charged/{instance_id}"

    # resource pools
    @property
    def pools(self) -> str:
        return self.root + "pools/"

    def pool(self, path: str) -> str:
        return self.pools + path

    # drained nodes: written by the leader, one key per node (the node's own key is the node's)
    @property
    def drains(self) -> str:
        return self.root + "drains/"

    def drain(self, node_id: str) -> str:
        return self.drains + node_id

    # tenancy: tenants, users and ACL policies, written by the leader (fenced)
    @property
    def tenants(self) -> str:
        return self.root + "tenants/"

    def tenant(self, name: str) -> str:
        return self.tenants + name

    @property
    def users(self) -> str:
        return self.root + "users/"

    def user(self, name: str) -> str:
        return self.users + name

    @property
    def acls(self) -> str:
        return self.root + "acl/"

    def acl(self, policy_id: str) -> str:
        return self.acls + policy_id

    # enrolment: one-time bootstrap tokens (stored hashed) and the node etcd credential
    @property
    def join_tokens(self) -> str:
        return self.root + "join-tokens/"

    def join_token(self, token_id: str) -> str:
        return self.join_tokens + token_id

    def etcd_credential(self, kind: str) -> str:
        return f"{self.root}secrets/etcd-{kind}"

    # nodes
    @property
    def nodes(self) -> str:
        return self.root + "nodes/"

    def node(self, node_id: str) -> str:
        return self.nodes + node_id

    @property
    def containers(self) -> str:
        return self.root + "containers/"

    def container(self, app_id: str, container_id: str) -> str:
        return f"{self.containers}{app_id}/{container_id}"

    @property
    def services(self) -> str:
        return self.root + "services/"

    def app_services(self, app_name: str) -> str:
        return f"{self.services}{app_name}/"

    def service(self, app_name: str, instance_id: str) -> str:
        return f"{self.services}{app_name}/{instance_id}"
