"""The committee report in a real browser: Chromium (headless) renders it to a screenshot
and an A4 PDF, runs it with no console errors and no network requests, lays every chart out
at a visible size, and axe-core finds no serious or critical accessibility violations.

Needs Debian's ``chromium`` (skipped, saying so, when it cannot be found). The axe-core
check needs axe-core 4: set ``AXE_CORE_JS`` to its ``axe.min.js``, or let the test install
it once with npm (``npm install axe-core@4``) into the pytest cache, after which it runs
offline.
"""

from __future__ import annotations

import html as html_module
import json
import os
import re
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLES, SUNDERLAND
from tests.test_report import DRIFT, HOVER_SCHEDULE, PERIOD, _build


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (apt-get install chromium); the browser checks of the "
           "committee report need it")

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--hide-scrollbars"]
WINDOW = (1240, 1754)  # A4 at 150 dpi

# Installed at the top of <head> in the test copy: records script errors, console errors,
# failed resource loads and content-security violations before anything else runs.
CATCHER = """<script>
window.__problems = [];
window.addEventListener('error', function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) {
    window.__problems.push('resource failed: ' + (t.src || t.href));
  } else {
    window.__problems.push('error: ' + (e.message || String(e.error)));
  }
}, true);
window.addEventListener('unhandledrejection', function (e) {
  window.__problems.push('unhandled rejection: ' + String(e.reason));
});
document.addEventListener('securitypolicyviolation', function (e) {
  window.__problems.push('csp: ' + e.blockedURI);
});
(function () {
  var original = console.error;
  console.error = function () {
    window.__problems.push('console.error: ' + Array.prototype.join.call(arguments, ' '));
    return original.apply(console, arguments);
  };
})();
</script>"""

# Appended to <body>: measures the page, runs axe if it is present, and writes the result
# as JSON into <pre id="probe"> for --dump-dom to carry out.
PROBE = """<pre id="probe" hidden></pre>
<script>
(function () {
  function measure() {
    var charts = Array.prototype.map.call(document.querySelectorAll('svg.chart'),
      function (svg) {
        var r = svg.getBoundingClientRect();
        var texts = svg.querySelectorAll('text');
        var visibleText = Array.prototype.filter.call(texts, function (t) {
          var b = t.getBoundingClientRect();
          return b.width > 0 && b.height > 0;
        }).length;
        return {id: svg.id, width: r.width, height: r.height, texts: texts.length,
                visibleText: visibleText,
                title: (svg.querySelector('title') || {}).textContent || ''};
      });
    var resources = performance.getEntriesByType('resource').map(function (e) {
      return e.name;
    });
    return {charts: charts, text: document.body.innerText, resources: resources,
            title: document.title, lang: document.documentElement.lang};
  }
  function finish(result) {
    result.problems = window.__problems || [];
    document.getElementById('probe').textContent = JSON.stringify(result);
  }
  window.addEventListener('load', function () {
    var result = measure();
    if (!window.axe) { result.axe = null; finish(result); return; }
    window.axe.run(document, {resultTypes: ['violations']}).then(function (r) {
      result.axe = r.violations.map(function (v) {
        return {id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.length,
                targets: v.nodes.slice(0, 5).map(function (n) { return n.target.join(' '); })};
      });
      finish(result);
    }, function (err) {
      window.__problems.push('axe failed: ' + err);
      result.axe = null;
      finish(result);
    });
  });
})();
</script>"""


