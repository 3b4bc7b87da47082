"""The resource pool tree: owned by the leader, kept in memory, fenced to etcd.

Pools are stored one key per pool under pools/<path>; the tree is implied by the paths
(`ads/ranking` is the parent of `ads/ranking/online`). The root is implicit and unbounded,
and so is the pool `default`, until an operator stores settings for it.

Like the application table, memory is the truth while we lead; the table is (re)loaded from
etcd for each epoch before it answers (`ensure_loaded`), and a change reaches memory only
once its fenced write has committed.

The tree's rules (`check_in_tree`) are pure functions of the pool and its relatives, so
they are tested without etcd:
  - the parent must exist (top-level pools hang off the implicit root);
  - the children's minimums, summed, stay within the parent's minimum (per dimension);
  - a child's maximum stays within its parent's maximum (0 = no ceiling of its own);
  - a child's GPU models are among its parent's, and its GPU count within the parent's.
Unset ceilings inherit the parent's; the scheduler applies every ancestor's.
"""
import threading
import time

from gaia_common.keys import Keys
from gaia_common.pb import types_pb2
from gaia_common.spec import RESOURCE_FIELDS, SpecError, validate_pool
from gaia_master.app_table import TERMINAL, Conflict
from gaia_master.tenancy import check_pool_tenant

DEFAULT = "default"


def default_pool() -> types_pb2.Pool:
    return types_pb2.Pool(path=DEFAULT, weight=1.0, min=types_pb2.Resources(), max=types_pb2.Resources())


def parent_of(path: str) -> str:
    """'a/b/c' -> 'a/b'; a top-level pool's parent is the root, ''."""
    return path.rpartition("/")[0]


def children_of(path: str, pools: dict) -> list:
    prefix = path + "/"
    return [p for p in pools.values() if p.path.startswith(prefix) and "/" not in p.path[len(prefix):]]


def check_in_tree(pool: types_pb2.Pool, pools: dict):
    """Raise SpecError (naming the field) if `pool` may not take its place among `pools`
    (path -> Pool, which may hold an older version of `pool` itself).

    An unset ceiling (max 0, no GPU models, max_gpus 0) inherits the parent's: only values
    that are set are compared."""
    parent_path = parent_of(pool.path)
    parent = pools.get(parent_path) if parent_path else None
    if parent_path and parent is None:
        raise SpecError("path", f"parent pool {parent_path!r} does not exist; create it first")
    others = {p.path: p for p in pools.values() if p.path != pool.path}
    children = children_of(pool.path, others)
    siblings = children_of(parent.path, others) if parent is not None else []
    for key, (attr, _, _) in RESOURCE_FIELDS.items():
        own_min, own_max = getattr(pool.min, attr), getattr(pool.max, attr)
        if parent is not None:
            ceiling = getattr(parent.max, attr)
            if ceiling and own_max > ceiling:
                raise SpecError(f"max.{key}", f"{own_max} exceeds the parent {parent.path!r}'s max.{key} {ceiling}")
            total = own_min + sum(getattr(s.min, attr) for s in siblings)
            if total > getattr(parent.min, attr):
                raise SpecError(f"min.{key}", f"with its siblings' the minimum is {total}, above the "
                                              f"parent {parent.path!r}'s min.{key} {getattr(parent.min, attr)}")
        total = sum(getattr(c.min, attr) for c in children)
        if total > own_min:
            raise SpecError(f"min.{key}", f"{own_min} is below its children's minimums, {total} together")
        over = [c.path for c in children if own_max and getattr(c.max, attr) > own_max]
        if over:
            raise SpecError(f"max.{key}", f"{own_max} is below the max.{key} of child {over[0]!r}")
    if parent is not None:
        outside = [m for m in pool.gpu_models if parent.gpu_models and m not in parent.gpu_models]
        if outside:
            raise SpecError("gpu_models", f"{outside[0]!r} is not among the parent {parent.path!r}'s "
                                          f"models ({', '.join(parent.gpu_models)})")
        if parent.max_gpus and pool.max_gpus > parent.max_gpus:
            raise SpecError("max_gpus", f"{pool.max_gpus} exceeds the parent {parent.path!r}'s max_gpus {parent.max_gpus}")
    for child in children:
        if pool.gpu_models and any(m not in pool.gpu_models for m in child.gpu_models):
            raise SpecError("gpu_models", f"child {child.path!r} uses models outside this list")
        if pool.max_gpus and child.max_gpus > pool.max_gpus:
            raise SpecError("max_gpus", f"{pool.max_gpus} is below child {child.path!r}'s max_gpus {child.max_gpus}")


