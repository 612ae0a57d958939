"""Chat-reply Markdown (static/markdown.js, app/ui/markdown.py) in real headless Chromium, served
by the real build (the session's `dist`/`server`).

The test page is one tiny HTML document fulfilled by Playwright at a URL on the app server's
origin (nothing is written into the shared dist/); it imports ./static/markdown.js, which imports
the vendored markdown-it and DOMPurify by relative URL, as the dashboard does.

Safety: a corpus of hostile replies is rendered into the live DOM, every non-link element is
clicked and hovered (links are never clicked), and then nothing may have run (window.__pwned),
no element or attribute outside the allow-list may exist, every href is http(s)/mailto with the
fixed rel/target, raw HTML must be visible as text, and the page must have made no request at
all: a second server on another port ("remote") is the target of every URL in the corpus and
must see no request.
"""
from __future__ import annotations

import http.server
import re
import threading
import urllib.request
from urllib.parse import urlparse

import pytest

from tests.browser.harness import harness_page, run_py  # noqa: F401 (fixture)

ALLOWED_TAGS = {"p", "br", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol", "li",
                "h1", "h2", "h3", "h4", "h5", "h6", "hr", "table", "thead", "tbody", "tr", "th",
                "td", "a", "span"}
REL, TARGET = "noopener noreferrer nofollow", "_blank"
SAFE_HREF = re.compile(r"^(?:https?://[^/\s]|mailto:)", re.I)
PAGE = "markdown-test.html"
PAGE_HTML = ('<!doctype html><html lang="en"><head><meta charset="utf-8"><title>markdown</title>'
             '<link rel="icon" href="data:,"></head><body><main id="out"></main></body></html>')


# -- the "remote" server: the target of every URL in the corpus ------------------------------
class _Remote(http.server.ThreadingHTTPServer):
    def __init__(self):
        self.hits: list[str] = []
        super().__init__(("127.0.0.1", 0), _RemoteHandler)


class _RemoteHandler(http.server.BaseHTTPRequestHandler):
    def _answer(self):
        self.server.hits.append(f"{self.command} {self.path}")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(b"ok")

    do_GET = do_POST = do_HEAD = _answer

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def remote():
    srv = _Remote()
    thread = threading.Thread(target=srv.serve_forever, name="remote", daemon=True)
    thread.start()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def md(browser, server):
    """(page, requests, popups): the test page with window.md = the imported module. `requests`
    lists every URL the page requests from then on; `popups` every page the context opens."""
    context = browser.new_context()
    context.route(server.url + PAGE, lambda route: route.fulfill(
        body=PAGE_HTML, content_type="text/html", headers={"Cache-Control": "no-store"}))
    page = context.new_page()
    requests, popups = [], []
    page.on("request", lambda r: requests.append(r.url))
    context.on("page", lambda p: popups.append(p.url))
    page.goto(server.url + PAGE)
    page.evaluate("async () => { window.md = await import('./static/markdown.js'); }")
    # Loading fetched the page, the module and the two vendored libraries: nothing else.
    assert sorted(requests) == [server.url + p for p in (
        PAGE, "static/markdown.js", "vendor/dompurify/purify.es.mjs",
        "vendor/markdown-it/markdown-it.esm.min.mjs")]
    requests.clear()
    yield page, requests, popups
    context.close()


RENDER_JS = """([id, text]) => {
  const box = document.createElement("div");
  box.id = id;
  document.getElementById("out").append(box);
  md.renderInto(box, text);
}"""

# [tag, {attrs}, ...children] per node; text outside <pre> loses its leading/trailing newlines
# (markdown-it's formatting between tags), whitespace-only text nodes are left out.
TREE_JS = """(text) => {
  const tree = (n) => n.nodeType === 3 ? (n.parentNode.closest("pre") ? n.data
    : n.data.replace(/^\\n+|\\n+$/g, "")) : [n.localName,
    Object.fromEntries([...n.attributes].map((a) => [a.name, a.value])),
    ...[...n.childNodes].filter((c) => c.nodeType !== 3 || c.data.trim()).map(tree)];
  const frag = md.renderMarkdown(text);
  return [...frag.childNodes].filter((c) => c.nodeType !== 3 || c.data.trim()).map(tree);
}"""

