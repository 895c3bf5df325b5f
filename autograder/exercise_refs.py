"""Reference code pasted into the exercise notebooks.

A directive in an assignment source names a piece of the reference
implementation by its dotted path:

    solutions.attention.scaled_dot_product_attention   a function
    solutions.attention.MultiHeadAttention              a class
    solutions.mlm.IGNORE_INDEX                          a module-level assignment
    solutions.tokenization                              a whole module

The code is read from the module's file: nothing is imported, so generating
notebooks needs neither torch nor the reference to be importable. Relative
imports are dropped (a notebook defines those names in earlier cells), which
keeps every notebook self-contained.
"""
from __future__ import annotations

import ast
import importlib.util
import io
import re
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path

SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"
HIDDEN_PREFIX = "_ref_"  # hidden copies of the reference: _ref_softmax, _ref_MultiHeadAttention


class DirectiveError(ValueError):
    """An assignment source names code that cannot be found or used."""


# ------------------------------------------------------------------ locating


def module_file(module: str) -> Path | None:
    """The .py file of a dotted module name, found without importing the module
    (only its top-level package is looked up)."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if not rest:
        origin = spec.origin or ""
        return Path(origin) if origin.endswith(".py") else None
    *packages, last = rest
    for directory in spec.submodule_search_locations or []:
        base = Path(directory).joinpath(*packages)
        for candidate in (base / f"{last}.py", base / last / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


@dataclass
class Located:
    ref: str
    module: str
    path: Path
    text: str
    tree: ast.Module
    attrs: list[str]  # what follows the module in the dotted path

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()


def locate(ref: str) -> Located:
    parts = ref.strip().split(".")
    for i in range(len(parts), 0, -1):
        module = ".".join(parts[:i])
        path = module_file(module)
        if path is not None:
            text = path.read_text(encoding="utf-8")
            return Located(ref, module, path, text, ast.parse(text, str(path)), parts[i:])
    raise DirectiveError(f"参照 {ref!r} のモジュールが見つかりません")


def assigned_names(node: ast.AST) -> list[str]:
    targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
    names = []
    for target in targets:
        if isinstance(target, ast.Name):
            names.append(target.id)
        elif isinstance(target, (ast.Tuple, ast.List)):
            names += [e.id for e in target.elts if isinstance(e, ast.Name)]
    return names


def find_definition(body: list[ast.stmt], name: str) -> ast.stmt | None:
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and name in assigned_names(node):
            return node
    return None


def node_span(lines: list[str], node: ast.stmt) -> tuple[int, int]:
    """First and last line (1-based) of a statement with its decorators and
    the comment lines directly above it."""
    start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    while start > 1 and lines[start - 2].strip().startswith("#"):
        start -= 1
    return start, node.end_lineno


def segment(lines: list[str], start: int, end: int) -> str:
    return textwrap.dedent("\n".join(lines[start - 1:end]))


# ------------------------------------------------------------------ cleaning


def remove_statements(code: str, keep) -> str:
    """Drop the lines of every statement (at any depth) for which keep(node) is False."""
    tree = ast.parse(code)
    lines = code.splitlines()
    drop = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not keep(node):
            drop.update(range(node.lineno, node.end_lineno + 1))
    return "\n".join(line for i, line in enumerate(lines, 1) if i not in drop)


def is_relative_or_future_import(node: ast.stmt) -> bool:
    return isinstance(node, ast.ImportFrom) and (node.level > 0 or node.module == "__future__")


def clean(code: str) -> str:
    """Without relative imports and `from __future__` (the notebook provides those names)."""
    code = remove_statements(code, lambda node: not is_relative_or_future_import(node))
    try:
        compile(code, "<pasted>", "exec")
    except SyntaxError as e:
        raise DirectiveError(f"貼り付けたコードが壊れました (相対 import を除いた後): {e}") from None
    return code.strip("\n")


def module_code(loc: Located) -> str:
    """A whole module without its docstring, `from __future__`, relative imports
    and `if __name__ == "__main__":` block."""
    body = loc.tree.body
    docstring = (body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                 and isinstance(body[0].value.value, str))
    drop_top = set()
    if docstring:
        drop_top.update(range(body[0].lineno, body[0].end_lineno + 1))
    for node in body:
        if isinstance(node, ast.If) and "__name__" in ast.unparse(node.test):
            drop_top.update(range(node.lineno, node.end_lineno + 1))
    text = "\n".join(line for i, line in enumerate(loc.lines, 1) if i not in drop_top)
    return re.sub(r"\n{3,}", "\n\n\n", clean(text))


def reference_code(ref: str) -> str:
    """The source of a reference, ready to paste at the top level of a cell."""
    loc = locate(ref)
    if not loc.attrs:
        return module_code(loc)
    node = find_definition(loc.tree.body, loc.attrs[0])
    if node is None:
        raise DirectiveError(f"{loc.path}: {loc.attrs[0]!r} が定義されていません (参照 {ref!r})")
    if len(loc.attrs) > 1:
        if len(loc.attrs) > 2 or not isinstance(node, ast.ClassDef):
            raise DirectiveError(f"参照 {ref!r} は関数・クラス・クラスのメソッドのどれでもありません")
        method = find_definition(node.body, loc.attrs[1])
        if method is None:
            raise DirectiveError(f"{loc.path}: {loc.attrs[0]} に {loc.attrs[1]!r} がありません")
        node = method
    return clean(segment(loc.lines, *node_span(loc.lines, node)))


# ------------------------------------------------------------------ solution markers


def header_end_line(code: str, node: ast.FunctionDef) -> int:
    """The line of the ':' that ends a def header (annotations may hold ':' and brackets)."""
    depth, seen_def = 0, False
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.start[0] < node.lineno:
            continue
        if not seen_def:
            seen_def = tok.type == tokenize.NAME and tok.string == "def"
            continue
        if tok.type == tokenize.OP:
            if tok.string in "([{":
                depth += 1
            elif tok.string in ")]}":
                depth -= 1
            elif tok.string == ":" and depth == 0:
                return tok.start[0]
    raise DirectiveError(f"関数 {node.name} の定義行の終わりが見つかりません")


def docstring_node(node) -> ast.Expr | None:
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first
    return None


def solution_region(code: str, node: ast.FunctionDef) -> tuple[int, int, str]:
    """Lines (1-based, inclusive) of a function's body after its docstring, and its indentation."""
    doc = docstring_node(node)
    statements = node.body[1:] if doc else node.body
    if not statements:
        raise DirectiveError(f"関数 {node.name} には docstring のほかに本体がありません")
    lines = code.splitlines()
    start = (doc.end_lineno if doc else header_end_line(code, node)) + 1
    while start <= node.end_lineno and not lines[start - 1].strip():
        start += 1
    first = lines[statements[0].lineno - 1]
    indent = first[:len(first) - len(first.lstrip())]
    return start, node.end_lineno, indent


