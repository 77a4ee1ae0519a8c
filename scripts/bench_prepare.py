"""Throughput and memory of `prepare` on generated clinic notes, with de-identification on.

    python scripts/bench_prepare.py [--notes 100000] [--baseline 10000] [--no-ner] [--stages]

Writes N synthetic discharge notes (Russian, Kazakh and Chinese, each with names, ID numbers,
phones, e-mails, addresses and dates in the text) as JSON Lines, prepares them with two worker
processes (both cores), and prints records/s, records/s per core and the peak resident memory of
the main process and of the largest worker. A single-process run on the first ``--baseline`` notes
is printed beside it, with the ratio. De-identification is the default one, natasha's NER included (it
reads Russian text, and every Russian note has a word it must read: a drug's brand name); ``--no-ner``
leaves the model out. The model is loaded before the timed runs. The CPU time of the main process and of
the workers in the two-worker run is printed per note. ``--stages`` also prints milliseconds per note of the
main stages on one core (de-identification with and without NER, lingua, the two tasks, MinHash of the two
examples), timed one by one on the baseline notes.
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
from data_prep.deid import fake_cn_resident, fake_iin, fake_snils
from data_prep.files import jsonl_line
from data_prep.prepare import prepare

RU = (
    "Пациент {name}, СНИЛС {snils}, тел. {phone}, e-mail {email}, проживает: г. Тверь, ул. Ленина, д. {n}. "
    "Поступил {date} с жалобами на {complaints}. {diagnosis} в анамнезе {years} лет, терапию принимал {adherence}, "
    "из препаратов называет {brand}. Лечащий врач {doctor}."
)
KK = (
    "Науқас {name}, ЖСН {iin}, тел. {phone}, мекенжайы: Алматы қ., Абай даңғылы, {n}-үй. {date} {complaints} "
    "шағымдарымен түсті. {diagnosis} {years} жыл бойы, үйде {brand} қабылдайды. Емдеуші дәрігер {doctor}."
)
ZH = (
    "患者{zhname}，{sex}，{age}岁，身份证号{cnid}，电话138{n8}，于{zhdate}因{complaints}{n}天入院。既往{diagnosis}病史{years}年，"
    "服药{adherence}。主治医师：{zhdoctor}。"
)
RU_NAMES = ["Иванов Пётр Сергеевич", "Смирнова Ольга Николаевна", "Кузнецов Андрей Игоревич", "Попова Мария Павловна"]
KK_NAMES = ["Әбенов Нұрлан Серікұлы", "Сейітова Айгүл Қайратқызы", "Омаров Бекжан Ерланұлы"]
ZH_NAMES = ["王建国", "李秀英", "张伟", "刘洋", "陈静"]
# Clinical content drawn per note, so that de-identified notes differ as real ones do (a few template notes
# would make most examples exact duplicates, and the benchmark would mostly measure their rejection).
COMPLAINTS = {
    "ru": ["головные боли", "головокружение", "одышку при ходьбе", "боли в груди при нагрузке", "сердцебиение",
           "отёки голеней", "слабость", "кашель с мокротой", "повышение температуры до 38 °C", "боли в эпигастрии",
           "тошноту", "нарушение сна"],
    "kk": ["бас ауруы", "әлсіздік", "ентігу", "жүрек қағуы", "кеуде ауыруы", "жөтел", "аяқтың ісінуі",
           "дене қызуының көтерілуі", "ұйқының бұзылуы", "жүрек айнуы"],
    "zh": ["头痛", "头晕", "胸闷", "气短", "心悸", "咳嗽", "发热", "乏力", "恶心", "腹痛", "下肢水肿", "失眠"],
}
DIAGNOSES = {
    "ru": [("Гипертоническая болезнь II стадии", "I11.9"), ("Ишемическая болезнь сердца", "I25.9"),
           ("Хроническая сердечная недостаточность", "I50.0"), ("Сахарный диабет 2 типа", "E11.9"),
           ("Внебольничная пневмония", "J18.9"), ("Хронический гастрит", "K29.5"), ("ХОБЛ", "J44.1"),
           ("Фибрилляция предсердий", "I48.9")],
    "kk": [("Артериялық гипертензия", "I10"), ("Жүректің ишемиялық ауруы", "I25.9"), ("Қант диабеті 2 типі", "E11.9"),
           ("Пневмония", "J18.9"), ("Созылмалы гастрит", "K29.5"), ("Жүрек жеткіліксіздігі", "I50.0")],
    "zh": [("高血压病", "I11.9"), ("冠心病", "I25.1"), ("2型糖尿病", "E11.9"), ("社区获得性肺炎", "J18.9"),
           ("慢性胃炎", "K29.5"), ("心力衰竭", "I50.0")],
}
BRANDS = ["Конкор", "Престариум", "Лозап", "Кардиомагнил", "Аторис", "Глюкофаж", "Омез", "Беродуал"]
DRUGS = {
    "ru": ["Эналаприл 10 мг утром", "Бисопролол 5 мг утром", "Аторвастатин 20 мг вечером",
           "Метформин 1000 мг 2 раза в день", "Омепразол 20 мг утром", "Амоксициллин 500 мг 3 раза в день",
           "Фуросемид 40 мг утром", "Ацетилсалициловая кислота 100 мг вечером"],
    "zh": ["氨氯地平 5mg 每日一次", "二甲双胍 0.5g 每日两次", "阿托伐他汀 20mg 每晚一次", "阿司匹林 100mg 每日一次",
           "奥美拉唑 20mg 每日一次", "呋塞米 20mg 每日一次"],
}
DRUGS["kk"] = DRUGS["ru"]
LABS = [  # (ru/kk name, zh name, unit, low, high, lowest, highest)
    ("Гемоглобин", "血红蛋白", "г/л", 120, 160, 90, 170), ("Глюкоза", "葡萄糖", "ммоль/л", 3.9, 6.1, 3.5, 12.0),
    ("Креатинин", "肌酐", "мкмоль/л", 62, 115, 50, 200), ("Лейкоциты", "白细胞", "10^9/л", 4.0, 9.0, 3.0, 15.0),
    ("Холестерин", "总胆固醇", "ммоль/л", 3.0, 5.2, 3.0, 8.5), ("АЛТ", "谷丙转氨酶", "Ед/л", 0, 41, 10, 120),
]
ADVICE = {
    "ru": ["Контроль АД", "Диета с ограничением соли", "Контроль гликемии", "Повторный анализ крови",
           "Консультация кардиолога", "ЭКГ в динамике"],
    "kk": ["Қан қысымын бақылау", "Тұзды шектеу", "Қан талдауын қайталау", "Кардиолог кеңесі", "ЭКГ бақылау"],
    "zh": ["监测血压", "低盐饮食", "复查血常规", "心内科随诊", "监测血糖"],
}
VISIT = {"ru": "визит через {n} дней", "kk": "{n} күннен кейін қайта келу", "zh": "{n}天后复诊"}


def generate(path: Path, count: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        for i in range(count):
            lang = ("ru", "kk", "zh")[i % 3]
            n = rng.randint(2, 60)
            date = f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.20{rng.randint(15, 25)}"
            diagnosis, icd10 = rng.choice(DIAGNOSES[lang])
            complaints = rng.sample(COMPLAINTS[lang], rng.randint(2, 4))
            values = {
                "name": rng.choice(RU_NAMES if lang == "ru" else KK_NAMES),
                "doctor": rng.choice(RU_NAMES),
                "snils": fake_snils(rng),
                "iin": fake_iin(rng),
                "cnid": fake_cn_resident(rng),
                "n": n,
                "years": rng.randint(1, 25),
                "age": rng.randint(30, 85),
                "sex": rng.choice(["男", "女"]),
                "phone": f"+7 9{rng.randint(10, 99)} {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}",  # noqa: E501
                "email": f"user{i}@mail.ru",
                "date": date,
                "n8": rng.randint(10000000, 99999999),
                "zhname": rng.choice(ZH_NAMES),
                "zhdoctor": rng.choice(ZH_NAMES),
                "zhdate": f"20{rng.randint(15, 25)}年{rng.randint(1, 12)}月{rng.randint(1, 28)}日",
                "complaints": ("、" if lang == "zh" else ", ").join(complaints),
                "diagnosis": diagnosis,
                "brand": rng.choice(BRANDS),
                "adherence": rng.choice(
                    {"ru": ["нерегулярно", "регулярно"], "kk": ["тұрақты"], "zh": ["不规律", "规律"]}[lang]
                ),
            }
            history = {"ru": RU, "kk": KK, "zh": ZH}[lang].format(**values)
            labs = [
                {
                    "name": ru_name if lang != "zh" else zh_name,
                    "value": round(rng.uniform(lowest, highest), 1),
                    "unit": unit,
                    "ref_low": low,
                    "ref_high": high,
                }
                for ru_name, zh_name, unit, low, high, lowest, highest in rng.sample(LABS, rng.randint(2, 4))
            ]
            row = {
                "patient_id": f"P{i // 2}",
                "lang": lang,
                "complaints": values["complaints"],
                "history": history,
                "diagnosis": diagnosis,
                "icd10": icd10,
                "labs": labs,
                "prescriptions": rng.sample(DRUGS[lang], rng.randint(1, 3)),
                "recommendations": ". ".join([*rng.sample(ADVICE[lang], 2), VISIT[lang].format(n=n)]),
            }
            handle.write(jsonl_line(row))


TASKS_RUN = ("structured_summary", "lab_explanation")


def bench_config(path: Path, workers: int, ner: bool) -> DataConfig:
    return DataConfig.model_validate(
        {
            "sources": [{"path": str(path), "lang": "auto", "tasks": list(TASKS_RUN)}],
            "deid": {"enabled": True, "ner": ner},
            "workers": workers,
        }
    )


def run(path: Path, out: Path, workers: int, ner: bool) -> tuple[int, float]:
    start = time.perf_counter()
    card = prepare(bench_config(path, workers, ner), out)
    return card["records"]["in"], time.perf_counter() - start


def stage_times(path: Path) -> dict[str, float]:
    """Milliseconds per note of each main stage, on one core, for the notes in ``path``."""
    from data_prep.config import DeidConfig
    from data_prep.dedup import content_text, signatures
    from data_prep.deid import deidentify_many
    from data_prep.langid import detect_lang, record_text
    from data_prep.prepare import CHUNK, prompts_of
    from data_prep.records import Record
    from data_prep.tasks import TASKS

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    records = [
        Record(path.name, f"{path.name}:{n}", row["patient_id"], row["lang"],
               {k: v for k, v in row.items() if k not in ("patient_id", "lang")})
        for n, row in enumerate(rows, start=1)
    ]
    chunks = [records[i : i + CHUNK] for i in range(0, len(records), CHUNK)]
    prompts = prompts_of(bench_config(path, 1, True))

    def deid(config: DeidConfig) -> list[Record]:
        # as `prepare` does: a chunk of records at a time
        return [done for chunk in chunks for done, _ in deidentify_many([(r, config, "bench") for r in chunk])]

    cleaned = deid(DeidConfig(ner=False))
    examples = [example for record in cleaned for task in TASKS_RUN for example in TASKS[task](record, prompts)]
    contents = [content_text(e, prompts.instruction(e.meta["task"], e.meta["lang"])) for e in examples]
    content_chunks = [contents[i : i + 2 * CHUNK] for i in range(0, len(contents), 2 * CHUNK)]  # as `prepare` does
    stages = {
        "de-identification, patterns": lambda: deid(DeidConfig(ner=False)),
        "de-identification, +NER": lambda: deid(DeidConfig(ner=True)),
        "language check (lingua)": lambda: [detect_lang(record_text(r.fields)) for r in records],
        "the two tasks": lambda: [TASKS[task](record, prompts) for record in cleaned for task in TASKS_RUN],
        "MinHash of the two examples": lambda: [signatures(texts) for texts in content_chunks],
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
        from data_prep.deid import load_model

        load_model()  # loaded once here; the forked workers inherit it
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
        before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        n2, t2 = run(notes, tmp_path / "out2", 2, args.ner)
        after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = [
            1000 * (a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime) / n2
            for a, b in zip(after, before, strict=True)
        ]
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
    print(f"CPU per note in the 2-worker run: main process {cpu[0]:.2f} ms, workers {cpu[1]:.2f} ms")
    for name, ms in stages.items():
        print(f"{name:32} {ms:6.2f} ms per note (one core)")


if __name__ == "__main__":
    main()
