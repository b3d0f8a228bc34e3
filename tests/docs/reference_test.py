"""tests/docs/reference_test.py: the reference docs name everything the code offers.

- every key of segbusd's config parser (the field tables of src/config/config.c) is in
  docs/configuration.md and in examples/segbusd.yaml;
- every SEGBUS_API function of include/segbus/segbus.h is in docs/client.md;
- every public function, setting and Client method of the Python module is in docs/python.md;
- every public method of the Ruby client is in docs/ruby.md;
- every metric segbusd registers (sb_metrics_* calls and SB_M_* names in src/) is in the table
  of docs/operations.md (doc_test.py checks the same against a running daemon);
- every relative link of README.md and docs/*.md points at a file that exists.

Reads sources only (no build), so it runs with the unit tests. The parsers of the code are
checked to find a plausible number of names, so a change of layout fails here instead of
making the checks vacuous.
"""
import ast
import glob
import os
import re
import sys
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def field_tables(src):
    """{table name: [(key, kind, sub-table or None)]} from `static const struct field X[] = {...}`."""
    tables = {}
    for m in re.finditer(r"static const struct field (\w+)\[\] = \{(.*?)\bEND\}", src, re.S):
        rows = []
        for e in re.finditer(r'\{"(\w+)",\s*(K_\w+),(.*?)\}', m.group(2), re.S):
            sub = None
            if e.group(2) == "K_MAP":
                parts = [p.strip() for p in e.group(3).split(",")]
                sub = next((p for p in parts if p.endswith("_fields")), None)
            rows.append((e.group(1), e.group(2), sub))
        tables[m.group(1)] = rows
    return tables


def flatten(tables, name, prefix=""):
    """Dotted key paths of a table, maps expanded, K_SKIP entries left out."""
    out = []
    for key, kind, sub in tables[name]:
        if kind == "K_SKIP":
            continue
        if kind == "K_MAP":
            out += flatten(tables, sub, prefix + key + ".")
        else:
            out.append(prefix + key)
    return out


def section(md, title):
    """Text of a '## title' section up to the next '## ' heading."""
    m = re.search(r"^## " + re.escape(title) + r"\s*$(.*?)(?=^## |\Z)", md, re.M | re.S)
    return m.group(1) if m else ""


def yaml_has(node, path):
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


class ConfigReference(unittest.TestCase):
    longMessage = False

    @classmethod
    def setUpClass(cls):
        cls.tables = field_tables(read("src/config/config.c"))
        cls.doc = read("docs/configuration.md")
        cls.example_text = read("examples/segbusd.yaml")
        cls.example = yaml.safe_load(cls.example_text)

    def test_parser_tables_found(self):
        for t in ("top_fields", "source_fields", "output_fields", "output_settings_fields"):
            self.assertIn(t, self.tables)
        self.assertGreater(len(flatten(self.tables, "top_fields")), 25)
        self.assertGreater(len(flatten(self.tables, "output_fields")), 20)

    def test_global_keys(self):
        for key in flatten(self.tables, "top_fields"):
            with self.subTest(key=key):
                self.assertTrue(f"`{key}`" in self.doc, f"docs/configuration.md lacks `{key}`")
                self.assertTrue(yaml_has(self.example, key), f"examples/segbusd.yaml lacks {key}")

    def test_source_keys(self):
        doc = section(self.doc, "Sources")
        self.assertTrue(doc, "docs/configuration.md has no '## Sources' section")
        for key in flatten(self.tables, "source_fields"):
            with self.subTest(key=key):
                self.assertTrue(f"`{key}`" in doc, f"docs/configuration.md, Sources, lacks `{key}`")
                self.assertTrue(any(yaml_has(s, key) for s in self.example.get("sources") or []),
                                f"no source in examples/segbusd.yaml sets {key}")

    def test_output_keys(self):
        doc = section(self.doc, "Outputs")
        self.assertTrue(doc, "docs/configuration.md has no '## Outputs' section")
        outputs = self.example.get("outputs") or []
        for key in flatten(self.tables, "output_fields"):
            shown = key[len("settings."):] if key.startswith("settings.") else key
            with self.subTest(key=key):
                self.assertTrue(f"`{shown}`" in doc,
                                f"docs/configuration.md, Outputs, lacks `{shown}`")
                leaf = key.split(".")[-1]
                commented = re.search(r"^\s*#\s*" + re.escape(leaf) + r":", self.example_text, re.M)
                self.assertTrue(any(yaml_has(o, key) for o in outputs) or commented,
                                f"no output in examples/segbusd.yaml sets {key} (or shows it "
                                f"commented out)")


