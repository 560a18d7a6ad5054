"""`wharf ui` on the dev cluster, driven by a real headless Chromium (Debian's, with its driver): the
list shows every app with its states, a scale change appears without a reload, an app's page shows
its chain, and no request the page makes carries a credential. Screenshots go to the test's folder
(or WHARF_SCREENSHOTS)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devcluster.lab import Lab, Systems, web_app
from devcluster.process import spawn, stop
from tests.conftest import Endpoint, stand_in_only
from tests.polling import wait_for
from wharf.contracts.marathon_lb import app_name

webdriver = pytest.importorskip("selenium.webdriver")
pytestmark = [pytest.mark.integration,
              stand_in_only("MARATHON_URL", "MESOS_MASTER", why="the lab's registrator watches this machine's Docker"),
              pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")),
                                 reason="Debian's chromium and chromium-driver are not installed (make bootstrap)")]

PASSWORD = f"pw-{uuid.uuid4().hex}"  # Marathon's basic-auth password, given to the server only


@pytest.fixture(scope="module")
def lab(marathon: Endpoint, consul: Any, docker_engine: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("ui"), Systems(consul.addr, marathon.url, docker_engine.host,
                                                     consul.token)) as started:
        try:
            yield started
        finally:
            started.delete_apps("/ui-")


@pytest.fixture(scope="module")
def secrets(consul: Any) -> dict[str, str]:
    """What the server holds and the page must never see (Consul ignores a token when ACLs are off)."""
    return {"consul token": consul.token or f"tok-{uuid.uuid4().hex}", "marathon password": PASSWORD}


@pytest.fixture(scope="module")
def view(lab: Lab, secrets: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`wharf ui` on a free loopback port, with credentials for Consul and Marathon; its address."""
    url = lab.systems.marathon_url.replace("://", f"://ops:{secrets['marathon password']}@", 1)
    env = {**lab.env(), "MARATHON_URL": url, "CONSUL_HTTP_TOKEN": secrets["consul token"],
           "WHARF_HAPROXY_SOCKET": str(lab.haproxy.admin_socket), "WHARF_HAPROXY_CONFIG": str(lab.haproxy.config)}
    log = tmp_path_factory.mktemp("ui-server") / "ui.log"
    proc = spawn([sys.executable, "-m", "wharf", "ui", "--listen", "127.0.0.1:0", "--interval", "0.5"], log, env=env)
    try:
        found = wait_for(lambda: re.search(r"wharf ui: (http://\S+)", log.read_text()), 30, "the view's address")
        yield found.group(1).rstrip("/")
    finally:
        stop(proc)
        assert secrets["marathon password"] not in log.read_text()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("WHARF_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    assert driver.save_screenshot(str(path)) and path.stat().st_size > 5000
    return path


ROWS = """return [...document.querySelectorAll('#apps tbody tr')].map((r) => [r.dataset.app,
    [...r.querySelectorAll('td[data-link]')].map((c) => [c.dataset.link, c.dataset.state,
                                                      c.querySelector('.summary').textContent])])"""
CHAIN = """return [...document.querySelectorAll('#chain .link')].map((e) => [e.dataset.link, e.dataset.state,
                                                                    e.textContent])"""


def rows(driver: Any) -> dict[str, dict[str, tuple[str, str]]]:
    """The list as shown: app -> link name -> (state, summary). Read in one script: the page redraws
    on every event, so elements found one call earlier may be gone."""
    return {app: {name: (state, summary) for name, state, summary in links}
            for app, links in driver.execute_script(ROWS)}


def cells(driver: Any, app_id: str) -> dict[str, tuple[str, str]]:
    """The list row of `app_id`: link name -> (state, summary); empty while it is not shown."""
    return rows(driver).get(app_id, {})


def chain(driver: Any) -> dict[str, tuple[str, str]]:
    """An app's page as shown: link name -> (state, text)."""
    return {name: (state, text) for name, state, text in driver.execute_script(CHAIN)}


def deployed(lab: Lab, app: dict[str, Any]) -> str:
    app["labels"]["wharf.commit"] = "9c1d2e3f4a5b"
    assert requests.post(f"{lab.systems.marathon_url}/v2/apps", json=app, timeout=10).status_code == 201
    wait_for(lambda: lab.serving(app_name(app["id"]) + "_") == app["instances"], 60, "the app in HAProxy")
    return str(app["id"])


def test_the_list_shows_every_app_and_a_scale_change_without_a_reload(
        lab: Lab, view: str, browser: Any, secrets: dict[str, str], tmp_path: Path) -> None:
    folder = f"ui-{uuid.uuid4().hex[:6]}"
    web = deployed(lab, web_app(f"/{folder}/web", f"{folder}.test", 1))
    api = deployed(lab, web_app(f"/{folder}/api", f"api.{folder}.test", 1))
    browser.get(view + "/")
    every = {a["id"] for a in requests.get(f"{lab.systems.marathon_url}/v2/apps", timeout=10).json()["apps"]}
    shown = wait_for(lambda: (s := set(rows(browser))) >= {web, api} and s, 10, "both apps listed")
    assert every <= shown  # every Marathon app has its row (a blue/green colour would show as its group)
    row = wait_for(lambda: (c := cells(browser, web)) and c["haproxy"][0] == "ok" and c, 10, "the app's links ok")
    assert [(name, state) for name, (state, _) in row.items()] == [
        ("config", "ok"), ("marathon", "ok"), ("tasks", "ok"), ("consul", "ok"), ("haproxy", "ok"),
        ("autoscale", "none")]
    screenshot(browser, "ui-list", tmp_path)

    marker = browser.execute_script("window.notReloaded = true; return document.body.dataset.version")
    asked = time.monotonic()
    assert requests.put(f"{lab.systems.marathon_url}/v2/apps{web}", json={"instances": 2}, timeout=10).ok
    wait_for(lambda: "/2 healthy" in cells(browser, web).get("marathon", ("", ""))[1], 2.0, "the scale on the page")
    seen_after = time.monotonic() - asked
    assert browser.execute_script("return window.notReloaded") is True  # the same page, not a reload
    assert browser.execute_script("return document.body.dataset.version") != marker
    print(f"scale change on the page {seen_after * 1000:.0f} ms after Marathon took it")
    wait_for(lambda: cells(browser, web)["marathon"] == ("ok", cells(browser, web)["marathon"][1])
             and "2/2 healthy" in cells(browser, web)["marathon"][1], 60, "both instances healthy")
    assert_no_secret_sent(browser, view, secrets)


def test_an_apps_page_shows_its_chain_history_and_render(
        lab: Lab, view: str, browser: Any, secrets: dict[str, str], tmp_path: Path, consul: Any) -> None:
    folder = f"ui-{uuid.uuid4().hex[:6]}"
    web = deployed(lab, web_app(f"/{folder}/web", f"{folder}.test", 1))
    browser.get(view + "/")
    click = "for (const a of document.querySelectorAll('#apps a')) if (a.textContent === arguments[0]) " \
            "{ a.click(); return true }; return false"
    wait_for(lambda: browser.execute_script(click, web), 10, "the app's link clicked")
    wait_for(lambda: browser.current_url.endswith(f"/apps/{folder}/web"), 5, "the app's page")
    shown = wait_for(lambda: (c := chain(browser)) and c["haproxy"][0] == "ok" and c, 10, "the chain")
    assert list(shown) == ["config", "marathon", "tasks", "consul", "haproxy", "autoscale"]
    assert "9c1d2e3f4a5b" in shown["config"][1]
    wait_for(lambda: browser.find_elements("css selector", "#deploys tr[data-kind=deploy]"), 10, "the deploy history")
    assert "applied" in browser.find_element("id", "render").text
    assert browser.find_elements("css selector", "svg.chart path.instances")
    screenshot(browser, "ui-app", tmp_path)

    # a link breaking shows on the open page: a maintenance on the app's only instance
    c = consul.client()
    _, entries = c.health.service(web.strip("/").replace("/", "-"))
    c.agent.service.maintenance(entries[0]["Service"]["ID"], "true", "ops: ui test")
    consul_link = wait_for(lambda: (c := chain(browser).get("consul")) and c[0] == "broken" and c, 5,
                           "the maintenance on the page")
    assert "ops: ui test" in consul_link[1]
    screenshot(browser, "ui-app-broken", tmp_path)
    assert_no_secret_sent(browser, view, secrets)


def assert_no_secret_sent(browser: Any, view: str, secrets: dict[str, str]) -> None:
    """No request the page made (URL, headers, body) and nothing it received holds a credential."""
    sent = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            request = message["params"]["request"]
            if request["url"].startswith(("http:", "https:", "ws:", "wss:")):  # not Chromium's own chrome://
                sent.append(request)
                assert request["url"].startswith(view + "/"), f"the page asked {request['url']}"
    assert sent, "no request seen in Chromium's log"
    seen = json.dumps(sent) + browser.page_source + requests.get(f"{view}/api/view", timeout=5).text
    for what, secret in secrets.items():
        assert secret not in seen, f"the {what} reached the page"


def test_bad_listen_is_one_line_and_exit_2(lab: Lab) -> None:
    done = subprocess.run([sys.executable, "-m", "wharf", "ui", "--listen", "127.0.0.1:99999"], env=lab.env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "--listen" in done.stderr