# Clicks and hovers every element that is not a link and not inside one, then reports.
POKE_JS = """(id) => {
  const box = document.getElementById(id);
  for (const el of box.querySelectorAll("*")) {
    if (el.closest("a")) continue;
    el.dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));
    el.click();
  }
}"""

REPORT_JS = """(id) => {
  const box = document.getElementById(id);
  const all = [...document.querySelectorAll("*")];
  return {
    pwned: window.__pwned === undefined ? null : String(window.__pwned),
    tags: [...new Set([...box.querySelectorAll("*")].map((e) => e.localName))],
    attrs: [...box.querySelectorAll("*")].flatMap((e) =>
      [...e.attributes].map((a) => [e.localName, a.name, a.value])),
    onAttrs: all.flatMap((e) => [...e.attributes].filter((a) => /^on/i.test(a.name))
      .map((a) => e.localName + " " + a.name)),
    links: [...box.querySelectorAll("a")].map((a) => [a.getAttribute("href"), a.rel, a.target,
                                                       a.textContent]),
    text: box.innerText,
    html: box.innerHTML,
    baseURI: document.baseURI,
    url: location.href,
    getById: typeof document.getElementById,
    forms: document.forms.length, images: document.images.length,
    sheets: document.styleSheets.length, frames: window.frames.length,
  };
}"""


# -- rendering ---------------------------------------------------------------------------------
def tree(md, text):
    return md[0].evaluate(TREE_JS, text)


def test_headings_and_paragraph_breaks(md):
    text = "\n".join(f"{'#' * n} Level {n}" for n in range(1, 7)) + "\n\nline one\nline two"
    assert tree(md, text) == [[f"h{n}", {}, f"Level {n}"] for n in range(1, 7)] + [
        ["p", {}, "line one", ["br", {}], "line two"]]


def test_nested_and_ordered_lists(md):
    text = "- a\n  - b\n    - c\n- d\n\n3. x\n4. y"
    assert tree(md, text) == [
        ["ul", {}, ["li", {}, "a", ["ul", {}, ["li", {}, "b", ["ul", {}, ["li", {}, "c"]]]]],
         ["li", {}, "d"]],
        # start= is kept (a number on <ol> only): replies continue a list after a code block.
        ["ol", {"start": "3"}, ["li", {}, "x"], ["li", {}, "y"]],
    ]


def test_table_alignment_is_a_class_not_a_style(md):
    text = "| L | C | R | N |\n|:--|:-:|--:|---|\n| 1 | *2* | `3` | 4 |\n| 5 |"
    cls = lambda a: {"class": f"md-align-{a}"}  # noqa: E731
    assert tree(md, text) == [["table", {},
        ["thead", {}, ["tr", {}, ["th", cls("left"), "L"], ["th", cls("center"), "C"],
                       ["th", cls("right"), "R"], ["th", {}, "N"]]],
        ["tbody", {},
         ["tr", {}, ["td", cls("left"), "1"], ["td", cls("center"), ["em", {}, "2"]],
          ["td", cls("right"), ["code", {}, "3"]], ["td", {}, "4"]],
         ["tr", {}, ["td", cls("left"), "5"], ["td", cls("center")], ["td", cls("right")],
          ["td", {}]]]]]


def test_code_emphasis_quote_links_and_rules(md):
    text = ("```python\nif a < b:\n    print('<b>&amp;</b>')\n```\n\n"
            "Use `x <y>` and **bold**, *em*, ~~gone~~.\n\n> quoted **text**\n\n---\n\n"
            "[site](https://example.org/a?b=1 \"The title\") and <https://example.org/auto> "
            "and mailto <me@example.org>\n\n```\nplain\n```")
    link = lambda href, text, **extra: ["a", {"href": href, **extra, "rel": REL,  # noqa: E731
                                              "target": TARGET}, text]
    assert tree(md, text) == [
        ["pre", {}, ["code", {"class": "language-python"},
                     "if a < b:\n    print('<b>&amp;</b>')\n"]],
        ["p", {}, "Use ", ["code", {}, "x <y>"], " and ", ["strong", {}, "bold"], ", ",
         ["em", {}, "em"], ", ", ["del", {}, "gone"], "."],
        ["blockquote", {}, ["p", {}, "quoted ", ["strong", {}, "text"]]],
        ["hr", {}],
        ["p", {}, link("https://example.org/a?b=1", "site", title="The title"), " and ",
         link("https://example.org/auto", "https://example.org/auto"), " and mailto ",
         link("mailto:me@example.org", "me@example.org")],
        ["pre", {}, ["code", {}, "plain\n"]],
    ]


