"""Readers for shardrec's HDF5 datasets, parameter files and run directories."""
from __future__ import annotations

import configparser
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import h5py
import numpy as np
import scipy.sparse as sp

SPLITS = ("train", "valid", "test")


def _text(v) -> str:
    """An HDF5 string attribute or element (fixed or variable length, bytes or str) as str."""
    if isinstance(v, np.ndarray) and v.shape == ():
        v = v[()]
    return v.decode("utf-8") if isinstance(v, (bytes, np.bytes_)) else str(v)


def _strings(ds) -> np.ndarray:
    return np.array([_text(x) for x in ds[:]], dtype=object)


def _check_format(f: h5py.File, path: str, want: str) -> None:
    got = _text(f.attrs["format"]) if "format" in f.attrs else ""
    if got != want:
        raise ValueError(f"{path}: root attribute 'format' is '{got}', expected '{want}'")


@dataclass
class Dataset:
    """A shardrec dataset: one users x items CSR matrix per split (values: the rating when the
    input had one, else 1), the raw ids of the dense ids, and the optional extras."""
    path: str
    num_users: int
    num_items: int
    splits: Dict[str, sp.csr_matrix]
    user_ids: np.ndarray              # raw id (str) of dense user u
    item_ids: np.ndarray              # raw id (str) of dense item i
    timestamps: Dict[str, np.ndarray] = field(default_factory=dict)  # per split, in CSR row order
    features: Dict[str, np.ndarray] = field(default_factory=dict)    # modality -> [num_items, dim]
    attrs: Dict[str, object] = field(default_factory=dict)           # root attributes
    feature_columns: Dict[str, np.ndarray] = field(default_factory=dict)  # modality -> column names (str), when named

    @property
    def train(self) -> sp.csr_matrix:
        return self.splits["train"]

    @property
    def valid(self) -> sp.csr_matrix:
        return self.splits["valid"]

    @property
    def test(self) -> sp.csr_matrix:
        return self.splits["test"]

    @property
    def fingerprint(self) -> Optional[str]:
        v = self.attrs.get("fingerprint")
        return None if v is None else str(v)

    def user_index(self) -> Dict[str, int]:
        return {u: k for k, u in enumerate(self.user_ids)}

    def item_index(self) -> Dict[str, int]:
        return {i: k for k, i in enumerate(self.item_ids)}


def read_dataset(path: str) -> Dataset:
    with h5py.File(path, "r") as f:
        _check_format(f, path, "shardrec-dataset")
        nu, ni = int(f.attrs["num_users"]), int(f.attrs["num_items"])
        splits, stamps = {}, {}
        for s in SPLITS:
            g = f[s]
            indptr, item = g["indptr"][:], g["item"][:]
            values = g["rating"][:] if "rating" in g else np.ones(len(item), dtype=np.float32)
            splits[s] = sp.csr_matrix((values, item, indptr), shape=(nu, ni))
            if "timestamp" in g:
                stamps[s] = g["timestamp"][:]
        if "mapping" in f:
            users, items = _strings(f["mapping/user_raw"]), _strings(f["mapping/item_raw"])
        else:  # synthetic data: raw id = dense id
            users = np.array([str(u) for u in range(nu)], dtype=object)
            items = np.array([str(i) for i in range(ni)], dtype=object)
        feats = {k: f["features"][k][:] for k in f["features"]} if "features" in f else {}
        columns = {k: _strings(f["feature_columns"][k]) for k in f["feature_columns"]} if "feature_columns" in f else {}
        attrs = {k: (_text(v) if isinstance(v, (bytes, str, np.bytes_)) else v.item() if hasattr(v, "item") else v)
                 for k, v in f.attrs.items()}
    return Dataset(path, nu, ni, splits, users, items, stamps, feats, attrs, feature_columns=columns)


@dataclass
class Params:
    """Trained parameters (a run's params.h5 or an HDF5 export): the tables in dense-id order with
    their raw ids, and the dense parameters by name (VBPR's W and b, NCF's flat vector 'ncf')."""
    path: str
    model: str
    user_embedding: np.ndarray
    item_embedding: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray
    dense: Dict[str, np.ndarray] = field(default_factory=dict)
    attrs: Dict[str, object] = field(default_factory=dict)

    def user_vectors(self) -> Dict[str, np.ndarray]:
        return dict(zip(self.user_ids, self.user_embedding))

    def item_vectors(self) -> Dict[str, np.ndarray]:
        return dict(zip(self.item_ids, self.item_embedding))


def read_params(path: str) -> Params:
    with h5py.File(path, "r") as f:
        if "user" not in f or "item" not in f:
            raise ValueError(f"{path}: no /user and /item groups (not a shardrec parameters file?)")
        model = _text(f.attrs["model"]) if "model" in f.attrs else "mf"
        dense = {k: f["dense"][k][:] for k in f["dense"]} if "dense" in f else {}
        attrs = {k: (_text(v) if isinstance(v, (bytes, str, np.bytes_)) else v) for k, v in f.attrs.items()}
        return Params(path, model, f["user/embedding"][:], f["item/embedding"][:], _strings(f["user/raw_id"]),
                      _strings(f["item/raw_id"]), dense, attrs)


@dataclass
class Run:
    """A run directory: the resolved configuration, one dict per epoch, the final result, and
    the parameters (None while the run has not finished)."""
    path: str
    config: Dict[str, str]
    metrics: List[dict]
    result: Optional[dict]
    params: Optional[Params]


def read_config(path: str) -> Dict[str, str]:
    """A shardrec config file (key = value lines, # comments) as a dict of strings."""
    cp = configparser.ConfigParser(interpolation=None, comment_prefixes=("#",), inline_comment_prefixes=None)
    with open(path) as fh:
        cp.read_string("[run]\n" + fh.read(), source=path)
    return dict(cp["run"])


def read_run(run_dir: str) -> Run:
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    conf = os.path.join(run_dir, "config.ini")
    config = read_config(conf) if os.path.exists(conf) else {}
    metrics = []
    mpath = os.path.join(run_dir, "metrics.jsonl")
    if os.path.exists(mpath):
        with open(mpath) as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        metrics.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise ValueError(f"{mpath}:{n}: {e}") from None
    rpath = os.path.join(run_dir, "result.json")
    result = json.load(open(rpath)) if os.path.exists(rpath) else None
    ppath = os.path.join(run_dir, "params.h5")
    params = read_params(ppath) if os.path.exists(ppath) else None
    return Run(run_dir, config, metrics, result, params)
