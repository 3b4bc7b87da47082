"""The app spec's placement fields (gang, constraints, gpu_model, max_per_node, spread_by):
parsed, defaulted, stored as given, and every bad value a SpecError naming the field."""
import textwrap

import pytest

from gaia_common import spec
from gaia_common.pb import types_pb2

BASE = "name: web\ncommand: sleep 60\ninstances: 4\n"


def load(extra: str) -> types_pb2.AppSpec:
    return spec.load_yaml(BASE + textwrap.dedent(extra))


def field_of(extra: str) -> str:
    with pytest.raises(spec.SpecError) as info:
        load(extra)
    return info.value.field


def test_defaults_are_off():
    s = load("")
    assert s.gang == 0 and s.max_per_node == 0 and not s.constraints and not s.gpu_model and not s.spread_by


def test_all_fields():
    s = load("""\
        gang: 4
        max_per_node: 2
        spread_by: rack
        gpu_model: Tesla V100-SXM2
        constraints:
          - {label: zone, op: "=", value: a}
          - {label: kernel, op: "!=", value: 4.19}
          - {label: disk, op: in, values: [ssd, nvme]}
          - {label: example.com/gpu, op: exists}
          - {label: arch, value: amd64}
          - {label: pool, op: not_in, values: [spot]}
          - {label: draining, op: not_exists}
        """)
    assert s.gang == 4 and s.max_per_node == 2 and s.spread_by == "rack" and s.gpu_model == "Tesla V100-SXM2"
    got = [(c.label, c.op, list(c.values)) for c in s.constraints]
    assert got == [("zone", "=", ["a"]), ("kernel", "!=", ["4.19"]), ("disk", "in", ["ssd", "nvme"]),
                   ("example.com/gpu", "exists", []), ("arch", "=", ["amd64"]),
                   ("pool", "not_in", ["spot"]), ("draining", "not_exists", [])]


def test_round_trips_through_the_wire():
    s = load("gang: 2\nconstraints: [{label: zone, op: in, values: [a, b]}]\n")
    again = types_pb2.AppSpec.FromString(s.SerializeToString())
    assert spec.validate(again) == s


@pytest.mark.parametrize("extra, field", [
    ("gang: 5", "gang"),                       # more than instances
    ("gang: -1", "gang"),
    ("gang: two", "gang"),
    ("max_per_node: -1", "max_per_node"),
    ("spread_by: 'not a label!'", "spread_by"),
    ("gpu_model: 'A100/80'", "gpu_model"),
    ("constraints: zone=a", "constraints"),
    ("constraints: [zone]", "constraints[0]"),
    ("constraints: [{op: exists}]", "constraints[0].label"),
    ("constraints: [{label: 'bad label', op: exists}]", "constraints[0].label"),
    ("constraints: [{label: zone, op: '>', value: a}]", "constraints[0].op"),
    ("constraints: [{label: zone, op: '='}]", "constraints[0].value"),
    ("constraints: [{label: zone, op: '!=', values: [a, b]}]", "constraints[0].value"),
    ("constraints: [{label: zone, op: in, values: []}]", "constraints[0].values"),
    ("constraints: [{label: zone, op: exists, value: a}]", "constraints[0].values"),
    ("constraints: [{label: zone, op: in, values: [a], value: b}]", "constraints[0]"),
    ("constraints: [{label: zone, op: in, values: [{a: b}]}]", "constraints[0].values"),
    ("constraints: [{label: zone, op: '=', value: a, weight: 3}]", "constraints[0].weight"),
])
def test_bad_values_name_the_field(extra, field):
    assert field_of(extra) == field


def test_too_many_constraints():
    many = "constraints: [" + ", ".join(f"{{label: l{i}, op: exists}}" for i in range(33)) + "]\n"
    assert field_of(many) == "constraints"


def test_raw_grpc_spec_is_checked_too():
    s = load("")
    s.gang = 9
    with pytest.raises(spec.SpecError) as info:
        spec.validate(s)
    assert info.value.field == "gang"
    s.gang = 0
    s.constraints.add(label="zone", op="in")
    with pytest.raises(spec.SpecError) as info:
        spec.validate(s)
    assert info.value.field == "constraints[0].values"