def test_images_become_links_or_text_never_img(md):
    text = "![a cat](https://example.org/cat.png \"Cat\") ![inline](data:image/png;base64,AAAA)"
    assert tree(md, text) == [["p", {},
        ["a", {"href": "https://example.org/cat.png", "title": "Cat", "rel": REL,
               "target": TARGET}, "image: a cat"], " image: inline"]]


def test_unterminated_constructs_render_at_every_prefix(md):
    """Every prefix of a reply (as it streams in) renders; the half-finished states look right."""
    reply = ("# Title\n\n| a | b |\n|---|:-:|\n| 1 | 2 |\n\nSee [the docs](https://example.org/"
             "docs \"t\") and ![pic](https://example.org/p.png).\n\n```js\nconst x = '<i>';\n"
             "```\n\n> done *now*\n")
    failures = md[0].evaluate("""(reply) => {
      const bad = [];
      for (let i = 0; i <= reply.length; i++) {
        try { md.renderMarkdown(reply.slice(0, i)); } catch (e) { bad.push([i, String(e)]); }
      }
      return bad;
    }""", reply)
    assert failures == []
    open_fence = tree(md, "text\n\n```python\nprint('<b>'")
    assert open_fence[1] == ["pre", {}, ["code", {"class": "language-python"}, "print('<b>'"]]
    # Half a link is text so far; the bare URL in it is linkified as any bare URL is.
    half_link = tree(md, "see [the docs](https://exa")
    assert half_link == [["p", {}, "see [the docs](", ["a", {"href": "https://exa", "rel": REL,
                                                            "target": TARGET}, "https://exa"]]]
    assert tree(md, "see [the docs") == [["p", {}, "see [the docs"]]
    # A table is text until its delimiter row is complete, then rows fill in as they come.
    assert tree(md, "| a | b |\n|--") == [["p", {}, "| a | b |", ["br", {}], "|--"]]
    assert tree(md, "| a | b |\n|---|---|\n| 1") == [["table", {},
        ["thead", {}, ["tr", {}, ["th", {}, "a"], ["th", {}, "b"]]],
        ["tbody", {}, ["tr", {}, ["td", {}, "1"], ["td", {}]]]]]


def test_pathological_nesting_renders(md):
    """Deep nesting and long delimiter runs (a looping model writes them) render, bounded."""
    texts = ["> " * 3000 + "deep", "- " * 3000 + "deep", "*" * 5000 + "a", "[" * 5000 + "a",
             "`" * 3000 + "a", "|" * 5000 + "\n" + "|-" * 2500, "![" * 3000 + "a"]
    out = md[0].evaluate("""(texts) => texts.map((t) => {
      const frag = md.renderMarkdown(t);
      return [frag.textContent.length, frag.querySelectorAll("*").length];
    })""", texts)
    assert len(out) == len(texts)
    # markdown-it stops nesting at 100 levels (maxNesting): what is deeper is not rendered.
    for (chars, elements), text in zip(out, texts):
        assert 0 < chars <= len(text) + 2 and elements < 300, (text[:20], chars, elements)


def test_bad_input_is_a_named_error_and_keeps_the_old_content(md):
    page = md[0]
    page.evaluate(RENDER_JS, ["bad-input", "**kept**"])
    for call in ("md.renderInto(box, null)", "md.renderInto(box, 42)", "md.renderInto(null, 'x')",
                 "md.renderMarkdown(undefined)"):
        err = page.evaluate(f"""() => {{
          const box = document.getElementById("bad-input");
          try {{ {call}; return null; }} catch (e) {{
            return [e.name, e instanceof TypeError, e.message];
          }}
        }}""")
        assert err is not None and err[:2] == ["MarkdownInputError", True], (call, err)
    assert page.inner_html("#bad-input") == "<p><strong>kept</strong></p>\n"
    assert tree(md, "") == []


