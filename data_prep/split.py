"""Split examples into train/validation/test by patient.

Visits of one patient share wording, labs and history; if they landed on both sides of a split the
test score would measure memory, not skill. So whole patients (``meta["group"]``) are assigned, per
language, so that every language with enough patients is evaluated.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from data_prep.records import ChatExample

SPLITS: tuple[str, ...] = ("train", "validation", "test")
MIN_GROUPS_TO_HOLD_OUT = 3


def _held_out(n_groups: int, fraction: float) -> int:
    """Groups to hold out: the rounded share, at least one when there are enough groups to spare."""
    if fraction <= 0 or n_groups < MIN_GROUPS_TO_HOLD_OUT:
        return 0
    return max(1, math.floor(n_groups * fraction + 0.5))


def _assign_language(groups: list[str], validation: float, test: float, rng: random.Random) -> dict[str, str]:
    groups = sorted(groups)
    rng.shuffle(groups)
    n_test, n_val = _held_out(len(groups), test), _held_out(len(groups), validation)
    while n_test + n_val > len(groups) - 1 and n_test + n_val > 0:
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    assignment = {g: "test" for g in groups[:n_test]}
    assignment.update({g: "validation" for g in groups[n_test : n_test + n_val]})
    assignment.update({g: "train" for g in groups[n_test + n_val :]})
    return assignment


def _ensure_held_out(assignment: dict[str, str], group_lang: dict[str, str], split: str) -> None:
    """Move one training patient to ``split`` when stratifying left it empty (few patients per language)."""
    if split in assignment.values():
        return
    train_by_lang: dict[str, list[str]] = defaultdict(list)
    for group, name in sorted(assignment.items()):
        if name == "train":
            train_by_lang[group_lang[group]].append(group)
    if sum(len(g) for g in train_by_lang.values()) < 2:
        return
    lang = max(sorted(train_by_lang), key=lambda lang: len(train_by_lang[lang]))
    assignment[train_by_lang[lang][-1]] = split


def _majority(votes: Counter[str]) -> str:
    return max(sorted(votes), key=lambda k: votes[k])


def assign_groups(
    examples: Iterable[tuple[str, str, str, bool]], validation: float, test: float, seed: int
) -> dict[str, str]:
    """Patient group → split, from (group, lang, task, eval_only) of each example.

    Groups are stratified by language and, where a language has several, by their main task, so
    each language and task with at least three patients appears in every split. A group with any
    evaluation-only example goes to test as a whole: it must never reach train.
    """
    lang_votes: dict[str, Counter[str]] = defaultdict(Counter)
    task_votes: dict[str, Counter[str]] = defaultdict(Counter)
    eval_groups: set[str] = set()
    for group, lang, task, eval_only in examples:
        lang_votes[group][lang] += 1
        task_votes[group][task] += 1
        if eval_only:
            eval_groups.add(group)
    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    group_lang = {}
    for group in lang_votes:
        if group in eval_groups:
            continue
        group_lang[group] = _majority(lang_votes[group])
        strata[(group_lang[group], _majority(task_votes[group]))].append(group)
    tasks_of_lang: dict[str, int] = Counter(lang for lang, _ in strata)
    assignment: dict[str, str] = {}
    for lang, task in sorted(strata):
        key = f"{seed}:{lang}" if tasks_of_lang[lang] == 1 else f"{seed}:{lang}:{task}"
        assignment.update(_assign_language(strata[(lang, task)], validation, test, random.Random(key)))
    if len(assignment) >= MIN_GROUPS_TO_HOLD_OUT:
        for split, fraction in (("test", test), ("validation", validation)):
            if fraction > 0:
                _ensure_held_out(assignment, group_lang, split)
    assignment.update({group: "test" for group in eval_groups})
    return assignment


def split_by_patient(
    examples: Sequence[ChatExample], validation: float, test: float, seed: int
) -> dict[str, list[ChatExample]]:
    """Examples by split; no patient in two splits, same seed and input give the same split.

    Each language (and task, see ``assign_groups``) is shuffled and cut on its own, so a language
    with at least three patients appears in every split. With three or more patients in all,
    validation and test are never empty (unless their fraction is 0). Examples keep their input
    order within a split; evaluation-only examples are only ever in test.
    """
    assignment = assign_groups(
        (
            (e.meta["group"], e.meta.get("lang", ""), e.meta.get("task", ""), bool(e.meta.get("eval_only")))
            for e in examples
        ),
        validation,
        test,
        seed,
    )
    result: dict[str, list[ChatExample]] = {name: [] for name in SPLITS}
    for example in examples:
        result[assignment[example.meta["group"]]].append(example)
    return result
