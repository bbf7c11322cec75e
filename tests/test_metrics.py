import numpy as np
import pytest

from fastexit_bench.metrics import METRICS, compute_metrics


def test_classification_metrics():
    labels = np.array([1, 0, 1, 1, 0, 0])
    preds = np.array([1, 0, 0, 1, 1, 0])
    out = compute_metrics(("accuracy", "f1", "matthews"), preds, labels)
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["f1"] == pytest.approx(2 / 3)  # tp=2, fp=1, fn=1
    assert out["matthews"] == pytest.approx(1 / 3)


def test_regression_metrics():
    labels = np.array([0.0, 1.0, 2.0, 3.0])
    out = compute_metrics(("pearson", "spearman"), labels * 2 + 1, labels)
    assert out == {"pearson": pytest.approx(1.0), "spearman": pytest.approx(1.0)}


def test_dataset_metrics_are_registered():
    from fastexit_bench.data.spec import DATASETS

    for name in DATASETS:
        for metric in DATASETS.get(name).metrics:
            assert metric in METRICS, (name, metric)
