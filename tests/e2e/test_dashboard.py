"""End to end: the city command's dashboard in a real headless Chromium, against `duhub up`.

The scenario is the hand-worked one of test_publish_and_query; the figures asserted here follow
from it for the campaign window [2022-11-01, 2022-12-01), all areas. Screenshots go to
test-artifacts/ (1920x1080, the wall screen, and 1366x768, a laptop).
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from duhub.v1 import events_pb2 as epb
from duhub.v1 import ingest_pb2, ingest_pb2_grpc
from tests.e2e.hubproc import DUHUB, HubProcess, duhub, serve
from tests.e2e.test_publish_and_query import line, publish, scenario
from tests.infra import _unavailable
from tests.sse import read_event

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--lang=zh-CN",
]
COVERING_VISIT = line(
    "y13",
    "420581",
    13,
    "2022-11-22T00:00:00Z",
    supervisionVisit={
        "campaignId": "vax",
        "groupId": "n1",
        "unitId": "420581103",
        "area": "vaccination",
    },
)
# The county group n1's chips (its detail) as [name, covered].
DETAIL_CHIPS = (
    "return Array.from(document.querySelectorAll('[data-group=\"n1\"] .detail .chip'))"
    ".map((e) => [e.textContent, e.classList.contains('covered')])"
)
# Everything the checks read off the page, in one round trip.
READ_PAGE = """
const text = (e) => (e ? e.textContent.trim() : null);
const all = (s) => Array.from(document.querySelectorAll(s));
const group = (id) => {
  const el = document.querySelector(`.group[data-group="${id}"]`);
  return el && [text(el.querySelector(".count")), text(el.querySelector(".ratio")),
                text(el.querySelector(".full-at"))];
};
return {
  overall: text(document.querySelector("#overall-ratio")),
  overallCount: text(document.querySelector("#overall-count")),
  badge: text(document.querySelector("#full-badge")),
  tiers: Object.fromEntries(all("#tiers [data-tier]").map(
    (e) => [e.dataset.tier, text(e.querySelector(".count"))])),
  tierNums: Object.fromEntries(all("#tiers [data-tier]").map(
    (e) => [e.dataset.tier, text(e.querySelector(".card-label .num"))])),
  structureNums: all(".structure h2 .num, .county-groups h2 .num").map(text),
  groups: {c1: group("c1"), c2: group("c2"), n1: group("n1")},
  chips: Object.fromEntries(all("#city-groups .chip[data-unit]").map(
    (e) => [e.dataset.unit, [text(e), e.classList.contains("covered")]])),
  cells: Object.fromEntries(all('[data-group="n1"] .mosaic [data-unit]').map(
    (e) => [e.dataset.unit, e.classList.contains("covered")])),
  uncovered: all("#uncovered li[data-unit]").map(
    (e) => [e.dataset.unit, text(e.querySelector("b")), text(e.querySelector("span"))]),
  uncoveredCount: text(document.querySelector("#uncovered-count")),
  counties: Object.fromEntries(all("#counties [data-county]").map((e) => [e.dataset.county,
    [text(e.querySelector(".name")), text(e.querySelector(".count")),
     text(e.querySelector(".full-at"))]])),
  kpis: Object.fromEntries(all("#kpis [data-metric]").map(
    (e) => [e.dataset.metric, text(e.querySelector(".value"))])),
  bars: Object.fromEntries(all("#bars g.bar").map(
    (e) => [e.dataset.key, [e.dataset.name, Number(e.dataset.value)]])),
  series: Object.fromEntries(all("#series g.col").map(
    (e) => [e.dataset.key, Number(e.dataset.value)])),
  crumbs: text(document.querySelector("#crumbs")),
  live: document.querySelector("#live").dataset.state,
  error: document.querySelector("#error").hidden ? "" : text(document.querySelector("#error")),
  marker: window.__notReloaded || null,
};
"""


def accepted_over_grpc(hub: HubProcess, event: epb.Event | str) -> None:
    """Publish one event straight over gRPC, as a county node does (the clock of a figure's
    freshness starts when it is answered); it must be accepted."""
    if isinstance(event, str):
        event = json_format.Parse(event, epb.Event())
    with grpc.insecure_channel(hub.address) as channel:
        reply = ingest_pb2_grpc.IngestServiceStub(channel).Publish(
            ingest_pb2.PublishRequest(events=[event]), timeout=30
        )
    assert reply.accepted == 1, reply


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium driven by chromedriver, both from Debian's packages."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium (pip install -e '.[dev]')")
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        _unavailable(f"Chromium and chromedriver ({CHROMIUM}, {CHROMEDRIVER}; 'make browser-deps')")
    # Selenium Manager must never try to download a driver or a browser.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='duhub-chromium-')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        viewport(driver, 1920, 1080)
        yield driver
    finally:
        driver.quit()


def viewport(driver: Any, width: int, height: int) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )


def until(driver: Any, check: Callable[[dict[str, Any]], bool], timeout: float = 10) -> dict:  # type: ignore[type-arg]
    """Return the page's state once `check` holds for it; fail with what the page showed."""
    deadline = time.monotonic() + timeout
    while True:
        page = driver.execute_script(READ_PAGE)
        if check(page):
            return page  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            shown = json.dumps(page, ensure_ascii=False, indent=1)
            raise AssertionError(f"the page never got there; it shows:\n{shown}")
        time.sleep(0.05)


def shot(driver: Any, name: str) -> Path:
    time.sleep(0.8)  # let the colour and bar transitions (0.6 s) finish
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    assert driver.save_screenshot(str(path)), path
    return path


def console_errors(driver: Any) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def press(driver: Any, selector: str, hold: float = 0.15) -> None:
    """Click as a hand does: press, hold a moment, release, where the element is now.

    Not find_element(...).click(): that holds on to the element found, and a live page draws
    its bars, crumbs and counties anew on every change (and on its event stream's hello): a
    redraw in between left a stale element, and the click failed ("stale element reference",
    37 of 40 with the hub taking events). Here the element is looked up and its place read in
    one script; the page holds its next redraw while the button is down."""
    x, y = driver.execute_script(
        "const r = document.querySelector(arguments[0]).getBoundingClientRect();"
        "return [r.x + r.width / 2, r.y + r.height / 2];",
        selector,
    )
    for kind in ("mousePressed", "mouseReleased"):
        driver.execute_cdp_cmd(
            "Input.dispatchMouseEvent",
            {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
        )
        time.sleep(hold if kind == "mousePressed" else 0)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    proc = HubProcess(tmp_path / "data")
    yield proc
    proc.stop()


def test_dashboard_shows_the_scenario_and_follows_it_live(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    done = publish(hub, tmp_path, scenario())
    assert done.returncode == 0, done.stdout + done.stderr
    assert hub.dashboard.startswith("http://127.0.0.1:")

    browser.get(hub.dashboard + "?campaign=vax")
    page = until(browser, lambda p: p["overall"] == "66.7%" and p["kpis"].get("visits") == "6")
    assert page["overallCount"] == "已覆盖 4 / 6 个目标"
    # Its window ended in 2022: not "not yet" (尚未), which read as if it still ran.
    assert page["badge"] == "未实现全覆盖"
    assert page["tiers"] == {"TIER_TASK_FORCE": None, "TIER_CITY": "2 / 3", "TIER_COUNTY": "2 / 3"}
    # "1+7+N" counted from this campaign's groups: 1 task force, 2 city groups, 1 county group
    # (not the article's 7 and N); the per-county list shows its 3 counties.
    assert page["tierNums"] == {"TIER_TASK_FORCE": "1", "TIER_CITY": "2", "TIER_COUNTY": "1"}
    assert page["structureNums"] == ["1+2", "3", "1"]
    # 1 + 7: the city groups with their county HQs, coloured by coverage.
    assert page["groups"]["c1"] == ["2 / 2", "100.0%", "✓ 11-20 09:00"]
    assert page["groups"]["c2"] == ["0 / 1", "0.0%", ""]
    assert page["chips"] == {
        "420581": ["宜都市", True],
        "420582": ["当阳市", True],
        "420583": ["枝江市", False],
    }
    # N: the county group with its townships.
    assert page["groups"]["n1"] == ["2 / 3", "66.7%", ""]
    assert page["cells"] == {"420581101": True, "420581102": True, "420581103": False}
    assert page["uncoveredCount"] == "2"
    assert page["uncovered"] == [
        ["420583", "枝江市", "宜昌市"],
        ["420581103", "竹岩冲镇", "宜都市"],
    ]
    # Per county, with when it became full (Beijing time).
    assert page["counties"] == {
        "420581": ["宜都市", "3 / 4", "未全覆盖"],
        "420582": ["当阳市", "1 / 1", "11-20 09:00"],
        "420583": ["枝江市", "0 / 1", "未全覆盖"],
    }
    # Figures for the campaign window, all areas, the whole city.
    assert page["kpis"] == {
        "visits": "6",
        "problems_found": "2",
        "problems_rectified": "1",
        "problems_open": "1",
        "accountability_persons": "4",
        "sanctioned_persons": "9",
        "talk_persons": "6",
        "talk_persons_top_leader": "5",
        "talk_persons_admonishment": "1",
        "recommendations": "1",
        "regulations_improved": "3",
    }
    assert len(page["bars"]) == 14
    assert page["bars"]["420581"] == ["宜都市", 5]
    assert page["bars"]["420582"] == ["当阳市", 1]
    assert page["bars"]["420583"] == ["枝江市", 0]
    assert page["series"] == {
        "2022-10-31": 5,
        "2022-11-07": 0,
        "2022-11-14": 1,
        "2022-11-21": 0,
        "2022-11-28": 0,
    }
    # The series is asked in Beijing weeks, as the page shows every moment in Beijing time.
    asked = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".filter((n) => n.includes('api/statistics') && n.includes('group_by=week'))"
    )
    assert asked and all("time_zone=Asia%2FShanghai" in url for url in asked), asked
    assert page["crumbs"] == "宜昌市"
    until(browser, lambda p: p["live"] == "live")
    shot(browser, "dashboard.png")

    from selenium.webdriver.common.by import By

    # A county group's chips are built as it is first opened, marked as its mosaic is: built
    # for every group up front, a 100,000-target campaign's page held 200,000 elements.
    assert browser.execute_script(DETAIL_CHIPS) == []
    browser.find_element(By.CSS_SELECTOR, '[data-group="n1"] button.toggle').click()
    opened = [["聂家河镇", True], ["柏花口镇", True], ["竹岩冲镇", False]]
    assert browser.execute_script(DETAIL_CHIPS) == opened

    # Live: one more covering visit shows up without reloading the page.
    browser.execute_script("window.__notReloaded = 'yes'")
    # Straight over gRPC, as a county node does, so the clock starts when it is accepted.
    accepted_over_grpc(hub, COVERING_VISIT)
    accepted = time.monotonic()
    page = until(browser, lambda p: p["overall"] == "83.3%" and p["kpis"]["visits"] == "7", 5)
    latency = time.monotonic() - accepted
    print(f"dashboard updated {latency:.2f} s after the event was accepted")
    assert latency < 2.0
    assert page["marker"] == "yes", "the page was reloaded"
    assert page["groups"]["n1"] == ["3 / 3", "100.0%", "✓ 11-22 08:00"]
    assert page["cells"]["420581103"] is True
    assert page["uncovered"] == [["420583", "枝江市", "宜昌市"]]
    assert page["counties"]["420581"] == ["宜都市", "4 / 4", "11-22 08:00"]
    assert page["tiers"]["TIER_COUNTY"] == "3 / 3"
    # The bars' widths, set by the script: the page's CSP refuses style="…" in markup.
    width = "return document.querySelector('{} .bar i').style.width"
    assert browser.execute_script(width.format('#counties [data-county="420581"]')) == "100%"
    assert browser.execute_script(width.format('#tiers [data-tier="TIER_COUNTY"]')) == "100%"
    assert page["bars"]["420581"] == ["宜都市", 6]
    assert page["series"]["2022-11-21"] == 1
    assert page["badge"] == "未实现全覆盖"  # c2 did not visit 枝江市 in the window
    # The opened group's chips follow the change too.
    assert browser.execute_script(DETAIL_CHIPS) == [[name, True] for name, _ in opened]
    shot(browser, "dashboard-live.png")

    # Drill down: city -> county -> township, by clicking the bars.
    press(browser, '#bars g.bar[data-key="420581"] text.label')
    page = until(browser, lambda p: "420581101" in p["bars"])
    assert page["crumbs"] == "宜昌市›宜都市"
    assert page["kpis"]["visits"] == "6"
    assert page["bars"]["420581101"] == ["聂家河镇", 3]
    assert page["bars"]["420581102"] == ["柏花口镇", 1]
    assert page["bars"]["420581103"] == ["竹岩冲镇", 1]
    # The city group's visit to 宜都市 itself is in none of its townships' rows. Before, the
    # bars added up to 5 under a figure of 6; that visit has a bar of its own now, first, and
    # nothing below it to drill into.
    assert next(iter(page["bars"].items())) == ("420581", ["宜都市本级", 1])
    assert sum(value for _, value in page["bars"].values()) == 6
    own = "document.querySelector('#bars g.bar[data-key=\"420581\"]')"
    assert browser.execute_script(f"return {own}.matches('.drill')") is False
    press(browser, '#bars g.bar[data-key="420581101"] text.label')
    page = until(browser, lambda p: "420581101201" in p["bars"])
    assert page["crumbs"] == "宜昌市›宜都市›聂家河镇"
    assert page["kpis"]["visits"] == "3"
    assert page["bars"]["420581101201"][1] == 1
    # The county group's townships by name, opened from its row above.
    assert browser.execute_script(DETAIL_CHIPS) == [
        ["聂家河镇", True],
        ["柏花口镇", True],
        ["竹岩冲镇", True],
    ]
    shot(browser, "dashboard-drill.png")
    press(browser, '#crumbs button[data-depth="0"]')
    until(browser, lambda p: p["crumbs"] == "宜昌市" and len(p["bars"]) == 14)

    viewport(browser, 1366, 768)
    until(browser, lambda p: p["overall"] == "83.3%")
    shot(browser, "dashboard-laptop.png")
    assert until(browser, lambda p: True)["error"] == ""
    assert console_errors(browser) == []


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return json.loads(reply.read())


def test_serve_query_serves_the_dashboard_and_pushes_changes(
    hub: HubProcess, tmp_path: Path
) -> None:
    """`duhub serve query` in its own process learns of changes from the read model."""
    assert publish(hub, tmp_path, scenario()).returncode == 0
    db = f"sqlite:///{tmp_path / 'data' / 'readmodel.db'}"
    query = serve("query", "--db", db)
    try:
        base = query.dashboard
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", base)
        page = urllib.request.urlopen(base, timeout=10).read().decode()
        assert "督导全覆盖" in page
        cov = get_json(base + "api/campaigns/vax/coverage")
        assert (cov["totals"]["covered"], cov["totals"]["targets"]) == (4, 6)

        host, port = base.removeprefix("http://").rstrip("/").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/api/events?campaign=vax")
        stream = conn.getresponse()
        assert read_event(stream)[0] == "hello"
        assert publish(hub, tmp_path, [COVERING_VISIT], "more.jsonl").returncode == 0
        started = time.monotonic()
        while True:
            name, data = read_event(stream)
            if name == "change" and data["coverage"]:
                cov = get_json(base + "api/campaigns/vax/coverage")
                if cov["totals"]["covered"] == 5:
                    break
            # Pushed, not found by a reload: as in tests/unit/test_http_api.py, a bound a
            # loaded host keeps (two processes, the feed's 0.25 s poll, a request more).
            assert time.monotonic() - started < 10.0
        conn.close()
    finally:
        query.stop()


def test_a_page_that_goes_away_does_not_stop_the_hub(hub: HubProcess, tmp_path: Path) -> None:
    """Writing a change to a closed event stream costs the stream, never the process."""
    host, port = hub.dashboard.removeprefix("http://").rstrip("/").rsplit(":", 1)
    for _ in range(3):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            seen = b""
            while b"event: hello" not in seen:
                got = sock.recv(4096)
                assert got, seen  # closed before its hello: not a stream
                seen += got
        # closed: the tab went away mid-stream
    for i, visit in enumerate(scenario()[:3]):
        assert publish(hub, tmp_path, [visit], f"one-{i}.jsonl").returncode == 0
        time.sleep(0.3)  # each change is written on its own, so a write meets the reset
    assert hub.proc.poll() is None, "".join(hub.output)
    assert get_json(hub.dashboard + "healthz")["status"] == "SERVING"


def test_a_page_refused_its_event_stream_at_the_cap_goes_live_once_there_is_room(
    tmp_path: Path, browser: Any
) -> None:
    """An EventSource answered anything but 200 gives up for good: a page refused 503 at the
    stream cap (--max-streams) said "reconnecting" and never was live again."""
    hub = HubProcess(tmp_path / "data", "--max-streams", "1")
    try:
        host, port = hub.dashboard.removeprefix("http://").rstrip("/").rsplit(":", 1)
        held = http.client.HTTPConnection(host, int(port), timeout=10)
        held.request("GET", "/api/events")
        stream = held.getresponse()
        assert stream.status == 200
        assert read_event(stream)[0] == "hello"
        browser.get(hub.dashboard)
        until(browser, lambda p: p["live"] == "lost")
        stream.close()  # the cap's one place is free once the server sees it gone
        held.close()
        until(browser, lambda p: p["live"] == "live", 40)
    finally:
        hub.stop()


# Counts the page's EventSources (each connect() makes one; the browser's own reconnects of
# one source do not), so a test can tell a page that stopped asking from one that asks again.
COUNT_SOURCES = """
window.__sources = 0;
const Native = window.EventSource;
window.EventSource = class extends Native {
  constructor(...args) { super(...args); window.__sources += 1; }
};
"""


def _stops_and_says(browser: Any, words: str) -> None:
    """The page stops asking for its event stream and says why: the refusal will not change."""
    try:
        page = until(browser, lambda p: words in p["error"], 20)
    except AssertionError as e:
        opened = browser.execute_script("return window.__sources")
        raise AssertionError(f"{opened} event sources opened; {e}") from None
    assert page["live"] == "stopped", page
    opened = browser.execute_script("return window.__sources")
    time.sleep(12)  # over twice the page's 5 s between tries
    assert browser.execute_script("return window.__sources") == opened
    assert words in until(browser, lambda p: p["live"] == "stopped")["error"]


def test_a_page_whose_token_is_revoked_stops_asking_for_events_and_says_why(
    tmp_path: Path, browser: Any
) -> None:
    """A 401 closes an EventSource for good and it cannot say why: the page asked again every
    5 s for ever (a revoked token; --tokens) and showed only "reconnecting"."""
    tokens = tmp_path / "tokens"
    made = []
    for user in ("boss", "other"):
        done = subprocess.run(
            [DUHUB, "certs", "token", "--file", str(tokens), "--user", user, "--scope", "420500"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        made.append(done.stdout.strip())
    hub = HubProcess(tmp_path / "data", "--tokens", str(tokens))
    try:
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_SOURCES})
        browser.get(hub.dashboard + "healthz")  # open to anyone: a page to set the cookie on
        browser.add_cookie({"name": "duhub_token", "value": made[0], "path": "/"})
        browser.get(hub.dashboard)
        until(browser, lambda p: p["live"] == "live")
        # Revoked once the page has its figures: a request of its own answered 401 would ask
        # for a token (a prompt), as it should.
        refreshed = "return document.body.dataset.refreshed"
        deadline = time.monotonic() + 10
        while not browser.execute_script(refreshed) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1)  # and its list of campaigns, asked after the figures
        lines = tokens.read_text().splitlines()
        tokens.write_text("\n".join(lines[1:]) + "\n")  # boss's token revoked
        _stops_and_says(browser, "令牌")
    finally:
        hub.stop()


