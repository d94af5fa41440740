"""Checkpoints: a complete, consistent snapshot of the day loop, written atomically.

A checkpoint is taken *between* two days, when every stage has finished, so the loop is
consistent. It holds everything that changes while a run goes on: all :class:`State`
columns (the graph's ``cut`` bits included; a shard's per-citizen columns for its own
range only, as it never writes the rest), every :class:`Queue` bucket in order,
the metrics table and running stocks, the traced rows, the event log, timings and the
next day to run. Resuming rebuilds a fresh loop from the scenario (the same code path as
a new run) and overwrites that state in place, so a resumed run is byte-identical to an
uninterrupted one.

Why a generic walk rather than a list of fields: several engineers add state to the loop
(the audit's event log, caches in the stages). The snapshot walks the loop's attributes
and credsim's own objects inside it; anything it cannot represent exactly is an error at
*save* time (never a silently wrong resume), and a checkpoint whose structure does not
match the current code is refused at load time.

Format and safety: one ``.npz`` file per checkpoint (``RUN_DIR/checkpoint/day-000042.npz``
= 42 days done, day 42 next), holding plain numeric arrays plus a JSON skeleton. It is
loaded with ``allow_pickle=False`` and restored only *into* objects the code built itself
-- nothing in a checkpoint can name a class or a function, so opening a checkpoint from an
untrusted run directory cannot run code. Strings (trace items) are stored as dictionary
codes. Files are written to a temporary name, fsynced, renamed and the folder fsynced;
the previous checkpoint is kept until a newer one is in place.

Integrity: beside each checkpoint, ``day-000042.npz.sha256`` holds the SHA-256 of the file
as written (in ``sha256sum`` format, with the file's name). Before anything is restored,
the file must match its digest and its name, and the day recorded inside must equal the
day in its name -- a flipped byte, a truncated file or a checkpoint renamed to another day
is refused, and :func:`credsim.resumable.resume` falls back to the previous intact one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

FORMAT = 5  # 2: state.pending holds the due day plus 1, 0 for none (was the day, or -1); graph.cut (was active)
# 3: state.resp_day holds the day plus 1, 0 for never (was the day, or -1); the day columns are state.day_dtype;
# graph.cut is a bit a tie direction (was a byte)
# 4: state.cured_seq holds the cure's sequence number plus 1, 0 for never cured (was the number, or -1)
# 5: state.counters are state.counter_dtype (int16 for most runs; was int32)
CHECKPOINT_DIR = "checkpoint"
KEEP = 2
_NAME = re.compile(r"^day-(\d{6,9})\.npz$")
_SCALARS = (bool, int, float, str, type(None))


class CheckpointError(RuntimeError):
    """A checkpoint cannot be written or used; the message says why."""


def _is_ours(obj: Any) -> bool:
    """credsim's own objects are walked; anything else (scipy, numba, pyarrow) is derived config."""
    return type(obj).__module__.startswith("credsim") and hasattr(obj, "__dict__")


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object array of str -> (unique strings 'U', int32 codes); refuses anything but str."""
    table: dict[str, int] = {}
    codes = np.empty(values.shape[0], dtype=np.int32)
    for i, v in enumerate(values.tolist()):
        if type(v) is not str:
            raise CheckpointError(f"cannot checkpoint an object array holding {type(v).__name__}")
        codes[i] = table.setdefault(v, len(table))
    uniq = np.array(list(table), dtype=str) if table else np.zeros(0, dtype="U1")
    return uniq, codes


def _transient(obj: Any) -> tuple[str, ...]:
    """The attributes an object of credsim's leaves out of checkpoints, by name (``CHECKPOINT_SKIP``): what it
    holds outside the process's memory and hands over before a checkpoint is taken (the event log's spool)."""
    skip: tuple[str, ...] = getattr(type(obj), "CHECKPOINT_SKIP", ())
    return skip


class _Encoder:
    """Turns an object tree into a JSON skeleton plus a dict of numeric arrays."""

    def __init__(self, skip: set[int], span: tuple[int, int, int] | None = None) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.seen: dict[int, str] = {}
        self.skip = skip
        self.span = span  # (lo, hi, n) of a shard: its per-citizen columns are stored for [lo, hi) only

    def _put(self, a: np.ndarray) -> str:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = a
        return key

    def array(self, a: np.ndarray) -> Any:
        if id(a) in self.seen:
            return {"$same": self.seen[id(a)]}
        if a.dtype == object:
            if a.ndim != 1:
                raise CheckpointError("cannot checkpoint a multi-dimensional object array")
            uniq, codes = _factorize(a)
            node: dict[str, Any] = {"$str": self._put(uniq), "codes": self._put(codes)}
        elif self._ranged(a):
            assert self.span is not None
            lo, hi, _n = self.span
            node = {"$a": self._put(np.ascontiguousarray(a[..., lo:hi])), "$span": [lo, hi]}
            self.seen[id(a)] = node["$a"]
        else:
            node = {"$a": self._put(a)}
            self.seen[id(a)] = node["$a"]
        return node

    def _ranged(self, a: np.ndarray) -> bool:
        """A shard's per-citizen column never written outside its range: only the range is stored (reading
        the rest touches no memory: it is zero pages), so checkpoints and restores stay O(own citizens)."""
        if self.span is None or not a.ndim or a.shape[-1] != self.span[2] or a.strides[-1] == 0:
            return False
        lo, hi, _n = self.span
        return not (a[..., :lo].any() or a[..., hi:].any())

    def _columnar(self, items: list[Any]) -> Any | None:
        """Lists of same-shaped rows of 1-D arrays (queue parts, trace chunks) as one array per column."""
        first = items[0]
        if isinstance(first, np.ndarray):
            rows, keys = [(x,) for x in items], None
        elif isinstance(first, tuple):
            rows, keys = items, None
        elif isinstance(first, dict) and all(isinstance(k, str) for k in first):
            keys = list(first)
            if not all(isinstance(x, dict) and list(x) == keys for x in items):
                return None
            rows = [tuple(x[k] for k in keys) for x in items]
        else:
            return None
        width = len(rows[0])
        for r in rows:
            if not isinstance(r, tuple) or len(r) != width:
                return None
            for c, a in enumerate(r):
                if not isinstance(a, np.ndarray) or a.ndim != 1 or a.dtype != rows[0][c].dtype:
                    return None
                if a.shape[0] != r[0].shape[0] or id(a) in self.seen:
                    return None
        cols = [self.array(np.concatenate([r[c] for r in rows])) for c in range(width)]
        lens = self._put(np.array([r[0].shape[0] for r in rows], dtype=np.int64))
        kind = "array" if isinstance(first, np.ndarray) else "tuple" if keys is None else "dict"
        return {"$cols": cols, "lens": lens, "row": kind, "keys": keys}

    def encode(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return self.array(obj)
        if isinstance(obj, np.generic):
            return {"$np": obj.dtype.str, "v": obj.item()}
        if isinstance(obj, _SCALARS):
            return obj
        if isinstance(obj, list | tuple):
            if obj and (node := self._columnar(list(obj))) is not None:
                return {"$list" if isinstance(obj, list) else "$tuple": node}
            items = [self.encode(x) for x in obj]
            return {"$list": items} if isinstance(obj, list) else {"$tuple": items}
        if isinstance(obj, dict):
            for k in obj:
                if not isinstance(k, str | int) or isinstance(k, bool):
                    raise CheckpointError(f"cannot checkpoint a dict keyed by {type(k).__name__}")
            return {"$dict": [[k, self.encode(v)] for k, v in obj.items()],
                    "default_list": isinstance(obj, defaultdict) and obj.default_factory is list}
        if id(obj) in self.skip or not _is_ours(obj) or isinstance(obj, BaseModel):
            return {"$skip": type(obj).__name__}
        return {"$obj": type(obj).__name__, "attrs": {k: self.encode(v) for k, v in vars(obj).items()
                                                      if id(v) not in self.skip and k not in _transient(obj)}}


class _Decoder:
    """Restores a skeleton into objects the code built itself (in place where shapes match)."""

    def __init__(self, archive: Any, where: str, skip: set[int]) -> None:
        self.archive = archive
        self.where = where
        self.skip = skip
        self.restored: dict[str, np.ndarray] = {}
        self.targets: set[int] = set()  # arrays already overwritten in place (never twice)

    def _get(self, key: str) -> np.ndarray:
        if not isinstance(key, str) or key not in self.archive.files:
            raise CheckpointError(f"{self.where}: missing array {key!r}")
        return np.asarray(self.archive[key])

    def array(self, node: dict[str, Any], template: Any, path: str) -> np.ndarray:
        if "$same" in node:
            if node["$same"] not in self.restored:
                raise CheckpointError(f"{self.where}: {path} refers to an array not restored yet")
            return self.restored[node["$same"]]
        if "$str" in node:
            uniq, codes = self._get(node["$str"]), self._get(node["codes"])
            if codes.size and (codes.min() < 0 or codes.max() >= uniq.shape[0]):
                raise CheckpointError(f"{self.where}: {path} has string codes out of range")
            return np.array(uniq.tolist(), dtype=object)[codes] if codes.size else np.zeros(0, dtype=object)
        saved = self._get(node["$a"])
        if "$span" in node:
            return self._ranged(node, saved, template, path)
        if (isinstance(template, np.ndarray) and template.shape == saved.shape and template.dtype == saved.dtype
                and template.flags.writeable and id(template) not in self.targets):
            np.copyto(template, saved)
            self.targets.add(id(template))
            saved = template
        self.restored[node["$a"]] = saved
        return saved

    def _ranged(self, node: dict[str, Any], saved: np.ndarray, template: Any, path: str) -> np.ndarray:
        """A column stored for ``[lo, hi)`` only (zero elsewhere), written into the loop's own column."""
        span = node["$span"]
        if not (isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) for v in span)):
            raise CheckpointError(f"{self.where}: {path} has a malformed range")
        lo, hi = span
        if not (isinstance(template, np.ndarray) and template.flags.writeable and id(template) not in self.targets
                and template.dtype == saved.dtype and template.shape[:-1] == saved.shape[:-1]
                and 0 <= lo <= hi <= template.shape[-1] and saved.shape[-1] == hi - lo):
            raise CheckpointError(f"{self.where}: {path} holds citizens [{lo}, {hi}) that do not fit this run")
        for rest in (template[..., :lo], template[..., hi:]):
            if rest.any():  # never the case for a freshly built shard; kept exact all the same
                rest[...] = 0
        template[..., lo:hi] = saved
        self.targets.add(id(template))
        self.restored[node["$a"]] = template
        return template

    def _rows(self, node: dict[str, Any], path: str) -> list[Any]:
        cols = [self.array(c, None, f"{path}[col {i}]") for i, c in enumerate(node["$cols"])]
        lens = self._get(node["lens"])
        if lens.ndim != 1 or (lens < 0).any() or any(int(lens.sum()) != c.shape[0] for c in cols):
            raise CheckpointError(f"{self.where}: {path} has inconsistent row lengths")
        cuts = np.cumsum(lens)[:-1]
        split = [np.split(c, cuts) for c in cols]
        rows = list(zip(*split, strict=True))
        if node["row"] == "array":
            return [r[0] for r in rows]
        if node["row"] == "dict":
            return [dict(zip(node["keys"], r, strict=True)) for r in rows]
        return [tuple(r) for r in rows]

    def decode(self, node: Any, template: Any, path: str) -> Any:
        if isinstance(node, _SCALARS):
            return node
        if not isinstance(node, dict):
            raise CheckpointError(f"{self.where}: unexpected value at {path}")
        if "$a" in node or "$same" in node or "$str" in node:
            return self.array(node, template, path)
        if "$np" in node:
            return np.dtype(node["$np"]).type(node["v"])
        for tag, kind in (("$list", list), ("$tuple", tuple)):
            if tag in node:
                body = node[tag]
                if isinstance(body, dict):
                    return kind(self._rows(body, path))
                same = isinstance(template, list | tuple) and len(template) == len(body)
                seq = template if same else [None] * len(body)
                return kind(self.decode(x, t, f"{path}[{i}]") for i, (x, t) in enumerate(zip(body, seq, strict=True)))
        if "$dict" in node:
            out: dict[Any, Any] = defaultdict(list) if node.get("default_list") else {}
            tmpl = template if isinstance(template, dict) else {}
            for k, v in node["$dict"]:
                out[k] = self.decode(v, tmpl.get(k), f"{path}.{k}")
            return out
        if "$skip" in node:
            return template
        if "$obj" in node:
            if template is None or type(template).__name__ != node["$obj"]:
                raise CheckpointError(f"{self.where}: {path} is a {node['$obj']} in the checkpoint but "
                                      f"{type(template).__name__} in this version of credsim")
            self.restore_into(template, node, path)
            return template
        raise CheckpointError(f"{self.where}: unknown entry at {path}")

    def restore_into(self, obj: Any, node: dict[str, Any], path: str) -> None:
        attrs = node.get("attrs", {})
        if not isinstance(attrs, dict):
            raise CheckpointError(f"{self.where}: unexpected value at {path}")
        mine = {k for k, v in vars(obj).items() if id(v) not in self.skip and k not in _transient(obj)}
        theirs = set(attrs)
        if mine != theirs:
            raise CheckpointError(f"{self.where}: {path} ({type(obj).__name__}) has attributes "
                                  f"{sorted(theirs ^ mine)} that differ from this version of credsim")
        for k, sub in attrs.items():
            setattr(obj, k, self.decode(sub, getattr(obj, k), f"{path}.{k}"))