def with_solution_markers(code: str, methods: list[str] | None = None) -> str:
    """Put ### BEGIN/END SOLUTION around the body of the function in `code` (the
    signature and the docstring stay visible), or around the bodies of the named
    methods of the class in `code`."""
    tree = ast.parse(code)
    definitions = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    if len(definitions) != 1:
        raise DirectiveError("解答セルには関数かクラスを 1 つだけ指定してください")
    top = definitions[0]
    if isinstance(top, ast.ClassDef):
        if not methods:
            raise DirectiveError(f"クラス {top.name} の解答には、学生が書くメソッドを [..] で指定してください")
        targets = []
        for name in methods:
            method = find_definition(top.body, name)
            if not isinstance(method, ast.FunctionDef):
                raise DirectiveError(f"クラス {top.name} にメソッド {name!r} がありません")
            targets.append(method)
    else:
        if methods:
            raise DirectiveError(f"{top.name} は関数です: [..] でメソッドを指定できるのはクラスだけです")
        targets = [top]
    lines = code.splitlines()
    for node in sorted(targets, key=lambda n: n.lineno, reverse=True):
        start, end, indent = solution_region(code, node)
        lines[end:end] = [indent + SOLUTION_END]
        lines[start - 1:start - 1] = [indent + SOLUTION_BEGIN]
    return "\n".join(lines)


# ------------------------------------------------------------------ names


def defined_names(code: str) -> set[str]:
    """Names bound at the top level of `code` (functions, classes, assignments)."""
    names = set()
    for node in ast.parse(code).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            names.update(assigned_names(node))
    return names


def used_names(code: str) -> set[str]:
    """Every name that `code` reads (an over-approximation of its free names)."""
    return {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def rename(code: str, mapping: dict[str, str]) -> str:
    """Rename identifiers (not attributes after '.', not text in strings or comments)."""
    edits = []
    previous = None
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.NAME and tok.string in mapping and not (
                previous is not None and previous.type == tokenize.OP and previous.string == "."):
            edits.append((tok.start, tok.end, mapping[tok.string]))
        if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
            previous = tok
    lines = code.splitlines(keepends=True)
    for (row, col), (_, end_col), new in reversed(edits):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[end_col:]
    return "".join(lines)


def hidden_reference(refs: list[str], student_names: set[str]) -> str:
    """The references under private names (``_ref_<name>``) for a hidden test.

    Every name the pasted code defines is renamed wherever the pasted code uses
    it, so a reference class calls the reference function, not the student's.
    Using a name that a student defines in this notebook without renaming it
    is an error: the hidden test would then trust the student's code.
    """
    codes = [reference_code(ref) for ref in refs]
    mapping = {name: HIDDEN_PREFIX + name for code in codes for name in defined_names(code)}
    renamed = [rename(code, mapping) for code in codes]
    joined = "\n\n\n".join(renamed)
    leaking = sorted((used_names(joined) & student_names) - set(mapping))
    if leaking:
        raise DirectiveError(
            f"隠しテストの参照実装 ({', '.join(refs)}) が学生の書く {', '.join(leaking)} を使っています。"
            " reference: に加えてください")
    return joined