class PoolTable:
    def __init__(self, keys: Keys, store, tenant_exists=None):
        self.keys = keys
        self.store = store
        self.tenant_exists = tenant_exists   # name -> bool (gaia_master/tenancy.py); None: no tenancy
        self.lock = threading.RLock()
        self.pools = {}            # path -> Pool (stored ones; `default` only once configured)
        self._loaded_epoch = 0

    # ---- loading ----

    def load(self, etcd, epoch: int):
        pools = {}
        for value, _ in etcd.get_prefix(self.keys.pools):
            pool = types_pb2.Pool()
            pool.ParseFromString(value)
            pools[pool.path] = pool
        with self.lock:
            self.pools, self._loaded_epoch = pools, epoch

    def ensure_loaded(self, etcd, epoch: int):
        """Load once per leadership epoch: a new leader reads the tree before it answers."""
        if self._loaded_epoch != epoch:
            with self.lock:
                if self._loaded_epoch != epoch:
                    self.load(etcd, epoch)

    # ---- reads ----

    def exists(self, path: str) -> bool:
        with self.lock:
            return path == DEFAULT or path in self.pools

    def list(self) -> list:
        with self.lock:
            pools = dict(self.pools)
        pools.setdefault(DEFAULT, default_pool())
        return [pools[p] for p in sorted(pools)]

    def get(self, path: str) -> types_pb2.Pool:
        with self.lock:
            pool = self.pools.get(path)
        if pool is None and path == DEFAULT:
            return default_pool()
        if pool is None:
            raise Conflict("not_found", f"no pool {path!r}")
        return pool

    # ---- changes ----

    def create(self, pool: types_pb2.Pool) -> types_pb2.Pool:
        validate_pool(pool)
        with self.lock:
            if self.exists(pool.path):
                raise Conflict("exists", f"pool {pool.path!r} already exists" +
                               (" (it is implicit; use update to configure it)" if pool.path == DEFAULT else ""))
            return self._write(pool)

    def update(self, pool: types_pb2.Pool) -> types_pb2.Pool:
        validate_pool(pool)
        with self.lock:
            if not self.exists(pool.path):
                raise Conflict("not_found", f"no pool {pool.path!r}")
            return self._write(pool)

    def delete(self, path: str, apps: list, also=((), None)) -> types_pb2.Pool:
        """Delete `path`; refused while it has children or active apps (`apps`: AppRecords).

        Refusals are SpecErrors (INVALID_ARGUMENT naming `path`), not FAILED_PRECONDITION:
        clients read that code as "not the leader" and would retry it. `also`: (ops committed
        in the same transaction, a callback once they have: the pool's ACL policies)."""
        with self.lock:
            if path == DEFAULT:
                raise SpecError("path", "the default pool cannot be deleted")
            pool = self.get(path)
            children = children_of(path, self.pools)
            if children:
                raise SpecError("path", f"pool {path!r} has child pools ({', '.join(sorted(c.path for c in children))}); "
                                           "delete them first")
            active = sorted(r.spec.name for r in apps if r.spec.pool == path and r.state not in TERMINAL)
            if active:
                raise SpecError("path", f"pool {path!r} has {len(active)} active app(s) "
                                           f"({', '.join(active[:5])}); kill them first")
            ops, committed = also
            self.store.commit([self.store.delete(self.keys.pool(path)), *ops])
            del self.pools[path]
            if committed is not None:
                committed()
            return pool

    def _write(self, pool: types_pb2.Pool) -> types_pb2.Pool:
        check_in_tree(pool, self.pools)
        if self.tenant_exists is not None:
            check_pool_tenant(pool, self.pools, self.tenant_exists)
        new = types_pb2.Pool()
        new.CopyFrom(pool)
        new.min.SetInParent()   # present in JSON even when nothing is set
        new.max.SetInParent()
        new.epoch = self.store.election.epoch
        new.updated_unix_ms = int(time.time() * 1000)
        self.store.commit([self.store.put(self.keys.pool(new.path), new)])
        self.pools[new.path] = new
        return new
