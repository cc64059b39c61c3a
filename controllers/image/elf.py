"""ELF run paths: a relocated Python (pyenv, python-build) finds its ``libpython`` through an
absolute ``RUNPATH`` naming its install prefix; rewritten in place to ``$ORIGIN``-relative so the
interpreter works wherever the image puts it. No patchelf on air-gapped hosts, so by hand."""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NULL, _DT_STRTAB, _DT_RPATH, _DT_RUNPATH = 0, 5, 15, 29


@dataclass(frozen=True)
class RunPath:
    offset: int
    """Where the string sits in the file."""
    value: str


def run_paths(path: str) -> list[RunPath]:
    """The ``RPATH``/``RUNPATH`` strings of a 64-bit little-endian ELF file (else none)."""
    with open(path, "rb") as f:
        header = f.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            return []
        phoff = struct.unpack_from("<Q", header, 0x20)[0]
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
        loads: list[tuple[int, int, int]] = []
        dynamic: tuple[int, int] | None = None
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
                "<IIQQQQ", table, i * phentsize
            )
            if p_type == _PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == _PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
        if dynamic is None:
            return []
        f.seek(dynamic[0])
        raw = f.read(dynamic[1])
        strtab, wanted = None, []
        for i in range(len(raw) // 16):
            tag, value = struct.unpack_from("<qQ", raw, i * 16)
            if tag == _DT_NULL:
                break
            if tag == _DT_STRTAB:
                strtab = value
            elif tag in (_DT_RPATH, _DT_RUNPATH):
                wanted.append(value)
        if strtab is None or not wanted:
            return []
        base = next((o + strtab - va for va, o, size in loads if va <= strtab < va + size), None)
        if base is None:
            return []
        found = []
        for index in wanted:
            f.seek(base + index)
            value = f.read(4096).split(b"\0", 1)[0]
            found.append(RunPath(base + index, value.decode(errors="replace")))
        return found


def relocated_run_paths(host_file: str, image_file: str, moves: dict[str, str]) -> bytes | None:
    """``host_file``'s bytes with run paths under a moved prefix made ``$ORIGIN``-relative.

    ``moves``: host prefix -> image prefix. None when nothing needs rewriting. The new string
    is never longer than the old (``$ORIGIN/..`` is short); if it were, the file is left as is.
    """
    edits = []
    for run_path in run_paths(host_file):
        entries = []
        for entry in run_path.value.split(":"):
            for old, new in moves.items():
                if entry == old or entry.startswith(old + "/"):
                    target = new + entry[len(old) :]
                    rel = os.path.relpath(target, os.path.dirname(image_file))
                    entry = "$ORIGIN" if rel == "." else f"$ORIGIN/{rel}"
                    break
            entries.append(entry)
        joined = ":".join(entries).encode()
        if joined != run_path.value.encode() and len(joined) <= len(run_path.value.encode()):
            edits.append((run_path, joined))
    if not edits:
        return None
    with open(host_file, "rb") as f:
        data = bytearray(f.read())
    for run_path, new_value in edits:
        old_len = len(run_path.value.encode())
        data[run_path.offset : run_path.offset + old_len] = new_value.ljust(old_len, b"\0")
    return bytes(data)
