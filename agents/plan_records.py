"""The bookkeeping of ``mbvc plan``: its folder, its episode log, and the seeds and env arguments it takes.

A plan folder holds ``plan.json`` (the settings), ``episodes.jsonl`` (one line per finished
episode), ``results.json`` / ``results.md`` and ``episode.gif``. :class:`PlanFolder` locks it
(one process at a time, as a training run folder) and checks that a resumed run plans with the
same settings; :class:`EpisodeLog` writes each record whole and reads them back strictly, so
the counts in ``results.json`` are always those of the records.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mbvc.errors import ConfigError, DataError
from mbvc.io import output_error, write_json

from .evaluation import EpisodeResult
from .stages import settings_diff

log = logging.getLogger(__name__)

#: Episodes a plan may be asked for at most (``--seeds``); raise it with the environment variable.
MAX_EPISODES_ENV = "MBVC_MAX_EPISODES"
MAX_EPISODES = 100_000
#: Characters of ``--env-kwargs`` values at most (they are printed and recorded).
MAX_ENV_KWARGS_CHARS = 10_000
#: The worker processes' folders inside a plan folder (merged into ``episodes.jsonl``, then removed).
WORKERS_DIR = ".workers"
OUTPUTS = ("episodes.jsonl", "results.json", "results.md", "episode.gif")


def max_episodes() -> int:
    """The most episodes a plan takes (:data:`MAX_EPISODES`, or ``$MBVC_MAX_EPISODES``)."""
    text = os.environ.get(MAX_EPISODES_ENV)
    if text is None:
        return MAX_EPISODES
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"${MAX_EPISODES_ENV} must be a positive integer, got {text!r}") from None
    if value < 1:
        raise ConfigError(f"${MAX_EPISODES_ENV} must be a positive integer, got {text!r}")
    return value


def check_seeds(seeds: Iterable[int], what: str = "seeds") -> list[int]:
    """``seeds`` as a list of ints, refusing duplicates, an empty list and more than :func:`max_episodes`."""
    out, seen, limit = [], set(), max_episodes()
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"{what}: episode seeds are integers, got {seed!r}")
        if seed in seen:
            raise ConfigError(f"{what}: seed {seed} is given twice (each seed is one episode per agent)")
        if len(out) >= limit:
            raise ConfigError(f"{what}: more than {limit} episodes per agent; set ${MAX_EPISODES_ENV} to allow more")
        seen.add(seed)
        out.append(seed)
    if not out:
        raise ConfigError(f"{what}: no episode seeds given")
    return out


def parse_seeds(text: str) -> list[int]:
    """``"3,5,7"`` or inclusive ranges ``"1000000-1000009"`` into seeds (``--seeds`` of ``mbvc plan``).

    Raises:
        ConfigError: not integers or ranges, a reversed range, a seed given twice, or more seeds
            than :func:`max_episodes` (counted before any list is made).
    """
    parts, count, limit = [], 0, max_episodes()
    for part in (p.strip() for p in text.split(",") if p.strip()):
        lo, sep, hi = part.partition("-") if not part.startswith("-") else ("", "", "")
        try:
            first, last = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise ConfigError(f"--seeds must be comma-separated non-negative integers or ranges a-b, got {text!r}") from None
        if first < 0:
            raise ConfigError(f"--seeds: seeds are non-negative integers, got {part!r}")
        if last < first:
            raise ConfigError(f"--seeds: the range {part!r} is reversed; write {last}-{first}")
        count += last - first + 1
        if count > limit:
            raise ConfigError(f"--seeds {text!r} gives more than {limit} episodes per agent; set ${MAX_EPISODES_ENV} "
                              "to allow more")
        parts.append(range(first, last + 1))
    return check_seeds((s for r in parts for s in r), "--seeds")


def parse_env_kwargs(items: Iterable[str]) -> dict[str, Any]:
    """``["k=v", ...]`` with YAML values (``goal_distance=[0.05,0.1]``, ``terminate_on_success=true``).

    YAML anchors and aliases are refused: a short alias chain expands to gigabytes when printed.

    Raises:
        ConfigError: an item that is not ``key=value``, a value that is not plain YAML, or too long.
    """
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env-kwargs {item!r} must look like key=value")
        if len(value) > MAX_ENV_KWARGS_CHARS:
            raise ConfigError(f"--env-kwargs {key}=...: the value has {len(value)} characters, more than "
                              f"{MAX_ENV_KWARGS_CHARS}")
        try:
            if any(isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None) for e in yaml.parse(value)):
                raise ConfigError(f"--env-kwargs {key}=...: YAML anchors and aliases (& and *) are not accepted")
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--env-kwargs {item[:80]!r}: the value is not valid YAML") from None
    return out


def data_env_kwargs(data: str | os.PathLike | None, env_id: str) -> dict[str, Any]:
    """The ``gymnasium.make`` keyword arguments the rollouts in ``data`` were collected with.

    The world model learnt the dynamics of that env (a control mode, a frame skip), so planning
    starts from them; empty when ``data`` has no manifest or comes from another env.
    """
    manifest = None if data is None else Path(data) / "manifest.json"
    if manifest is None or not manifest.is_file():
        return {}
    try:
        spec = json.loads(manifest.read_text()).get("spec", {})
    except (OSError, ValueError, AttributeError):
        return {}  # the rollout reader reports a broken manifest with its own message
    if not isinstance(spec, dict) or spec.get("env_id") != env_id or not isinstance(spec.get("env_kwargs"), dict):
        return {}
    return dict(spec["env_kwargs"])


class EpisodeLog:
    """``episodes.jsonl``: one JSON line per finished episode, each written whole.

    A line is written with one ``write`` on a file opened for appending, and flushed to disk. A
    crash mid-write can still leave a torn last line (no newline): :meth:`load` drops it with a
    warning and cuts it off the file, so the next record starts on a line of its own. Any other
    line that is not a record is refused, naming the file and the line.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, list[dict[str, Any]]]:
        """Finished episodes per agent, in file order (the first record of an agent and seed counts).

        Raises:
            DataError: a line in the middle of the file that is not an episode record.
        """
        if not self.path.is_file():
            return {}
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        if lines[-1]:  # no newline at the end: a write cut short
            log.warning("%s: dropping a torn last line (%d bytes), left by an interrupted write", self.path,
                        len(lines[-1]))
            with self.path.open("r+b") as f:
                f.truncate(len(data) - len(lines[-1]))
        done: dict[str, list[dict[str, Any]]] = {}
        seen: set[tuple[str, int]] = set()
        for number, line in enumerate(lines[:-1], 1):
            row = _record(line, self.path, number)
            key = (row["agent"], row["seed"])
            if key in seen:
                log.warning("%s line %d: %s episode %d is recorded twice; the first record counts", self.path,
                            number, *key)
                continue
            seen.add(key)
            done.setdefault(row["agent"], []).append(row)
        return done

    def append(self, agent: str, episode: EpisodeResult, **extra: Any) -> None:
        """Add one finished episode."""
        self.extend([{"agent": agent, **dataclasses.asdict(episode), **extra}])

    def extend(self, rows: Iterable[dict[str, Any]]) -> None:
        """Add finished episodes as read from another log (one ``{"agent": ..., ...}`` dict each)."""
        text = "".join(json.dumps(row) + "\n" for row in rows)
        try:  # the file is created even with no rows: a worker's folder starts with its log
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                os.write(fd, text.encode())
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise output_error(self.path, exc) from None


