"""The book (book/): it builds with execution and warnings as errors, and a real
browser shows every chapter correctly, offline.

Run only these tests with ``pytest tests/test_book.py`` (or ``-m slow``). The
first build executes every chapter (a few minutes on two cores); later builds
take the executed outputs from book/_build/.jupyter_cache.

The browser test needs Debian's ``chromium`` and ``fonts-noto-cjk`` (installed
by ``.ci/run``); it is skipped when /usr/bin/chromium is missing. It saves
screenshots of two chapters in book/_build/screens/ (CI artefacts).
"""
from __future__ import annotations

import functools
import http.server
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from autograder.book import BOOK_DIR, build_book

CHROMIUM = Path("/usr/bin/chromium")
SCREENS = BOOK_DIR / "_build" / "screens"
SCREENSHOT_PAGES = ("attention", "tokenization")  # two chapters saved as CI artefacts
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-default-apps", "--disable-extensions"]
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\frac|\\sqrt|\\mathrm|\\begin\{")
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


def toc_pages() -> list[str]:
    """Every page of the book in reading order (root, then the parts' chapters)."""
    toc = yaml.safe_load((BOOK_DIR / "_toc.yml").read_text(encoding="utf-8"))
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


def numbered_chapters() -> list[str]:
    toc = yaml.safe_load((BOOK_DIR / "_toc.yml").read_text(encoding="utf-8"))
    return [c["file"] for part in toc["parts"] if part.get("numbered", True) for c in part["chapters"]]


@pytest.fixture(scope="session")
def html_dir() -> Path:
    """Build the book once per session (cached execution), warnings as errors."""
    return build_book(BOOK_DIR, warnings_as_errors=True, quiet=True)


# ------------------------------------------------------------------ static checks

class PageParser(HTMLParser):
    """Collects the parts of a built page that the checks below look at."""

    def __init__(self):
        super().__init__()
        self.resources: list[str] = []   # src/href that the browser would fetch by itself
        self.links: list[str] = []       # <a href>
        self.images: list[str] = []
        self.headings: list[str] = []
        self._heading = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio") and a.get("src"):
            self.resources.append(a["src"])
        if tag == "link" and a.get("href") and a.get("rel") not in ("canonical",):
            self.resources.append(a["href"])
        if tag == "img" and a.get("src"):
            self.images.append(a["src"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])
        if tag in ("h1", "h2"):
            self._heading = []

    def handle_data(self, data):
        if self._heading is not None:
            self._heading.append(data)

    def handle_endtag(self, tag):
        if tag in ("h1", "h2") and self._heading is not None:
            text = "".join(self._heading).replace("#", "").strip()
            self.headings.append(re.sub(r"^[\d.]+\s+", "", text))  # without the section number
            self._heading = None


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def test_book_builds_every_page(html_dir):
    for page in toc_pages():
        assert (html_dir / f"{page}.html").is_file(), f"{page}.html がビルドされていません"
    assert (html_dir / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax が同梱されていません"


def test_pages_fetch_nothing_from_outside(html_dir):
    """No script, stylesheet, font or image comes from another host."""
    for page in [*toc_pages(), "search", "genindex"]:
        parsed = parse(html_dir / f"{page}.html")
        outside = [r for r in parsed.resources if urllib.parse.urlparse(r).scheme in ("http", "https")
                   or r.startswith("//")]
        assert not outside, f"{page}.html が外部のリソースを読みます: {outside}"


def test_every_chapter_has_exercise_summary_and_references(html_dir):
    for page in numbered_chapters():
        parsed = parse(html_dir / f"{page}.html")
        html = (html_dir / f"{page}.html").read_text(encoding="utf-8")
        assert "まとめ" in parsed.headings, f"{page}: 「まとめ」の節がありません ({parsed.headings})"
        assert "参考文献" in parsed.headings, f"{page}: 「参考文献」の節がありません"
        assert 'role="doc-footnote"' in html or 'class="citation"' in html, f"{page}: 文献が 1 件もありません"
        colab = [h for h in parsed.links if h.startswith("https://colab.research.google.com/github/")]
        assert colab, f"{page}: 演習ノートブックへの Open in Colab リンクがありません"
        assert all(re.search(r"/blob/[^/]+/exercises/\d\d_\w+\.ipynb$", h) for h in colab), colab
        assert any(src.endswith("open-in-colab.svg") for src in parsed.images), f"{page}: バッジ画像がありません"


def test_code_cells_ran(html_dir):
    """Chapters show outputs of their code (the build executed them)."""
    without_output = [page for page in numbered_chapters()
                      if 'class="cell_output' not in (html_dir / f"{page}.html").read_text(encoding="utf-8")]
    assert not without_output, f"実行結果のない章: {without_output}"


def test_every_figure_of_the_code_is_on_the_page(html_dir):
    """Each plt.show() in a chapter's code leaves a figure in the page (a cell that
    switched matplotlib to a non-inline backend would silently drop them)."""
    figure = re.compile(r'<img[^>]+src="_images/[0-9a-f]{64}\.png"')
    for page in numbered_chapters():
        source = (BOOK_DIR / f"{page}.md").read_text(encoding="utf-8")
        shown = source.count("plt.show()")
        drawn = len(figure.findall((html_dir / f"{page}.html").read_text(encoding="utf-8")))
        assert drawn >= shown, f"{page}: 図が {shown} 枚のはずが {drawn} 枚しかありません"


# ----------------------------------------------------------------- browser checks

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def served(html_dir):
    """book/_build/html on http://127.0.0.1:<port>/ (a thread of this process)."""
    handler = functools.partial(QuietHandler, directory=str(html_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} がありません (Debian の chromium と fonts-noto-cjk を入れると実行されます)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


# JavaScript run in each page once it has loaded and MathJax (if any) has finished.
PAGE_REPORT_JS = r"""
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const article = document.querySelector('article.bd-article') || document.querySelector('main') || document.body;
  // visible prose: no code, no rendered math, no scripts
  const clone = article.cloneNode(true);
  clone.querySelectorAll('pre, code, .highlight, mjx-container, script, style, .cell_output').forEach(e => e.remove());
  const math = [...article.querySelectorAll('span.math, div.math')];
  const images = [...document.images].map(img => ({src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0}));
  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  // the first Japanese paragraph of the text: mark it for the font check
  const para = [...article.querySelectorAll('p')].find(p => /[\u3040-\u30ff\u4e00-\u9fff]/.test(p.textContent));
  if (para) para.setAttribute('data-cjk-probe', '1');
  return {
    text: clone.textContent,
    mathCount: math.length,
    mathUnrendered: math.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 60)),
    mjxCount: document.querySelectorAll('mjx-container').length,
    mjxErrors: [...document.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || e.textContent),
    images, links,
    fontFamily: para ? getComputedStyle(para).fontFamily : null,
    hasMathJax: !!window.MathJax,
  };
}
"""


def platform_fonts(page, selector: str) -> list[dict]:
    """The fonts Chromium really used for the text of an element (DevTools protocol)."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        return cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    finally:
        cdp.detach()


def test_chapters_render_in_a_real_browser(served, browser):
    base = urllib.parse.urlparse(served)
    outside, failed_responses, problems = [], [], []
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ja-JP",
                                  service_workers="block")

    def guard(route):
        url = urllib.parse.urlparse(route.request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in ("127.0.0.1", "localhost"):
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("response", lambda r: r.status >= 400 and failed_responses.append(f"{r.status} {r.url}"))
    page.on("pageerror", lambda e: problems.append(f"JavaScript のエラー: {e}"))

    links: set[str] = set()
    SCREENS.mkdir(parents=True, exist_ok=True)
    for name in toc_pages():
        response = page.goto(served + f"{name}.html", wait_until="load")
        assert response is not None and response.status == 200, name
        report = page.evaluate(PAGE_REPORT_JS)

        raw = sorted(set(RAW_TEX.findall(report["text"])))
        if raw:
            problems.append(f"{name}: TeX がそのまま見えています {raw}")
        if report["mathUnrendered"]:
            problems.append(f"{name}: MathJax が描いていない数式 {report['mathUnrendered'][:3]}")
        if report["mathCount"] and not report["mjxCount"]:
            problems.append(f"{name}: 数式があるのに mjx-container がありません")
        if report["mjxErrors"]:
            problems.append(f"{name}: TeX のエラー {report['mjxErrors'][:3]}")
        broken = [i["src"] for i in report["images"] if not i["ok"]]
        if broken:
            problems.append(f"{name}: 読み込めない画像 {broken}")
        links.update(report["links"])

        if report["fontFamily"] is None:
            problems.append(f"{name}: 日本語の段落が見つかりません")
        else:
            if "Noto Sans CJK JP" not in report["fontFamily"]:
                problems.append(f"{name}: 日本語の段落のフォント指定に Noto Sans CJK JP がありません ({report['fontFamily']})")
            used = platform_fonts(page, "[data-cjk-probe]")
            if not any("CJK" in f["familyName"] and f["glyphCount"] > 0 for f in used):
                problems.append(f"{name}: 日本語が CJK フォントで描かれていません ({used})")

        if name in SCREENSHOT_PAGES:
            page.screenshot(path=str(SCREENS / f"{name}.png"), full_page=False)
            page.screenshot(path=str(SCREENS / f"{name}-full.png"), full_page=True)

    # internal links: every target page answers 200 and every #fragment exists there
    pages_html: dict[str, str] = {}
    for link in sorted(links):
        url = urllib.parse.urlparse(link)
        if url.hostname != base.hostname or url.port != base.port:
            continue
        target = url._replace(fragment="").geturl()
        if target not in pages_html:
            try:
                with urllib.request.urlopen(target, timeout=10) as r:
                    body = r.read()
                pages_html[target] = body.decode("utf-8", "replace") if url.path.endswith(".html") or url.path.endswith("/") else ""
            except urllib.error.HTTPError as e:
                problems.append(f"リンク切れ ({e.code}): {link}")
                pages_html[target] = ""
                continue
        fragment = urllib.parse.unquote(url.fragment)
        if fragment and pages_html[target] and f'id="{fragment}"' not in pages_html[target]:
            problems.append(f"リンク先のアンカーがありません: {link}")

    context.close()
    assert len(list(SCREENS.glob("*.png"))) >= 2
    assert not outside, f"localhost の外へのリクエスト: {sorted(set(outside))}"
    assert not failed_responses, f"失敗したリクエスト: {sorted(set(failed_responses))}"
    assert not problems, "\n".join(problems)