@dataclass
class Checkpoint:
    path: Path
    day: int  # days done = the next day to run


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def list_checkpoints(run_dir: Path) -> list[Checkpoint]:
    """Checkpoints in ``run_dir``, newest first (temporary files are ignored)."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    out = [Checkpoint(p, int(m.group(1))) for p in d.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return sorted(out, key=lambda c: c.day, reverse=True)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _skip_ids(loop: Any) -> set[int]:
    """The plan and the arrays it owns are derived from the scenario, the fused day (``engine.Loop.fused``)
    from the plan and the loop's own state, metrics and sampler: never snapshotted."""
    plan = loop.plan
    fused = getattr(loop, "fused", None)
    return {id(plan)} | {id(v) for v in vars(plan).values() if isinstance(v, np.ndarray)} | \
        ({id(fused)} if fused is not None else set())


def snapshot(loop: Any, day: int, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a checkpoint of ``loop`` with ``day`` days done (``__skeleton__`` holds the JSON)."""
    x, n = getattr(loop, "exchange", None), loop.st.n
    span = (x.lo, x.hi, n) if x is not None and (x.lo, x.hi) != (0, n) else None
    events = getattr(loop, "events", None)
    if events is not None:
        events.unspool()  # the log's spooled parts go into the checkpoint with the rest (its spool is left out)
    enc = _Encoder(_skip_ids(loop), span)
    tree = enc.encode(loop)
    head = {"format": FORMAT, "day": day, "meta": meta, "tree": tree}
    blob = json.dumps(head, allow_nan=True).encode()
    return {**enc.arrays, "__skeleton__": np.frombuffer(blob, dtype=np.uint8)}


def digest_path(path: Path) -> Path:
    """Where the SHA-256 of checkpoint ``path`` is kept."""
    return path.with_name(path.name + ".sha256")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def save(run_dir: Path, loop: Any, day: int, meta: dict[str, Any]) -> Path:
    """Write the checkpoint for ``day`` days done atomically, with its digest; keep the newest :data:`KEEP`."""
    d = checkpoint_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    arrays = snapshot(loop, day, meta)
    final = d / f"day-{day:06d}.npz"
    tmp = d / f".{final.name}.tmp-{os.getpid()}"
    sums = digest_path(final)
    tmp_sums = d / f".{sums.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        # the digest of the bytes on disk (zip writing seeks back, so it is read again, not hashed on the way)
        _write_durably(tmp_sums, f"{_sha256(tmp)}  {final.name}\n".encode())
        os.replace(tmp_sums, sums)  # digest first: a digest without its file is harmless, the reverse is refused
        os.replace(tmp, final)
        _fsync_dir(d)
    except BaseException:
        tmp.unlink(missing_ok=True)
        tmp_sums.unlink(missing_ok=True)
        raise
    for old in list_checkpoints(run_dir)[KEEP:]:
        old.path.unlink(missing_ok=True)
        digest_path(old.path).unlink(missing_ok=True)
    for junk in d.glob(".day-*.tmp-*"):
        if junk not in (tmp, tmp_sums):
            junk.unlink(missing_ok=True)
    for orphan in d.glob("day-*.npz.sha256"):
        if not orphan.with_suffix("").exists():
            orphan.unlink(missing_ok=True)
    return final


def verify(path: Path) -> None:
    """Refuse a checkpoint whose bytes or name do not match the digest written beside it."""
    sums = digest_path(path)
    try:
        text = sums.read_text(encoding="ascii")[:200] if sums.is_file() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: its digest {sums.name} cannot be read ({exc})") from None
    if text is None:
        raise CheckpointError(f"{path}: no digest {sums.name} beside it, so it cannot be trusted")
    parts = text.split()
    if len(parts) != 2 or parts[1] != path.name:
        raise CheckpointError(f"{path}: its digest names {parts[1:2] or '?'}, not {path.name} (renamed?)")
    try:
        actual = _sha256(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if actual != parts[0]:
        raise CheckpointError(f"{path}: damaged (its SHA-256 does not match {sums.name})")


def read_head(path: Path, max_bytes: int) -> tuple[Any, dict[str, Any]]:
    """Open a checkpoint safely: size-checked, no pickles; returns (archive, skeleton)."""
    where = str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            declared = sum(i.file_size for i in zf.infolist())
        if declared > max_bytes:
            raise CheckpointError(f"{where}: declares {declared / 2**30:.1f} GiB of arrays, more than the "
                                  f"{max_bytes / 2**30:.1f} GiB allowed")
        archive = np.load(path, allow_pickle=False)
        head = json.loads(bytes(archive["__skeleton__"]).decode())
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{where}: not a readable checkpoint ({exc})") from None
    if not isinstance(head, dict) or head.get("format") != FORMAT:
        raise CheckpointError(f"{where}: checkpoint format {head.get('format') if isinstance(head, dict) else '?'}"
                              f" is not {FORMAT}")
    return archive, head


def restore(path: Path, loop: Any, max_bytes: int) -> dict[str, Any]:
    """Overwrite ``loop`` (freshly built from the same scenario) with a checkpoint; return its head.

    On :class:`CheckpointError` ``loop`` may be partly overwritten: build a fresh one before
    trying another checkpoint.
    """
    path = Path(path)
    verify(path)
    archive, head = read_head(path, max_bytes)
    try:
        day = head["day"]
        if not isinstance(day, int) or not 0 <= day <= loop.days:
            raise CheckpointError(f"{path}: day {day!r} is outside 0..{loop.days}")
        named = _NAME.match(path.name)
        if named is not None and int(named.group(1)) != day:
            raise CheckpointError(f"{path}: holds the state after day {day}, not the day its name says (renamed?)")
        dec = _Decoder(archive, str(path), _skip_ids(loop))
        tree = head["tree"]
        if not isinstance(tree, dict) or tree.get("$obj") != type(loop).__name__:
            raise CheckpointError(f"{path}: does not hold a {type(loop).__name__}")
        dec.restore_into(loop, tree, "loop")
    except (KeyError, TypeError, ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise CheckpointError(f"{path}: damaged checkpoint ({exc!r})") from None
    finally:
        archive.close()
    return dict(head)
