"""Builds the oxwsgi wheel with setuptools-rust: one `cargo build --release` (the same command
as `make build`, so target/release is reused) makes both the `oxwsgi` command and the Apache
module; the command goes into the `oxwsgi` package as an executable (Binding.Exec) and the
module is copied next to it as libmod_oxwsgi.so, where the command looks for it. The metadata
is in pyproject.toml; the version is Cargo.toml's.
"""

import os
import shlex
import shutil
import subprocess
import sys
import tomllib

from setuptools import setup
from setuptools_rust import Binding, RustExtension, Strip, build_rust

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_FILE = "libmod_oxwsgi.so"



def _toml(rel):
    with open(os.path.join(HERE, rel), "rb") as f:
        return tomllib.load(f)


# setuptools-rust would point PyO3 at the Python running this build (a virtualenv's); the module
# links the Python chosen for the build (PYO3_PYTHON, as `make wheel PYTHON=...` passes it, else
# the default in .cargo/config.toml), as `cargo build` does, and the same value keeps cargo from
# rebuilding target/release.
os.environ.setdefault("PYO3_PYTHON", _toml(".cargo/config.toml")["env"]["PYO3_PYTHON"])
BUILD_PYTHON = os.environ["PYO3_PYTHON"]


def _version_of(python):
    out = subprocess.run(
        [python, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        check=True, capture_output=True, text=True,
    )
    return tuple(int(p) for p in out.stdout.split("."))


# The wheel's tag is this Python's (cpXY); the module links BUILD_PYTHON's libpython.
_built_for = _version_of(BUILD_PYTHON)
if sys.version_info[:2] != _built_for:
    sys.exit(
        "oxwsgi links Python %d.%d (%s), so its wheel is for Python %d.%d; this is Python %d.%d. "
        "Build it with %s, e.g. in a virtualenv made with `%s -m venv`"
        % (*_built_for, BUILD_PYTHON, *_built_for, *sys.version_info[:2], BUILD_PYTHON, shlex.quote(BUILD_PYTHON))
    )


class build_rust_and_module(build_rust):
    """build_rust, then the module: the `cargo build` that made the command made it beside it."""

    def install_extension(self, ext, dylib_paths, *rest):
        super().install_extension(ext, dylib_paths, *rest)
        built = os.path.join(os.path.dirname(dylib_paths[0].path), MODULE_FILE)
        build_ext = self.get_finalized_command("build_ext")
        dest = os.path.join(os.path.dirname(build_ext.get_ext_fullpath("oxwsgi.oxwsgi")), MODULE_FILE)
        shutil.copyfile(built, dest + "~")
        os.chmod(dest + "~", 0o755)
        os.replace(dest + "~", dest)
        if shutil.which("strip"):
            # Debug information is most of the file; function names stay (backtraces).
            subprocess.run(["strip", "--strip-debug", dest], check=True)


setup(
    version=_toml("Cargo.toml")["package"]["version"],
    rust_extensions=[
        RustExtension(
            {"oxwsgi": "oxwsgi.oxwsgi"},
            path="Cargo.toml",
            binding=Binding.Exec,
            strip=Strip.Debug,
            cargo_manifest_args=["--locked"],
        )
    ],
    cmdclass={"build_rust": build_rust_and_module},
    options={"build": {"build_base": "target/python-build"}},
    zip_safe=False,
)
