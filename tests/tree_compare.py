"""Comparing two directory trees file by file, metadata included.

Import it from a test (``from tree_compare import tree_snapshot, assert_same_tree``).

``tree_snapshot(root, times=True, content=True)``
    A dict mapping each path below ``root`` (relative, ``"."`` for root itself; never
    following symlinks) to a dict of what a program could have set on it:

    - ``type``: ``"file"``, ``"dir"``, ``"symlink"``, ``"fifo"``, ``"socket"``, ``"chr"``,
      ``"blk"``
    - ``mode``: the full ``st_mode`` in octal text (``"0o104755"``: setuid, setgid and
      sticky bits included)
    - ``uid``, ``gid``, ``size`` (``st_size``), ``nlink`` for files
    - ``sha256`` (files, with ``content``), ``target`` (symlinks), ``rdev`` (devices)
    - ``mtime_ns`` (with ``times``; for directories too, see below)
    - ``xattrs``: every extended attribute by name (bytes values, hex in the report),
      read with ``follow_symlinks=False``, ``security.capability`` included. A file system
      without xattr support (``ENOTSUP``) gives ``{}``.

``assert_same_tree(a, b, times=True, ignore=(), dir_times=None, content=True)``
    Snapshots both trees and fails with one line per difference (a path only on one side,
    or ``path: field: value_a != value_b``), all of them at once. ``ignore`` is a collection
    of fnmatch patterns (``"*.pyc"``, ``".git/index"``) for relative paths left out entirely,
    or of ``"PATTERN:field"`` to leave out only that field for those paths
    (``".git/*:mtime_ns"``). Directory mtimes are legitimately affected by when things ran
    (each file created in it moves it), so they are compared only when ``dir_times`` is true;
    it defaults to ``times``: pass ``dir_times=False`` unless the tool itself sets directory
    times after filling them (``tar xp``, ``rsync -a``, ``cp -a`` do; ``git`` does not).
    The root's own mtime is never compared (the test creates it). Returns both snapshots.
"""
import errno
import fnmatch
import hashlib
import os
import stat

_TYPES = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
          (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "chr"),
          (stat.S_ISBLK, "blk"))


def _type(mode):
    for test, name in _TYPES:
        if test(mode):
            return name
    return "unknown"


def xattrs(path):
    """The extended attributes of path (not following a symlink); {} where the filesystem
    has none."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out = {}
    for name in sorted(names):
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA):
                continue
            raise
    return out


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _entry(path, times, content):
    st = os.lstat(path)
    kind = _type(st.st_mode)
    e = {"type": kind, "mode": oct(st.st_mode), "uid": st.st_uid, "gid": st.st_gid,
         "xattrs": xattrs(path)}
    if kind == "file":
        e["size"] = st.st_size
        e["nlink"] = st.st_nlink
        if content:
            e["sha256"] = _sha256(path)
    elif kind == "symlink":
        e["target"] = os.readlink(path)
    elif kind in ("chr", "blk"):
        e["rdev"] = st.st_rdev
    if times:
        e["mtime_ns"] = st.st_mtime_ns
    return e


def tree_snapshot(root, times=True, content=True):
    root = os.fspath(root)
    snap = {".": _entry(root, times, content)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            snap[os.path.relpath(full, root)] = _entry(full, times, content)
    return snap


def _show(field, value):
    if field == "xattrs":
        return "{" + ", ".join(f"{k}={v.hex()}" for k, v in value.items()) + "}"
    return repr(value)


def _ignored(rel, field, ignore):
    """True when a pattern of ignore leaves out rel entirely (field None: patterns without
    a field) or leaves out that field of rel."""
    for pat in ignore:
        pat_path, sep, pat_field = pat.rpartition(":")
        if not sep:
            pat_path, pat_field = pat, ""
        if field is None and pat_field:
            continue
        if fnmatch.fnmatchcase(rel, pat_path) and (not pat_field or pat_field == field):
            return True
    return False


def tree_differences(sa, sb, ignore=(), dir_times=True):
    """The list of difference lines between two snapshots (see assert_same_tree)."""
    diffs = []
    for rel in sorted(set(sa) | set(sb)):
        if _ignored(rel, None, ignore):
            continue
        if rel not in sb:
            diffs.append(f"{rel}: only in the first tree ({sa[rel]['type']})")
            continue
        if rel not in sa:
            diffs.append(f"{rel}: only in the second tree ({sb[rel]['type']})")
            continue
        ea, eb = sa[rel], sb[rel]
        for field in sorted(set(ea) | set(eb)):
            if field == "mtime_ns" and ea["type"] == "dir" and (rel == "." or not dir_times):
                continue
            if _ignored(rel, field, ignore):
                continue
            va, vb = ea.get(field), eb.get(field)
            if va != vb:
                if field == "xattrs":
                    for name in sorted(set(va or {}) | set(vb or {})):
                        xa, xb = (va or {}).get(name), (vb or {}).get(name)
                        if xa != xb:
                            diffs.append(f"{rel}: xattr {name}: "
                                         f"{xa.hex() if xa is not None else 'absent'} != "
                                         f"{xb.hex() if xb is not None else 'absent'}")
                else:
                    diffs.append(f"{rel}: {field}: {_show(field, va)} != {_show(field, vb)}")
    return diffs


def assert_same_tree(a, b, times=True, ignore=(), dir_times=None, content=True):
    sa = tree_snapshot(a, times=times, content=content)
    sb = tree_snapshot(b, times=times, content=content)
    diffs = tree_differences(sa, sb, ignore=ignore,
                             dir_times=times if dir_times is None else dir_times)
    assert not diffs, (f"trees differ ({len(diffs)} differences)\n  first:  {a}\n  second: {b}\n"
                       + "\n".join("  " + d for d in diffs[:200])
                       + (f"\n  ... and {len(diffs) - 200} more" if len(diffs) > 200 else ""))
    return sa, sb