def test_render_time_of_a_4kb_reply(md):
    """Printed, not asserted: re-rendering a whole 4 KB reply, and streaming it token by token."""
    block = ("## Step {i}\n\nThe **quick** brown fox *jumps* over `lazy_dog()` — see "
             "[docs](https://example.org/{i}).\n\n| k | v |\n|:-|-:|\n| a | {i} |\n\n"
             "```python\nfor i in range({i}):\n    print(i)\n```\n\n- one\n  - two\n\n")
    reply = "".join(block.format(i=i) for i in range(40))[:4096]
    stats = md[0].evaluate("""(reply) => {
      const box = document.createElement("div");
      document.getElementById("out").append(box);
      for (let i = 0; i < 5; i++) md.renderInto(box, reply);          // warm up
      const times = [];
      for (let i = 0; i < 40; i++) {
        const t0 = performance.now(); md.renderInto(box, reply); times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      const tokens = reply.match(/\\S+\\s*/g);
      let text = "";
      const t0 = performance.now();
      for (const tok of tokens) { text += tok; md.renderInto(box, text); }
      const stream = performance.now() - t0;
      return {median: times[20], p90: times[36], tokens: tokens.length, stream,
              tables: box.querySelectorAll("table").length, len: reply.length};
    }""", reply)
    assert stats["len"] == 4096 and stats["tables"] >= 8
    print(f"\nmarkdown: 4 KB reply rendered in {stats['median']:.2f} ms median "
          f"({stats['p90']:.2f} ms p90); streamed as {stats['tokens']} tokens, re-rendering the "
          f"whole reply each time: {stats['stream']:.0f} ms in all "
          f"({stats['stream'] / stats['tokens']:.2f} ms per token)")


