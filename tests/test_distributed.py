"""fit and evaluate on Dask arrays, on a dask.distributed cluster.

The dask nox session installs distributed (the dask backend file requires
it); elsewhere the module is skipped. One local cluster of two worker
processes serves the whole module and is closed at its end.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="needs Dask")
distributed = pytest.importorskip("distributed", reason="needs dask.distributed")
pytestmark = pytest.mark.backend("dask")

import array_api_compat.dask.array as dxp  # noqa: E402
import array_api_compat.numpy as npx  # noqa: E402

from xpnn import (  # noqa: E402
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    _dask,
)
from xpnn.layers.activations import Tanh  # noqa: E402
from xpnn.losses import CrossEntropyLoss  # noqa: E402
from xpnn.optim import SGD, Adam  # noqa: E402
from xpnn.training import evaluate, fit  # noqa: E402
from xpnn.training.dask_blocks import RowBlocks  # noqa: E402
from xpnn.training.dask_source import DaskSource  # noqa: E402
from xpnn.training.plan import epoch_plan  # noqa: E402

ROWS, FEATURES, CLASSES = 200, 6, 3


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        # No fixed port: the HTTP server's default, 8787, may be taken.
        dashboard_address="127.0.0.1:0",
        scheduler_kwargs={"dashboard": False},
        memory_limit="1GiB",
    )
    client = distributed.Client(cluster, set_as_default=True)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def _host_data(rows=ROWS, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, FEATURES))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64) + (x[:, 2] > 1)
    return x, y


def _run(xp, data, validation, *, optimizer=Adam, epochs=3, **options):
    where = {"xp": xp, "device": "cpu", "dtype": xp.float64}
    model = Sequential(
        Linear(FEATURES, 16, seed=1, **where), Tanh(), Linear(16, CLASSES, seed=2, **where)
    )
    opt = optimizer(model, lr=0.01) if optimizer is Adam else optimizer(model, lr=0.1, momentum=0.9)
    history = fit(
        model,
        CrossEntropyLoss(),
        opt,
        *data,
        epochs=epochs,
        batch_size=40,
        seed=7,
        validation_data=validation,
        progress=False,
        **options,
    )
    return model, opt, history


def _chunked(host, rows_per_chunk):
    return tuple(da.from_array(a, chunks=(rows_per_chunk, *a.shape[1:])) for a in host)


def _assert_same_run(ours, reference):
    np.testing.assert_allclose(ours.loss, reference.loss, rtol=1e-9)
    np.testing.assert_allclose(ours.val_loss, reference.val_loss, rtol=1e-9)
    assert ours.accuracy == reference.accuracy
    assert ours.val_accuracy == reference.val_accuracy


@pytest.mark.parametrize("optimizer", [SGD, Adam], ids=["sgd-momentum", "adam"])
def test_one_chunk_trains_as_numpy_does(client, optimizer):
    """One chunk is one block: the plain shuffle of every backend."""
    train, validation = _host_data(), _host_data(60, seed=1)
    _, _, reference = _run(npx, train, validation, optimizer=optimizer)
    _, _, ours = _run(dxp, _chunked(train, ROWS), _chunked(validation, 60), optimizer=optimizer)
    _assert_same_run(ours, reference)


@pytest.mark.parametrize(("block", "interleave"), [(50, 1), (40, 3)])
def test_blocks_train_as_numpy_does_with_the_same_blocks(client, block, interleave):
    train, validation = _host_data(), _host_data(60, seed=1)
    _, _, reference = _run(npx, train, validation, block_rows=block, interleave=interleave)
    _, _, ours = _run(dxp, _chunked(train, block), _chunked(validation, 25), interleave=interleave)
    _assert_same_run(ours, reference)


def test_state_is_persisted_on_the_cluster(client):
    model, optimizer, _ = _run(dxp, _chunked(_host_data(), 50), None, epochs=1)
    arrays = {f"param {n}": p for n, p in model.named_parameters()}
    arrays.update((f"grad {n}", g) for n, g in model.named_gradients())
    for name, entry in optimizer.state_dict()["state"].items():
        arrays.update((f"{b} {name}", entry[b]) for b in ("exp_avg", "exp_avg_sq"))
    for name, array in arrays.items():
        # A persisted array's graph is its own chunks, held by futures on
        # the workers: nothing of earlier steps is left to recompute.
        graph = dict(array.__dask_graph__())
        assert len(graph) == array.npartitions == 1, name
        futures = distributed.futures_of(array)
        assert len(futures) == 1, name
        assert futures[0].status == "finished", name
    assert not client.run_on_scheduler(_erred_tasks)


def _cnn(xp):
    """A LeNet-like CNN with a batch norm, for 1x8x8 images."""
    where = {"xp": xp, "device": "cpu", "dtype": xp.float64}
    return Sequential(
        Conv2d(1, 2, 3, bias=False, seed=1, **where),
        BatchNorm2d(2, **where),
        ReLU(),
        MaxPool2d(2),
        Flatten(),
        Linear(2 * 3 * 3, CLASSES, seed=2, **where),
    )


def test_a_cnn_with_batch_norm_trains_as_numpy_does(client, monkeypatch):
    """Batches of two chunks, whose batch statistics the cluster reduces; one read-back an epoch."""
    rng = np.random.default_rng(3)
    # One step an epoch, from two blocks of four rows: a CNN's step is some
    # 900 tasks on Dask. The second epoch starts from the state the first
    # one's read-back made afresh.
    images, labels = rng.standard_normal((8, 1, 8, 8)), rng.integers(0, CLASSES, 8)
    options = {"epochs": 2, "batch_size": 8, "seed": 7, "interleave": 2, "progress": False}
    reference = _cnn(npx)
    expected = fit(
        reference,
        CrossEntropyLoss(),
        SGD(reference, lr=0.1, momentum=0.9),
        images,
        labels,
        block_rows=4,
        **options,
    )
    gets = []
    real_get = distributed.Client.get

    def counting_get(self, *args, **kwargs):
        gets.append(1)
        return real_get(self, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "get", counting_get)
    model = _cnn(dxp)
    initial = dict(model.named_buffers())
    x, y = _chunked((images, labels), 4)
    history = fit(model, CrossEntropyLoss(), SGD(model, lr=0.1, momentum=0.9), x, y, **options)
    # The sums come back once an epoch; nothing else is read.
    assert len(gets) == 2
    np.testing.assert_allclose(history.loss, expected.loss, rtol=1e-9)
    assert history.accuracy == expected.accuracy
    for name, value in model.named_buffers():
        # Replaced by persisted arrays, one step deep; the first ones kept their values.
        assert value is not initial[name]
        assert len(dict(value.__dask_graph__())) == 1, name
        assert distributed.futures_of(value)[0].status == "finished", name
        np.testing.assert_allclose(value.compute(), dict(reference.named_buffers())[name])
    assert int(initial["1.num_batches_tracked"].compute()) == 0
    for name, value in model.named_parameters():
        np.testing.assert_allclose(value.compute(), dict(reference.named_parameters())[name])


def _erred_tasks(dask_scheduler):
    return [key for key, task in dask_scheduler.tasks.items() if task.state == "erred"]


def test_sums_are_read_back_once_per_epoch(client, monkeypatch):
    gets = []
    real_get = distributed.Client.get

    def counting_get(self, *args, **kwargs):
        gets.append(1)
        return real_get(self, *args, **kwargs)

    monkeypatch.setattr(distributed.Client, "get", counting_get)
    _run(dxp, _chunked(_host_data(), 50), _chunked(_host_data(60, seed=1), 30), epochs=2)
    # Per epoch: the training sums once, the validation sums once.
    assert len(gets) == 4


def test_interleaved_batches_span_the_blocks(client):
    x, y = _chunked(_host_data(), 50)
    model = Sequential(Linear(FEATURES, CLASSES, seed=0, xp=dxp, dtype=dxp.float64))
    windows = epoch_plan(np.random.default_rng(0), ROWS, 50, 2, 16, True)
    source = DaskSource(x, y, model, SGD(model, lr=0.1))
    batches = list(source.batches(windows, 16))
    assert len(batches) == -(-ROWS // 16)
    # Full batches take 8 rows from each of two blocks: two chunks, whose
    # gradient contributions the cluster sums.
    assert [xb.chunks[0] for xb, _ in batches[:3]] == [(8, 8)] * 3
    order = np.concatenate([w.indices() for w in windows])
    got = np.concatenate([xb.compute() for xb, _ in batches])
    np.testing.assert_array_equal(got, _host_data()[0][order])


def test_lazily_generated_data_trains(client):
    """Blocks are generated where they are read; the loss still falls."""
    chunk = 500

    def block(seed_block, block_info=None):
        (start, _), _ = block_info[None]["array-location"]
        rng = np.random.default_rng(start)
        return rng.standard_normal((chunk, FEATURES))

    x = da.map_blocks(
        block,
        da.zeros((4 * chunk, FEATURES), chunks=(chunk, FEATURES)),
        dtype=np.float64,
    )
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    model = Sequential(Linear(FEATURES, 2, seed=0, xp=dxp, dtype=dxp.float64))
    history = fit(
        model,
        CrossEntropyLoss(),
        SGD(model, lr=0.5),
        x,
        y,
        epochs=2,
        batch_size=250,
        interleave=2,
        progress=False,
    )
    assert history.loss[1] < history.loss[0]
    assert history.accuracy[1] > 0.9
    loss, accuracy = evaluate(model, CrossEntropyLoss(), x, y)
    assert accuracy > 0.9
    assert loss < history.loss[0]


def test_joining_a_running_cluster(client):
    address = client.scheduler.address
    with _dask.cluster(address) as joined:
        assert joined.scheduler.address == address
        _, _, history = _run(dxp, _chunked(_host_data(), 100), None, epochs=1)
        assert np.isfinite(history.loss[0])
    assert joined.status == "closed"
    assert client.status == "running"


def test_importing_xpnn_training_imports_no_dask():
    code = (
        "import sys, xpnn, xpnn.training, xpnn.cli; "
        "print(','.join(m for m in ('dask', 'distributed') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == ""


def _xpnn(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "xpnn", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_cli_trains_on_a_local_cluster_as_numpy_does(tmp_path):
    common = ["--epochs", "2", "--batch-size", "128", "--dtype", "float64", "--no-progress"]
    ours = _xpnn(
        "train", "--backend", "dask", "--workers", "1", *common, "--output", str(tmp_path / "dask")
    )
    assert ours.returncode == 0, ours.stderr
    assert "on a local Dask cluster at tcp://127.0.0.1:" in ours.stdout
    theirs = _xpnn("train", *common, "--output", str(tmp_path / "numpy"))
    assert theirs.returncode == 0, theirs.stderr
    dask_metrics = json.loads((tmp_path / "dask" / "metrics.json").read_text())
    numpy_metrics = json.loads((tmp_path / "numpy" / "metrics.json").read_text())
    assert dask_metrics["cluster"]["workers"] == 1
    assert dask_metrics["cluster"]["scheduler"].startswith("tcp://127.0.0.1:")
    np.testing.assert_allclose(dask_metrics["train_loss"], numpy_metrics["train_loss"], rtol=1e-9)
    assert dask_metrics["test_accuracy"] == numpy_metrics["test_accuracy"]
    assert (tmp_path / "dask" / "model.safetensors").exists()


def test_cli_joins_a_running_cluster(client, tmp_path):
    result = _xpnn(
        "train",
        "--backend",
        "dask",
        "--scheduler",
        client.scheduler.address,
        "--epochs",
        "1",
        "--batch-size",
        "256",
        "--no-progress",
        "--output",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["cluster"] == {
        "scheduler": client.scheduler.address,
        "workers": 2,
        "threads": 2,
    }
    # The run's own client left; the cluster stays for its other users.
    assert len(client.scheduler_info()["workers"]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "2"], "leave them out"),
        (
            ["--scheduler", "tcp://127.0.0.1:9"],
            "cannot reach the Dask scheduler at tcp://127.0.0.1:9",
        ),
    ],
)
def test_cli_cluster_errors(args, message, tmp_path):
    import os

    # Refused connections are retried until this timeout: keep it short.
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}
    result = _xpnn("train", "--backend", "dask", *args, "--output", str(tmp_path), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]


def test_cli_says_how_to_install_distributed(monkeypatch, capsys, tmp_path):
    import importlib.util

    from xpnn import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "distributed" else real(name, *a),
    )
    assert cli.main(["train", "--backend", "dask", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "distributed is not installed" in err
    assert "pip install 'xpnn[dask]'" in err


def test_docs_page_example_runs_and_matches_numpy(tmp_path):
    from pathlib import Path

    page = Path(__file__).resolve().parents[1] / "docs" / "distributed.md"
    blocks = page.read_text(encoding="utf-8").split("```python\n")[1:]
    script = tmp_path / "example.py"
    # A file, not python -c: the page's worker processes re-import it.
    script.write_text("\n".join(block.split("```", 1)[0] for block in blocks))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" loss ", 1) for line in done.stdout.splitlines() if " loss " in line)
    assert lines["dask"] == lines["numpy"]
    first, last = json.loads(lines["dask"])
    assert last < first


def _scheduler_tasks(client, settle: float = 10.0):
    """The tasks the scheduler holds once the releases sent to it have landed."""
    import gc
    import time

    gc.collect()  # futures are released when their arrays are collected
    # Releases reach the scheduler asynchronously; on a busy machine they can
    # lag a count taken at once, so wait until three counts in a row agree.
    deadline, counts = time.monotonic() + settle, []
    while time.monotonic() < deadline:
        counts.append(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))
        if len(counts) >= 3 and counts[-1] == counts[-2] == counts[-3]:
            break
        time.sleep(0.2)
    return counts[-1]


def test_the_scheduler_does_not_keep_every_step(client, monkeypatch):
    """A persisted state remembers the steps that made it, unless started afresh."""
    monkeypatch.setattr(_dask, "REBASE", 3)  # afresh every 3 steps, and after each epoch
    train, validation = _host_data(), _host_data(60, seed=1)
    kept, runs = [], []
    for epochs in (1, 4):
        runs.append(_run(dxp, _chunked(train, 50), _chunked(validation, 30), epochs=epochs))
        kept.append(_scheduler_tasks(client))
    # Fifteen more steps of some 60 tasks each, and nothing more kept.
    assert kept[1] <= kept[0] + 30, kept
    # Starting afresh changes no value.
    _, _, reference = _run(npx, train, validation, epochs=4, block_rows=50)
    _assert_same_run(runs[1][2], reference)


@pytest.mark.parametrize("persisted", [False, True], ids=["lazy", "persisted"])
def test_blocks_take_their_rows_across_chunks_and_axes(client, persisted):
    rng = np.random.default_rng(5)
    host_x, host_y = rng.standard_normal((30, 4, 3)), rng.integers(0, 5, 30)
    x = da.from_array(host_x, chunks=(7, 2, 3))  # rows and a middle axis in chunks
    y = da.from_array(host_y, chunks=11)  # other row chunks than x
    if persisted:
        x, y = client.persist([x, y])
    source = RowBlocks(x, y)
    order = rng.permutation(12)
    block_x, block_y = source.block(5, order)  # rows 5..16: three chunks of x, two of y
    assert block_x.chunks == ((12,), (4,), (3,))
    got_x, got_y = da.compute(block_x, block_y)
    np.testing.assert_array_equal(got_x, host_x[5 + order])
    np.testing.assert_array_equal(got_y, host_y[5 + order])
