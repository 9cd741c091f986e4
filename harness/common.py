"""Small shared homes: the one-line errors, atomic saves, the cache root, recipe hashes and
the default device. Everything the suites, the loop and the CLIs need in common, nothing else."""
from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch


class HarnessError(Exception):
    """Bad input or an unusable environment: every CLI prints its message as one `error:`
    line and exits 2 (`cli_errors`). Each subclass names what went wrong."""


class Registry(dict):
    """Things by name (methods, suites): a second one of a name is refused unless `replace`."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def add(self, name: str, thing, replace: bool = False):
        if name in self and not replace:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self[name] = thing
        return thing


class ConfigError(HarnessError, ValueError):
    """A trial configuration that cannot run; the message says what to change."""


class TrialDiverged(RuntimeError):
    """The loss or the representations became NaN/inf (a result, not a crash to retry)."""


def cache_root() -> Path:
    """Where built data and trained extractors are cached (`$MUC2M_CACHE`)."""
    return Path(os.environ.get("MUC2M_CACHE", Path.home() / ".cache" / "muc2m-harness"))


def recipe_hash(recipe: dict) -> str:
    """A short, stable hash of a JSON-able recipe: the cache key of whatever it builds."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def save_atomic(path: Path, write) -> None:
    """`write(tmp)` then rename over `path`: a concurrent reader never sees a partial file.
    The temporary name keeps `path`'s suffix (numpy appends .npz to names without it)."""
    path = Path(path)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def whole_number(minimum: int):
    """An argparse type: a whole number ≥ minimum (argparse names the flag in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}; give {minimum} or more")
        return value
    parse.__name__ = f"whole number ≥ {minimum}"
    return parse


def check_writable(folder: Path, flag: str) -> None:
    """`folder` exists (made if need be) and takes a file; else a ConfigError naming `flag`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"{flag} {folder}: cannot write there ({err.strerror}); choose a "
                          f"writable folder") from None


def torch_save_atomic(obj, path: Path) -> None:
    save_atomic(path, lambda tmp: torch.save(obj, tmp))


def default_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given (checked: a ConfigError names what is wrong), else CUDA where it
    exists, else the CPU."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {device!r} is not a torch device; use cpu or cuda "
                          f"(cuda:N for the N-th GPU)") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {device!r}: no CUDA GPU is visible here; use cpu, or "
                              f"leave --device out (CUDA where it exists, else the CPU)")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} "
                              f"CUDA GPU(s), numbered from 0")
    return chosen


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so a wall clock measures it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def first_line(err: BaseException) -> str:
    """An exception's message cut to its first line (what a one-line error shows)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
