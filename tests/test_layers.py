"""The files of src/ form layers: no file uses a symbol of a file that uses one of its own,
directly or in a ring (doc/architecture.md). Read off the built objects with nm: an edge
A -> B when A's object has an undefined (or weak undefined) reference that B's object
defines. A #pragma weak between two parts of the library shows up as such an edge too."""
import os
import subprocess
from pathlib import Path

import pytest

BUILD = Path(os.environ.get("BUFSHIM_BUILD_DIR", Path(__file__).resolve().parent.parent / "build"))


def objects():
    objs = sorted(p for p in (BUILD / "src").glob("*.p/*.o")
                  if p.parent.name.startswith("libbufshim"))
    if not objs:
        pytest.fail(f"no objects of libbufshim under {BUILD / 'src'}: build first")
    return objs


def source_name(obj):
    # meson names an object after its source with '/' turned into '_': engine_stage.c.o
    part, _, rest = obj.name.partition("_")
    return f"{part}/{rest[:-2]}"


def libc_names():
    """Names libc defines: a call of one from inside the library is a call of libc (or of
    the shim's wrapper of it, by interposition), not a dependency between two files."""
    libc = subprocess.run(["/usr/bin/python3", "-c",
                           "import ctypes.util; print(ctypes.util.find_library('c'))"],
                          capture_output=True, text=True).stdout.strip()
    path = next((p for p in ("/lib/x86_64-linux-gnu/" + libc, "/usr/lib/x86_64-linux-gnu/" + libc,
                             "/lib64/" + libc) if os.path.exists(p)), None)
    assert path, f"libc not found ({libc})"
    out = subprocess.run(["nm", "-D", "--defined-only", path], capture_output=True, text=True,
                         check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


def symbol_graph():
    libc = libc_names()
    defined, wanted = {}, {}
    for obj in objects():
        name = source_name(obj)
        out = subprocess.run(["nm", "--defined-only", "-g", str(obj)], capture_output=True,
                             text=True, check=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3:
                defined.setdefault(parts[2], name)
        out = subprocess.run(["nm", "-u", str(obj)], capture_output=True, text=True,
                             check=True).stdout
        wanted[name] = {line.split()[-1] for line in out.splitlines() if line.strip()}
    graph = {name: set() for name in wanted}
    for name, syms in wanted.items():
        for sym in syms:
            other = defined.get(sym)
            if other and other != name and sym not in libc:
                graph[name].add((other, sym))
    return graph


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w, _ in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_cycle_between_files_of_src():
    graph = symbol_graph()
    found = cycles(graph)
    detail = []
    for comp in found:
        for a in comp:
            for b, sym in sorted(graph[a]):
                if b in comp:
                    detail.append(f"  {a} uses {sym} of {b}")
    assert not found, "files of src/ that depend on each other:\n" + "\n".join(detail)


def test_engine_uses_nothing_of_the_shim():
    graph = symbol_graph()
    bad = [f"{a} uses {sym} of {b}" for a, edges in graph.items() if a.startswith("engine/")
           for b, sym in edges if b.startswith("shim/")]
    assert not bad, "\n".join(bad)
