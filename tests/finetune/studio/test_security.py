"""The studio keeps data on the machine: loopback unless a token guards every request, path inputs held inside
the recipe's directories (`../` and absolute paths refused), uploads kept in the run's directory, no patient
text in its logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from data_prep.samples import bundled_path
from finetune.cli import main
from finetune.studio import PathRefused, Studio, create_app, inside, is_loopback, required_token

TOKEN = "s3cret-token-of-32-characters!!!"


def _studio(tmp_path: Path, token: str | None = None, extra: tuple[str, ...] = ()) -> Studio:
    overrides = [f"output_dir={tmp_path / 'run'}", f"model.base={tmp_path / 'run' / 'base-model'}", *extra]
    return Studio.open(None, overrides, None, token)


@pytest.fixture()
def client(tmp_path: Path) -> TestClient:
    return TestClient(create_app(_studio(tmp_path)), base_url="http://127.0.0.1:7860")


def test_loopback_needs_no_token_and_any_other_host_needs_one(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.0.0.5")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("studio.example")
    assert required_token("127.0.0.1") is None
    monkeypatch.delenv("MEDTUNE_STUDIO_TOKEN", raising=False)
    with pytest.raises(ValueError, match="MEDTUNE_STUDIO_TOKEN"):
        required_token("0.0.0.0")
    monkeypatch.setenv("MEDTUNE_STUDIO_TOKEN", "short")
    with pytest.raises(ValueError, match="at least 16"):
        required_token("0.0.0.0")
    monkeypatch.setenv("MY_TOKEN", TOKEN)
    assert required_token("0.0.0.0", "MY_TOKEN") == TOKEN


def test_the_command_refuses_to_listen_beyond_loopback_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("STUDIO_TOKEN_FOR_TEST", raising=False)
    code = main(["studio", "--host", "0.0.0.0", "--port", "0", "--token-env", "STUDIO_TOKEN_FOR_TEST"])
    assert code == 2
    assert "STUDIO_TOKEN_FOR_TEST" in capsys.readouterr().err


def test_every_request_needs_the_token_when_one_is_set(tmp_path: Path) -> None:
    client = TestClient(create_app(_studio(tmp_path, TOKEN)), base_url="http://10.0.0.5:7860")
    for path in ("/data", "/run", "/report", "/compare", "/report/html", "/static/studio.js", "/login/../data"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"] == "/login", path
    assert client.get("/api/runs").status_code == 401
    assert client.post("/api/runs", json={"verb": "eval"}).status_code == 401
    assert client.post("/api/upload?name=x.csv", content=b"a").status_code == 401
    assert client.get("/api/runs", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    assert client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {"runs": []}
    assert "Sign in" in client.get("/login").text
    refused = client.post("/login", content="token=nope", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "not the studio" in refused.text and "medtune_studio_token" not in refused.headers.get("set-cookie", "")
    signed = client.post("/login", content=f"token={TOKEN.replace('!', '%21')}", follow_redirects=False,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert signed.status_code == 303 and "httponly" in signed.headers["set-cookie"].lower()
    assert client.get("/run").status_code == 200  # the cookie now goes with every request


def test_loopback_answers_loopback_names_only_and_refuses_cross_origin_changes(client: TestClient) -> None:
    assert client.get("/data", headers={"host": "attacker.example"}).status_code == 421  # DNS rebinding
    assert client.get("/run", headers={"host": "localhost:7860"}).status_code == 200
    refused = client.post("/api/runs", json={"verb": "eval"}, headers={"origin": "http://attacker.example"})
    assert refused.status_code == 403
    form = client.post("/api/runs", content="verb=eval", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 400 and "JSON" in form.json()["error"]


@pytest.mark.parametrize("path", ["../../../etc/passwd", "/etc/passwd", "{run}/../outside.csv", "{run}/../../etc"])
def test_path_inputs_cannot_leave_the_recipe_directories(tmp_path: Path, path: str) -> None:
    studio = _studio(tmp_path)
    outside = tmp_path / "outside.csv"
    outside.write_text("patient,complaints\nИванов,кашель\n", encoding="utf-8")
    path = path.format(run=tmp_path / "run")
    with pytest.raises(PathRefused, match="outside the directories"):
        inside(path, studio.roots)
    client = TestClient(create_app(studio), base_url="http://127.0.0.1")
    page = client.get("/data", params={"source": f"file:{path}"})
    assert "outside the directories this recipe names" in page.text and "Иванов" not in page.text
    review = client.post("/api/review", json={"source": f"file:{path}", "index": 0, "missed": [], "wrong": []})
    assert review.status_code == 400 and "outside the directories" in review.json()["error"]


def test_a_link_out_of_the_run_directory_is_refused(tmp_path: Path) -> None:
    studio = _studio(tmp_path)
    (tmp_path / "run").mkdir()
    (tmp_path / "secret.csv").write_text("x\n", encoding="utf-8")
    (tmp_path / "run" / "link.csv").symlink_to(tmp_path / "secret.csv")
    with pytest.raises(PathRefused):
        inside(tmp_path / "run" / "link.csv", studio.roots)


def test_a_source_folder_the_recipe_names_is_reachable(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    (exports / "notes.jsonl").write_text(bundled_path("ru").read_text(encoding="utf-8"), encoding="utf-8")
    studio = _studio(tmp_path, extra=(f"data.sources=[{{path: {exports / 'notes.jsonl'}, lang: ru}}]",))
    assert inside(exports / "notes.jsonl", studio.roots) == (exports / "notes.jsonl").resolve()
    with pytest.raises(PathRefused):
        inside(tmp_path / "elsewhere.jsonl", studio.roots)


@pytest.mark.parametrize("name", ["../../escape.jsonl", "/etc/escape.jsonl", "..\\..\\escape.jsonl"])
def test_uploads_stay_in_the_run_directory(client: TestClient, tmp_path: Path, name: str) -> None:
    body = bundled_path("ru").read_bytes()
    response = client.post("/api/upload", params={"name": name}, content=body)
    assert response.status_code == 200, response.text
    saved = Path(response.json()["source"].removeprefix("file:"))
    assert saved == (tmp_path / "run" / "studio" / "uploads" / "escape.jsonl").resolve()
    assert saved.read_bytes() == body
    assert not (tmp_path / "escape.jsonl").exists() and not Path("/etc/escape.jsonl").exists()
    for bad in ("..", ".hidden", ""):
        assert client.post("/api/upload", params={"name": bad}, content=b"x").status_code == 400


def test_no_patient_text_in_the_studio_logs(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    first = json.loads(bundled_path("ru").read_text(encoding="utf-8").splitlines()[0])
    words = [w for w in json.dumps(first, ensure_ascii=False).split() if len(w) > 6 and w.strip('",:{}').isalpha()]
    assert words
    with caplog.at_level(logging.DEBUG):
        page = client.get("/data", params={"source": "recipe:0", "page_number": 0})
        assert page.status_code == 200 and 'class="pii' in page.text
        saved = client.post("/api/review", json={"source": "recipe:0", "index": 0, "missed": [], "wrong": []})
        assert saved.status_code == 200
        assert client.get("/data", params={"source": "file:/etc/passwd"}).status_code == 200
    assert "GET /data 200" in caplog.text and "POST /api/review 200" in caplog.text
    leaked = [w for w in words if w.strip('",:{}') in caplog.text]
    assert leaked == [] and "/etc/passwd" not in caplog.text