class ApiReference(unittest.TestCase):
    longMessage = False

    def test_c_functions(self):
        names = re.findall(r"^SEGBUS_API\s+[^;(]*?\b(segbus_\w+)\s*\(", read("include/segbus/segbus.h"),
                           re.M)
        self.assertGreater(len(names), 40)
        doc = read("docs/client.md")
        for n in names:
            with self.subTest(name=n):
                self.assertTrue(n in doc, f"docs/client.md does not name {n}")

    def test_python(self):
        doc = read("docs/python.md")
        mod = ast.parse(read("bindings/python/segbus/__init__.py"))
        names = [n.name for n in mod.body if isinstance(n, ast.FunctionDef)]
        names += [t.id for n in mod.body if isinstance(n, ast.Assign) for t in n.targets
                  if isinstance(t, ast.Name)]
        client = ast.parse(read("bindings/python/segbus/client.py"))
        for c in client.body:
            if isinstance(c, ast.ClassDef) and c.name == "Client":
                names += [f.name for f in c.body if isinstance(f, ast.FunctionDef)]
        public = sorted({n for n in names if not n.startswith("_") and n not in ("log",)})
        self.assertGreater(len(public), 20)
        for n in public:
            with self.subTest(name=n):
                self.assertTrue(re.search(r"\b" + re.escape(n) + r"\b", doc),
                                f"docs/python.md does not name {n}")

    def test_ruby(self):
        doc = read("docs/ruby.md")
        src = read("bindings/ruby/lib/segbus.rb")
        public, names = src.split("\n    private\n")[0], []
        names = re.findall(r"^\s*def (?:self\.)?([a-z_]+[?!]?)", public, re.M)
        names += re.findall(r"^\s*alias (\w+)", public, re.M)
        names = sorted(set(names) - {"initialize"})
        self.assertGreater(len(names), 10)
        for n in names:
            with self.subTest(name=n):
                self.assertTrue(re.search(r"\b" + re.escape(n) + r"\b", doc),
                                f"docs/ruby.md does not name {n}")


def anchors(path):
    """GitHub's anchors for the headings of a Markdown file (lower case, punctuation dropped,
    spaces to hyphens)."""
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
    out = set()
    for h in re.findall(r"^#{1,6}\s+(.*?)\s*$", text, re.M):
        out.add(re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-"))
    return out


class Metrics(unittest.TestCase):
    longMessage = False

    def test_registered_metrics_documented(self):
        names = set()
        for path in glob.glob(os.path.join(ROOT, "src", "**", "*.[ch]"), recursive=True):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            names |= set(re.findall(r'sb_metrics_\w+\(\s*[\w>.-]+,\s*"(segbus_\w+)"', text))
            names |= set(re.findall(r'#define SB_M_\w+\s+"(segbus_\w+)"', text))
        self.assertGreater(len(names), 15)
        doc = read("docs/operations.md")
        for n in sorted(names):
            with self.subTest(metric=n):
                self.assertTrue(f"`{n}" in doc, f"docs/operations.md does not describe {n}")


class Links(unittest.TestCase):
    longMessage = False

    def test_relative_links_exist(self):
        pages = ["README.md"] + sorted(os.path.relpath(p, ROOT)
                                       for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
        checked = 0
        for page in pages:
            text = re.sub(r"```.*?```", "", read(page), flags=re.S)  # links in code are not links
            for target in re.findall(r"\]\(([^)\s]+)\)", text):
                if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                    continue
                path = os.path.normpath(os.path.join(ROOT, os.path.dirname(page),
                                                     target.split("#")[0]))
                checked += 1
                with self.subTest(page=page, link=target):
                    self.assertTrue(os.path.exists(path), f"{page}: link to {target}: no such file")
                    if "#" in target and path.endswith(".md") and os.path.exists(path):
                        anchor = target.split("#", 1)[1]
                        self.assertIn(anchor, anchors(path), f"{page}: link to {target}: no such heading")
        self.assertGreater(checked, 30)


if __name__ == "__main__":
    prog = unittest.main(exit=False, verbosity=1)
    sys.exit(0 if prog.result.wasSuccessful() and prog.result.testsRun > 0 else 1)
