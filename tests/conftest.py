"""Shared fixtures: one tiny Gemma 3 model, one prepared dataset and one short training run per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import finetune  # noqa: F401  (its import keeps bitsandbytes' hub kernel lookup off in the test process too)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finetune.models._tiny import build_tiny_model
    from finetune.recipe._schema import TinyModelConfig

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", TinyModelConfig(seed=0))


@pytest.fixture(scope="session")
def tiny_image_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from finetune.models._tiny import build_tiny_model
    from finetune.recipe._schema import TinyModelConfig

    return build_tiny_model(tmp_path_factory.mktemp("tiny-mm") / "model", TinyModelConfig(variant="image_text"))


def make_recipe(output_dir: Path, base: Path, **sections: dict) -> "Recipe":  # noqa: F821, UP037
    """A short CPU recipe around the tiny model; `sections` override recipe sections."""
    from finetune.recipe._schema import validate_recipe

    raw: dict = {
        "name": "test",
        "output_dir": str(output_dir),
        "model": {"base": str(base)},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.0},
        "train": {
            "max_steps": 12, "learning_rate": 3e-3, "per_device_train_batch_size": 8,
            "gradient_accumulation_steps": 1, "max_length": 1024, "gradient_checkpointing": False,
            "logging_steps": 4, "warmup_ratio": 0.0,
        },
        "eval": {"max_examples": 6, "max_new_tokens": 8},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return validate_recipe(raw)


@pytest.fixture(scope="session")
def recipe_factory():
    """`make_recipe` for tests that need a recipe of their own."""
    return make_recipe


@pytest.fixture(scope="session")
def trained_recipe(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path):
    """Prepared bundled data + a 12-step QLoRA adapter on the tiny model."""
    from finetune.stages import prepare_stage
    from finetune.train._sft import train

    recipe = make_recipe(tmp_path_factory.mktemp("run"), tiny_model_dir)
    prepare_stage(recipe)
    train(recipe)
    return recipe


SHORT_CHATS = [
    ("Что означает гемоглобин 98 г/л?", "Это ниже нормы: возможна анемия."),
    ("Как принимать метформин?", "Во время еды, дважды в день."),
    ("Давление 150/95 — это много?", "Да, это артериальная гипертензия."),
    ("Что такое ЭКГ?", "Запись электрической активности сердца."),
    ("Нужен ли рентген при кашле?", "Да, если кашель дольше трёх недель."),
    ("Сколько длится курс амоксициллина?", "Обычно от семи до десяти дней."),
    ("Қан қысымы 140/90 қалыпты ма?", "Жоқ, бұл жоғары қан қысымы."),
    ("Глюкоза 7,8 ммоль/л нені білдіреді?", "Бұл гипергликемия белгісі."),
    ("Аспиринді қалай ішу керек?", "Тамақтан кейін, дәрігер айтқандай."),
    ("Безгек кезінде не істеу керек?", "Көп су ішіп, дәрігерге қаралыңыз."),
    ("血压160/100严重吗？", "属于二级高血压，需要治疗。"),
    ("空腹血糖7.5是什么意思？", "提示糖尿病，需要复查。"),
    ("头痛三天怎么办？", "建议测量血压并就诊。"),
    ("心电图正常说明什么？", "说明心脏电活动没有明显异常。"),
    ("Какая норма пульса?", "От шестидесяти до девяноста в минуту."),
    ("Что показывает общий анализ крови?", "Эритроциты, лейкоциты и тромбоциты."),
    ("Температура 38,5 — что делать?", "Принять жаропонижающее и пить больше."),
    ("Холестерин 6,2 — это высокий?", "Да, выше рекомендуемого уровня."),
    ("咳嗽两周需要拍片吗？", "建议拍胸片排除肺炎。"),
    ("Тұмау кезінде антибиотик керек пе?", "Жоқ, тұмау вирустан болады."),
]


def short_chat_rows() -> list[dict]:
    """Twenty short ru/kk/zh chats (every third with a system turn): training tests take well under a second a step."""
    rows = []
    for index, (question, answer) in enumerate(SHORT_CHATS):
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        if index % 3 == 0:
            messages.insert(0, {"role": "system", "content": "Вы — врач-терапевт."})
        rows.append({"messages": messages})
    return rows


@pytest.fixture(scope="session")
def short_recipe():
    """A recipe whose data dir holds the short chats (16 train, 4 validation), 128-token rows, 2 steps.

    `model={"load_in_4bit": False}` trains on fp32 weights, several times faster on CPU, for tests of the loop
    itself rather than of QLoRA."""
    import json

    def build(output_dir: Path, base: Path, model: dict | None = None, **train: object) -> "Recipe":  # noqa: F821, UP037
        settings = {"max_steps": 2, "per_device_train_batch_size": 2, "max_length": 128, "logging_steps": 1, **train}
        recipe = make_recipe(output_dir, base, data={"quality": {"max_tokens": 128}}, lora={"r": 4, "alpha": 8},
                             train=settings, model=model or {})
        recipe.data_dir.mkdir(parents=True, exist_ok=True)
        rows = [json.dumps(row, ensure_ascii=False) for row in short_chat_rows()]
        (recipe.data_dir / "train.jsonl").write_text("\n".join(rows[:16]) + "\n", encoding="utf-8")
        (recipe.data_dir / "validation.jsonl").write_text("\n".join(rows[16:]) + "\n", encoding="utf-8")
        return recipe

    return build