# -- safety corpus -----------------------------------------------------------------------------
# (id, markdown, visible text that must appear, the hrefs that must exist). REMOTE is the remote
# server's base URL. `visible` None: the raw input itself must be visible (raw HTML as text).
PWN = "window.__pwned=1"
CORPUS = [
    ("script", f"<script>{PWN}</script>", None, []),
    ("img-onerror", f'<img src=x onerror="{PWN}">', None, []),
    ("img-remote", '<img src="REMOTE/raw.png">', None, ["REMOTE/raw.png"]),
    ("md-javascript", f"[click](javascript:{PWN})", "click", []),
    ("md-mixed-case", f"[click](JaVaScRiPt:{PWN})", "click", []),
    ("md-tab-entity", f"[click](jav&#x09;ascript:{PWN})", "click", []),
    ("md-entity-j", f"[click](&#106;avascript:{PWN})", "click", []),
    ("md-colon-entity", f"[click](javascript&colon;{PWN})", "click", []),
    ("md-angle-dest", f"[click](<javascript:{PWN}>)", "click", []),
    ("md-leading-space", f"[click](   javascript:{PWN} )", "click", []),
    ("md-percent", f"[click](%6A%61vascript:{PWN})", "click", []),
    ("raw-a-javascript", f'<a href="javascript:{PWN}">click</a>', None, []),
    ("raw-a-remote", '<a href="REMOTE/raw">raw anchor</a>', None, ["REMOTE/raw"]),
    ("iframe", '<iframe src="REMOTE/frame.html"></iframe>', None, ["REMOTE/frame.html"]),
    ("svg-onload", f'<svg onload="{PWN}"><circle r="5"/></svg>', None, []),
    ("math", f'<math><mi xlink:href="javascript:{PWN}">x</mi></math>', None, []),
    ("style-import", "<style>@import url(REMOTE/style.css)</style>", None, ["REMOTE/style.css"]),
    ("md-image-blackhole", "![x](http://127.0.0.2:9/x.png)", "image: x",
     ["http://127.0.0.2:9/x.png"]),
    ("md-image-remote", "![pixel](REMOTE/pixel.png)", "image: pixel", ["REMOTE/pixel.png"]),
    ("md-image-data", "![d](data:image/svg+xml;base64,PHN2Zy8+)", "image: d", []),
    ("form", '<form action="REMOTE/submit"><button>go</button></form>', None,
     ["REMOTE/submit"]),
    ("meta-refresh", '<meta http-equiv="refresh" content="0;url=REMOTE/refresh">', None,
     ["REMOTE/refresh"]),
    ("base-href", '<base href="REMOTE/">\n\n[rel](./relative)', "rel", ["REMOTE/"]),
    ("md-data-html", "[d](data:text/html;base64,PHNjcmlwdD53aW5kb3cuX19wd25lZD0xPC9zY3JpcHQ+)",
     "d", []),
    ("clobber-id", '<div id="__proto__" name="getElementById">clobber</div>',  # __x__: bold
     '<div id="proto" name="getElementById">clobber</div>', []),
    ("clobber-form", '<form name="body"><input name="cookie" autofocus></form>', None, []),
    ("code-span-html", f"`<img src=x onerror={PWN}>`", f"<img src=x onerror={PWN}>", []),
    ("fence-info", f'```js" onmouseover="{PWN}\n<script>{PWN}</script>\n```',
     f"<script>{PWN}</script>", []),
    ("title-double-quote", f'[t](REMOTE/t "a\\" onmouseover=\\"{PWN}")', "t", ["REMOTE/t"]),
    ("title-single-quote", f"[t](REMOTE/t 'a\\' onclick=\\'{PWN}')", "t", ["REMOTE/t"]),
    ("autolink-javascript", "<javascript:alert(1)>", "javascript:alert(1)", []),
    ("autolink-vbscript", "<vbscript:msgbox(1)>", "vbscript:msgbox(1)", []),
    ("md-vbscript", "[v](vbscript:msgbox(1))", "v", []),
    ("md-file", "[f](file:///etc/passwd)", "f", []),
    ("md-protocol-relative", "[p](//REMOTE_HOST/x)", "p", []),
    ("md-http-no-slashes", "[h](http:REMOTE_HOST/x)", "h", []),
    ("reference-javascript", f"[x][r]\n\n[r]: javascript:{PWN}", "x", []),
    ("media", '<video src="REMOTE/v.mp4" autoplay></video><audio src="REMOTE/a.mp3" autoplay>'
     "</audio>", None, ["REMOTE/v.mp4", "REMOTE/a.mp3"]),
    ("object-embed", '<object data="REMOTE/o.swf"></object><embed src="REMOTE/e.swf">', None,
     ["REMOTE/o.swf", "REMOTE/e.swf"]),
    ("link-stylesheet", '<link rel="stylesheet" href="REMOTE/l.css">', None, ["REMOTE/l.css"]),
    ("details-ontoggle", f'<details open ontoggle="{PWN}">x</details>', None, []),
    ("input-onfocus", f'<input autofocus onfocus="{PWN}">', None, []),
    ("strong-html", f"**<img src=x onerror={PWN}>**", f"<img src=x onerror={PWN}>", []),
    ("table-cell-html", f"| a |\n|---|\n| <img src=x onerror={PWN}> |",
     f"<img src=x onerror={PWN}>", []),
    ("html-comment", f"<!-- <img src=x onerror={PWN}> -->", None, []),
    ("link-text-html", f"[<img src=x onerror={PWN}>](REMOTE/ok)", f"<img src=x onerror={PWN}>",
     ["REMOTE/ok"]),
    ("image-in-link", "[![a](REMOTE/i.png)](REMOTE/o)", "image: a", ["REMOTE/o"]),
    ("bare-javascript", f"javascript:{PWN}", f"javascript:{PWN}", []),
    ("noscript-mxss", f'<noscript><p title="</noscript><img src=x onerror={PWN}>">', None, []),
    ("svg-style-mxss", f"<svg><style><img src=x onerror={PWN}></style></svg>", None, []),
    ("template", f"<template><img src=x onerror={PWN}></template>", None, []),
    ("mailto-kept", "[m](mailto:someone@example.org?subject=hi)", "m",
     ["mailto:someone@example.org?subject=hi"]),
    ("autolink-remote", "<REMOTE/auto>", "REMOTE/auto", ["REMOTE/auto"]),
]


def _fill(value, remote):
    host = urlparse(remote.base).netloc
    return value.replace("REMOTE_HOST", host).replace("REMOTE", remote.base)


def corpus_urls(remote) -> set[str]:
    """Every http(s) URL the corpus names (and the black-hole 127.0.0.2 one)."""
    urls = set()
    for _, text, _, _ in CORPUS:
        found = re.findall(r"https?://[^\s\"'<>)]+", _fill(text, remote))
        urls.update(m.rstrip('")>;') for m in found)
    return urls


