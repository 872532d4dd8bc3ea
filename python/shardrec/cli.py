"""Launch the shardrec command from Python: prep, synth, train, eval and export, on one process
or under mpirun with `ranks` processes. Keyword arguments become flags (`run_dir="x"` is
`--run-dir x`; True is `--flag true`; lists are comma separated, except for the options that take
several words: input, features, perturb)."""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import List, Optional


class ShardrecError(RuntimeError):
    """The command failed; .returncode and .output hold its exit code and its output."""

    def __init__(self, cmd: List[str], returncode: int, output: str):
        # "error: ..." or, from a rank that failed alone under mpirun, "error (rank R of N): ..."
        last = [l for l in output.splitlines() if l.startswith(("error:", "error ("))]
        super().__init__(f"{' '.join(cmd[:3])}... exited {returncode}: {last[0] if last else output[-500:]}")
        self.returncode, self.output = returncode, output


def binary() -> str:
    b = os.environ.get("SHARDREC_BIN") or shutil.which("shardrec")
    if not b:
        raise FileNotFoundError("the shardrec command is not on PATH; set SHARDREC_BIN to build/shardrec")
    return b


# Options that take several values as separate words (prep --input a.txt b.txt).
_MULTI = {"input", "features", "perturb"}


def _flags(kwargs) -> List[str]:
    out = []
    for k, v in kwargs.items():
        if v is None:
            continue
        name = k.replace("_", "-")
        out.append("--" + name)
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, (list, tuple)):
            out.extend(str(x) for x in v) if name in _MULTI else out.append(",".join(str(x) for x in v))
        else:
            out.append(str(v))
    return out


def run(command: str, *args: str, ranks: int = 1, mpirun: Optional[str] = None, check: bool = True,
        **kwargs) -> subprocess.CompletedProcess:
    """Runs `shardrec COMMAND ARGS --flags...`; with ranks > 1 under mpirun (as root too)."""
    cmd = [binary(), command, *args, *_flags(kwargs)]
    env = dict(os.environ)
    if ranks > 1:
        launcher = mpirun or shutil.which("mpirun") or "mpirun"
        cmd = [launcher, "--oversubscribe", "-np", str(ranks)] + cmd
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT", "1")
        env.setdefault("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and p.returncode != 0:
        raise ShardrecError(cmd, p.returncode, p.stdout)
    return p


def prep(**kwargs):
    return run("prep", **kwargs)


def synth(**kwargs):
    return run("synth", **kwargs)


def train(ranks: int = 1, **kwargs):
    return run("train", ranks=ranks, **kwargs)


def eval(ranks: int = 1, **kwargs):  # noqa: A001 (the command's name)
    return run("eval", ranks=ranks, **kwargs)


def export(ranks: int = 1, **kwargs):
    return run("export", ranks=ranks, **kwargs)


def recommend(ranks: int = 1, **kwargs) -> "list[tuple[str, int, str, float]]":
    """Top-K items per user as (user, rank, item, score) tuples, raw ids as str (the command's TSV
    on standard output, unless out= names a file: then that file is read back)."""
    out = kwargs.pop("out", None)
    p = run("recommend", ranks=ranks, format="tsv", out=out or "-", **kwargs)
    text = open(out).read() if out else p.stdout
    rows = []
    for line in text.splitlines()[1:]:
        parts = line.split("\t")
        if len(parts) == 4:  # other lines are progress messages
            rows.append((parts[0], int(parts[1]), parts[2], float(parts[3])))
    return rows
