"""A smoke run's NAB corpus is cut consistently: data, numenta's results and label windows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import nab

SERIES = ("a/one.csv", "a/two.csv", "b/three.csv")


def fake_corpus(root: Path) -> Path:
    """A corpus with NAB's layout: three series, their numenta results and label windows."""
    for key in SERIES:
        category, name = key.split("/")
        for path in (
            root / "data" / key,
            root / "results" / "numenta" / category / f"numenta_{name}",
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("timestamp,value\n")
    (root / "labels").mkdir()
    windows = {key: [] for key in SERIES}
    (root / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return root


def test_copy_corpus_keeps_only_the_chosen_series(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nab, "CORPUS", fake_corpus(tmp_path / "corpus"))
    cut = tmp_path / "cut"
    nab.copy_corpus(cut, ["a/two.csv", "b/three.csv"])
    data = sorted(str(p.relative_to(cut / "data")) for p in (cut / "data").glob("*/*.csv"))
    assert data == ["a/two.csv", "b/three.csv"]
    numenta = sorted(p.name for p in (cut / "results" / "numenta").glob("*/*.csv"))
    assert numenta == ["numenta_three.csv", "numenta_two.csv"]
    windows = json.loads((cut / "labels" / "combined_windows.json").read_text())
    assert sorted(windows) == ["a/two.csv", "b/three.csv"]


def test_copy_corpus_without_a_choice_copies_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nab, "CORPUS", fake_corpus(tmp_path / "corpus"))
    nab.copy_corpus(tmp_path / "all", None)
    assert len(list((tmp_path / "all" / "data").glob("*/*.csv"))) == len(SERIES)


def test_probation_is_the_rule_of_nabs_scorer() -> None:
    """The first 15% of a series, at most 750 readings (``nab/sweeper.py``): a long series'
    readings after the 750th are scored, so the model must not learn from them."""
    assert nab.probation(4032) == 604
    assert nab.probation(5000) == 750
    assert nab.probation(22695) == 750
