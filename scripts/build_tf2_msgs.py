#!/usr/bin/env python3
"""Build tf2_msgs/TFMessage (the type of /tf) where no ROS 2 install provides it, as with the
PyPI wheels of ROS 2 Jazzy: its interface definition goes through the rosidl generators that
the wheels install (C, its three C type supports, Python), and the result is compiled with the
C headers and libraries the wheels put into the venv (gcc and g++ needed).

    python scripts/build_tf2_msgs.py --venv .venv     # into the venv (what `make setup` does)
    python scripts/build_tf2_msgs.py --prefix DIR     # DIR/python/tf2_msgs and DIR/lib

A process finds the type support libraries through LD_LIBRARY_PATH, which the wheels' start-up
hook sets to the venv's lib/ (so --venv needs nothing more); with --prefix, put DIR/lib on
LD_LIBRARY_PATH and DIR/python on PYTHONPATH before the process starts.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

IDL = """#include "geometry_msgs/msg/TransformStamped.idl"

module tf2_msgs {
  module msg {
    struct TFMessage {
      sequence<geometry_msgs::msg::TransformStamped> transforms;
    };
  };
};
"""
TYPESUPPORTS = ("c", "fastrtps_c", "introspection_c")


def generate(venv: Path, work: Path) -> Path:
    """Run the rosidl generators (their Python API: the CLI refuses the wheels' duplicate entry
    points); returns the folder of the generated sources."""
    from rosidl_generator_c.cli import GenerateC
    from rosidl_generator_py.cli import GeneratePython
    from rosidl_typesupport_c.cli import GenerateCTypesupport
    from rosidl_typesupport_fastrtps_c.cli import GenerateFastRTPSCTypesupport
    from rosidl_typesupport_introspection_c.cli import GenerateIntrospectionCTypesupport

    (work / "src/msg").mkdir(parents=True)
    (work / "src/msg/TFMessage.idl").write_text(IDL)
    os.environ.setdefault("AMENT_PREFIX_PATH", str(venv))
    gen = work / "gen"
    for cls in (GenerateC, GenerateCTypesupport, GenerateIntrospectionCTypesupport,
                GenerateFastRTPSCTypesupport, GeneratePython):
        cls(cls.__name__).generate("tf2_msgs", [f"{work / 'src'}:msg/TFMessage.idl"],
                                   [str(venv / "share")], gen / cls.__name__)
    return gen


def compile_all(venv: Path, gen: Path, lib: Path, package: Path) -> None:
    import numpy
    include = gen.parent / "include"
    for part in ("GenerateC", "GenerateCTypesupport", "GenerateIntrospectionCTypesupport",
                 "GenerateFastRTPSCTypesupport"):
        shutil.copytree(gen / part / "msg", include / "tf2_msgs/msg", dirs_exist_ok=True)
    inc = [f"-I{include}", f"-I{venv / 'include'}", f"-I{sysconfig.get_paths()['include']}",
           f"-I{numpy.get_include()}"] + [f"-I{p}" for p in sorted((venv / "include").iterdir()) if p.is_dir()]
    link = [f"-L{venv / 'lib'}", f"-L{lib}", f"-Wl,-rpath,{venv / 'lib'}", "-Wl,-rpath,$ORIGIN"]

    def build(compiler: str, sources: list[Path], out: Path, libs: list[str]) -> None:
        subprocess.run([compiler, "-fPIC", "-O2", "-shared", *inc, *map(str, sources), "-o", str(out),
                        *link, *(f"-l{name}" for name in libs)], check=True)

    geo, runtime = "geometry_msgs__rosidl", ["rosidl_runtime_c", "rcutils"]
    build("gcc", sorted((gen / "GenerateC/msg/detail").glob("*.c")),
          lib / "libtf2_msgs__rosidl_generator_c.so",
          [f"{geo}_generator_c", "std_msgs__rosidl_generator_c", "builtin_interfaces__rosidl_generator_c", *runtime])
    build("g++", sorted((gen / "GenerateCTypesupport/msg").glob("*.cpp")),
          lib / "libtf2_msgs__rosidl_typesupport_c.so",
          ["tf2_msgs__rosidl_generator_c", "rosidl_typesupport_c", *runtime])
    build("gcc", sorted((gen / "GenerateIntrospectionCTypesupport/msg/detail").glob("*.c")),
          lib / "libtf2_msgs__rosidl_typesupport_introspection_c.so",
          ["tf2_msgs__rosidl_generator_c", f"{geo}_typesupport_introspection_c", *runtime])
    build("g++", sorted((gen / "GenerateFastRTPSCTypesupport/msg/detail").glob("*.cpp")),
          lib / "libtf2_msgs__rosidl_typesupport_fastrtps_c.so",
          ["tf2_msgs__rosidl_generator_c", f"{geo}_typesupport_fastrtps_c", f"{geo}_generator_c",
           "rosidl_typesupport_fastrtps_c", "rosidl_typesupport_fastrtps_cpp", "rmw", "fastcdr", *runtime])
    build("gcc", [gen / "GeneratePython/msg/_tf_message_s.c"], lib / "libtf2_msgs__rosidl_generator_py.so",
          ["tf2_msgs__rosidl_generator_c", "tf2_msgs__rosidl_typesupport_c", f"{geo}_generator_py",
           f"{geo}_generator_c", *runtime])
    (package / "msg").mkdir(parents=True, exist_ok=True)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for ts in TYPESUPPORTS:
        build("gcc", [gen / f"GeneratePython/_tf2_msgs_s.ep.rosidl_typesupport_{ts}.c"],
              package / f"tf2_msgs_s__rosidl_typesupport_{ts}{suffix}",
              ["tf2_msgs__rosidl_generator_py", f"tf2_msgs__rosidl_typesupport_{ts}",
               "tf2_msgs__rosidl_generator_c", "rmw", *runtime])
    for py in (gen / "GeneratePython/msg").glob("*.py"):
        shutil.copy(py, package / "msg" / py.name)
    (package / "__init__.py").touch()


def build_tf2_msgs(*, venv: Path, lib: Path, python: Path) -> Path:
    """Generate and compile; the package goes to ``python/tf2_msgs``, the libraries to
    ``lib``. Returns the package folder."""
    lib.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        compile_all(venv, generate(venv, Path(tmp)), lib, python / "tf2_msgs")
    return python / "tf2_msgs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--venv", type=Path, help="install into this venv (lib/ and site-packages)")
    where.add_argument("--prefix", type=Path, help="install into PREFIX/lib and PREFIX/python")
    args = ap.parse_args()
    venv = Path(sys.prefix)
    if args.venv:
        out = build_tf2_msgs(venv=venv, lib=args.venv / "lib",
                             python=Path(sysconfig.get_paths()["purelib"]))
    else:
        out = build_tf2_msgs(venv=venv, lib=args.prefix / "lib", python=args.prefix / "python")
    print(f"tf2_msgs built: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
