"""Patient-level split: no patient on both sides, same seed same split, every language evaluated."""

from __future__ import annotations

from collections import defaultdict

import pytest

from data_prep.records import ChatExample
from data_prep.split import split_by_patient


def examples(patients: dict[str, int], visits: int = 2) -> list[ChatExample]:
    """``visits`` examples for each of ``patients[lang]`` patients per language."""
    out = []
    for lang, count in patients.items():
        for p in range(count):
            for v in range(visits):
                meta = {
                    "id": f"{lang}-{p}-{v}",
                    "lang": lang,
                    "task": "t",
                    "source": "s",
                    "group": f"{lang}{p:03d}",
                }
                out.append(ChatExample(messages=[], meta=meta))
    return out


def groups_by_split(splits: dict[str, list[ChatExample]]) -> dict[str, set[str]]:
    return {name: {e.meta["group"] for e in items} for name, items in splits.items()}


def test_no_patient_is_in_two_splits_and_nothing_is_lost() -> None:
    data = examples({"ru": 40, "kk": 30, "zh": 35})
    splits = split_by_patient(data, validation=0.1, test=0.1, seed=42)
    groups = groups_by_split(splits)
    assert not groups["train"] & groups["validation"]
    assert not groups["train"] & groups["test"]
    assert not groups["validation"] & groups["test"]
    assert sorted(e.meta["id"] for s in splits.values() for e in s) == sorted(e.meta["id"] for e in data)


def test_same_seed_same_split_other_seed_other_split() -> None:
    data = examples({"ru": 40, "kk": 30, "zh": 35})
    first = split_by_patient(data, 0.1, 0.1, seed=42)
    again = split_by_patient(list(data), 0.1, 0.1, seed=42)
    assert {k: [e.meta["id"] for e in v] for k, v in first.items()} == {
        k: [e.meta["id"] for e in v] for k, v in again.items()
    }
    other = split_by_patient(data, 0.1, 0.1, seed=7)
    assert groups_by_split(other)["test"] != groups_by_split(first)["test"]


def test_split_does_not_depend_on_input_order() -> None:
    data = examples({"ru": 20, "kk": 20})
    forward = groups_by_split(split_by_patient(data, 0.2, 0.2, seed=1))
    backward = groups_by_split(split_by_patient(list(reversed(data)), 0.2, 0.2, seed=1))
    assert forward == backward


def test_every_language_with_three_patients_is_in_every_split() -> None:
    splits = split_by_patient(examples({"ru": 40, "kk": 3, "zh": 5}), 0.1, 0.1, seed=42)
    for name, items in splits.items():
        assert {e.meta["lang"] for e in items} == {"ru", "kk", "zh"}, name


def test_fractions_are_respected_per_language() -> None:
    splits = split_by_patient(examples({"ru": 100}, visits=1), validation=0.2, test=0.1, seed=3)
    assert (len(splits["train"]), len(splits["validation"]), len(splits["test"])) == (70, 20, 10)


@pytest.mark.parametrize("patients", [{"ru": 3}, {"ru": 1, "kk": 1, "zh": 1}, {"ru": 2, "kk": 1}])
def test_three_patients_are_enough_for_non_empty_validation_and_test(patients: dict[str, int]) -> None:
    splits = split_by_patient(examples(patients), 0.1, 0.1, seed=0)
    assert all(splits[name] for name in ("train", "validation", "test"))


def test_fewer_than_three_patients_all_train() -> None:
    splits = split_by_patient(examples({"ru": 2}), 0.1, 0.1, seed=0)
    assert len(splits["train"]) == 4 and not splits["validation"] and not splits["test"]


def test_zero_fraction_means_an_empty_split() -> None:
    splits = split_by_patient(examples({"ru": 30}), validation=0.0, test=0.2, seed=0)
    assert not splits["validation"] and splits["test"]


def test_a_patients_visits_stay_together() -> None:
    splits = split_by_patient(examples({"ru": 10}, visits=3), 0.2, 0.2, seed=5)
    where = defaultdict(set)
    for name, items in splits.items():
        for e in items:
            where[e.meta["group"]].add(name)
    assert all(len(s) == 1 for s in where.values())
