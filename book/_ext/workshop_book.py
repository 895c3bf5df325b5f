"""Sphinx extension of the workshop's book.

``{exercise}`` directive: a box that links a chapter to its exercise notebook,
on GitHub and in Google Colab (an "Open in Colab" badge). The badge is a local
SVG, so a reader's browser asks nothing from outside to draw it; the links are
plain ``<a href>`` that go out only when clicked.

    ```{exercise} 04_attention
    Q, K, V から注意の重みを計算する関数を実装します。
    ```

The repository comes from ``workshop_repository`` / ``workshop_branch`` (set once
in ``_config.yml``). An unknown notebook name is a warning (an error in the build,
which runs with warnings as errors); so is a name missing from ``exercises/``
once that folder holds notebooks.
"""
from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

# The exercise notebooks, in the order of the workshop (exercises/<name>.ipynb).
EXERCISES = {
    "01_basics": "深層学習のきほん",
    "02_tokenization": "トークン化",
    "03_embeddings": "埋め込み",
    "04_attention": "自己注意とマルチヘッド注意",
    "05_residual_layernorm": "残差接続と層正規化",
    "06_bert": "BERT を組み立てる",
    "07_mlm": "マスク言語モデル",
    "08_finetune": "ファインチューニング",
}

BADGE = "/images/open-in-colab.svg"  # relative to the book's source folder


def exercise_urls(config, name: str) -> tuple[str, str]:
    """The notebook on GitHub and the same notebook opened in Colab."""
    repo = config.workshop_repository.rstrip("/")
    branch = config.workshop_branch
    path = f"exercises/{name}.ipynb"
    github = f"{repo}/blob/{branch}/{path}"
    owner_and_name = repo.split("github.com/", 1)[-1]
    colab = f"https://colab.research.google.com/github/{owner_and_name}/blob/{branch}/{path}"
    return github, colab


class ExerciseDirective(SphinxDirective):
    required_arguments = 1
    optional_arguments = 0
    has_content = True
    option_spec = {"class": directives.class_option}

    def run(self):
        name = self.arguments[0]
        if name not in EXERCISES:
            logger.warning("unknown exercise notebook %r (known: %s)", name, ", ".join(EXERCISES),
                           location=self.get_location())
            return []
        self.check_notebook_exists(name)
        github, colab = exercise_urls(self.config, name)

        box = nodes.admonition(classes=["tip", "workshop-exercise"])
        box += nodes.title(text=f"演習 {name}: {EXERCISES[name]}")
        if self.content:
            self.state.nested_parse(self.content, self.content_offset, box)

        line = nodes.paragraph(classes=["workshop-exercise-links"])
        line += nodes.Text("ノートブック ")
        line += nodes.reference("", "", nodes.literal(text=f"exercises/{name}.ipynb"), refuri=github)
        line += nodes.Text(" ")
        badge = nodes.image(uri=BADGE, alt="Open In Colab", classes=["colab-badge"])
        line += nodes.reference("", "", badge, refuri=colab, classes=["colab-link"])
        box += line
        return [box]

    def check_notebook_exists(self, name: str) -> None:
        folder = Path(self.env.srcdir).parent / "exercises"
        if any(folder.glob("*.ipynb")) and not (folder / f"{name}.ipynb").exists():
            logger.warning("exercises/%s.ipynb does not exist", name, location=self.get_location())


def colab_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """``{colab}`04_attention``: the notebook's name linked to GitHub, then the badge."""
    env = inliner.document.settings.env
    notebook = text.strip()
    if notebook not in EXERCISES:
        message = inliner.reporter.warning(f"unknown exercise notebook {notebook!r}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, message)], [message]
    github, colab = exercise_urls(env.config, notebook)
    code = nodes.reference("", "", nodes.literal(text=f"{notebook}.ipynb"), refuri=github)
    badge = nodes.image(uri=BADGE, alt="Open In Colab", classes=["colab-badge"])
    link = nodes.reference("", "", badge, refuri=colab, classes=["colab-link"])
    return [nodes.inline("", "", code, nodes.Text(" "), link, classes=["workshop-exercise-links"])], []


# A line break in the Markdown source becomes a space in HTML, which shows as a
# gap in the middle of Japanese text. Join lines between two CJK characters
# (kana, kanji, full-width forms, Japanese punctuation), as a Japanese reader expects.
_CJK = "\u3000-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef"
_CJK_BREAK = re.compile(f"(?<=[{_CJK}])[ \t]*\n[ \t]*(?=[{_CJK}])")
_SKIP = (nodes.literal_block, nodes.literal, nodes.math, nodes.math_block, nodes.raw, nodes.comment)


def join_cjk_lines(app, doctree) -> None:
    for text in list(doctree.findall(nodes.Text)):
        parent = text.parent
        if parent is None or "\n" not in text or any(isinstance(a, _SKIP) for a in _ancestors(parent)):
            continue
        # by identity: Text nodes are strings, and list.index would find an equal one
        index = next(i for i, child in enumerate(parent.children) if child is text)
        if not text.strip():  # a soft line break on its own (MyST makes one Text node of it)
            before = parent[index - 1].astext() if index > 0 else ""
            after = parent[index + 1].astext() if index + 1 < len(parent) else ""
            if before and after and _is_cjk(before[-1]) and _is_cjk(after[0]):
                parent[index] = nodes.Text("")
            continue
        joined = _CJK_BREAK.sub("", str(text))
        if joined != str(text):
            parent[index] = nodes.Text(joined)


def _is_cjk(char: str) -> bool:
    return re.match(f"[{_CJK}]", char) is not None


def _ancestors(node):
    while node is not None:
        yield node
        node = node.parent


def _is_thebe(asset) -> bool:
    name = str(getattr(asset, "filename", asset) or "")
    body = str((getattr(asset, "attributes", None) or {}).get("body", ""))
    return "thebe" in name or "THEBE_JS_URL" in body


def drop_thebe(app, pagename, templatename, context, doctree):
    """Jupyter Book always loads sphinx-thebe (live code through Binder). The book
    runs offline and has no use for it: its scripts only name an outside URL
    (unpkg.com) and are added twice. Leave them out of every page."""
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if assets is not None:
            assets[:] = [asset for asset in assets if not _is_thebe(asset)]


def setup(app):
    app.connect("html-page-context", drop_thebe)
    app.connect("doctree-read", join_cjk_lines)
    app.add_config_value("workshop_repository", "https://github.com/bert-workshop/bert-workshop", "env")
    app.add_config_value("workshop_branch", "main", "env")
    app.add_directive("exercise", ExerciseDirective)
    app.add_role("colab", colab_role)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
