"""``segments`` run in the test process, as ``subprocess.run`` would report it.

A CLI process pays 3-5 CPU seconds importing MLflow, SHAP and scikit-learn before it does anything;
the tests that run dozens of commands run them here instead, through the same ``main`` the
``segments`` script calls, with the command's environment in place for its duration. Tests of what
only a real process shows (exit codes seen by a shell, a killed server) still start one.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Mapping
from contextlib import redirect_stderr, redirect_stdout

import pytest

from pipelines.cli import main


def segments_in_process(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess:
    """Run ``segments ARGS`` with exactly ``env`` as its environment; never raises SystemExit."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        for name in set(os.environ) - set(env):
            patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        with redirect_stdout(out), redirect_stderr(err), pytest.raises(SystemExit) as stop:
            main(list(args))
    code = stop.value.code
    return subprocess.CompletedProcess(
        args,
        code if isinstance(code, int) else int(code is not None),
        out.getvalue(),
        err.getvalue(),
    )
