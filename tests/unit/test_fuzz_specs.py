"""The validators under hypothesis: every drawn request is accepted or refused with a SpecError
(INVALID_ARGUMENT), never anything else. GAIA_FUZZ_EXAMPLES sets the examples per validator.
(The master's handlers over gRPC: tests/integration/test_hostile_input.py.)"""
from gaia_common import fuzz_specs, spec as spec_mod


def test_validators_raise_only_spec_errors():
    tally = fuzz_specs.fuzz_validators(fuzz_specs.examples_from_env())
    assert tally.executions >= 3 * fuzz_specs.examples_from_env()
    assert tally.failures == 0, "\n".join(tally.failing)


def test_a_failure_is_counted_not_hidden(monkeypatch):
    """The tally sees a validator that raises anything but SpecError."""
    def broken(spec):
        raise KeyError("bug")
    monkeypatch.setattr(spec_mod, "validate_pool", broken)
    tally = fuzz_specs.fuzz_validators(5)
    assert tally.failures >= 5 and "validate_pool: KeyError" in tally.failing[0]


def test_deep_yaml_is_a_spec_error_not_a_crash():
    for depth in (1_000, 100_000):
        try:
            spec_mod.load_yaml(fuzz_specs.deeply_nested(depth))
        except spec_mod.SpecError as e:
            assert e.field in ("yaml", "command")
        else:
            raise AssertionError("a nested command was accepted")
