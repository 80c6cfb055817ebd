"""Every endpoint through the real app (real index, real model), and a real server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings
from tests.conftest import CORPUS


@pytest.fixture(scope="module")
def client(seed_index, seed_index_dir: Path):  # type: ignore[no-untyped-def]
    app = create_app(Settings(index_dir=seed_index_dir), index=seed_index)
    with TestClient(app) as c:
        yield c


def test_search_json_shape(client: TestClient) -> None:
    r = client.get("/api/search", params={"q": "Which receptor does psilocybin act on?", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert body["query"] == "Which receptor does psilocybin act on?"
    assert body["took_ms"] >= 0
    assert len(body["results"]) == 3
    top = body["results"][0]
    assert set(top) >= {
        "id",
        "score",
        "text",
        "document",
        "episode",
        "section",
        "timestamp",
        "url",
        "links",
    }
    assert top["document"]["title"] == "Experimental depression treatments"
    assert top["episode"] == {
        "id": "Xu1FMCxoEFc",
        "title": "Understanding & Conquering Depression",
        "date": "2021-08-23",
    }
    assert top["section"] == ["Psilocybin and Serotonin Receptor Modulation"]
    # The best sentence is the passage's first; the citation follows the second,
    # so for this sentence the time is approximate, as in the answer box.
    assert top["timestamp"]["label"] == "1:26:21" and top["timestamp"]["exact"] is False
    assert top["timestamp"]["seconds"] == 5181.0
    assert top["timestamp"]["verified"] is None  # no transcript in this index to check against
    assert top["url"] == "https://www.youtube.com/watch?v=Xu1FMCxoEFc&t=5181s"
    assert top["links"] == ["therapeutic_benefits_of_psilocybin_for_mental_health"]
    assert top["sentence"] in top["text"]


def test_result_source_offsets_slice_back(client: TestClient) -> None:
    r = client.get("/api/search", params={"q": "ketamine dissociation", "k": 5}).json()
    for res in r["results"]:
        src = res["source"]
        assert not Path(src["path"]).is_absolute()  # relative to the ingested folder
        with open(CORPUS / src["path"], newline="", encoding="utf-8") as fh:
            raw = fh.read()
        verbatim = raw[src["start"] : src["end"]]
        assert res["text"].split()[0] in verbatim


def test_no_time_is_null_not_invented(client: TestClient) -> None:
    r = client.get(
        "/api/search", params={"q": "ketamine as an NMDA receptor antagonist", "k": 5}
    ).json()
    nmda = [x for x in r["results"] if x["section"] == ["Ketamine and NMDA Receptor Antagonists"]]
    assert nmda and nmda[0]["timestamp"] is None and nmda[0]["url"] is None


def test_ask(client: TestClient) -> None:
    r = client.get(
        "/api/ask", params={"q": "Who found a one to three hertz rhythm under ketamine?"}
    )
    assert r.status_code == 200
    body = r.json()
    assert 1 <= len(body["answer"]) <= 3
    first = body["answer"][0]
    assert "Vesuna" in first["text"]
    assert first["timestamp"]["label"] == "1:23:04" and first["timestamp"]["exact"]
    assert first["url"].endswith("&t=4984s")
    assert first["result_id"] in {x["id"] for x in body["results"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 1001}, "q"),
        ({"q": "ok", "k": 0}, "k"),
        ({"q": "ok", "k": 51}, "k"),
        ({"q": "ok", "k": "many"}, "k"),
        ({"q": "ok", "rerank": 21}, "rerank"),
        ({"q": "ok", "rerank": "some"}, "rerank"),
        ({"q": "ok", "kind": "video"}, "kind"),
        ({"q": "ok", "after": "yesterday"}, "after"),
    ],
)
@pytest.mark.parametrize("path", ["/api/search", "/api/ask"])
def test_bad_input_is_422_naming_the_field(
    client: TestClient, path: str, params: dict[str, object], field: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 422
    detail = r.json()["detail"][0]
    assert detail["loc"][-1] == field and detail["msg"]
    # ...and costs nothing else: the next request is fine.
    assert client.get(path, params={"q": "ketamine"}).status_code == 200


def test_page_renders_on_server_without_javascript(client: TestClient) -> None:
    r = client.get("/", params={"q": "Which receptor does psilocybin act on?"})
    assert r.status_code == 200
    html = r.text
    # one deferred script, only for playing and copying; everything shown is in the HTML
    assert html.count("<script") == 1 and "/static/page.js" in html
    assert html.count("<mark>") == html.count('<article class="result') == 5
    assert 'href="https://www.youtube.com/watch?v=Xu1FMCxoEFc&amp;t=5181s"' in html
    assert "Understanding &amp; Conquering Depression" in html
    assert "Answer" in html and "1:26:21" in html


def test_page_marks_approximate_times(client: TestClient) -> None:
    html = client.get("/", params={"q": "Why is ketamine not a first-line treatment?", "k": 5}).text
    assert "≈" in html  # answer sentences without their own citation are marked


def test_page_escapes_query_and_shows_errors_politely(client: TestClient) -> None:
    r = client.get("/", params={"q": "<script>alert(1)</script>"})
    assert r.status_code == 200
    assert "<script>alert(1)</script>" not in r.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    bad = client.get("/", params={"q": "   "})
    assert bad.status_code == 422
    assert "the question is empty" in bad.text and "Traceback" not in bad.text
    bad_k = client.get("/", params={"q": "sleep", "k": "lots"})
    assert bad_k.status_code == 422 and "whole number" in bad_k.text


def test_home_health_docs_metrics(client: TestClient) -> None:
    assert client.get("/").status_code == 200
    h = client.get("/healthz").json()
    assert h["status"] == "ok" and h["passages"] == 8
    assert client.get("/openapi.json").json()["paths"]["/api/search"]
    assert client.get("/docs").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    assert "http_requests_total" in client.get("/metrics").text


def test_real_server_over_http(live_server: str) -> None:
    r = httpx.get(
        f"{live_server}/api/search", params={"q": "psilocybin receptor", "k": 2}, timeout=10
    )
    assert r.status_code == 200 and len(r.json()["results"]) == 2
    assert httpx.get(f"{live_server}/api/search", params={"q": ""}, timeout=10).status_code == 422
    assert (
        httpx.get(f"{live_server}/api/ask", params={"q": "ketamine"}, timeout=10).status_code == 200
    )


def test_out_of_scope_question_abstains(client: TestClient) -> None:
    body = client.get("/api/ask", params={"q": "How do I file my taxes this year?"}).json()
    assert body["abstained"] is True and body["answer"] == []
    assert body["results"] and all(r["weak"] for r in body["results"])
    html = client.get("/", params={"q": "How do I file my taxes this year?"}).text
    assert "Nothing in the library answers this question" in html and "weak match" in html
    inside = client.get("/api/ask", params={"q": "How does ketamine cause dissociation?"}).json()
    assert inside["abstained"] is False and inside["answer"]
