#!/usr/bin/env python3
"""Fails on an import that points up the crate's layers, or on a cycle.

The library is built in layers (docs/architecture.md): each module may use
the modules of lower layers and its own, never a higher one. This reads
every `use` and every `crate::`/`super::` path in src/ (tests and comments
left out; the binaries are a crate of their own, cli/, on top of
everything), resolves each to the module group it names (names re-exported at
the crate root are resolved to where they are defined), and prints every
upward import as `file:line: A uses B (layer i above j)`. A cycle between
groups is always also an upward import, so an empty report means the
graph is acyclic and points down.

Usage: scripts/check_layers.py [--graph]   (--graph prints the group graph)
"""

import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# Bottom to top. A group is a module path; a file belongs to the longest
# group that prefixes its module path.
LAYERS = [
    ["error"],
    ["codec_id"],
    ["runtime"],
    ["log"],
    ["log::file", "log::kafka"],
    ["capture::wire"],
    ["capture::exactly_once"],
    ["capture::producer", "capture::replay"],
    ["capture::inspect"],
    ["capture::worker"],
    ["capture::differential"],
    ["connect::status"],
    ["connect::source", "connect::sink"],
    ["connect::transactional"],
    ["capture", "connect"],
    ["lib"],
]
LAYER_OF = {group: index for index, groups in enumerate(LAYERS) for group in groups}
UNCHECKED = ()


def module_of(path):
    parts = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return "::".join(parts) or "lib"


def group_of(module):
    parts = module.split("::")
    for n in range(len(parts), 0, -1):
        if "::".join(parts[:n]) in LAYER_OF:
            return "::".join(parts[:n])
    return None


def code_lines(text):
    """The file's lines with comments blanked and the test module cut off."""
    text = re.sub(r"#\[cfg\(test\)\]\s*mod \w+\s*\{.*", "", text, flags=re.S)
    lines = []
    for line in text.split("\n"):
        lines.append("" if line.strip().startswith("//") else re.sub(r"//.*", "", line))
    return lines


def expand(tree):
    """`a::{b, c::{d}}` -> ['a::b', 'a::c::d'] (enough for the crate's use lines)."""
    tree = tree.replace(" ", "").replace("\n", "")
    depth, start, parts = 0, None, []
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix = tree[:start]
                inner, items, level, item = tree[start + 1 : i], [], 0, ""
                for c in inner:
                    if c == "," and level == 0:
                        items.append(item)
                        item = ""
                        continue
                    level += c == "{"
                    level -= c == "}"
                    item += c
                items.append(item)
                for item in items:
                    if item in ("", "self"):
                        parts.append(prefix.rstrip(":"))
                    else:
                        parts.extend(expand(prefix + item))
                return parts
    return [tree]


def root_exports():
    """Names the crate root re-exports, mapped to their module."""
    text = open(os.path.join(ROOT, "lib.rs")).read()
    exports = {}
    for statement in re.findall(r"pub use ([^;]+);", text):
        for path in expand(statement):
            path = path.split(" as ")[0]
            if "::" in path:
                module, name = path.rsplit("::", 1)
                exports[name] = module.replace("crate::", "")
    return exports


def resolve(path, module, exports):
    """The module a path in `module` names (crate- or super-relative), or None."""
    parts = path.split("::")
    if parts[0] == "crate":
        parts = parts[1:]
    elif parts[0] in ("super", "self"):
        base = module.split("::")
        while parts and parts[0] in ("super", "self"):
            if parts.pop(0) == "super":
                base = base[:-1]
        parts = base + parts
    else:
        return None
    if len(parts) == 1 and parts[0] in exports:
        return exports[parts[0]]
    return "::".join(parts)


def main():
    exports = root_exports()
    problems, graph = [], {}
    for directory, _, files in os.walk(ROOT):
        for name in sorted(files):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(directory, name)
            module = module_of(path)
            if module.split("::")[0] in UNCHECKED:
                continue
            source = group_of(module)
            lines = code_lines(open(path).read())
            text = "\n".join(lines)
            found = []
            for match in re.finditer(r"\buse\s+((?:crate|super|self)::[^;]+);", text):
                line = text.count("\n", 0, match.start()) + 1
                found.extend((line, p) for p in expand(match.group(1)))
            for number, line in enumerate(lines, 1):
                if line.lstrip().startswith("use ") or line.lstrip().startswith("pub use "):
                    continue
                found.extend((number, p) for p in re.findall(r"\b(?:crate|super)(?:::\w+)+", line))
            for number, used in found:
                target = group_of(resolve(used, module, exports) or "")
                if target is None or source is None or target == source:
                    continue
                graph.setdefault(source, set()).add(target)
                if LAYER_OF[target] > LAYER_OF[source] or (
                    LAYER_OF[target] == LAYER_OF[source] and module != "lib"
                ):
                    rel = os.path.relpath(path, os.path.join(ROOT, ".."))
                    problems.append(
                        f"{rel}:{number}: {source} uses {target} "
                        f"(layer {LAYER_OF[source]} must not use layer {LAYER_OF[target]})"
                    )
    if "--graph" in sys.argv:
        for source in sorted(graph, key=lambda g: LAYER_OF[g]):
            print(f"{LAYER_OF[source]:2} {source} -> {', '.join(sorted(graph[source]))}")
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_layers: {len(problems)} import(s) point up or across a layer (docs/architecture.md)")
        return 1
    print(f"check_layers: ok ({len(graph)} module groups, every import points down)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
