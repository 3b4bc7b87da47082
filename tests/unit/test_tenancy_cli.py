"""gaia tenant / user / acl / whoami and pool --tenant: what is sent, what is printed."""
import json

import grpc
import pytest
from click.testing import CliRunner

from gaia_common.client import GaiaError
from gaia_common.pb import master_pb2, types_pb2
from gaia_cli.main import cli
from tests.unit.cli_fakes import fake_master  # noqa: F401  (fixture)


def run(*args, code=0):
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == code, result.output
    return result


def test_tenants(fake_master):
    fake_master.responses["CreateTenant"] = types_pb2.Tenant(name="ads", description="Ads")
    assert run("tenant", "create", "ads", "--description", "Ads").stdout.strip() == "created tenant ads"
    assert fake_master.calls[-1] == ("CreateTenant", types_pb2.Tenant(name="ads", description="Ads"))
    fake_master.responses["ListTenants"] = master_pb2.ListTenantsResponse(tenants=[
        types_pb2.Tenant(name="ads", description="Ads"), types_pb2.Tenant(name="search")])
    lines = run("tenant", "list").stdout.splitlines()
    assert lines[0].split() == ["TENANT", "DESCRIPTION", "CREATED"] and lines[2].split() == ["search", "-", "-"]
    doc = json.loads(run("tenant", "list", "-o", "json").stdout)
    assert set(doc["tenants"][1]) == {"name", "description", "created_unix_ms"}
    fake_master.responses["DeleteTenant"] = types_pb2.Tenant(name="ads")
    assert run("tenant", "delete", "ads").stdout.strip() == "deleted tenant ads"


def test_user_create_prints_the_token_once(fake_master):
    fake_master.responses["CreateUser"] = master_pb2.CreateUserResponse(
        user=types_pb2.User(name="alice", tenant="ads"), token="gaia_secret")
    out = run("user", "create", "alice", "--tenant", "ads").stdout
    assert "created user alice in tenant ads" in out and "token: gaia_secret" in out and "only now" in out
    assert fake_master.calls[-1] == ("CreateUser", master_pb2.CreateUserRequest(name="alice", tenant="ads"))
    doc = json.loads(run("user", "create", "alice", "--tenant", "ads", "-o", "json").stdout)
    assert doc["token"] == "gaia_secret" and doc["user"]["name"] == "alice"
    run("user", "create", "root", "--admin")
    assert fake_master.calls[-1][1].admin


def test_user_create_needs_a_tenant_unless_admin(fake_master):
    assert "--tenant" in run("user", "create", "alice", code=2).output and not fake_master.calls


def test_user_list_and_delete(fake_master):
    fake_master.responses["ListUsers"] = master_pb2.ListUsersResponse(users=[
        types_pb2.User(name="admin", admin=True), types_pb2.User(name="alice", tenant="ads")])
    lines = run("user", "list", "--tenant", "ads").stdout.splitlines()
    assert lines[0].split() == ["USER", "TENANT", "ADMIN", "CREATED"]
    assert lines[1].split()[:3] == ["admin", "-", "yes"] and lines[2].split()[:3] == ["alice", "ads", "no"]
    assert fake_master.calls[-1] == ("ListUsers", master_pb2.ListUsersRequest(tenant="ads"))
    fake_master.responses["DeleteUser"] = types_pb2.User(name="alice")
    assert run("user", "delete", "alice").stdout.strip() == "deleted user alice"


def test_acl_set_list_delete(fake_master):
    fake_master.responses["SetAcl"] = types_pb2.AclPolicy(id="p1", subject="user:alice", pool="ads",
                                                          capabilities=["submit", "read"])
    out = run("acl", "set", "--subject", "user:alice", "--pool", "ads", "--cap", "submit, read").stdout
    assert out.strip() == "policy p1: user:alice may submit,read in ads"
    assert fake_master.calls[-1] == ("SetAcl", types_pb2.AclPolicy(subject="user:alice", pool="ads",
                                                                   capabilities=["submit", "read"]))
    fake_master.responses["ListAcl"] = master_pb2.ListAclResponse(policies=[fake_master.responses["SetAcl"]])
    lines = run("acl", "list", "--subject", "user:alice").stdout.splitlines()
    assert lines[0].split() == ["ID", "SUBJECT", "POOL", "CAPABILITIES"]
    assert lines[1].split() == ["p1", "user:alice", "ads", "submit,read"]
    fake_master.responses["DeleteAcl"] = fake_master.responses["SetAcl"]
    assert run("acl", "delete", "p1").stdout.strip() == "deleted policy p1"
    assert fake_master.calls[-1] == ("DeleteAcl", master_pb2.DeleteAclRequest(id="p1"))


@pytest.mark.parametrize("args, message", [
    (["--subject", "alice", "--pool", "a", "--cap", "read"], "--subject"),
    (["--subject", "group:x", "--pool", "a", "--cap", "read"], "--subject"),
    (["--subject", "user:a", "--pool", "a", "--cap", "read,root"], "--cap"),
    (["--subject", "user:a", "--pool", "a", "--cap", ","], "--cap"),
])
def test_acl_set_checks_before_sending(fake_master, args, message):
    assert message in run("acl", "set", *args, code=2).output and not fake_master.calls


def test_whoami_and_refusals(fake_master):
    fake_master.responses["WhoAmI"] = master_pb2.WhoAmIResponse(role="user", name="alice", tenant="ads")
    out = run("whoami").stdout
    assert "Role:" in out and "alice" in out and "Tenant:" in out and "ads" in out and "Admin:" in out
    fake_master.responses["CreateTenant"] = GaiaError(grpc.StatusCode.PERMISSION_DENIED,
                                                      "user alice may not create tenants: only cluster admins may")
    assert "only cluster admins" in run("tenant", "create", "x", code=1).output
    fake_master.responses["DeleteAcl"] = GaiaError(grpc.StatusCode.NOT_FOUND, "no ACL policy 'zz'")
    assert "no ACL policy" in run("acl", "delete", "zz", code=3).output


def test_pool_tenant_flag_and_column(fake_master, tmp_path):
    fake_master.responses["CreatePool"] = types_pb2.Pool(path="ads", weight=1, tenant="ads")
    run("pool", "create", "--path", "ads", "--tenant", "ads")
    assert fake_master.calls[-1][1].pool.tenant == "ads"
    path = tmp_path / "p.yaml"
    path.write_text("path: ads/x\ntenant: ads\n")
    run("pool", "create", str(path))
    assert fake_master.calls[-1][1].pool.tenant == "ads"
    assert "tenant" in run("pool", "create", "--path", "ads", "--tenant", "Bad!", code=2).output
    fake_master.responses["ListPools"] = master_pb2.ListPoolsResponse(
        pools=[types_pb2.Pool(path="ads", weight=1, tenant="ads")])
    lines = run("pool", "list").stdout.splitlines()
    assert lines[0].split()[-1] == "TENANT" and lines[1].split()[-1] == "ads"
