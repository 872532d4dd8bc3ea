"""The Python package against files the shardrec command writes: a prepared dataset, a 2-rank run
and an export. Needs the binary (SHARDREC_BIN, set by ctest) and mpirun."""
import os
import shutil
import tempfile
import unittest

import h5py
import numpy as np
import scipy.sparse as sp

import shardrec


def raw_log(path):
    # user, item, rating, timestamp (tabs); raw ids that are not dense ids, a planted structure.
    s = 99
    with open(path, "w") as f:
        for u in range(1, 61):
            for k in range(6 + u % 5):
                s = (s * 1103515245 + 12345) % 2147483648
                item = 1 + (u % 3) + 3 * (s % 25)
                f.write(f"{7000 + u}\t{item}\t{1 + (u + k) % 5}\t{880000000 + 100 * u + k}\n")


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="shardrec-py-")
        d = lambda *p: os.path.join(cls.dir, *p)
        raw_log(d("raw.tsv"))
        shardrec.prep(format="ml-udata", input=[d("raw.tsv")], out=d("data.h5"), threshold=2, seed=3)
        shardrec.train(ranks=2, data=d("data.h5"), run_dir=d("run"), dim=8, epochs=2, batch=64, lr=0.05,
                       optimizer="adam", quiet=True)
        shardrec.export(ranks=2, data=d("data.h5"), params=d("run", "params.h5"), out=d("emb.h5"))
        cls.path = staticmethod(d)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_dataset_splits_are_csr_with_raw_ids(self):
        ds = shardrec.read_dataset(self.path("data.h5"))
        with h5py.File(self.path("data.h5"), "r") as f:
            nu, ni = int(f.attrs["num_users"]), int(f.attrs["num_items"])
            ptr, item = f["train/indptr"][:], f["train/item"][:]
            raw_users = [x.decode() for x in f["mapping/user_raw"][:]]
        self.assertEqual((ds.num_users, ds.num_items), (nu, ni))
        for s in ("train", "valid", "test"):
            self.assertIsInstance(ds.splits[s], sp.csr_matrix)
            self.assertEqual(ds.splits[s].shape, (nu, ni))
        self.assertEqual(ds.train.nnz, len(item))
        np.testing.assert_array_equal(np.sort(ds.train[0].indices), np.sort(item[ptr[0]:ptr[1]]))
        self.assertEqual(list(ds.user_ids), raw_users)
        self.assertIsInstance(ds.user_ids[0], str)
        self.assertEqual(ds.user_index()[ds.user_ids[5]], 5)
        self.assertEqual(set(ds.train.data) - {2.0, 3.0, 4.0, 5.0}, set())  # ratings >= the threshold 2
        self.assertEqual(len(ds.timestamps["train"]), ds.train.nnz)
        self.assertEqual(len(ds.fingerprint), 16)

    def test_run_has_config_metrics_result_and_params(self):
        run = shardrec.read_run(self.path("run"))
        ds = shardrec.read_dataset(self.path("data.h5"))
        self.assertEqual(run.config["dim"], "8")
        self.assertEqual(run.config["optimizer"], "adam")
        self.assertEqual([m["epoch"] for m in run.metrics], [1, 2])
        self.assertIn("ndcg@10", run.result["test"])
        self.assertEqual(run.result["ranks"], 2)
        p = run.params
        self.assertEqual(p.model, "mf")
        self.assertEqual(p.user_embedding.shape, (ds.num_users, 8))
        self.assertEqual(p.item_embedding.shape, (ds.num_items, 8))
        self.assertEqual(list(p.user_ids), list(ds.user_ids))
        self.assertTrue(np.isfinite(p.item_embedding).all())
        u = ds.user_ids[0]
        np.testing.assert_array_equal(p.user_vectors()[u], p.user_embedding[0])

    def test_export_equals_the_runs_params(self):
        e = shardrec.read_params(self.path("emb.h5"))
        p = shardrec.read_params(self.path("run", "params.h5"))
        np.testing.assert_array_equal(e.item_embedding, p.item_embedding)
        self.assertEqual(list(e.item_ids), list(p.item_ids))

    def test_recommend_leaves_out_training_items(self):
        ds = shardrec.read_dataset(self.path("data.h5"))
        rows = shardrec.recommend(ranks=2, data=self.path("data.h5"), params=self.path("run", "params.h5"), k=3)
        users = ds.user_index()
        self.assertEqual(len(rows), 3 * ds.num_users)
        items = ds.item_index()
        for user, rank, item, score in rows:
            self.assertIn(rank, (1, 2, 3))
            self.assertEqual(ds.train[users[user], items[item]], 0)  # not a training item

    def test_a_failing_command_raises_with_its_message(self):
        with self.assertRaises(shardrec.ShardrecError) as cm:
            shardrec.train(data=self.path("data.h5"), learning_rate=0.1)
        self.assertEqual(cm.exception.returncode, 2)
        self.assertIn("--learning-rate", str(cm.exception))

    def test_a_file_of_another_kind_is_refused(self):
        with self.assertRaisesRegex(ValueError, "expected 'shardrec-dataset'"):
            shardrec.read_dataset(self.path("run", "params.h5"))
        with self.assertRaisesRegex(FileNotFoundError, "no such run directory"):
            shardrec.read_run(self.path("nowhere"))


if __name__ == "__main__":
    unittest.main()
