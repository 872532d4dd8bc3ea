"""Python access to shardrec's files and command line.

    import shardrec
    d = shardrec.read_dataset("ml100k.h5")        # scipy CSR per split, raw ids as str
    r = shardrec.read_run("runs/ml100k")          # config, metrics, result, params
    e = shardrec.read_params("emb.h5")            # an export or a params.h5
    shardrec.train(data="ml100k.h5", run_dir="runs/x", ranks=2, epochs=5)

The file layouts are docs/data-format.md's; nothing here needs the shardrec binary except the
launchers (shardrec.cli), which find it on PATH or in $SHARDREC_BIN.
"""
from .files import Dataset, Params, Run, read_dataset, read_params, read_run
from .cli import ShardrecError, eval, export, prep, recommend, run, synth, train

__all__ = ["Dataset", "Params", "Run", "read_dataset", "read_params", "read_run",
           "ShardrecError", "run", "prep", "synth", "train", "eval", "export", "recommend"]
