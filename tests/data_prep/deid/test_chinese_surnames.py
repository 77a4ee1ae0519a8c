"""Chinese names after the patient cue whose surname also starts clinical words (曾, 方, 安, 关, 于 …): found where
the note goes on as it does after a name (sex, age, a title), while the clinical words after the cue stay words."""

from __future__ import annotations

import pytest

from data_prep.deid import load_heldout, load_testset
from data_prep.deid._chinese_names import CHINESE_AMBIGUOUS_SURNAMES, CHINESE_SURNAMES, chinese_name_detector

DETECT = chinese_name_detector()


def found(text: str) -> list[str]:
    return [text[s.start : s.end] for s in DETECT(text)]


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("患者曾志伟，男，45岁，因胸痛2小时入院。", "曾志伟"),
        ("患者方静，女，30岁。", "方静"),
        ("患儿安小雨，女，6岁，发热3天。", "安小雨"),
        ("病人任建国，男，67岁。", "任建国"),
        ("患者关红梅女士，于3月复诊。", "关红梅"),
        ("患者时先生，58岁。", "时"),
        ("患者于海，男，50岁。", "于海"),
    ],
)
def test_a_clinical_looking_surname_after_the_patient_cue_is_a_name_when_sex_age_or_a_title_follow(
    text: str, name: str
) -> None:
    assert found(text) == [name]


LOOK_ALIKES = [
    "于门诊",
    "于外院",
    "曾患",
    "平卧",
    "平素",
    "左眼",
    "左耳",
    "左肺",
    "左手",
    "左下肢",
    "方可",
    "常感",
    "常规",
    "全麻",
    "全身",
    "明显",
    "明确",
    "应用",
    "向心性",
    "时感",
    "时有",
    "安眠药",
    "安静",
    "解痉",
    "连续",
    "包块",
    "关节痛",
    "房颤",
    "房早",
    "车祸伤",
    "管状",
    "单纯",
    "尚可",
    "查体",
    "经皮",
    "任何",
    "和善",
    "高血压",
    "白内障",
    "黄疸",
    "周身",
    "余无",
    "谷丙",
    "全血细胞",
    "应激性",
    "经口进食",
]


@pytest.mark.parametrize("cue", ["患者", "患儿", "病人"])
def test_clinical_words_after_the_cue_are_never_names_even_before_sex_and_age(cue: str) -> None:
    hits = {word: found(f"{cue}{word}，男，45岁，因胸痛入院。") for word in LOOK_ALIKES}
    assert {word: names for word, names in hits.items() if names} == {}


def test_every_ambiguous_surname_is_still_only_a_name_with_confirmation() -> None:
    ambiguous = [c for c in CHINESE_AMBIGUOUS_SURNAMES if c not in CHINESE_SURNAMES]
    assert len(ambiguous) > 20
    for surname in ambiguous:
        assert found(f"患者{surname}建国，男，60岁。") == [f"{surname}建国"]
        assert found(f"患者{surname}建国因胸痛入院。") == []  # no sex, age or title: not told from a word


def test_the_test_sets_keep_full_precision() -> None:
    from data_prep.deid import detectors_for, score

    for rows in (load_testset("zh"), load_heldout("zh")):
        result = score(rows, detectors_for("zh", ner=False))
        assert result["name"]["precision"] == 1.0 and result["name"]["recall"] == 1.0
