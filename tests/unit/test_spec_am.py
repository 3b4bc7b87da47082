"""Spec fields of ApplicationMaster behaviour: health_check, autoscale, update, am_attempts, on_partition."""
import math

import pytest

from gaia_common import spec as spec_mod
from gaia_common.pb import types_pb2

BASE = "name: web\ncommand: ['x']\ninstances: 3\nports: [http]\n"


def load(extra: str) -> types_pb2.AppSpec:
    return spec_mod.load_yaml(BASE + extra)


def test_full_sections_parse_with_units_and_defaults():
    spec = load("health_check: {kind: http, port: http, interval: 500ms, initial_delay: 1m}\n"
                "autoscale: {min: 2, max: 5, target: 70}\n"
                "update: {max_unavailable: 2, health_gate: 1.5s, rollback: false}\n"
                "am_attempts: 4\non_partition: keep\n")
    hc = spec.health_check
    assert (hc.kind, hc.port, hc.path, hc.interval_seconds, hc.timeout_seconds, hc.failure_threshold,
            hc.initial_delay_seconds) == ("http", "http", "/", 0.5, 1.0, 3, 60.0)
    a = spec.autoscale
    assert (a.min, a.max, a.metric, a.target, a.cooldown_seconds) == (2, 5, "cpu", 70.0, 30.0)
    u = spec.update
    assert (u.max_unavailable, u.health_gate_seconds, u.gate_timeout_seconds, u.no_rollback) == (2, 1.5, 60.0, True)
    assert spec.am_attempts == 4 and spec.on_partition == "keep"


def test_absent_sections_stay_unset():
    spec = load("")
    assert not spec.HasField("health_check") and not spec.HasField("autoscale") and not spec.HasField("update")
    assert spec.am_attempts == 0 and spec.on_partition == ""


def test_exec_check_takes_a_command_string():
    spec = load("health_check: {kind: exec, command: 'test -f /tmp/ok', failure_threshold: 1}\n")
    assert list(spec.health_check.command) == ["test", "-f", "/tmp/ok"]
    assert spec.health_check.path == ""


@pytest.mark.parametrize("extra, field", [
    ("health_check: 3\n", "health_check"),
    ("health_check: {port: http}\n", "health_check.kind"),
    ("health_check: {kind: grpc, port: http}\n", "health_check.kind"),
    ("health_check: {kind: tcp}\n", "health_check.port"),
    ("health_check: {kind: tcp, port: admin}\n", "health_check.port"),
    ("health_check: {kind: exec}\n", "health_check.command"),
    ("health_check: {kind: exec, command: [ok], port: http}\n", "health_check.port"),
    ("health_check: {kind: tcp, port: http, command: [x]}\n", "health_check.command"),
    ("health_check: {kind: tcp, port: http, path: /x}\n", "health_check.path"),
    ("health_check: {kind: http, port: http, path: x}\n", "health_check.path"),
    ("health_check: {kind: http, port: http, interval: -1}\n", "health_check.interval"),
    ("health_check: {kind: http, port: http, interval: soon}\n", "health_check.interval"),
    ("health_check: {kind: http, port: http, timeout: 2h}\n", "health_check.timeout"),
    ("health_check: {kind: http, port: http, failure_threshold: 0}\n", "health_check.failure_threshold"),
    ("health_check: {kind: http, port: http, initial_delay: true}\n", "health_check.initial_delay"),
    ("health_check: {kind: http, port: http, retries: 3}\n", "health_check.retries"),
    ("autoscale: {min: 0, max: 4}\n", "autoscale.min"),
    ("autoscale: {min: 4, max: 6}\n", "autoscale.min"),        # instances 3 below min
    ("autoscale: {min: 1, max: 2}\n", "autoscale.max"),        # instances 3 above max
    ("autoscale: {min: 3, max: 2}\n", "autoscale.max"),
    ("autoscale: {min: 1, max: 5, metric: qps}\n", "autoscale.metric"),
    ("autoscale: {min: 1, max: 5, target: 0}\n", "autoscale.target"),
    ("autoscale: {min: 1, max: 5, target: '50%'}\n", "autoscale.target"),
    ("autoscale: {min: 1, max: 5, cooldown: -3}\n", "autoscale.cooldown"),
    ("autoscale: {min: 1, max: 5, step: 2}\n", "autoscale.step"),
    ("autoscale: {min: 1, max: 5}\ngang: 2\n", "autoscale.min"),
    ("autoscale: {min: 1, max: 5}\nkind: batch\n", "autoscale.kind"),
    ("update: {max_unavailable: 0}\n", "update.max_unavailable"),
    ("update: {max_unavailable: two}\n", "update.max_unavailable"),
    ("update: {health_gate: 5, gate_timeout: 5}\n", "update.gate_timeout"),
    ("update: {health_gate: 2h}\n", "update.health_gate"),
    ("update: {rollback: 'yes'}\n", "update.rollback"),
    ("update: {surge: 1}\n", "update.surge"),
    ("update: [1]\n", "update"),
    ("am_attempts: -1\n", "am_attempts"),
    ("am_attempts: 1000\n", "am_attempts"),
    ("on_partition: drop\n", "on_partition"),
])
def test_bad_values_name_the_dotted_field(extra, field):
    with pytest.raises(spec_mod.SpecError) as e:
        load(extra)
    assert e.value.field == field, str(e.value)


def raw(**fields) -> types_pb2.AppSpec:
    spec = load("")
    for name, value in fields.items():
        getattr(spec, name).CopyFrom(value) if hasattr(value, "DESCRIPTOR") else setattr(spec, name, value)
    return spec


@pytest.mark.parametrize("fields, field", [
    ({"health_check": types_pb2.HealthCheck(kind="tcp", port="nope")}, "health_check.port"),
    ({"health_check": types_pb2.HealthCheck()}, "health_check.kind"),
    ({"health_check": types_pb2.HealthCheck(kind="exec", command=["x"], interval_seconds=math.nan)},
     "health_check.interval"),
    ({"autoscale": types_pb2.Autoscale(min=1, max=5, target=-1)}, "autoscale.target"),
    ({"update": types_pb2.UpdatePolicy(max_unavailable=-1)}, "update.max_unavailable"),
    ({"update": types_pb2.UpdatePolicy(gate_timeout_seconds=math.inf)}, "update.gate_timeout"),
    ({"on_partition": "sometimes"}, "on_partition"),
    ({"am_attempts": 101}, "am_attempts"),
])
def test_validate_checks_raw_specs_too(fields, field):
    """The master re-validates what arrives over gRPC, where no YAML parser ran."""
    with pytest.raises(spec_mod.SpecError) as e:
        spec_mod.validate(raw(**fields))
    assert e.value.field == field, str(e.value)


def test_validate_takes_zero_as_the_default():
    spec = raw(update=types_pb2.UpdatePolicy(), health_check=types_pb2.HealthCheck(kind="tcp", port="http"))
    assert spec_mod.validate(spec) is spec
