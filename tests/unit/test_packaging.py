"""Packaging facts that drift silently: README's commands, CI's command, dependency floors."""
import configparser
import pathlib
import re

from gaia_common import protogen

ROOT = pathlib.Path(__file__).resolve().parents[2]


def readme_commands() -> list:
    """The first two fenced code blocks of README.md, one line each."""
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks[:2]]


def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def requirement_floor(requirements: str, name: str) -> tuple:
    m = re.search(rf"^{re.escape(name)}\s*(?:==|>=)\s*([\d.]+)", requirements, re.M)
    assert m, f"{name} has no version floor in setup.cfg"
    return tuple(int(x) for x in m.group(1).split("."))


def test_readme_starts_with_two_one_line_commands():
    first, second = readme_commands()
    assert "\n" not in first and "\n" not in second
    assert "gaia dev" in first and "--example examples/hello.yaml" in first
    assert "pytest" in second


def test_ci_runs_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    m = re.search(r'^TEST_COMMAND="(.*)"$', ci, re.M)
    assert m, ".ci/run defines TEST_COMMAND"
    assert m.group(1) == readme_commands()[1]


def test_grpcio_floor_covers_generated_code():
    """*_grpc.py refuses a grpcio older than the grpcio-tools that generated it."""
    text = (protogen.OUT_DIR / "master_pb2_grpc.py").read_text()
    generated = tuple(int(x) for x in re.search(r"GRPC_GENERATED_VERSION = '([\d.]+)'", text).group(1).split("."))
    requires = setup_cfg()["options"]["install_requires"]
    assert requirement_floor(requires, "grpcio") >= generated
    # protogen's output depends on the grpcio-tools version: the extras pin the one that made it
    for extra in ("test", "dev"):
        assert requirement_floor(setup_cfg()["options.extras_require"][extra], "grpcio-tools") == generated


def test_protobuf_floor_covers_generated_code():
    """*_pb2.py refuses a protobuf runtime older than its gencode version."""
    text = (protogen.OUT_DIR / "types_pb2.py").read_text()
    m = re.search(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),", text)
    gencode = tuple(int(x) for x in m.groups())
    requires = setup_cfg()["options"]["install_requires"]
    assert requirement_floor(requires, "protobuf") >= gencode
    assert f"<{gencode[0] + 1}" in re.search(r"^protobuf.*$", requires, re.M).group(0)


def test_console_script_target_exists():
    scripts = setup_cfg()["options.entry_points"]["console_scripts"]
    target = re.search(r"gaia\s*=\s*([\w.]+):(\w+)", scripts)
    assert target.groups() == ("gaia_cli.main", "cli")
    assert re.search(r"^def cli\(", (ROOT / "gaia_cli" / "main.py").read_text(), re.M)
