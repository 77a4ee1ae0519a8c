"""Throughput and memory of `prepare` on generated clinic notes, with de-identification on.

    python scripts/bench_prepare.py [--notes 100000] [--baseline 10000] [--no-ner] [--stages]

Writes N synthetic discharge notes (Russian, Kazakh and Chinese, each with names, ID numbers,
phones, e-mails, addresses and dates in the text) as JSON Lines, prepares them with two worker
processes (both cores), and prints records/s, records/s per core and the peak resident memory of
the main process and of the largest worker. A single-process run on the first ``--baseline`` notes
is printed beside it, with the ratio. De-identification is the default one, natasha's NER included (it
reads Russian text, and every Russian note has a word it must read: a drug's brand name); ``--no-ner``
leaves the model out. The model is loaded before the timed runs. ``--stages`` also prints milliseconds
per note of the main stages on one core (de-identification with and without NER, lingua, MinHash), timed
one by one on the baseline notes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import tempfile
import time
from pathlib import Path

from data_prep.config import DataConfig
from data_prep.national_ids import fake_cn_resident, fake_iin, fake_snils
from data_prep.prepare import prepare

RU = (
    "Пациент {name}, СНИЛС {snils}, тел. {phone}, e-mail {email}, проживает: г. Тверь, ул. Ленина, д. {n}. "
    "Поступил {date} с жалобами на головные боли в затылочной области, головокружение, одышку при ходьбе до {n} м. "
    "Артериальная гипертензия в течение {n} лет, терапию принимал нерегулярно, из препаратов называет Конкор. "
    "Лечащий врач {doctor}."
)
KK = (
    "Науқас {name}, ЖСН {iin}, тел. {phone}, мекенжайы: Алматы қ., Абай даңғылы, {n}-үй. {date} бас ауруы, "
    "әлсіздік, ентігу шағымдарымен түсті. Артериялық гипертензия {n} жыл бойы, үйде Конкор қабылдайды. "
    "Емдеуші дәрігер {doctor}."
)
ZH = (
    "患者{zhname}，男，{n}岁，身份证号{cnid}，电话138{n8}，于{zhdate}因头痛头晕{n}天入院。既往高血压病史{n}年，"
    "服药不规律。主治医师：{zhdoctor}。"
)
RU_NAMES = ["Иванов Пётр Сергеевич", "Смирнова Ольга Николаевна", "Кузнецов Андрей Игоревич", "Попова Мария Павловна"]
KK_NAMES = ["Әбенов Нұрлан Серікұлы", "Сейітова Айгүл Қайратқызы", "Омаров Бекжан Ерланұлы"]
ZH_NAMES = ["王建国", "李秀英", "张伟", "刘洋", "陈静"]


def generate(path: Path, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            lang = ("ru", "kk", "zh")[i % 3]
            n = rng.randint(2, 60)
            date = f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.20{rng.randint(15, 25)}"
            values = {
                "name": rng.choice(RU_NAMES if lang == "ru" else KK_NAMES),
                "doctor": rng.choice(RU_NAMES),
                "snils": fake_snils(rng),
                "iin": fake_iin(rng),
                "cnid": fake_cn_resident(rng),
                "n": n,
                "phone": f"+7 9{rng.randint(10, 99)} {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}",  # noqa: E501
                "email": f"user{i}@mail.ru",
                "date": date,
                "n8": rng.randint(10000000, 99999999),
                "zhname": rng.choice(ZH_NAMES),
                "zhdoctor": rng.choice(ZH_NAMES),
                "zhdate": f"20{rng.randint(15, 25)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
            }
            history = {"ru": RU, "kk": KK, "zh": ZH}[lang].format(**values)
            diagnosis = {
                "ru": "Гипертоническая болезнь II стадии",
                "kk": "Артериялық гипертензия",
                "zh": "高血压病2级",
            }[lang]
            labs = [
                {
                    "name": "Гемоглобин" if lang != "zh" else "血红蛋白",
                    "value": rng.randint(90, 170),
                    "unit": "г/л" if lang != "zh" else "g/L",
                    "ref_low": 120,
                    "ref_high": 160,
                }
            ]
            row = {
                "patient_id": f"P{i // 2}",
                "lang": lang,
                "complaints": history.split(". ")[1] if lang != "zh" else "头痛头晕",
                "history": history,
                "diagnosis": diagnosis,
                "icd10": "I11.9",
                "labs": labs,
                "prescriptions": ["Эналаприл 10 мг утром"],
                "recommendations": f"Контроль АД, визит через {n} дней",
            }
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def run(path: Path, out: Path, workers: int, ner: bool) -> tuple[int, float]:
    config = DataConfig.model_validate(
        {
            "sources": [{"path": str(path), "lang": "auto", "tasks": ["structured_summary", "lab_explanation"]}],
            "deid": {"enabled": True, "ner": ner},
            "workers": workers,
        }
    )
    start = time.perf_counter()
    card = prepare(config, out)
    return card["records"]["in"], time.perf_counter() - start


def stage_times(path: Path) -> dict[str, float]:
    """Milliseconds per note of each main stage, on one core, for the notes in ``path``."""
    from data_prep.config import DeidConfig
    from data_prep.dedup import signature
    from data_prep.deid import deidentify_many
    from data_prep.langid import detect_lang, record_text
    from data_prep.prepare import CHUNK
    from data_prep.records import Record

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    records = [
        Record(path.name, f"{path.name}:{n}", row["patient_id"], row["lang"],
               {k: v for k, v in row.items() if k not in ("patient_id", "lang")})
        for n, row in enumerate(rows, start=1)
    ]
    texts = [record_text(r.fields, limit=10**9) for r in records]
    chunks = [records[i : i + CHUNK] for i in range(0, len(records), CHUNK)]

    def deid(config: DeidConfig) -> None:
        for chunk in chunks:  # as `prepare` does: a chunk of records at a time
            deidentify_many([(record, config, "bench") for record in chunk])

    stages = {
        "de-identification, patterns": lambda: deid(DeidConfig(ner=False)),
        "de-identification, +NER": lambda: deid(DeidConfig(ner=True)),
        "language check (lingua)": lambda: [detect_lang(record_text(r.fields)) for r in records],
        "MinHash, 2 per note": lambda: [signature(t) for t in texts for _ in range(2)],
    }
    times = {}
    for name, run_stage in stages.items():
        start = time.perf_counter()
        run_stage()
        times[name] = 1000 * (time.perf_counter() - start) / len(records)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=10_000)
    parser.add_argument("--no-ner", dest="ner", action="store_false", help="leave natasha's NER out")
    parser.add_argument("--stages", action="store_true", help="also time the main stages one by one")
    args = parser.parse_args()
    if args.ner:
        from data_prep.ner import _tagger

        _tagger()  # loaded once here; the forked workers inherit it
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        notes, small = tmp_path / "notes.jsonl", tmp_path / "small.jsonl"
        generate(notes, args.notes)
        generate(small, args.baseline)
        print(
            f"{args.notes} notes, {notes.stat().st_size / 1e6:.0f} MB; de-identification on, NER "
            f"{'on' if args.ner else 'off'}; {os.cpu_count()} CPUs"
        )
        n1, t1 = run(small, tmp_path / "out1", 1, args.ner)
        rss_main_1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        n2, t2 = run(notes, tmp_path / "out2", 2, args.ner)
        rss_main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rss_worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        stages = stage_times(small) if args.stages else {}
    print(f"{'run':28} {'records':>8} {'seconds':>8} {'records/s':>10} {'per core':>9}")
    print(f"{'1 process (baseline)':28} {n1:8d} {t1:8.1f} {n1 / t1:10.0f} {n1 / t1:9.0f}")
    print(f"{'2 workers (both cores)':28} {n2:8d} {t2:8.1f} {n2 / t2:10.0f} {n2 / t2 / 2:9.0f}")
    print(f"speed-up with 2 workers: {(n2 / t2) / (n1 / t1):.2f}x; target ≥ 1000 notes/s per core")
    print(
        f"peak RSS: main process {rss_main:.0f} MiB (after the baseline: {rss_main_1:.0f} MiB), "
        f"largest worker {rss_worker:.0f} MiB"
    )
    for name, ms in stages.items():
        print(f"{name:32} {ms:6.2f} ms per note (one core)")


if __name__ == "__main__":
    main()