def _answer_prompt(browser: Any, token: str | None) -> None:
    """Type `token` into the page's token prompt (None: cancel it)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    prompt = WebDriverWait(browser, 10).until(expected_conditions.alert_is_present())
    if token is None:
        prompt.dismiss()
        return
    prompt.send_keys(token)
    prompt.accept()


def test_a_token_entered_is_kept_where_no_script_of_the_page_reads_it(
    tmp_path: Path, browser: Any
) -> None:
    """The page wrote the token into the duhub_token cookie itself (document.cookie): any script
    running in the origin read it. Now the hub checks it and sets the cookie HttpOnly; a token
    it refuses is said and kept nowhere; and the page can forget it."""
    from duhub.auth.principal import user
    from duhub.auth.tokens import append_token

    tokens = tmp_path / "tokens"
    token = append_token(tokens, user("boss", "420500"))
    hub = HubProcess(tmp_path / "data", "--tokens", str(tokens))
    try:
        browser.get(hub.dashboard)
        _answer_prompt(browser, "duhub_not-a-token")
        assert "unknown or revoked token" in until(browser, lambda p: p["error"] != "")["error"]
        assert browser.get_cookie("duhub_token") is None

        browser.refresh()
        _answer_prompt(browser, token)
        until(browser, lambda p: p["live"] == "live" and p["error"] == "")
        kept = browser.get_cookie("duhub_token")
        assert kept["value"] == token and kept["httpOnly"] is True
        assert kept["sameSite"] == "Strict"
        assert token not in browser.execute_script("return document.cookie")

        # Asked again, the page offers to forget it: the cookie goes, and the page asks anew.
        browser.refresh()
        until(browser, lambda p: p["live"] == "live")
        forget = "#forget-token"
        assert browser.execute_script(f"return document.querySelector('{forget}').hidden") is False
        press(browser, forget)
        _answer_prompt(browser, None)
        assert browser.get_cookie("duhub_token") is None
    finally:
        hub.stop()


def test_a_page_whose_campaign_the_hub_does_not_know_stops_asking_and_says_why(
    tmp_path: Path, browser: Any
) -> None:
    """A hub started afresh on the same address does not know the page's campaign: 404, which
    asking again does not change, and the page asked every 5 s for ever."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    first = HubProcess(tmp_path / "first", "--http", f"127.0.0.1:{port}")
    try:
        assert publish(first, tmp_path, scenario()).returncode == 0
        browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": COUNT_SOURCES})
        browser.get(first.dashboard + "?campaign=vax")
        until(browser, lambda p: p["live"] == "live" and p["overall"] == "66.7%")
    finally:
        first.stop()
    second = HubProcess(tmp_path / "second", "--http", f"127.0.0.1:{port}")
    try:
        _stops_and_says(browser, "vax")
    finally:
        second.stop()


def test_a_county_users_page_shows_its_county_and_nothing_as_covered_outside_it(
    tmp_path: Path, browser: Any
) -> None:
    """With a token scoped to 宜都市, coverage counts only its targets: the page painted every
    target outside it (other counties, their groups' townships) covered, and counted drill
    depth from the city, so its county's townships were titled counties and villages drilled
    into an empty chart."""
    from selenium.webdriver.common.by import By

    from duhub.auth.principal import user
    from duhub.auth.tokens import append_token

    first = HubProcess(tmp_path / "data")
    try:
        assert publish(first, tmp_path, scenario()).returncode == 0
    finally:
        first.stop()
    tokens = tmp_path / "tokens"
    token = append_token(tokens, user("bob", "420581"))
    hub = HubProcess(tmp_path / "data", "--tokens", str(tokens))
    try:
        browser.get(hub.dashboard + "healthz")  # a page of the origin, to set its cookie on
        browser.add_cookie({"name": "duhub_token", "value": token, "path": "/"})
        browser.get(hub.dashboard + "?campaign=vax")
        page = until(browser, lambda p: p["overall"] == "75.0%" and "420581101" in p["bars"])
        assert page["overallCount"] == "已覆盖 3 / 4 个目标"
        assert page["counties"] == {"420581": ["宜都市", "3 / 4", "未全覆盖"]}
        marks = browser.execute_script(
            "return Object.fromEntries(Array.from(document.querySelectorAll("
            "'#city-groups [data-unit], [data-group=\"n1\"] .mosaic [data-unit]'))"
            ".map((e) => [e.dataset.unit, e.className.split(' ')"
            ".filter((c) => ['covered', 'uncovered', 'outside'].includes(c)).join()]))"
        )
        assert marks == {
            "420581": "covered",
            "420582": "outside",  # 当阳市: not 宜都市's to count, covered or not
            "420583": "outside",
            "420581101": "covered",
            "420581102": "covered",
            "420581103": "uncovered",
        }
        assert page["crumbs"] == "宜都市"
        title = "#bars-title"
        assert (
            browser.find_element(By.CSS_SELECTOR, title).text
            == "督导检查 · 按乡镇(街道)（点击下钻）"
        )
        press(browser, '#bars g.bar[data-key="420581101"] text.label')
        page = until(browser, lambda p: "420581101201" in p["bars"])
        assert page["crumbs"] == "宜都市›聂家河镇"
        assert browser.find_element(By.CSS_SELECTOR, title).text == "督导检查 · 按村(社区)"
        drillable = browser.execute_script(
            "return document.querySelectorAll('#bars g.drill').length"
        )
        assert drillable == 0, "a village has nothing below it to drill into"
        # Its county's row leads back to its top, not to a second 宜都市 below it.
        press(browser, '#counties [data-county="420581"]')
        page = until(browser, lambda p: p["crumbs"] == "宜都市" and "420581101" in p["bars"])
        assert page["error"] == ""
        # healthz, a JSON page, made the browser ask for /favicon.ico; the dashboard does not.
        assert [e for e in console_errors(browser) if "/favicon.ico " not in e] == []
    finally:
        hub.stop()


# Every state the statistics panel is drawn in, recorded by the page itself as it is drawn.
RECORD_DRAWN = """
window.__drawn = [];
const text = (s) => document.querySelector(s).textContent.trim();
new MutationObserver(() => window.__drawn.push({
  crumbs: text("#crumbs"),
  bars: Array.from(document.querySelectorAll("#bars g.bar")).map((e) => e.dataset.key),
  seriesTitle: text("#series-title"),
  series: Array.from(document.querySelectorAll("#series g.col")).map((e) => e.dataset.key),
})).observe(document.querySelector(".stats"), {childList: true, subtree: true});
"""


