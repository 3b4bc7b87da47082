"""Regenerate gaia_common/pb from proto/*.proto: `python -m gaia_common.protogen`.

grpc_tools writes absolute imports (`import types_pb2`); we rewrite them to package-relative
ones so the generated modules live inside gaia_common.pb. A test regenerates into a temporary
folder and fails when the checked-in code differs (stale after a .proto edit).
"""
import pathlib
import re
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "gaia_common" / "pb"
_ABS_IMPORT = re.compile(r"^import (\w+_pb2) as ", re.M)


def generate(out_dir: pathlib.Path) -> list:
    from grpc_tools import protoc
    import grpc_tools

    out_dir.mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.name) for p in PROTO_DIR.glob("*.proto"))
    include = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{PROTO_DIR}", f"-I{include}", f"--python_out={out_dir}",
            f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *protos]
    if protoc.main(args) != 0:
        raise RuntimeError("protoc failed on " + " ".join(protos))
    written = []
    for path in sorted(out_dir.glob("*_pb2*.py*")):
        text = _ABS_IMPORT.sub(r"from . import \1 as ", path.read_text())
        path.write_text(text)
        written.append(path)
    (out_dir / "__init__.py").write_text('"""Generated from proto/ by gaia_common.protogen; do not edit."""\n')
    return written


def stale_files() -> list:
    """Names of generated files that differ from a fresh generation (empty when fresh)."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh_dir = pathlib.Path(tmp)
        generate(fresh_dir)
        fresh = {p.name: p.read_text() for p in fresh_dir.iterdir() if p.is_file()}
    current = {p.name: p.read_text() for p in OUT_DIR.iterdir() if p.is_file()}
    return sorted(n for n in set(fresh) | set(current) if fresh.get(n) != current.get(n))


if __name__ == "__main__":
    for p in generate(OUT_DIR):
        print(p.relative_to(ROOT))
    sys.exit(0)