def _axe_source(config: pytest.Config, scratch: Path) -> tuple[str | None, str]:
    """axe-core's script and where it came from, or None and why it is missing.

    Kept in the pytest cache between runs; in ``scratch`` when the cache is disabled.
    """
    given = os.environ.get("AXE_CORE_JS")
    if given:
        path = Path(given)
        if path.is_file():
            return path.read_text(encoding="utf-8"), str(path)
        return None, f"AXE_CORE_JS={given} is not a file"
    cache = getattr(config, "cache", None)
    folder = cache.mkdir("axe-core") if cache is not None else scratch / "axe-core"
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "node_modules" / "axe-core" / "axe.min.js"
    if not script.is_file():
        npm = shutil.which("npm")
        if npm is None:
            return None, "axe-core is not available: set AXE_CORE_JS or install npm"
        try:
            subprocess.run([npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund",
                            "--no-save", "axe-core@4"], check=True, capture_output=True,
                           timeout=180)
        except (subprocess.SubprocessError, OSError) as exc:
            return None, f"axe-core could not be installed with npm: {exc}"
    if not script.is_file():
        return None, "npm did not install axe-core"
    return script.read_text(encoding="utf-8"), str(script)


def _run(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = cwd / f"profile-{len(list(cwd.glob('profile-*')))}"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], cwd=cwd,
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "HOME": str(cwd)})


@dataclass
class Page:
    folder: Path
    report: Path
    html: str
    probe: dict[str, Any]
    axe_reason: str


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Page:
    returns = [EXAMPLES / f"sunderland-tfc-2018-{m:02d}.csv" for m in (6, 7, 8, 9)]
    built = _build(tmp_path_factory.mktemp("store"), SUNDERLAND, returns, PERIOD)
    return _open(built.render(), tmp_path_factory, request)


@pytest.fixture(scope="module")
def signal_page(tmp_path_factory: pytest.TempPathFactory,
                request: pytest.FixtureRequest) -> Page:
    """A report with special-cause variation on its XmR chart, an acknowledged and noted
    escalation, and one held back by a silence."""
    tmp = tmp_path_factory.mktemp("signal")
    schedule = tmp / "hover.yaml"
    schedule.write_text(HOVER_SCHEDULE)
    figures = tmp / "figures.csv"
    figures.write_text("measure,period,value\n" + "".join(f"KPI1,{p},{v}\n" for p, v in DRIFT))
    built = _build(tmp, schedule, [figures], "2018-10")
    built.escalations = [
        {"measure": "KPI1", "level": 1, "forum": "Group", "opened": "2018-10",
         "status": "open", "resolved": None, "rule": "r", "description": "A test escalation.",
         "acknowledged_by": "j.smith", "acknowledged_at": "2018-11-02T10:15",
         "latest_note": "Recovery plan due at the November meeting",
         "latest_note_by": "a.jones"},
        {"measure": "KPI1", "level": 2, "forum": "Board", "opened": "2018-09",
         "status": "silenced", "resolved": None, "silenced_until": "2019-03",
         "silence_reason": "Remedial plan agreed", "rule": "r", "description": "Held."}]
    return _open(built.render(), tmp_path_factory, request)