def test_a_long_window_by_day_is_drawn_by_week_not_refused_in_english(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """日 chosen, then a window from 2000: the page asked the hub for 8,370 days, was refused
    "group_by: more than 5000 periods: choose a coarser group_by" (English, to people who
    read Chinese), and kept the old window's figures and bars under the new dates."""
    assert publish(hub, tmp_path, scenario()).returncode == 0
    browser.get(hub.dashboard + "?campaign=vax")
    until(browser, lambda p: p["live"] == "live" and len(p["series"]) == 5)
    press(browser, '#granularity [data-g="day"]')
    # Beijing days: the campaign's [11-01 00:00Z, 12-01 00:00Z) ends at 12-01 08:00 there.
    until(browser, lambda p: len(p["series"]) == 31 and "2022-12-01" in p["series"])
    browser.execute_script(
        "const f = document.querySelector('#from'); f.value = '2000-01-01';"
        "f.dispatchEvent(new Event('change'));"
    )
    page = until(browser, lambda p: p["error"] != "" or len(p["series"]) > 31)
    # As the page asks: a date entered is a Beijing one, the campaign's end its own.
    window = ("--from", "2000-01-01", "--to", "2022-12-01T00:00:00Z", "--json")
    window += ("--time-zone", "Asia/Shanghai")
    weeks = duhub(
        hub.address, "query", "stats", "--metric", "visits", *window, "--group-by", "week"
    )
    total = duhub(hub.address, "query", "stats", "--metric", "visits", *window)
    assert page["error"] == ""
    assert len(page["series"]) == len(json.loads(weeks.stdout)["rows"])
    assert page["kpis"]["visits"] == json.loads(total.stdout)["rows"][0]["values"]["visits"]
    assert pressed(browser, '#granularity [data-g="week"]') == "true"


def test_a_choice_made_while_an_answer_is_on_its_way_never_shows_that_answer_as_its_own(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """An answer asked for before a drill, an area or a granularity switch arrived after it
    and was drawn under the new choice's crumbs and titles: 宜都市 over the 14 counties'
    bars, 按月 over 30 daily columns, until the next round replaced it."""
    from selenium.webdriver.common.by import By

    assert publish(hub, tmp_path, scenario()).returncode == 0
    browser.get(hub.dashboard + "?campaign=vax")
    until(browser, lambda p: p["live"] == "live" and len(p["bars"]) == 14 and len(p["series"]) == 5)
    time.sleep(0.5)  # the answers of the page's opening have all been drawn
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 300, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    browser.execute_script(RECORD_DRAWN)
    # A granularity asked for, and another before its answer came.
    browser.find_element(By.CSS_SELECTOR, '#granularity button[data-g="day"]').click()
    browser.find_element(By.CSS_SELECTOR, '#granularity button[data-g="month"]').click()
    until(browser, lambda p: list(p["series"]) == ["2022-11-01", "2022-12-01"])
    # An area asked for, and a drill before its answer came.
    browser.execute_script(
        "const a = document.querySelector('#area'); a.value = 'vaccination';"
        "a.dispatchEvent(new Event('change'));"
    )
    press(browser, '#bars g.bar[data-key="420581"] text.label', hold=0)
    until(browser, lambda p: p["crumbs"] == "宜昌市›宜都市" and "420581101" in p["bars"])
    time.sleep(1)
    drawn = browser.execute_script("return window.__drawn")
    columns = {"按日": 31, "按周": 5, "按月": 2}  # Beijing's, of [11-01 00:00Z, 12-01 00:00Z)
    wrong = [
        d
        for d in drawn
        if len(d["series"]) != next(n for k, n in columns.items() if k in d["seriesTitle"])
        or (d["crumbs"] == "宜昌市›宜都市") != d["bars"][0].startswith("420581")
    ]
    assert drawn and not wrong, json.dumps(wrong, ensure_ascii=False)


# The page's statistics requests not grouped (its figures above the bars) wait to be sent
# until the test lets them go: a change lands between them and the page's other requests.
HOLD_TOTALS = """
window.__hold = true;
window.__held = [];
const native = window.fetch;
window.fetch = (url, ...rest) => {
  const u = new URL(url, document.baseURI);
  const totals = u.pathname.endsWith("/api/statistics") && !u.searchParams.has("group_by");
  if (!totals || !window.__hold) return native(url, ...rest);
  return new Promise((go) => window.__held.push(go)).then(() => native(url, ...rest));
};
window.__frames = [];
new MutationObserver(() => window.__frames.push({
  visits: document.querySelector('#kpis [data-metric="visits"] .value').textContent.trim(),
  bars: Array.from(document.querySelectorAll("#bars g.bar")).map(
    (e) => [e.dataset.key, Number(e.dataset.value)]),
})).observe(document.querySelector(".stats"), {childList: true, subtree: true});
"""


def test_the_own_bar_is_never_a_childs_event_when_a_change_comes_between_requests(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """The page asked for its figures and for its bars by unit in two requests and took the
    "本级" bar as the difference: a visit to a township accepted between the two answers was
    drawn as 宜都市本级 2 (1 is the city group's visit of its HQ) until the next change."""
    assert publish(hub, tmp_path, scenario()).returncode == 0
    browser.get(hub.dashboard + "?campaign=vax")
    until(browser, lambda p: p["live"] == "live" and len(p["bars"]) == 14)
    press(browser, '#bars g.bar[data-key="420581"] text.label')
    until(browser, lambda p: p["bars"].get("420581") == ["宜都市本级", 1])
    browser.execute_script(HOLD_TOTALS)
    press(browser, '#granularity button[data-g="day"]')  # a round of requests
    # Its figures held, if it asks for them apart; else the round is drawn.
    held = "return window.__held.length"
    until(browser, lambda p: browser.execute_script(held) or len(p["series"]) == 31)
    assert publish(hub, tmp_path, [COVERING_VISIT], "more.jsonl").returncode == 0
    browser.execute_script("window.__hold = false; window.__held.forEach((go) => go())")
    until(
        browser, lambda p: p["bars"].get("420581103") == ["竹岩冲镇", 1] and len(p["series"]) == 31
    )
    time.sleep(0.5)  # the round the change asked for is drawn too
    frames = [f for f in browser.execute_script("return window.__frames") if f["bars"]]
    assert frames
    wrong = [f for f in frames if dict(f["bars"]).get("420581") != 1]
    wrong += [f for f in frames if sum(v for _, v in f["bars"]) != int(f["visits"])]
    assert not wrong, json.dumps(wrong, ensure_ascii=False)


def test_a_click_on_a_live_page_is_not_lost_to_the_next_change(
    tmp_path: Path, browser: Any
) -> None:
    """With a campaign live (the simulator publishes 20 events a second), the bars, the
    counties and the crumbs were drawn anew on every change: a press and release 150 ms
    apart met a redraw in between most times, and the drill did not happen (2 of 8)."""
    hub = HubProcess(tmp_path / "data", simulate=True)
    try:
        browser.get(hub.dashboard)
        until(browser, lambda p: p["live"] == "live" and "420582" in p["counties"], 30)
        start = int(browser.execute_script("return document.body.dataset.refreshed"))
        for _ in range(5):
            press(browser, '#bars g.bar[data-key="420581"] text.label')
            until(browser, lambda p: p["crumbs"] == "宜昌市›宜都市", 3)
            press(browser, '#crumbs button[data-depth="0"]')
            until(browser, lambda p: p["crumbs"] == "宜昌市", 3)
            press(browser, '#counties [data-county="420582"] .name')
            until(browser, lambda p: p["crumbs"] == "宜昌市›当阳市", 3)
            press(browser, '#crumbs button[data-depth="0"]')
            until(browser, lambda p: p["crumbs"] == "宜昌市", 3)
        redrawn = int(browser.execute_script("return document.body.dataset.refreshed")) - start
        assert redrawn > 20, "the page was not redrawn while it was clicked: no proof"
    finally:
        hub.stop()


def accessible_name(driver: Any, selector: str) -> str:
    """The name Chromium gives the element to assistive technology (a screen reader)."""
    return str(accessible(driver, selector).get("name", {}).get("value", ""))


def pressed(driver: Any, selector: str) -> Any:
    """Whether assistive technology hears the toggle button pressed (None: not a toggle)."""
    found = accessible(driver, selector).get("properties", [])
    return next((p["value"]["value"] for p in found if p["name"] == "pressed"), None)


def accessible(driver: Any, selector: str) -> dict[str, Any]:
    """The node Chromium gives assistive technology for the element.

    It takes three DevTools calls, the element named by a node id between them. A live page
    redraws its charts on every change (and on its event stream's hello): a redraw between
    the calls replaced the element, and Chromium answered "Could not find node with given
    id". The page is frozen meanwhile (no timer, event or answer of its runs), so all three
    see one DOM: the one drawn last."""
    driver.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "frozen"})
    try:
        root = driver.execute_cdp_cmd("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node = driver.execute_cdp_cmd("DOM.querySelector", {"nodeId": root, "selector": selector})
        ax = driver.execute_cdp_cmd(
            "Accessibility.getPartialAXTree", {"nodeId": node["nodeId"], "fetchRelatives": False}
        )
    finally:
        driver.execute_cdp_cmd("Page.setWebLifecycleState", {"state": "active"})
    return ax["nodes"][0]  # type: ignore[no-any-return]


def test_charts_and_coverage_are_told_by_more_than_colour(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """The two charts were images without a name (a screen reader heard "image"), a county
    group's row was named by its contents (on a simulated hub 7 of 14 came out as the bare
    county name, no figures), and a covered target differed from an uncovered one by colour
    alone (red and green, the pair colour-blind people confuse)."""
    assert publish(hub, tmp_path, scenario()).returncode == 0
    browser.get(hub.dashboard + "?campaign=vax")
    until(browser, lambda p: p["overall"] == "66.7%" and len(p["bars"]) == 14)
    browser.execute_cdp_cmd("Accessibility.enable", {})
    bars = accessible_name(browser, "#bars svg")
    assert bars.startswith("督导检查 · 按县市区（点击下钻）：宜昌高新区 0，"), bars
    assert "宜都市 5，当阳市 1，枝江市 0" in bars
    series = accessible_name(browser, "#series svg")
    assert series == (
        "督导检查 · 按周（北京时间）：2022-10-31 5，2022-11-07 0，2022-11-14 1，"
        "2022-11-21 0，2022-11-28 0"
    )
    row = accessible_name(browser, '[data-group="n1"] button.toggle')
    assert row == "宜都市督导组：已覆盖 2 / 3，66.7%"
    # Which figure the charts show and by what period was told by colour alone too: the
    # tiles and the 日/周/月 buttons were plain buttons, none of them heard as chosen.
    chosen = {
        sel: pressed(browser, sel)
        for sel in (
            '#kpis [data-metric="visits"]',
            '#kpis [data-metric="problems_found"]',
            '#granularity [data-g="week"]',
            '#granularity [data-g="day"]',
        )
    }
    assert list(chosen.values()) == ["true", "false", "true", "false"], chosen
    press(browser, '#kpis [data-metric="problems_found"]')
    press(browser, '#granularity [data-g="day"]')
    until(browser, lambda p: len(p["series"]) == 31)
    assert pressed(browser, '#kpis [data-metric="problems_found"]') == "true"
    assert pressed(browser, '#kpis [data-metric="visits"]') == "false"
    assert pressed(browser, '#granularity [data-g="day"]') == "true"
    assert pressed(browser, '#granularity [data-g="week"]') == "false"
    marks = browser.execute_script(
        "return Array.from(document.querySelectorAll('#city-groups .chip[data-unit]'))"
        ".map((e) => getComputedStyle(e, '::before').content)"
    )
    assert marks == ['"✓ "', '"✓ "', "none"]  # 宜都市, 当阳市 covered; 枝江市 not


LONG_NAMES = {
    "420581101291": "郑家榜村民委员会第一居民小组联合党支部",
    "420581101292": "聂家河镇高坝洲库区移民安置点社区居民委员会",
}


def long_named_villages() -> list[str]:
    """Lines registering the villages of LONG_NAMES under 聂家河镇 (420581's seqs 100 on)."""
    registered = {"parentId": "420581101", "level": "LEVEL_VILLAGE"}
    return [
        line(
            f"long{i}",
            "420581",
            100 + i,
            "2022-11-02T00:00:00Z",
            orgUnitRegistered={"unitId": unit, **registered, "name": name},
        )
        for i, (unit, name) in enumerate(LONG_NAMES.items())
    ]


def test_a_long_unit_name_keeps_its_start_in_the_bars(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """A village registered with a 20-character name: its bar's label, anchored at its end,
    ran off the chart's left edge and showed "…员会第一居民小组联合党支部", its tail."""
    lines = scenario() + long_named_villages()
    assert publish(hub, tmp_path, lines).returncode == 0
    browser.get(hub.dashboard + "?campaign=vax")
    until(browser, lambda p: len(p["bars"]) == 14)
    for key in ("420581", "420581101"):
        until(browser, lambda p, key=key: key in p["bars"])
        browser.execute_script(
            "document.querySelector(`#bars g.bar[data-key='${arguments[0]}'] text.label`)"
            ".dispatchEvent(new MouseEvent('click', {bubbles: true}))",
            key,
        )
    until(browser, lambda p: set(LONG_NAMES) <= set(p["bars"]))
    labels = browser.execute_script(
        "const box = document.querySelector('#bars svg').getBoundingClientRect();"
        "return Array.from(document.querySelectorAll('#bars g.bar')).map((g) => {"
        "  const t = g.querySelector('text.label'), r = t.getBoundingClientRect();"
        "  return [g.dataset.key, t.textContent, r.left - box.left, g.querySelector('title')"
        "    .textContent]; })"
    )
    for key, shown, left, title in labels:
        assert left >= 0, f"{shown!r} runs off the chart by {-left:.0f} px"
        if key in LONG_NAMES:
            name = LONG_NAMES[key]
            assert shown.endswith("…") and name.startswith(shown[:-1]) and len(shown) >= 5, shown
            assert title == f"{name}：0"  # the whole name, where the pointer rests


def test_a_tier_the_campaign_has_no_groups_in_is_not_shown_as_the_task_force(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """A county-led campaign (a task force and a county group, no city groups): the city
    tier's card read "统筹协调 · 0 个工作专班，统筹 2 个督导组", the task force's text."""
    launched = {
        "campaignId": "county-led",
        "name": "县级督导",
        "area": "vaccination",
        "startsAt": "2022-11-01T00:00:00Z",
        "endsAt": "2022-12-01T00:00:00Z",
        "groups": [
            {"groupId": "tf", "name": "工作专班", "tier": "TIER_TASK_FORCE"},
            {
                "groupId": "n1",
                "name": "宜都市督导组",
                "tier": "TIER_COUNTY",
                "targetUnitIds": ["420581101", "420581102"],
            },
        ],
    }
    lines = [line("cl1", "420500", 1, "2022-11-01T00:00:00Z", campaignLaunched=launched)]
    assert publish(hub, tmp_path, lines).returncode == 0
    browser.get(hub.dashboard + "?campaign=county-led")
    until(browser, lambda p: p["overall"] == "0.0%")
    cards = browser.execute_script(
        "return Object.fromEntries(Array.from(document.querySelectorAll('#tiers [data-tier]'))"
        ".map((e) => [e.dataset.tier, e.textContent.replace(/\\s+/g, ' ').trim()]))"
    )
    assert cards == {
        "TIER_TASK_FORCE": "1工作专班统筹协调1 个工作专班，统筹 1 个督导组",
        "TIER_CITY": "0市本级督导组—无督导目标 0 个督导组",
        "TIER_COUNTY": "1县市区督导组0.0% 0 / 2 1 个督导组",
    }


def test_a_campaign_without_a_task_force_says_so_on_its_card(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """A county's own campaign has no task force: its card read "0 个工作专班，统筹 1 个督导组",
    a task force of none coordinating the county's group."""
    launched = _county_campaign("own", "宜都自查", "n1", "2022-11-01", "2022-12-01")
    lines = [line("own1", "420581", 1, "2022-11-01T00:00:00Z", campaignLaunched=launched)]
    assert publish(hub, tmp_path, lines).returncode == 0
    browser.get(hub.dashboard + "?campaign=own")
    until(browser, lambda p: p["overall"] == "0.0%")
    card = browser.execute_script(
        "return document.querySelector('#tiers [data-tier=\"TIER_TASK_FORCE\"]')"
        ".textContent.replace(/\\s+/g, ' ').trim()"
    )
    assert card == "0工作专班—本活动未设工作专班", card


def test_no_campaign_and_a_fully_covered_one_raise_no_red_zero(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """Before any campaign the page said "未覆盖单位 0" in red and "0+0" above the groups, as if
    a campaign of no groups had nothing left to cover; once every target was covered the red
    "0" stood beside 全部目标均已覆盖 and the green badge, an alarm with nothing to raise."""
    colour = "return getComputedStyle(document.querySelector('#uncovered-count')).color"
    browser.get(hub.dashboard)
    page = until(browser, lambda p: p["live"] == "live" and p["overall"] == "—")
    assert page["uncoveredCount"] == "—"
    assert page["structureNums"] == ["—", "—", "—"]
    # Said to a duty officer in words of the work, not in the contract's event names.
    meta = browser.execute_script("return document.querySelector('#campaign-meta').textContent")
    assert meta.startswith("暂无督导活动") and "CampaignLaunched" not in meta, meta
    muted, red, green = "rgb(157, 178, 207)", "rgb(229, 72, 77)", "rgb(47, 197, 127)"
    assert browser.execute_script(colour) == muted

    launched = _county_campaign("own", "宜都自查", "n1", "2022-11-01", "2022-12-01")
    lines = [line("own1", "420581", 1, "2022-11-01T00:00:00Z", campaignLaunched=launched)]
    assert publish(hub, tmp_path, lines).returncode == 0
    page = until(browser, lambda p: p["overall"] == "0.0%")
    assert page["uncoveredCount"] == "1"
    assert browser.execute_script(colour) == red  # something left to cover is the alarm

    visit = {"campaignId": "own", "groupId": "n1", "unitId": "420581101", "area": "vaccination"}
    visits = [line("own2", "420581", 2, "2022-11-02T00:00:00Z", supervisionVisit=visit)]
    assert publish(hub, tmp_path, visits, "visits.jsonl").returncode == 0
    page = until(browser, lambda p: p["overall"] == "100.0%")
    assert page["badge"] == "已实现督导全覆盖"
    assert page["uncoveredCount"] == "0"
    assert browser.execute_script(colour) == green


def test_a_page_opens_on_the_latest_campaign_begun_not_one_still_to_come(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """A page without ?campaign= opened on the campaign latest to start: one launched for 2099
    (by a county, in the security probe's case) took the city's wall screen."""
    launched = _county_campaign("later", "以后的督导", "n1", "2099-01-01", "2099-02-01")
    lines = [line("later1", "420581", 1, "2022-11-01T00:00:00Z", campaignLaunched=launched)]
    assert publish(hub, tmp_path, lines).returncode == 0
    listed = get_json(hub.dashboard + "api/campaigns?omit_targets=true")["campaigns"]
    assert listed[-1]["campaignId"] == "later"
    now = datetime.now(UTC).isoformat()
    begun = [c["campaignId"] for c in listed if c["startsAt"] <= now]
    chosen, offered = _opened_on(browser, hub)
    assert chosen == (begun[-1] if begun else "later")
    assert "later" in offered


def _county_campaign(
    campaign_id: str, name: str, group_id: str, starts: str, ends: str
) -> dict[str, object]:
    """A campaign of one county group of Yidu's, as Yidu's node may launch one."""
    return {
        "campaignId": campaign_id,
        "name": name,
        "area": "vaccination",
        "startsAt": f"{starts}T00:00:00Z",
        "endsAt": f"{ends}T00:00:00Z",
        "groups": [{"groupId": group_id, "name": "宜都市督导组", "tier": "TIER_COUNTY",
                    "targetUnitIds": ["420581101"]}],
    }  # fmt: skip


def _opened_on(browser: Any, hub: HubProcess) -> tuple[str, list[str]]:
    """Open the page without ?campaign=; return the campaign it chose and those it offers."""
    browser.get(hub.dashboard)
    chosen = "return document.querySelector('#campaign-select').value"
    deadline = time.monotonic() + 15
    while not browser.execute_script(chosen) and time.monotonic() < deadline:
        time.sleep(0.1)
    offered = browser.execute_script(
        "return Array.from(document.querySelectorAll('#campaign-select option')).map(o => o.value)"
    )
    return browser.execute_script(chosen), offered


def test_a_page_opens_on_the_citys_campaign_not_a_countys_begun_later(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """A county's node may launch a campaign of its own county groups; begun after the city's,
    it was the campaign latest begun and the city's wall screen opened on it (security review,
    2026-12-07). The city's campaign (task force and city groups: the city node's alone) comes
    first; the county's is still listed."""
    assert publish(hub, tmp_path, scenario()).returncode == 0
    launched = _county_campaign("yd-own", "市级 专项督导 (伪)", "n9", "2022-11-15", "2022-12-15")
    lines = [line("yd-own-1", "420581", 90, "2022-11-15T00:00:00Z", campaignLaunched=launched)]
    assert publish(hub, tmp_path, lines, "county.jsonl").returncode == 0
    listed = get_json(hub.dashboard + "api/campaigns?omit_targets=true")["campaigns"]
    assert [c["campaignId"] for c in listed][-2:] == ["vax", "yd-own"]
    chosen, offered = _opened_on(browser, hub)
    assert chosen == "vax" and "yd-own" in offered


def test_a_link_to_a_campaign_the_hub_does_not_know_says_so_and_which_it_shows(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """A link naming a campaign the hub does not know (mistyped, or still to be launched) opened
    on another campaign, its coverage under the wall screen's title, and said nothing."""
    assert publish(hub, tmp_path, scenario()).returncode == 0
    browser.get(hub.dashboard + "?campaign=vax-2O22")
    page = until(browser, lambda p: p["live"] == "live" and p["error"] != "")
    assert page["error"].startswith("出错: campaign: 未知的督导活动 'vax-2O22'，显示的是 "), page
    chosen = "return document.querySelector('#campaign-select').value"
    assert browser.execute_script(chosen) == "vax"
    # Chosen by hand, the campaign shown is the one asked for: nothing is left to say.
    browser.execute_script(
        "const s = document.querySelector('#campaign-select'); s.value = 'vax';"
        "s.dispatchEvent(new Event('change'));"
    )
    assert until(browser, lambda p: p["error"] == "")["overall"] == "66.7%"


def test_a_campaign_still_running_at_the_moment_asked_about_is_not_yet_full_not_failed(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """As of a moment inside a campaign's window, its badge said 未实现全覆盖 (not achieved) once
    the window had ended by now: an auditor reading that day read a verdict nobody had then."""
    # Room for the publish on a busy host: with 4 s, a slow one left no moment inside.
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=12)
    launched = {
        "campaignId": "short",
        "name": "短期督导",
        "area": "vaccination",
        "startsAt": "2022-11-01T00:00:00Z",
        "endsAt": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "groups": [{"groupId": "n1", "name": "宜都市督导组", "tier": "TIER_COUNTY",
                    "targetUnitIds": ["420581101"]}],
    }  # fmt: skip
    lines = [line("s1", "420581", 1, "2022-11-01T00:00:00Z", campaignLaunched=launched)]
    assert publish(hub, tmp_path, lines).returncode == 0
    moment = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert moment < launched["endsAt"]
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()) + 0.5)
    browser.get(hub.dashboard + f"?campaign=short&as_of={moment}")
    page = until(browser, lambda p: p["live"] == "history" and p["overall"] == "0.0%")
    assert page["badge"] == "尚未全覆盖", page
    browser.get(hub.dashboard + "?campaign=short")  # now, its window over
    page = until(browser, lambda p: p["live"] == "live" and p["overall"] == "0.0%")
    assert page["badge"] == "未实现全覆盖"


def test_a_campaigns_area_outside_the_pages_list_can_be_chosen(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """The 领域 list held five areas written into the page: a flood-control campaign's
    statistics could not be read for its own area on the page, only with --area."""
    launched = {
        "campaignId": "flood",
        "name": "防汛督导",
        "area": "flood_control",
        "startsAt": "2023-06-01T00:00:00Z",
        "endsAt": "2023-07-01T00:00:00Z",
        "groups": [{"groupId": "c1", "name": "市本级防汛督导组", "tier": "TIER_CITY",
                    "targetUnitIds": ["420581", "420582"]}],
    }  # fmt: skip
    visit = {"campaignId": "flood", "groupId": "c1", "unitId": "420581", "area": "flood_control"}
    lines = [
        line("f1", "420500", 1, "2023-06-01T00:00:00Z", campaignLaunched=launched),
        line("f2", "420500", 2, "2023-06-02T00:00:00Z", supervisionVisit=visit),
        line("f3", "420500", 3, "2023-06-03T00:00:00Z",
             supervisionVisit={"unitId": "420582", "area": "grain"}),
    ]  # fmt: skip
    assert publish(hub, tmp_path, lines).returncode == 0
    browser.get(hub.dashboard + "?campaign=flood")
    until(browser, lambda p: p["live"] == "live" and p["kpis"].get("visits") == "2")
    options = "return Array.from(document.querySelectorAll('#area option')).map((o) => o.value)"
    assert "flood_control" in browser.execute_script(options)
    browser.execute_script(
        "const a = document.querySelector('#area'); a.value = 'flood_control';"
        "a.dispatchEvent(new Event('change'));"
    )
    window = ("--from", "2023-06-01", "--to", "2023-07-01", "--area", "flood_control", "--json")
    cli = json.loads(duhub(hub.address, "query", "stats", "--metric", "visits", *window).stdout)
    page = until(browser, lambda p: p["kpis"]["visits"] == cli["rows"][0]["values"]["visits"])
    assert page["kpis"]["visits"] == "1" and page["bars"]["420581"] == ["宜都市", 1]


def test_the_period_is_in_beijing_days_and_the_dates_shown_are_the_figures_window(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """A county's campaign runs 2025-12-01 to 2025-12-31, Beijing time, as Yichang sets it.
    The page showed it as "2025-11-30 至 2025-12-31" (UTC dates, where every other moment it
    shows is Beijing time), and the same dates, entered again, answered for another window:
    visits 1 before, 2 after (a visit on 11-30 at 11:00 Beijing, before the campaign, came in
    with the whole UTC day 11-30)."""
    launched = {
        "campaignId": "eco", "name": "长江大保护督导", "area": "ecology",
        "startsAt": "2025-12-01T00:00:00+08:00", "endsAt": "2026-01-01T00:00:00+08:00",
        "groups": [{"groupId": "n1", "name": "宜都市督导组", "tier": "TIER_COUNTY",
                    "targetUnitIds": ["420581101", "420581102"]}],
    }  # fmt: skip
    visit = {"campaignId": "eco", "groupId": "n1", "unitId": "420581101", "area": "ecology"}
    lines = [
        line("e1", "420500", 1, "2025-11-20T00:00:00Z", campaignLaunched=launched),
        line("e2", "420581", 1, "2025-11-30T11:00:00+08:00", supervisionVisit=visit),
        line("e3", "420581", 2, "2025-12-02T10:00:00+08:00", supervisionVisit=visit),
    ]
    assert publish(hub, tmp_path, lines).returncode == 0
    browser.get(hub.dashboard + "?campaign=eco")
    until(browser, lambda p: p["live"] == "live" and p["kpis"].get("visits") == "1")
    dates = "return ['#from', '#to'].map((s) => document.querySelector(s).value)"
    assert browser.execute_script(dates) == ["2025-12-01", "2025-12-31"]
    meta = browser.execute_script("return document.querySelector('#campaign-meta').textContent")
    assert "2025-12-01 至 2025-12-31" in meta, meta
    cli = duhub(
        hub.address, "query", "stats", "--metric", "visits", "--json",
        "--from", "2025-12-01T00:00:00+08:00", "--to", "2026-01-01T00:00:00+08:00",
    )  # fmt: skip
    assert json.loads(cli.stdout)["rows"][0]["values"]["visits"] == "1"

    def enter(selector: str, value: str) -> None:
        browser.execute_script(
            "const f = document.querySelector(arguments[0]); f.value = arguments[1];"
            "f.dispatchEvent(new Event('change'));",
            selector,
            value,
        )

    # The same dates again: the same window. A Beijing day before it: the visit of 11-30.
    enter("#from", "2025-12-01")
    time.sleep(1.5)  # the page asks again; what it draws must not change
    assert until(browser, lambda p: p["error"] == "")["kpis"]["visits"] == "1"
    enter("#from", "2025-11-30")
    until(browser, lambda p: p["kpis"]["visits"] == "2")
    enter("#from", "2025-12-01")
    enter("#to", "2025-12-01")  # one Beijing day: 12-02 10:00 is not in it
    until(browser, lambda p: p["kpis"]["visits"] == "0")
    assert browser.execute_script(dates) == ["2025-12-01", "2025-12-01"]
    # Across a new year, a week's (or day's) label says its year: 12-01 … 01-05 left 2025
    # and 2026 apart only by their order (a window of years repeated every 11-01).
    enter("#to", "2026-01-10")
    until(browser, lambda p: "2026-01-05" in p["series"])
    labels = browser.execute_script(
        "return [...document.querySelectorAll('#series .xlabel')].map((t) => t.textContent)"
    )
    assert labels[0] == "2025-12-01" and all(len(x) == 10 for x in labels), labels


def test_an_uncovered_unit_cut_short_in_the_list_is_named_whole_on_hover(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """The list of units not covered yet cuts a long line with an ellipsis, and nothing on
    the page gave the rest: which "郑家榜村民委员会第一居民…" was meant, and where."""
    lines = long_named_villages()
    launched = {
        "campaignId": "villages",
        "name": "村级督导",
        "area": "vaccination",
        "startsAt": "2022-11-01T00:00:00Z",
        "endsAt": "2022-12-01T00:00:00Z",
        "groups": [
            {
                "groupId": "n1",
                "name": "宜都市督导组",
                "tier": "TIER_COUNTY",
                "targetUnitIds": list(LONG_NAMES),
            },  # fmt: skip
        ],
    }
    lines.append(line("v1", "420500", 1, "2022-11-03T00:00:00Z", campaignLaunched=launched))
    assert publish(hub, tmp_path, lines).returncode == 0
    browser.get(hub.dashboard + "?campaign=villages")
    until(browser, lambda p: len(p["uncovered"]) == 2)
    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('#uncovered li[data-unit]')).map((e) =>"
        " [e.dataset.unit, e.scrollWidth > e.clientWidth, e.title])"
    )
    assert any(cut for _, cut, _ in shown), "no line is cut short: no proof"
    assert {unit: title for unit, _, title in shown} == {
        unit: f"{name}（聂家河镇）" for unit, name in LONG_NAMES.items()
    }


def test_the_bars_drill_from_the_keyboard_and_keep_its_focus_as_changes_come(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """Drilling city → county → township was for a mouse only: Tab never reached a bar."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    assert publish(hub, tmp_path, scenario()).returncode == 0
    browser.get(hub.dashboard + "?campaign=vax")
    until(browser, lambda p: p["live"] == "live" and p["bars"].get("420581") == ["宜都市", 5])
    on = "const a = document.activeElement; return a && a.matches('#bars g.bar') && a.dataset.key"
    for _ in range(200):  # Tab along the page, as a keyboard does, to 宜都市's bar
        ActionChains(browser).send_keys(Keys.TAB).perform()
        if browser.execute_script(on) == "420581":
            break
    else:
        pytest.fail("Tab never reached 宜都市's bar")
    assert accessible_name(browser, '#bars g.bar[data-key="420581"]') == "宜都市：5，下钻"
    # A change redraws the bars; the focus stays where the keyboard left it.
    accepted_over_grpc(hub, COVERING_VISIT)
    until(browser, lambda p: p["bars"]["420581"] == ["宜都市", 6])
    assert browser.execute_script(on) == "420581"
    # And a window resized (the charts drawn again at its size, no change of figures).
    drawn = "return document.querySelector('#bars g.bar[data-key=\"420581\"]').dataset.old"
    browser.execute_script(
        "document.querySelector('#bars g.bar[data-key=\"420581\"]').dataset.old = 'yes';"
        "window.dispatchEvent(new Event('resize'))"
    )
    deadline = time.monotonic() + 10
    while browser.execute_script(drawn) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not browser.execute_script(drawn), "the bars were not drawn again"
    assert browser.execute_script(on) == "420581"
    # So on a county's row and a KPI tile, which were drawn anew without it: the focus fell
    # to <body> at every change, and Tab started again at the page's top.
    sanction = {"unitId": "420581", "area": "vaccination", "persons": 1}
    talk = line("y14", "420581", 14, "2022-11-23T00:00:00Z", sanctionImposed=sanction)
    for focused, attribute in (('#counties [data-county="420581"]', "county"),
                               ('#kpis [data-metric="visits"]', "metric")):  # fmt: skip
        browser.execute_script(f"document.querySelector('{focused}').focus()")
        seen = int(browser.execute_script("return document.body.dataset.refreshed"))
        with grpc.insecure_channel(hub.address) as channel:
            event = json_format.Parse(talk.replace("y14", f"y14{attribute}"), epb.Event())
            event.seq = 14 if attribute == "county" else 15
            ingest_pb2_grpc.IngestServiceStub(channel).Publish(
                ingest_pb2.PublishRequest(events=[event]), timeout=30
            )
        refreshed = "return Number(document.body.dataset.refreshed)"
        deadline = time.monotonic() + 10
        while browser.execute_script(refreshed) <= seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert browser.execute_script(refreshed) > seen
        held = f"const a = document.activeElement; return a.dataset.{attribute} || a.tagName"
        assert browser.execute_script(held) == ("420581" if attribute == "county" else "visits")
    browser.execute_script("document.querySelector('#bars g.bar[data-key=\"420581\"]').focus()")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    page = until(browser, lambda p: "420581101" in p["bars"])
    assert page["crumbs"] == "宜昌市›宜都市"


def test_the_page_answers_for_a_moment_asked_about_as_the_command_line_does(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """ "What was the coverage on that day" (as_of: what the hub knew then) had no answer on
    the page: it showed the present only, and ?as_of= in its address was ignored."""
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    assert publish(hub, tmp_path, scenario()).returncode == 0
    time.sleep(1.1)  # the moment lies a second or more from what was recorded either side
    then = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    assert publish(hub, tmp_path, [COVERING_VISIT], "more.jsonl").returncode == 0
    moment = then.strftime("%Y-%m-%dT%H:%M:%SZ")
    asked = ("--campaign", "vax", "--as-of", moment, "--json")
    cov = json.loads(duhub(hub.address, "query", "coverage", *asked).stdout)
    window = ("--from", "2022-11-01", "--to", "2022-12-01")  # the campaign's, as on the page
    stats = duhub(hub.address, "query", "stats", "--metric", "visits", *window, *asked[2:])
    assert [(g["groupId"], g["covered"]) for g in cov["groups"]][1:] == [
        ("c1", 2), ("c2", 0), ("n1", 2),
    ]  # fmt: skip
    assert json.loads(stats.stdout)["rows"][0]["values"]["visits"] == "6"

    browser.get(hub.dashboard + f"?campaign=vax&as_of={moment}")
    page = until(browser, lambda p: p["live"] == "history" and p["overall"] == "66.7%")
    assert page["groups"]["n1"] == ["2 / 3", "66.7%", ""]
    assert page["kpis"]["visits"] == "6" and page["bars"]["420581"] == ["宜都市", 5]
    shown = then.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%dT%H:%M:%S")
    value = browser.execute_script("return document.querySelector('#as-of').value")
    assert value in (shown, shown.removesuffix(":00"))  # the field drops a whole minute's :00
    assert "历史" in browser.find_element("css selector", "#live-text").text
    # Back to the present, and to the moment again from the field, as a hand sets it.
    press(browser, "#as-of-now")
    page = until(browser, lambda p: p["live"] == "live" and p["overall"] == "83.3%")
    assert page["kpis"]["visits"] == "7" and "as_of" not in browser.current_url
    browser.execute_script(
        "const f = document.querySelector('#as-of'); f.value = arguments[0];"
        "f.dispatchEvent(new Event('change'));",
        shown,
    )
    page = until(browser, lambda p: p["live"] == "history" and p["overall"] == "66.7%")
    assert page["kpis"]["visits"] == "6" and page["error"] == ""
    # Before the campaign was launched the hub knew no coverage of it: the present's figures
    # stayed up under "历史 · 截至" that moment, with an English refusal.
    earlier = before.astimezone(timezone(timedelta(hours=8))).strftime("%Y-%m-%dT%H:%M:%S")
    browser.execute_script(
        "const f = document.querySelector('#as-of'); f.value = arguments[0];"
        "f.dispatchEvent(new Event('change'));",
        earlier,
    )
    page = until(browser, lambda p: p["live"] == "history" and p["kpis"]["visits"] == "0")
    assert (page["overall"], page["groups"]["n1"][:2], page["counties"]) == (
        "—",
        ["— / —", "—"],
        {},
    )
    assert "该督导活动尚未发布" in page["error"] and "该督导活动尚未发布" in page["overallCount"]
    # A moment the page cannot read is said, naming it, not passed over in silence.
    browser.get(hub.dashboard + "?campaign=vax&as_of=yesterday")
    page = until(browser, lambda p: p["live"] == "live" and p["overall"] == "83.3%")
    assert page["error"].startswith("出错: as_of: 无法识别的时间 'yesterday'"), page["error"]
    # Beijing time typed into the address as README writes it, its '+' unencoded: a query's
    # '+' is a space, and the page said it could not read '…T08:00:00 08:00', showing the
    # present.
    browser.get(hub.dashboard + f"?campaign=vax&as_of={shown}+08:00")
    page = until(browser, lambda p: p["live"] == "history" and p["overall"] == "66.7%")
    assert page["kpis"]["visits"] == "6" and page["error"] == "", page["error"]
    # Without an offset it is Beijing time, as the field shows it: the page read it in the
    # browser's own zone (on a UTC machine 8 hours later: the present's figures).
    browser.get(hub.dashboard + f"?campaign=vax&as_of={shown}")
    page = until(browser, lambda p: p["live"] == "history" and p["overall"] == "66.7%")
    assert page["kpis"]["visits"] == "6" and page["error"] == "", page["error"]
    # A form only a browser reads, its own way, is refused as any other.
    browser.get(hub.dashboard + "?campaign=vax&as_of=Dec%206%202026")
    page = until(browser, lambda p: p["live"] == "live" and p["overall"] == "83.3%")
    assert page["error"].startswith("出错: as_of: 无法识别的时间 'Dec 6 2026'"), page["error"]


BEIJING = timezone(timedelta(hours=8))
# A campaign of Beijing days, and visits on different days: one late on 11-20 in Beijing, one
# early on 11-21 in Beijing (still 11-20 in UTC), so a day read as UTC's is told apart.
DAY_GROUPS = {"c1": ["420581", "420582"], "c2": ["420583"],
              "n1": ["420581101", "420581102", "420581103"]}  # fmt: skip
DAY_CAMPAIGN = line(
    "d0", "420500", 1, "2022-10-31T16:00:00Z",
    campaignLaunched={
        "campaignId": "day", "name": "按日回看督导", "area": "vaccination",
        "startsAt": "2022-10-31T16:00:00Z", "endsAt": "2022-11-30T16:00:00Z",
        "groups": [
            {"groupId": "tf", "name": "工作专班", "tier": "TIER_TASK_FORCE"},
            {"groupId": "c1", "name": "市本级第1督导组", "tier": "TIER_CITY",
             "targetUnitIds": DAY_GROUPS["c1"]},
            {"groupId": "c2", "name": "市本级第2督导组", "tier": "TIER_CITY",
             "targetUnitIds": DAY_GROUPS["c2"]},
            {"groupId": "n1", "name": "宜都市督导组", "tier": "TIER_COUNTY",
             "targetUnitIds": DAY_GROUPS["n1"]},
        ],
    },
)  # fmt: skip


def day_visit(seq: int, at: str, group: str, unit: str) -> str:
    visit = {"campaignId": "day", "groupId": group, "unitId": unit, "area": "vaccination"}
    return line(f"d{seq}", "420500", seq, at, supervisionVisit=visit)


DAY_VISITS = [
    day_visit(2, "2022-11-02T01:00:00Z", "c1", "420581"),  # 11-02 09:00 Beijing
    day_visit(3, "2022-11-03T02:00:00Z", "n1", "420581101"),  # 11-03 10:00
    day_visit(4, "2022-11-20T15:30:00Z", "c1", "420582"),  # 11-20 23:30: on the day
    day_visit(5, "2022-11-20T16:30:00Z", "n1", "420581102"),  # 11-21 00:30: the day after
    day_visit(6, "2022-11-25T02:00:00Z", "c2", "420583"),  # 11-25 10:00
]
# Recorded late, while the page shows the day: a visit of that day (11-20 13:00 Beijing).
LATE_DAY_VISIT = day_visit(7, "2022-11-20T05:00:00Z", "n1", "420581103")


FOREVER = datetime.max.replace(tzinfo=UTC)


def coverage_before(lines: list[str], end: datetime) -> dict[str, Any]:
    """The coverage of campaign 'day' by the visits among these events that occurred inside
    its window and before `end`, as the page shows it: worked out from the events, not asked
    of the hub. Overall, per tier, group and county (a target's first six digits) "covered /
    targets", and when each group and county became full ("MM-DD HH:MM", Beijing time)."""
    start, stop = datetime(2022, 11, 1, tzinfo=BEIJING), datetime(2022, 12, 1, tzinfo=BEIJING)
    first: dict[tuple[str, str], datetime] = {}
    for text in lines:
        event = json.loads(text)
        visit = event.get("supervisionVisit")
        at = datetime.fromisoformat(event["occurredAt"])
        if visit and start <= at < min(stop, end):
            key = (visit["groupId"], visit["unitId"])
            first[key] = min(first.get(key, at), at)
    by_group: dict[str, list[datetime | None]] = {}
    by_county: dict[str, list[datetime | None]] = {}
    for g, units in DAY_GROUPS.items():
        for u in units:
            by_group.setdefault(g, []).append(first.get((g, u)))
            by_county.setdefault(u[:6], []).append(first.get((g, u)))

    def tally(ats: list[datetime | None]) -> str:
        return f"{sum(a is not None for a in ats)} / {len(ats)}"

    def full_at(ats: list[datetime | None]) -> str:
        done = [a for a in ats if a is not None]
        if len(done) < len(ats):
            return ""
        return max(done).astimezone(BEIJING).strftime("%m-%d %H:%M")

    every = [a for ats in by_group.values() for a in ats]
    return {
        "count": f"已覆盖 {sum(a is not None for a in every)} / {len(every)} 个目标",
        "full": all(a is not None for a in every),
        "tiers": {
            "TIER_TASK_FORCE": None,
            "TIER_CITY": tally(by_group["c1"] + by_group["c2"]),
            "TIER_COUNTY": tally(by_group["n1"]),
        },
        "groups": {g: tally(ats) for g, ats in by_group.items()},
        "groupFullAt": {g: full_at(ats) for g, ats in by_group.items()},
        "counties": {c: tally(ats) for c, ats in by_county.items()},
        "countyFullAt": {c: full_at(ats) or "未全覆盖" for c, ats in by_county.items()},
    }


def set_field(browser: Any, selector: str, value: str) -> None:
    """Set a field and say so, as a hand does."""
    browser.execute_script(
        "const f = document.querySelector(arguments[0]); f.value = arguments[1];"
        "f.dispatchEvent(new Event('change'));",
        selector,
        value,
    )


# On how many lines the header's parts sit, whether its title is whole (not cut short with
# an ellipsis), and whether any part runs off the page's right edge.
HEADER_LAYOUT = """
const parts = Array.from(document.querySelectorAll('header.top > *')).filter((e) => !e.hidden)
  .map((e) => e.getBoundingClientRect()).sort((a, b) => a.top - b.top);
let lines = 0, bottom = -Infinity;
for (const r of parts) {
  if (r.top >= bottom - 2) lines += 1;
  bottom = Math.max(bottom, r.bottom);
}
const h1 = document.querySelector('h1');
const range = document.createRange();
range.selectNodeContents(h1);
return {lines, titleWhole: range.getBoundingClientRect().width <= h1.clientWidth + 1,
        inside: Math.max(...parts.map((r) => r.right)) <= document.documentElement.clientWidth};
"""


def test_the_page_shows_the_coverage_on_a_day_as_the_command_line_does(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """ "What was the coverage on a given day" (DOMAIN.md): the hub answers it (`on=DAY`, since
    2026-12-07), the page did not: it showed the coverage up to now, or as the hub knew it at
    a moment (截至), which for a campaign published late is no answer about its days. The
    覆盖进度日期 field (a Beijing day, ?on= in the address) makes every coverage figure the
    one at that day's end; a visit of that day recorded late still changes it, live."""
    published = [DAY_CAMPAIGN, *DAY_VISITS]
    assert publish(hub, tmp_path, published).returncode == 0
    day_end = datetime(2022, 11, 21, tzinfo=BEIJING)
    on_day, now = coverage_before(published, day_end), coverage_before(published, FOREVER)
    # The day's figures differ from the present's in each part checked, and by its end in
    # Beijing time (11-21 00:30 there is 11-20 in UTC).
    assert (on_day["count"], now["count"]) == ("已覆盖 3 / 6 个目标", "已覆盖 5 / 6 个目标")
    assert (on_day["groups"]["n1"], now["groups"]["n1"]) == ("1 / 3", "2 / 3")
    assert on_day["countyFullAt"]["420582"] == "11-20 23:30"
    label = "return document.querySelector('#overall .card-label').textContent"
    field = "return document.querySelector('#on').value"

    browser.get(hub.dashboard + "?campaign=day&on=2022-11-20")
    page = until(browser, lambda p: p["live"] == "live" and p["overallCount"] == on_day["count"])
    assert page["overall"] == "50.0%" and page["error"] == "", page
    assert browser.execute_script(label) == "总体覆盖率 · 至 2022-11-20 24:00"
    assert browser.execute_script(field) == "2022-11-20"
    assert page["tiers"] == on_day["tiers"]
    for g in ("c1", "c2", "n1"):
        full_at = on_day["groupFullAt"][g]
        assert page["groups"][g][0] == on_day["groups"][g], g
        assert page["groups"][g][2] == (full_at and f"✓ {full_at}"), g
    assert page["cells"] == {"420581101": True, "420581102": False, "420581103": False}
    assert page["chips"]["420583"] == ["枝江市", False]
    assert page["counties"] == {
        c: [name, on_day["counties"][c], on_day["countyFullAt"][c]]
        for c, name in (("420581", "宜都市"), ("420582", "当阳市"), ("420583", "枝江市"))
    }
    assert page["uncoveredCount"] == "3"
    assert [u for u, _, _ in page["uncovered"]] == ["420583", "420581102", "420581103"]
    # A day inside the window: not yet full then, not "not achieved" (the window has ended
    # since, which the present's verdict goes by).
    assert not on_day["full"] and page["badge"] == "尚未全覆盖"
    # The statistics keep their own window (自/至), the campaign's: every visit in it.
    assert page["kpis"]["visits"] == "5"
    assert browser.execute_script(HEADER_LAYOUT) == {"lines": 1, "titleWhole": True, "inside": True}
    shot(browser, "dashboard-on-day.png")

    # Live: a visit of that day recorded now counts in the day's figures.
    browser.execute_script("window.__notReloaded = 'yes'")
    time.sleep(1.1)  # the moment lies a second or more from what was recorded either side
    then = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    accepted_over_grpc(hub, LATE_DAY_VISIT)
    published.append(LATE_DAY_VISIT)
    late, now = coverage_before(published, day_end), coverage_before(published, FOREVER)
    assert late["count"] == "已覆盖 4 / 6 个目标"
    page = until(browser, lambda p: p["overallCount"] == late["count"], 5)
    assert page["marker"] == "yes", "the page was reloaded"
    assert page["groups"]["n1"][0] == late["groups"]["n1"] == "2 / 3"
    assert page["counties"]["420581"][1] == late["counties"]["420581"] == "3 / 4"
    assert page["cells"]["420581103"] is True

    # Kept in the address, and restored from it on load.
    assert "on=2022-11-20" in browser.current_url
    browser.refresh()
    page = until(browser, lambda p: p["live"] == "live" and p["overallCount"] == late["count"])
    assert browser.execute_script(field) == "2022-11-20"
    assert page["groups"]["n1"][0] == late["groups"]["n1"] and page["error"] == ""

    # Cleared: the coverage up to now again, and the address without the day.
    press(browser, "#on-now")
    page = until(browser, lambda p: p["overallCount"] == now["count"])
    assert page["groups"]["n1"][0] == now["groups"]["n1"] == "3 / 3"
    assert now["full"] and page["badge"] == "已实现督导全覆盖"
    assert "on=" not in browser.current_url and browser.execute_script(field) == ""
    assert browser.execute_script(label) == "总体覆盖率"

    # The field, as a hand sets it; with 截至 too: the day as the hub knew it at a moment
    # before the late visit was recorded.
    set_field(browser, "#on", "2022-11-20")
    until(browser, lambda p: p["overallCount"] == late["count"])
    assert "on=2022-11-20" in browser.current_url
    set_field(browser, "#as-of", then.astimezone(BEIJING).strftime("%Y-%m-%dT%H:%M:%S"))
    page = until(browser, lambda p: p["live"] == "history" and p["overallCount"] == on_day["count"])
    assert page["groups"]["n1"][0] == on_day["groups"]["n1"] and page["badge"] == "尚未全覆盖"
    # The header, both set, keeps to a line on the wall screen, its title whole; a laptop's
    # has the title and the live state on one, the controls on the next.
    for size, lines in (((1920, 1080), 1), ((1536, 864), 1), ((1366, 768), 2)):
        viewport(browser, *size)
        layout = browser.execute_script(HEADER_LAYOUT)
        assert layout == {"lines": lines, "titleWhole": True, "inside": True}, (size, layout)
        shot(browser, f"dashboard-on-day-{size[0]}.png")
    viewport(browser, 1920, 1080)

    # A day the page cannot read is said, naming it, and the coverage up to now shown.
    for bad in ("2022-11-31", "yesterday", "2022-11-20T12:00"):
        browser.get(hub.dashboard + f"?campaign=day&on={bad}")
        page = until(browser, lambda p: p["live"] == "live" and p["overallCount"] == now["count"])
        assert page["error"].startswith(f"出错: on: 无法识别的日期 '{bad}'"), page["error"]
        assert browser.execute_script(field) == ""
    # A day chosen in the field mends it: the error goes.
    set_field(browser, "#on", "2022-11-20")
    until(browser, lambda p: p["overallCount"] == late["count"] and p["error"] == "")
    assert console_errors(browser) == []


# The 覆盖明细 panel as shown: whether it is open, its group, count and rows (unit id, name,
# first covered, source · event), where the focus is, and whether it and its rows' times fit.
READ_VISITS = """
const d = document.querySelector('#visits');
const text = (e) => (e ? e.textContent.trim() : null);
const a = document.activeElement;
const box = d.getBoundingClientRect();
const rows = Array.from(d.querySelectorAll('#visits-list li[data-unit]'));
return {
  open: d.open,
  group: text(d.querySelector('#visits-group')),
  count: text(d.querySelector('#visits-count')),
  when: text(d.querySelector('#visits-when')),
  rows: rows.map((li) => [li.dataset.unit, text(li.querySelector('b')),
                          text(li.querySelector('time')), text(li.querySelector('small'))]),
  focus: a.id || (a.dataset && a.dataset.visits) || a.tagName,
  fits: !d.open || (box.left >= 0 && box.top >= 0 && box.right <= innerWidth
        && box.bottom <= innerHeight && rows.every((li) => {
          const t = li.querySelector('time');
          return t.scrollWidth <= t.clientWidth;
        })),
};
"""


def visits_panel(browser: Any, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Return the 覆盖明细 panel once `check` holds for it; fail with what it showed."""
    deadline = time.monotonic() + 10
    while True:
        shown = browser.execute_script(READ_VISITS)
        if check(shown):
            return shown  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"the panel never got there: {shown}")
        time.sleep(0.05)


def test_a_groups_coverage_detail_says_which_visit_covered_each_target_and_when(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """覆盖明细: a group's progress bar opens its covered targets, each with when it was first
    covered (Beijing time) and by which event, as the group's figure counts them: live, on a
    day (a visit after it not listed), from the keyboard, closed by Esc."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    assert publish(hub, tmp_path, [DAY_CAMPAIGN, *DAY_VISITS]).returncode == 0
    browser.get(hub.dashboard + "?campaign=day")
    until(browser, lambda p: p["live"] == "live" and p["groups"]["n1"][0] == "2 / 3")
    press(browser, '[data-group="n1"] .bar-open')
    shown = visits_panel(browser, lambda v: v["open"] and len(v["rows"]) == 2)
    # Each target's first covering visit, in Beijing time (11-21 00:30 there is 11-20 UTC).
    assert shown["rows"] == [
        ["420581101", "聂家河镇", "2022-11-03 10:00", "420500 · d3"],
        ["420581102", "柏花口镇", "2022-11-21 00:30", "420500 · d5"],
    ]
    assert (shown["group"], shown["count"], shown["when"]) == ("宜都市督导组", "已覆盖 2 / 3", "")
    assert shown["focus"] == "visits-close" and shown["fits"], shown
    for width, height in ((1920, 1080), (1536, 864), (1366, 768)):
        viewport(browser, width, height)
        assert visits_panel(browser, lambda v: True)["fits"], (width, height)
        shot(browser, f"dashboard-visits-{width}.png")
    viewport(browser, 1920, 1080)

    # Live: a visit recorded while it is open is listed, in its target's place.
    accepted_over_grpc(hub, LATE_DAY_VISIT)
    shown = visits_panel(browser, lambda v: len(v["rows"]) == 3)
    assert shown["rows"][2] == ["420581103", "竹岩冲镇", "2022-11-20 13:00", "420500 · d7"]
    assert shown["count"] == "已覆盖 3 / 3"
    # Esc closes it, the focus back on the bar it was opened from.
    ActionChains(browser).send_keys(Keys.ESCAPE).perform()
    shown = visits_panel(browser, lambda v: not v["open"])
    assert shown["focus"] == "n1", shown

    # On a day: only the visits that took place before its end (Beijing time) are listed,
    # as the group's figure counts them; opened from the keyboard.
    browser.get(hub.dashboard + "?campaign=day&on=2022-11-20")
    until(browser, lambda p: p["live"] == "live" and p["groups"]["n1"][0] == "2 / 3")
    browser.execute_script("document.querySelector('[data-visits=\"n1\"]').focus()")
    ActionChains(browser).send_keys(Keys.ENTER).perform()
    shown = visits_panel(browser, lambda v: v["open"] and len(v["rows"]) == 2)
    assert [r[0] for r in shown["rows"]] == ["420581101", "420581103"]  # not 11-21's 420581102
    assert shown["count"] == "已覆盖 2 / 3"
    assert shown["when"] == "至 2022-11-20 24:00（按督导发生日期）"
    press(browser, "#visits-close")
    assert visits_panel(browser, lambda v: not v["open"])["focus"] == "n1"
    assert until(browser, lambda p: True)["error"] == ""
    assert console_errors(browser) == []


def test_a_hub_gone_away_is_said_in_chinese_and_the_page_recovers_when_it_is_back(
    tmp_path: Path, browser: Any
) -> None:
    """With the hub down, the page's error box read the browser's "出错: Failed to fetch"."""
    first = HubProcess(tmp_path / "data")
    try:
        assert publish(first, tmp_path, scenario()).returncode == 0
        port = first.dashboard.rstrip("/").rsplit(":", 1)[1]
        browser.get(first.dashboard + "?campaign=vax")
        until(browser, lambda p: p["live"] == "live" and p["overall"] == "66.7%")
    finally:
        first.stop()
    browser.find_element("css selector", '#granularity button[data-g="day"]').click()
    page = until(browser, lambda p: p["error"] != "" and p["live"] == "lost")
    assert page["error"] == "出错: 无法连接看板服务，恢复连接后自动更新"
    # Said to a screen reader as it comes (a plain box was heard only when read to).
    assert accessible(browser, "#error")["role"]["value"] == "alert"
    # The last figures stay up dimmed: in full colour they passed for live ones.
    dimmed = "return getComputedStyle(document.querySelector(arguments[0])).opacity"
    assert float(browser.execute_script(dimmed, "#counties")) < 0.7
    assert browser.execute_script(dimmed, "#error") == "1"
    again = HubProcess(tmp_path / "data", "--http", f"127.0.0.1:{port}")
    try:
        page = until(browser, lambda p: p["live"] == "live" and p["error"] == "", 30)
        assert page["overall"] == "66.7%" and len(page["series"]) == 31
        assert browser.execute_script(dimmed, "#counties") == "1"
    finally:
        again.stop()


def test_a_hub_that_hangs_is_said_lost_within_two_heartbeats_and_the_page_recovers(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """A hub that stops answering without closing its connections (hung, or a link gone dead
    without a reset: here SIGSTOP) left the wall screen green and saying 实时 over frozen
    figures for as long as it lasted, 25 s and more seen. The hub's heartbeat is now an event
    the page hears: unheard for two of them (15 s each) and 5 s more, the stream is said lost,
    the figures dimmed, and it is opened again; the hub back, the page is live again."""
    assert publish(hub, tmp_path, scenario()).returncode == 0
    browser.get(hub.dashboard + "?campaign=vax")
    until(browser, lambda p: p["live"] == "live" and p["overall"] == "66.7%")
    hub.proc.send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        page = until(browser, lambda p: p["live"] == "lost", 50)
        took = time.monotonic() - t0
        assert 30 <= took <= 45, took  # not before two heartbeats, not long after
        said = r"出错: 看板服务已 (\d+) 秒无响应，正在重新连接，恢复后自动更新"
        first = re.fullmatch(said, page["error"])
        assert first and 30 <= int(first.group(1)) <= 45, page["error"]
        # It counts the seconds since the hub's last word while it lasts: it said 35 for ever.
        seconds = int(first.group(1))
        page = until(browser, lambda p: p["error"] != page["error"], 3)
        later = re.fullmatch(said, page["error"])
        assert later and int(later.group(1)) == seconds + 1, page["error"]
        page = until(browser, lambda p: f"已 {seconds + 3} 秒" in p["error"], 4)
        assert page["live"] == "lost"
        dimmed = "return getComputedStyle(document.querySelector('#counties')).opacity"
        assert float(browser.execute_script(dimmed)) < 0.7
    finally:
        hub.proc.send_signal(signal.SIGCONT)
    accepted_over_grpc(hub, COVERING_VISIT)
    page = until(browser, lambda p: p["live"] == "live" and p["error"] == "", 30)
    until(browser, lambda p: p["groups"]["n1"] == ["3 / 3", "100.0%", "✓ 11-22 08:00"], 10)


# The wall screen as seen from across the room: what of it lies out of sight (a county group,
# a county, the notice), whether the line under the title is whole and the page scrolls
# sideways, and the smallest type shown (its size and an example), the live state's and the
# notice's.
WALL_VIEW = """
const seen = (el) => {
  const b = el.getBoundingClientRect();
  for (let box = el.parentElement; box; box = box.parentElement) {
    if (getComputedStyle(box).overflowY === 'visible') continue;
    const c = box.getBoundingClientRect();
    if (b.top < c.top - 0.5 || b.bottom > c.top + box.clientHeight + 0.5) return false;
  }
  return b.top >= -0.5 && b.bottom <= innerHeight + 0.5 && b.right <= innerWidth + 0.5;
};
const named = (s, name) => Array.from(document.querySelectorAll(s)).filter((e) => !seen(e))
  .map((e) => e.querySelector(name).textContent);
const sub = document.querySelector('#campaign-meta');
const range = document.createRange();
range.selectNodeContents(sub);
let smallest = [Infinity, ''];
const texts = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = texts.nextNode(); n; n = texts.nextNode()) {
  const e = n.parentElement;
  if (!n.textContent.trim() || e.closest('[hidden], dialog, select, script, .detail')) continue;
  const size = parseFloat(getComputedStyle(e).fontSize);
  if (e.getClientRects().length && size < smallest[0]) smallest = [size, n.textContent.trim()];
}
const error = document.querySelector('#error');
const px = (e) => parseFloat(getComputedStyle(e).fontSize);
return {
  groups: document.querySelectorAll('#county-groups .group').length,
  unseenGroups: named('#county-groups .group', '.name'),
  unseenCounties: named('#counties .county', '.name'),
  subtitleWhole: range.getBoundingClientRect().width <= sub.getBoundingClientRect().width,
  sideways: document.documentElement.scrollWidth > document.documentElement.clientWidth,
  smallest: [Math.round(smallest[0] * 10) / 10, smallest[1].slice(0, 12)],
  live: px(document.querySelector('#live-text')),
  error: error.hidden ? null : [px(error), seen(error)],
};
"""


def test_the_wall_screen_shows_every_county_group_and_reads_from_across_the_room(
    tmp_path: Path, browser: Any
) -> None:
    """A review on a live campaign (the simulator's: 1 task force, 7 city groups, 14 county
    groups) at 1920x1080: 10 of the 14 county groups showed and the rest needed scrolling,
    which nobody does on a wall screen; the line under the title was cut short ("… + 14 个
    县…"); labels were 13-14 px, the live state and the notice 17 px from across the room. The
    notice stays in sight, and a laptop and 200% zoom still do not scroll sideways."""
    hub = HubProcess(tmp_path / "data", simulate=True)
    try:
        # A day the page cannot read: a notice that stays up, as one of the hub away would.
        browser.get(hub.dashboard + "?on=yesterday")
        until(browser, lambda p: p["live"] == "live" and len(p["counties"]) == 14, 30)
        view = browser.execute_script(WALL_VIEW)
        deadline = time.monotonic() + 10
        while view["groups"] < 14 and time.monotonic() < deadline:  # their cells come after
            time.sleep(0.2)
            view = browser.execute_script(WALL_VIEW)
        shot(browser, "dashboard-wall.png")
        assert view["groups"] == 14, view
        assert view["unseenGroups"] == [] and view["unseenCounties"] == [], view
        assert view["subtitleWhole"] and not view["sideways"], view
        assert view["smallest"][0] >= 14.9, view  # 0.9rem at 1920 wide, to its rounding
        assert view["live"] >= 20 and view["error"] and view["error"][0] >= 20, view
        assert view["error"][1], "the notice is out of sight"
        for width, height, scale in ((1366, 768, 1), (960, 540, 2)):  # 960x540: 1920x1080 at 200%
            browser.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": scale, "mobile": False},
            )
            time.sleep(0.5)  # the charts are drawn again to the new width 150 ms after it
            view = browser.execute_script(WALL_VIEW)
            assert not view["sideways"] and view["error"][1], (width, scale, view)
            shot(browser, f"dashboard-wall-{width}x{scale}.png")
        assert console_errors(browser) == []
    finally:
        hub.stop()


# Where a target's cell is drawn on its group's canvas, and the colour of the pixel at its
# middle, as [x, y, r, g, b] (x, y in CSS pixels of the page, for the pointer).
CELL_ON_CANVAS = """
const [group, unit] = arguments;
const canvas = document.querySelector(`[data-group="${group}"] .mosaic canvas`);
const [x, y, size] = canvas.cellAt(unit);
const scale = canvas.width / canvas.getBoundingClientRect().width;
const [r, g, b] = canvas.getContext("2d").getImageData(
  Math.floor((x + size / 2) * scale), Math.floor((y + size / 2) * scale), 1, 1).data;
const box = canvas.getBoundingClientRect();
return [box.x + x + size / 2, box.y + y + size / 2, r, g, b];
"""
COVERED_RGB = [47, 197, 127]  # --covered in app.css
UNCOVERED_RGB = [184, 54, 63]  # --uncovered


def test_a_large_county_groups_cells_are_drawn_on_a_canvas_not_built_one_element_each(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """A county group's mosaic held an element per target: a campaign of 98,714 targets built
    98,714 of them before its figures showed (5-16 s in headless Chromium), and coloured each.
    A group of more than 500 targets is drawn on a canvas instead, each cell in the colour its
    coverage says, named on hover as a cell was, recoloured live; its chips still come when
    it is opened. A group of a few targets keeps its cells (n2)."""
    reference = json.loads((ROOT / "duhub/reference/yichang.json").read_text(encoding="utf-8"))
    below = [
        (u["unit_id"], u["name"])
        for u in reference["units"]
        if u["level"] in ("LEVEL_TOWNSHIP", "LEVEL_VILLAGE")
    ]
    targets = [unit for unit, _ in below]
    names = dict(below)
    assert len(targets) == 1145
    county = "TIER_COUNTY"
    launched = {
        "campaignId": "wide",
        "name": "全市督导",
        "area": "vaccination",
        "startsAt": "2022-11-01T00:00:00Z",
        "endsAt": "2022-12-01T00:00:00Z",
        "groups": [
            {"groupId": "tf", "name": "工作专班", "tier": "TIER_TASK_FORCE"},
            {"groupId": "n1", "name": "全市督导组", "tier": county, "targetUnitIds": targets},
            {"groupId": "n2", "name": "宜都市督导组", "tier": county,
             "targetUnitIds": ["420581101", "420581102"]},
        ],
    }  # fmt: skip

    def visit(seq: int, group: str, unit: str) -> str:
        at = f"2022-11-{seq + 1:02d}T00:00:00Z"
        place = {"campaignId": "wide", "groupId": group, "unitId": unit}
        return line(f"w{seq}", "420500", seq, at, supervisionVisit={**place, "area": "vaccination"})

    lines = [line("w1", "420500", 1, "2022-11-01T00:00:00Z", campaignLaunched=launched)]
    lines += [visit(2, "n1", targets[0]), visit(3, "n1", targets[1]), visit(4, "n2", "420581101")]
    assert publish(hub, tmp_path, lines).returncode == 0

    browser.get(hub.dashboard + "?campaign=wide")
    until(browser, lambda p: p["overall"] == "0.3%" and p["groups"]["n1"] is not None)
    page = until(browser, lambda p: p["groups"]["n1"][0] == "2 / 1,145")
    assert page["groups"]["n1"][:2] == ["2 / 1,145", "0.2%"]
    elements = browser.execute_script(
        "return document.querySelectorAll('[data-group=\"n1\"] [data-unit]').length"
    )
    assert elements == 0, "an element per target: the old page built 1,145"
    assert page["cells"] == {}  # n1's: drawn, not built
    small = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-group=\"n2\"] .mosaic [data-unit]'))"
        ".map((e) => [e.dataset.unit, e.classList.contains('covered')])"
    )
    assert small == [["420581101", True], ["420581102", False]]

    def cell(unit: str) -> list[int]:
        return browser.execute_script(CELL_ON_CANVAS, "n1", unit)  # type: ignore[no-any-return]

    assert cell(targets[0])[2:] == COVERED_RGB
    assert cell(targets[1])[2:] == COVERED_RGB
    assert cell(targets[2])[2:] == UNCOVERED_RGB
    assert cell(targets[-1])[2:] == UNCOVERED_RGB
    # Named on hover, as each cell was by its title.
    x, y, *_ = cell(targets[2])
    browser.execute_cdp_cmd("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y})
    title = browser.execute_script(
        "return document.querySelector('[data-group=\"n1\"] .mosaic canvas').title"
    )
    assert title == names[targets[2]]

    # Live: a covering visit recolours its cell, and only the figures it changes.
    accepted_over_grpc(hub, visit(5, "n1", targets[2]))
    until(browser, lambda p: p["groups"]["n1"][0] == "3 / 1,145")
    assert cell(targets[2])[2:] == COVERED_RGB
    assert cell(targets[3])[2:] == UNCOVERED_RGB

    # Opened, its chips are built, marked as its canvas is.
    press(browser, '[data-group="n1"] button.toggle .name')
    chips = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-group=\"n1\"] .detail [data-unit]'))"
        ".map((e) => [e.dataset.unit, e.classList.contains('covered')])"
    )
    assert len(chips) == 1145
    assert sorted(unit for unit, covered in chips if covered) == sorted(targets[:3])
    assert console_errors(browser) == []


RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: the rules allow it in names (a format character)
# Where the glyphs of a name end on screen, and where those of what follows it on its line
# begin: [the name's right edge, the left edge of the rest] (null when the name is not there).
NAME_THEN_REST = """
const [el, name] = arguments;
const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
const nodes = [];
let text = "";
for (let n; (n = walker.nextNode()); ) { nodes.push([n, text.length]); text += n.data; }
const start = text.indexOf(name);
if (start < 0) return null;
const rects = (from, to) => nodes.flatMap(([n, at]) => {
  const a = Math.max(from - at, 0), b = Math.min(to - at, n.data.length);
  if (a >= b) return [];
  const r = document.createRange();
  r.setStart(n, a);
  r.setEnd(n, b);
  return Array.from(r.getClientRects()).filter((x) => x.width > 0);
});
const own = rects(start, start + name.length);
const top = Math.min(...own.map((r) => r.top)), bottom = Math.max(...own.map((r) => r.bottom));
const rest = rects(start + name.length, text.length)
  .filter((r) => r.top < bottom && r.bottom > top);  // on the name's line
return [Math.max(...own.map((r) => r.right)), Math.min(...rest.map((r) => r.left)),
        el.textContent];
"""


def test_a_bidi_override_in_a_name_ends_with_the_name_on_the_dashboard(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    # A township and a campaign named with U+202E: drawn as they were, the override ran on
    # past the name to the end of its line, and the figures and names after it read right to
    # left (the campaign's dates, the uncovered list's county, a group's count).
    town, campaign, group = f"新{RLO}镇", f"新{RLO}督导", f"新{RLO}组"
    events = [
        line(
            "rlo-town",
            "420581",
            1,
            "2022-11-01T00:00:00Z",
            orgUnitRegistered={
                "unitId": "420581190",
                "parentId": "420581",
                "level": "LEVEL_TOWNSHIP",
                "name": town,
            },
        ),
        line(
            "rlo-campaign",
            "420500",
            1,
            "2022-11-01T00:00:00Z",
            campaignLaunched={
                "campaignId": "rlo",
                "name": campaign,
                "area": "vaccination",
                "startsAt": "2022-11-01T00:00:00Z",
                "endsAt": "2023-01-01T00:00:00Z",
                "groups": [
                    {"groupId": "tf", "name": "工作专班", "tier": "TIER_TASK_FORCE"},
                    {
                        "groupId": "n9",
                        "name": group,
                        "tier": "TIER_COUNTY",
                        "targetUnitIds": ["420581190"],
                    },
                ],
            },
        ),
    ]
    done = publish(hub, tmp_path, events)
    assert done.returncode == 0, done.stdout + done.stderr
    browser.get(hub.dashboard + "?campaign=rlo")
    until(browser, lambda p: [u[0] for u in p["uncovered"]] == ["420581190"])
    from selenium.webdriver.common.by import By

    spilled = []
    for selector, name in (
        ("#campaign-meta", campaign),  # then its area, dates and group counts
        ('#uncovered li[data-unit="420581190"]', town),  # then its county
        ("#uncovered h4", group),  # then its count of uncovered units
        ('[data-group="n9"] .group-head', group),  # then its count and ratio
    ):
        element = browser.find_element(By.CSS_SELECTOR, selector)
        name_right, rest_left, text = browser.execute_script(NAME_THEN_REST, element, name)
        assert name in text, (selector, text)  # the name as it is, for copy and paste
        if rest_left < name_right - 0.5:
            spilled.append(
                f"{selector}: what follows {name!r} is drawn from x={rest_left:.1f}, left of "
                f"the name's end at x={name_right:.1f}"
            )
    assert spilled == [], "the override ran on past the name"
    assert console_errors(browser) == []


# Talks of every kind, for the 约谈 tile below: admonishment talks at a county, one of its
# townships and another county, in an area and in none, and two outside the campaign's window
# (2022-11-01 … 12-01 UTC); a top-leader and an "other" talk, which are no admonishment.
ADMONISHMENT = "TALK_KIND_ADMONISHMENT"
TALKS = [
    line("a1", "420500", 11, "2022-11-05T00:00:00Z",
         talkHeld={"unitId": "420581", "area": "ecology", "kind": ADMONISHMENT, "persons": 2}),
    line("a2", "420500", 12, "2022-11-15T00:00:00Z",
         talkHeld={"unitId": "420581101", "kind": ADMONISHMENT, "persons": 3}),
    line("a3", "420500", 13, "2022-11-20T00:00:00Z",
         talkHeld={"unitId": "420583", "area": "grain", "kind": ADMONISHMENT, "persons": 1}),
    line("a4", "420500", 14, "2022-12-05T00:00:00Z",
         talkHeld={"unitId": "420582", "area": "grain", "kind": ADMONISHMENT, "persons": 4}),
    line("a5", "420500", 15, "2022-10-30T23:00:00Z",
         talkHeld={"unitId": "420582", "kind": ADMONISHMENT, "persons": 5}),
    line("a6", "420500", 16, "2022-11-16T00:00:00Z",
         talkHeld={"unitId": "420582", "kind": "TALK_KIND_TOP_LEADER", "persons": 6}),
    line("a7", "420500", 17, "2022-11-17T00:00:00Z",
         talkHeld={"unitId": "420583", "kind": "TALK_KIND_OTHER", "persons": 7}),
]  # fmt: skip
LIVE_TALK = line("a8", "420500", 18, "2022-11-25T00:00:00Z",
                 talkHeld={"unitId": "420582", "kind": ADMONISHMENT, "persons": 2})  # fmt: skip
CAMPAIGN_WINDOW = ("2022-11-01T00:00:00Z", "2022-12-01T00:00:00Z")


def admonished(
    lines: list[str], window: tuple[str, str] = CAMPAIGN_WINDOW, under: str = "", area: str = ""
) -> str:
    """Persons summoned to admonishment talks among these events, as the page shows the figure:
    worked out from the events themselves, not asked of the hub. `under` a unit: its code and
    its townships' and villages' (GB/T 2260 codes extend their county's); an event without an
    area counts only when no area is asked for."""
    start, end = (datetime.fromisoformat(t) for t in window)
    total = 0
    for text in lines:
        event = json.loads(text)
        talk = event.get("talkHeld")
        if not talk or talk["kind"] != ADMONISHMENT:
            continue
        if start <= datetime.fromisoformat(event["occurredAt"]) < end:
            if talk["unitId"].startswith(under) and (not area or talk.get("area") == area):
                total += talk["persons"]
    return f"{total:,}"


TILE_ROWS = """
const rows = {};
for (const t of document.querySelectorAll('#kpis .kpi')) {
  const top = Math.round(t.getBoundingClientRect().top);
  (rows[top] ||= []).push(t.dataset.metric);
}
return Object.values(rows).map((r) => r.length);
"""


def test_the_admonishment_tile_counts_the_persons_summoned_as_every_tile_counts(
    hub: HubProcess, browser: Any, tmp_path: Path
) -> None:
    """The article's command centre reads how many were summoned for admonishment talks (约谈,
    "leaders of 8 low-ranked localities or units"); the page had no tile for it, only all
    talks and the top leaders'. It is one more tile, of the same answer as the others: for
    the scope, area, window and moment chosen, live, and the charts' figure when chosen."""
    published = [*scenario(), *TALKS]
    assert publish(hub, tmp_path, published).returncode == 0
    time.sleep(1.1)  # the moment lies a second or more from what was recorded either side
    then = datetime.now(UTC).replace(microsecond=0)
    time.sleep(1.1)
    tile = '#kpis [data-metric="talk_persons_admonishment"]'

    browser.get(hub.dashboard + "?campaign=vax")
    expected = admonished(published)
    assert expected == "7"  # the scenario's 1 at a township, and a1, a2, a3 here
    page = until(browser, lambda p: p["live"] == "live" and p["kpis"].get("visits") == "6")
    assert page["kpis"].get("talk_persons_admonishment") == expected, "no 约谈 tile"
    label = browser.execute_script(f"return document.querySelector('{tile} .label').textContent")
    assert label == "约谈人次"
    # Live, as the others: one more summoned shows up without reloading the page.
    browser.execute_script("window.__notReloaded = 'yes'")
    accepted_over_grpc(hub, LIVE_TALK)
    published.append(LIVE_TALK)
    expected = admonished(published)
    page = until(browser, lambda p: p["kpis"]["talk_persons_admonishment"] == expected, 5)
    assert page["marker"] == "yes", "the page was reloaded"
    # Chosen, it is the charts' figure: by county, then drilled into one, by township.
    press(browser, tile)
    page = until(browser, lambda p: p["bars"].get("420582") == ["当阳市", 2])
    assert pressed(browser, tile) == "true"
    title = browser.find_element("css selector", "#bars-title").text
    assert title.startswith("约谈人次 · 按县市区"), title
    yidu = admonished(published, under="420581")
    assert page["bars"]["420581"] == ["宜都市", int(yidu)]
    assert page["bars"]["420583"] == ["枝江市", int(admonished(published, under="420583"))]
    press(browser, '#bars g.bar[data-key="420581"] text.label')
    page = until(browser, lambda p: p["crumbs"] == "宜昌市›宜都市" and "420581101" in p["bars"])
    assert page["kpis"]["talk_persons_admonishment"] == yidu == "6"
    assert page["bars"]["420581101"] == ["聂家河镇", int(admonished(published, under="420581101"))]
    press(browser, '#crumbs button[data-depth="0"]')
    until(browser, lambda p: p["crumbs"] == "宜昌市")
    # An area: an admonishment without one is in no area's figure.
    browser.execute_script(
        "const a = document.querySelector('#area'); a.value = 'ecology';"
        "a.dispatchEvent(new Event('change'));"
    )
    ecology = admonished(published, area="ecology")
    assert ecology == "3"
    until(browser, lambda p: p["kpis"]["talk_persons_admonishment"] == ecology)
    browser.execute_script(
        "const a = document.querySelector('#area'); a.value = '';"
        "a.dispatchEvent(new Event('change'));"
    )
    until(browser, lambda p: p["kpis"]["talk_persons_admonishment"] == expected)
    # A window to the year's end (至: a Beijing day, the day included) takes in December's.
    browser.execute_script(
        "const t = document.querySelector('#to'); t.value = '2022-12-31';"
        "t.dispatchEvent(new Event('change'));"
    )
    year_end = admonished(published, window=(CAMPAIGN_WINDOW[0], "2022-12-31T16:00:00Z"))
    assert year_end == "13"
    until(browser, lambda p: p["kpis"]["talk_persons_admonishment"] == year_end)
    # The moment before the live one was published: what the hub knew then.
    browser.get(hub.dashboard + f"?campaign=vax&as_of={then.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    before = admonished(published[:-1])
    page = until(browser, lambda p: p["live"] == "history" and p["kpis"]["visits"] == "6")
    assert page["kpis"]["talk_persons_admonishment"] == before == "7"
    # Eleven tiles, laid out with none alone on a row: 4 + 4 + 3 on the wall screen (the
    # talks' three the last row), 6 + 5 on a laptop's full width.
    assert browser.execute_script(TILE_ROWS) == [4, 4, 3]
    shot(browser, "dashboard-admonishment.png")
    viewport(browser, 1366, 768)
    deadline = time.monotonic() + 5
    while browser.execute_script(TILE_ROWS) != [6, 5] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert browser.execute_script(TILE_ROWS) == [6, 5]
    assert until(browser, lambda p: True)["error"] == ""
    assert console_errors(browser) == []