def _record(line: bytes, path: Path, number: int) -> dict[str, Any]:
    """One line of an episode log as a record, or a one-line :class:`DataError`."""
    try:
        row = json.loads(line)
    except ValueError:
        row = None
    fields = {f.name for f in dataclasses.fields(EpisodeResult)}
    if not isinstance(row, dict) or not isinstance(row.get("agent"), str) or not fields <= set(row):
        raise DataError(f"{path} line {number}: not an episode record (expected a JSON object with 'agent' and "
                        f"{sorted(fields)}); remove the line or plan again with --force")
    return row


def episode_result(row: dict[str, Any]) -> EpisodeResult:
    """The :class:`EpisodeResult` of a record."""
    return EpisodeResult(**{f.name: row[f.name] for f in dataclasses.fields(EpisodeResult)})


class PlanFolder:
    """A plan's output folder, locked by this process while it plans.

    :meth:`open` refuses a file, a foreign non-empty folder, a folder another process plans into,
    and a folder whose episodes were planned with other settings (or ``restart_on_change``:
    drops them). A folder with no episodes yet takes the new settings whatever it held before,
    so a start that failed never blocks the corrected command.

    Args:
        out: the folder.
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.episodes = EpisodeLog(self.out / "episodes.jsonl")
        self._lock: Any = None

    def open(self, settings: dict[str, Any], defaults: dict[str, Any], force: bool = False,
             restart_on_change: bool = False) -> None:
        """Lock the folder and record ``settings`` in ``plan.json`` (see the class)."""
        from mbvc.training.lock import LOCK_FILE, RunLock

        out, marker = self.out, self.out / "plan.json"
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file; plan needs a folder")
        if out.is_dir() and not marker.is_file() and any(p.name != LOCK_FILE for p in out.iterdir()):
            raise ConfigError(f"--out {out} is a non-empty folder that mbvc plan did not make (no plan.json)")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise output_error(out, exc, "--out") from None
        try:
            self._lock = RunLock(out, created=False)
        except ConfigError:
            pid = (out / LOCK_FILE).read_text().strip() if (out / LOCK_FILE).is_file() else "?"
            raise ConfigError(f"--out {out} is in use by process {pid}: one mbvc plan (or demo) writes into a "
                              "folder at a time; wait for it or choose another --out") from None
        try:
            if force or self._changed(settings, defaults, restart_on_change):
                for name in OUTPUTS:
                    (out / name).unlink(missing_ok=True)
                shutil.rmtree(out / WORKERS_DIR, ignore_errors=True)
            write_json(marker, {"settings": settings})
        except BaseException:
            self.close()
            raise

    def _changed(self, settings: dict[str, Any], defaults: dict[str, Any], restart_on_change: bool) -> bool:
        """Whether the episodes there were planned with other settings (refused unless ``restart_on_change``)."""
        marker = self.out / "plan.json"
        if not marker.is_file() or not self.episodes.load():
            return False  # nothing planned yet: the new settings hold
        try:
            before = json.loads(marker.read_text())["settings"]
            changes = settings_diff(before, settings, defaults)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            before, changes = None, ["plan.json cannot be read"]
        if not changes:
            return False
        if restart_on_change:
            log.info("%s holds episodes planned with other settings: planning again", self.out)
            return True
        what = "its plan.json cannot be read" if before is None else f"other settings ({'; '.join(changes[:3])})"
        raise ConfigError(f"{self.out} holds episodes planned with {what}; pass --force to start again or "
                          "choose another --out")

    def close(self) -> None:
        """Release the folder."""
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> PlanFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["EpisodeLog", "MAX_EPISODES", "PlanFolder", "WORKERS_DIR", "check_seeds", "data_env_kwargs",
           "episode_result", "max_episodes", "parse_env_kwargs", "parse_seeds"]
