"""The RPC policy covers every method the protos declare, and says what the issue demands:
node certificates call nothing, AMs only their own app's calls, users no AM or node calls."""
import grpc
import pytest

from gaia_common.pb import master_pb2, node_pb2, types_pb2
from gaia_common.security import policy
from gaia_common.security.identity import Identity
from gaia_common.security.interceptor import Denied, check, filter_for_am

METHODS = [name for name, _ in policy.all_methods()]
AM = Identity.am("c", "web-1a2b", 2)


def allowed(role) -> set:
    return {m for m in METHODS if role in policy.rule_for(m).roles}


@pytest.mark.parametrize("method", METHODS)
def test_every_declared_method_has_a_rule(method):
    rule = policy.rule_for(method)
    assert rule is not None, f"{method} has no rule in gaia_common/security/policy.py"
    assert rule.public or rule.roles, f"{method}: nobody may call it"
    for path in (rule.app_field, rule.am_app, rule.am_attempt, rule.am_container, rule.am_app_name, *rule.am_forbid):
        if path:   # a field the rule names must exist in the request (a renamed field breaks here)
            descriptor = dict(policy.all_methods())[method].input_type
            for part in path.split("."):
                assert part in descriptor.fields_by_name, f"{method}: {path}"
                descriptor = descriptor.fields_by_name[part].message_type or descriptor


def test_unknown_methods_have_no_rule_and_are_denied():
    assert policy.rule_for("/gaia.v1.Master/Nope") is None
    with pytest.raises(Denied) as e:
        check(None, Identity("master", "m", "c"), None, "/gaia.v1.Master/Nope")
    assert e.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_node_and_dns_certificates_may_only_ask_who_they_are():
    assert allowed("node") == {"/gaia.v1.Master/WhoAmI"}
    assert allowed("dns") == {"/gaia.v1.Master/WhoAmI"}


def test_users_make_no_am_or_node_calls():
    am_calls = {m for m in METHODS if policy.rule_for(m).am_attempt}
    assert am_calls and not am_calls & allowed("user")
    assert not {m for m in METHODS if m.startswith("/gaia.v1.Node/")} & allowed("user")


def test_ams_call_only_their_own_app_calls():
    for method in allowed("am"):
        rule = policy.rule_for(method)
        bound = rule.am_app or rule.am_app_name or rule.am_container or rule.am_filter
        assert bound or method.endswith("WhoAmI"), method


def test_enrolment_needs_no_certificate():
    assert policy.rule_for("/gaia.v1.Enrol/JoinNode").public


def am_check(method, request):
    check(policy.rule_for(method), AM, request, method, app_id_of_name={"web": "web-1a2b"}.get)


def test_am_bound_to_its_app_and_attempt():
    am_check("/gaia.v1.Master/RegisterAM", master_pb2.RegisterAMRequest(app_id="web-1a2b", attempt=2))
    for request in (master_pb2.RegisterAMRequest(app_id="db-9f9f", attempt=2),
                    master_pb2.RegisterAMRequest(app_id="web-1a2b", attempt=1),
                    master_pb2.RegisterAMRequest(app_id="web-1a2b", attempt=3)):
        with pytest.raises(Denied, match="its own app") as e:
            am_check("/gaia.v1.Master/RegisterAM", request)
        assert e.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_am_reads_only_its_own_app_by_name():
    am_check("/gaia.v1.Master/GetApp", master_pb2.GetAppRequest(name="web"))
    with pytest.raises(Denied):
        am_check("/gaia.v1.Master/GetApp", master_pb2.GetAppRequest(name="db"))


def start(app_id="web-1a2b", container="web-1a2b.0.1", attempt=2, **spec):
    return node_pb2.StartContainerRequest(am_attempt=attempt, spec=types_pb2.ContainerSpec(
        app_id=app_id, container_id=container, **spec))


def test_am_node_commands_bound_to_its_containers():
    am_check("/gaia.v1.Node/StartContainer", start())
    bad = [start(app_id="db-9f9f", container="db-9f9f.0.1"), start(container="db-9f9f.0.1"),
           start(attempt=1), start(is_am=True), start(tls=types_pb2.TlsBundle(cert_pem=b"x"))]
    for request in bad:
        with pytest.raises(Denied):
            am_check("/gaia.v1.Node/StartContainer", request)
    am_check("/gaia.v1.Node/StopContainer", node_pb2.StopContainerRequest(
        app_id="web-1a2b", am_attempt=2, container_id="web-1a2b.3.1"))
    with pytest.raises(Denied, match="container_id"):
        am_check("/gaia.v1.Node/StopContainer", node_pb2.StopContainerRequest(
            app_id="web-1a2b", am_attempt=2, container_id="web-1a2bx.3.1"))
    with pytest.raises(Denied):
        am_check("/gaia.v1.Node/Logs", node_pb2.LogsRequest(container_id="db-9f9f.0.1"))


def test_node_status_for_an_am_shows_only_its_app():
    report = node_pb2.NodeReport(
        containers=[types_pb2.ContainerStatus(container_id="web-1a2b.0.1", app_id="web-1a2b"),
                    types_pb2.ContainerStatus(container_id="db-9f9f.0.1", app_id="db-9f9f")],
        events=[types_pb2.NodeEvent(container_id="db-9f9f.0.1", kind="reclaim.kill"),
                types_pb2.NodeEvent(container_id="web-1a2b.0.1", kind="disk.evict")])
    filter_for_am(report, AM)
    assert [c.app_id for c in report.containers] == ["web-1a2b"]
    assert [e.kind for e in report.events] == ["disk.evict"]