def _open(html: str, tmp_path_factory: pytest.TempPathFactory,
          request: pytest.FixtureRequest) -> Page:
    """Load a report in Chromium with the catcher, axe (when available) and the probe."""
    folder = tmp_path_factory.mktemp("browser")
    report = folder / "report.html"
    report.write_text(html, encoding="utf-8")

    axe, where = _axe_source(request.config, tmp_path_factory.getbasetemp())
    probe_page = html.replace("<head>", "<head>\n" + CATCHER, 1)
    extra = PROBE
    if axe is not None:
        extra = "<script>\n" + axe.replace("</script", "<\\/script") + "\n</script>\n" + PROBE
    probe_page = probe_page.replace("</body>", extra + "\n</body>", 1)
    probe_file = folder / "probe.html"
    probe_file.write_text(probe_page, encoding="utf-8")
    result = _run("--virtual-time-budget=10000", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                  "--dump-dom", probe_file.as_uri(), cwd=folder)
    match = re.search(r'<pre id="probe" hidden="">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the probe did not run: {result.stderr[-2000:]}"
    probe = json.loads(html_module.unescape(match.group(1)))
    return Page(folder, report, html, probe, "" if axe is not None else where)


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_screenshot(page: Page) -> None:
    shot = page.folder / "report.png"
    result = _run(f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                  page.report.as_uri(), cwd=page.folder)
    assert shot.is_file(), result.stderr[-2000:]
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few kilobytes
    assert _png_size(shot) == WINDOW


def test_prints_to_a4_pdf(page: Page) -> None:
    pdf = page.folder / "report.pdf"
    result = _run(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", page.report.as_uri(),
                  cwd=page.folder)
    assert pdf.is_file(), result.stderr[-2000:]
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 50_000
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", data)
    assert boxes, "no page sizes in the PDF"
    for width, height in boxes:  # A4 portrait: 595 x 842 points
        assert abs(float(width) - 595.3) < 2 and abs(float(height) - 841.9) < 2
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    assert pages >= 5  # scorecard, exceptions and escalations, and 20 measures in detail


def test_runs_without_errors_or_requests(page: Page) -> None:
    assert page.probe["problems"] == []
    assert page.probe["resources"] == []  # nothing fetched: the page is self-contained
    assert page.probe["lang"] == "en-GB"
    assert page.probe["title"] == "Together for Children performance update: September 2018"


def test_every_chart_is_laid_out_with_its_text(page: Page) -> None:
    charts = page.probe["charts"]
    history = [c for c in charts if c["id"].startswith("chart-")]
    xmr = [c for c in charts if c["id"].startswith("xmr-")]
    # Each measure's history, and its XmR chart (all but SM5.2, judged at year end).
    assert len(history) == 20 and len(xmr) == 18 and len(charts) == 38
    for chart in charts:
        assert chart["width"] > 400 and chart["height"] > 150, chart
        assert chart["texts"] > 5 and chart["visibleText"] == chart["texts"], chart
        ref = chart["id"].split("-", 1)[1].split("-")[0]
        assert chart["title"].startswith(ref), chart
    for chart in xmr:
        assert "XmR chart" in chart["title"], chart


def test_the_text_is_there(page: Page) -> None:
    text = page.probe["text"]
    for expected in ("Where are we performing well?", "Where do we need to improve?",
                     "Escalations", "Measures in detail", "September 2018", "2018/19",
                     "Performance against this measure is not meeting target of 22% and is "
                     "outside of tolerance range.",
                     "Together for Children are unable to report this measure",
                     "Variation and assurance", "Assurance: consistently failing",
                     "Special cause: concern"):
        assert expected in text
    for ref in ("KPI1", "SM1.1", "SM3.2", "KPI9", "SM9.1"):
        assert ref in text


def test_no_serious_accessibility_violations(page: Page) -> None:
    if page.probe["axe"] is None:
        pytest.skip(page.axe_reason or "axe-core did not run")
    violations = page.probe["axe"]
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps(serious, indent=2)


def test_a_report_with_signals_and_responses(signal_page: Page) -> None:
    assert signal_page.probe["problems"] == []
    assert signal_page.probe["resources"] == []
    charts = signal_page.probe["charts"]
    assert [c["id"] for c in charts] == ["chart-KPI1", "xmr-KPI1"]
    for chart in charts:
        assert chart["width"] > 400 and chart["height"] > 150, chart
        assert chart["visibleText"] == chart["texts"], chart
    text = signal_page.probe["text"]
    for expected in ("Special cause: concern", "Assurance: consistently passing",
                     "Acknowledged by j.smith on 2 November 2018 at 10:15",
                     "Escalation held back until March 2019: Remedial plan agreed",
                     "a signal that performance has changed for the worse"):
        assert expected in text
    if signal_page.probe["axe"] is None:
        pytest.skip(signal_page.axe_reason or "axe-core did not run")
    serious = [v for v in signal_page.probe["axe"] if v["impact"] in ("serious", "critical")]
    assert serious == [], json.dumps(serious, indent=2)