@pytest.mark.parametrize("case", CORPUS, ids=[c[0] for c in CORPUS])
def test_hostile_reply_is_inert(md, remote, case):
    page, requests, popups = md
    name, text, visible, hrefs = case
    text, visible = _fill(text, remote), _fill(visible, remote) if visible else None
    before = page.evaluate("[location.href, document.baseURI]")
    requests.clear()
    page.evaluate(RENDER_JS, [f"case-{name}", text])
    page.evaluate(POKE_JS, f"case-{name}")
    page.wait_for_timeout(250)
    r = page.evaluate(REPORT_JS, f"case-{name}")

    assert r["pwned"] is None
    assert r["onAttrs"] == []
    assert set(r["tags"]) <= ALLOWED_TAGS, r["html"]
    for tag, attr, value in r["attrs"]:
        ok = (attr in ("href", "rel", "target") and tag == "a") or attr == "title" or (
            attr == "start" and tag == "ol" and value.isdigit()) or (
            attr == "class" and (tag == "code" and value.startswith("language-")
                                 or tag in ("th", "td") and value.startswith("md-align-")))
        assert ok, (tag, attr, value, r["html"])
    for href, rel, target, _ in r["links"]:
        assert SAFE_HREF.match(href) and rel == REL and target == TARGET, r["html"]
    assert [h for h, *_ in r["links"]] == [_fill(h, remote) for h in hrefs], r["html"]
    assert (text if visible is None else visible) in r["text"], r["html"]
    # Nothing was fetched, navigated, opened or added to the document's global state.
    assert requests == [] and popups == []
    assert [r["url"], r["baseURI"]] == before
    assert r["getById"] == "function"
    assert (r["forms"], r["images"], r["sheets"], r["frames"]) == (0, 0, 0, 0)


def test_no_request_reached_the_remote_server(md, remote):
    """After the corpus (run above, in this module): the remote server saw nothing, and the page
    requested none of the corpus' URLs. The server does log what reaches it."""
    page, requests, _ = md
    for name, text, _, _ in CORPUS:   # also when run alone: render the whole corpus once more
        page.evaluate(RENDER_JS, [f"again-{name}", _fill(text, remote)])
    page.wait_for_timeout(500)
    assert remote.hits == []
    assert not corpus_urls(remote) & set(requests), requests
    assert "http://127.0.0.2:9/x.png" in corpus_urls(remote)
    with urllib.request.urlopen(remote.base + "/probe", timeout=10) as resp:
        assert resp.read() == b"ok"
    assert remote.hits == ["GET /probe"]


# -- the Python side (Pyodide in the page, as PyScript's main thread runs it) -----------------
def test_python_render_into(harness_page, server):
    result = run_py(harness_page, f"""
import js
from app.ui import markdown
markdown._module = None        # a fresh start, whatever ran before in this page
errors = []
try:
    markdown.render_into(js.document.body, "x")
except markdown.MarkdownError as e:
    errors.append("before load: " + str(e))
try:
    await markdown.load({server.url + 'nowhere/'!r})
except markdown.MarkdownError as e:
    errors.append("bad base: " + str(e))
module = await markdown.load()
assert module is await markdown.load()     # imported once
box = js.document.createElement("div")
js.document.body.append(box)
markdown.render_into(box, "**hi** <script>window.__pwned=1</script> [x](javascript:alert(1))")
try:
    markdown.render_into(box, None)
except TypeError as e:
    errors.append("none: " + str(e))
from pyodide.code import run_js
result = {{"html": box.innerHTML, "errors": errors, "pwned": run_js("String(window.__pwned)")}}
""")["result"]
    assert result["html"] == ("<p><strong>hi</strong> &lt;script&gt;window.__pwned=1&lt;/script&gt;"
                              " x</p>\n")
    assert result["pwned"] == "undefined"
    before, bad_base, none = result["errors"]
    assert before.startswith("before load: ") and "load() must be awaited" in before
    assert bad_base.startswith("bad base: ") and "nowhere/static/markdown.js" in bad_base
    assert none == "none: render_into expects the reply text as str, got NoneType"
