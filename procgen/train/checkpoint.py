"""Training checkpoints on disk: atomic as a whole, verified when resumed.

A run directory ``out`` holds::

    trainer_state.pt            the commit: step, next row, optimizer state, the rows' description,
                                the folder below and the sha256 of its weights
    checkpoints/step-000500/    the weights it belongs to: model.safetensors, config.json, hf/
    model.safetensors, config.json, hf/
                                the same files for users (hard links into the folder), refreshed
                                after every commit; ``GPT.from_pretrained(out)`` and
                                ``AutoModelForCausalLM.from_pretrained(out / "hf")`` read them

:func:`save` writes the weights into a hidden staging folder and renames it to
``checkpoints/step-NNNNNN`` in one ``os.replace``; then ``trainer_state.pt`` replaces the previous
one (written beside it, renamed) -- that single rename commits the checkpoint. Only then are older
folders removed and the top-level copies refreshed. A run killed at any moment therefore leaves the
previous checkpoint or the new one committed, never a mix: :func:`restore` reads only
``trainer_state.pt`` and the folder it names, and refuses weights whose sha256 differs from the
state's. Run directories written before this layout (``trainer_state.pt`` format 1, the weights at
the top level, no hash) still resume.

Every damaged or mismatched file raises :class:`~procgen.train.model.CheckpointError` (a
ValueError) with one line naming it. ``trainer_state.pt`` is loaded with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import shutil
from pathlib import Path

import torch

from procgen._files import atomic_open, writer_id
from procgen.train.model import WEIGHTS_NAME, CheckpointError

STATE_NAME = "trainer_state.pt"
CHECKPOINTS_DIR = "checkpoints"
HF_DIR = "hf"  # the same weights as a transformers GPT-2 folder (AutoModelForCausalLM loads it)
STATE_FORMAT = 2  # 1: weights at the top level of out and no hash (read, to resume older runs)
_FOLDER = re.compile(rf"{CHECKPOINTS_DIR}/step-\d+")
_LEFT_BEHIND = re.compile(r"(\.tmp-.*|-previous)$")  # atomic_open's and _replace's names, after the dot
_STATE_FIELDS = {"step": int, "next_row": int, "optimizer": dict, "data": str}


def exists(out: Path) -> bool:
    """Whether ``out`` holds a committed checkpoint (of either format)."""
    return (out / STATE_NAME).is_file()


def save(out: Path, module, state: dict) -> None:
    """Commit a checkpoint of ``module`` with the trainer ``state`` (``step``, ``next_row``,
    ``optimizer``, ``data`` ...) into ``out``, atomically as a whole (see the module docstring)."""
    folder = out / CHECKPOINTS_DIR / f"step-{state['step']:06d}"
    staging = folder.with_name(f".{folder.name}.tmp-{writer_id()}")
    shutil.rmtree(staging, ignore_errors=True)
    module.save_pretrained(staging)
    if hasattr(module, "save_hf"):  # a procgen GPT; a transformers model's own folder already is HF's
        module.save_hf(staging / HF_DIR)
    digest = _weights_digest(staging)
    # a folder of this step can only be one that a save killed before its commit left behind: the
    # committed checkpoint is older (a run saves only steps after the one it resumed from)
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(staging, folder)
    state = {**state, "format": STATE_FORMAT, "checkpoint": folder.relative_to(out).as_posix(),
             "weights_sha256": digest}
    with atomic_open(out / STATE_NAME) as handle:  # the commit
        torch.save(state, handle)
    publish(folder, out)


def read_state(out: Path) -> dict:
    """The committed trainer state in ``out``, checked field by field (nothing is unpickled)."""
    path = out / STATE_NAME
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file fails in the zip reader, the unpickler, or with EOFError
        reason = "damaged, or it holds objects that weights_only loading refuses" \
            if isinstance(err, pickle.UnpicklingError) else _first_line(err).split(". ")[0]
        raise CheckpointError(f"{path}: not a readable trainer state ({reason})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a trainer state (it holds a {type(state).__name__}, not a dict)")
    if state.get("format") not in (1, STATE_FORMAT):
        raise CheckpointError(f"{path}: unknown trainer_state format {state.get('format')!r} "
                              f"(this procgen reads 1 and {STATE_FORMAT})")
    fields = dict(_STATE_FIELDS, **({"checkpoint": str, "weights_sha256": str} if state["format"] > 1 else {}))
    for name, kind in fields.items():
        if isinstance(state.get(name), bool) or not isinstance(state.get(name), kind):
            raise CheckpointError(f"{path}: {name} is missing or not a {kind.__name__}")
    try:
        rows = json.loads(state["data"])
    except json.JSONDecodeError:
        rows = None
    if not isinstance(rows, dict):
        raise CheckpointError(f"{path}: data is not a JSON description of the training rows")
    return state


def restore(out: Path, state: dict, module, optimizer) -> Path:
    """Load the weights ``state`` belongs to into ``module`` (after checking their hash) and the
    optimizer state into ``optimizer``; return the folder of those weights."""
    state_path = out / STATE_NAME
    folder = _weights_folder(out, state)
    try:
        saved = type(module).from_pretrained(folder)
    except CheckpointError:
        raise
    except Exception as err:  # a transformers model's loader: OSError, ValueError, RuntimeError ...
        raise CheckpointError(f"{folder}: cannot load the checkpoint's weights ({_first_line(err)})") from None
    try:
        module.load_state_dict(saved.state_dict())
    except RuntimeError as err:
        raise ValueError(f"resume: the weights in {folder} do not fit the model being trained (another size or "
                         f"vocabulary?): {_first_line(err)}") from None
    try:
        optimizer.load_state_dict(state["optimizer"])
    except Exception as err:  # ValueError, KeyError, RuntimeError for the state of another model
        raise CheckpointError(f"{state_path}: its optimizer state does not fit the model being trained "
                              f"({_first_line(err)})") from None
    return folder


def publish(folder: Path, out: Path) -> None:
    """Tidy up after the commit of the checkpoint in ``folder``: remove older checkpoint folders
    and what killed saves left behind, and refresh the top-level copies, each entry replaced whole
    (hard links: no second copy on disk). Idempotent: a resume repeats it."""
    if folder == out:  # a format-1 checkpoint: its weights are the top-level files
        return
    for entry in folder.parent.iterdir():
        if entry != folder:
            _remove(entry)
    ours = {STATE_NAME, *(entry.name for entry in folder.iterdir())}
    for entry in out.glob(".*"):  # temp files and set-aside folders that saves killed mid-way left
        if _LEFT_BEHIND.sub("", entry.name[1:]) in ours:
            _remove(entry)
    for source in sorted(folder.iterdir()):
        target, temp = out / source.name, out / f".{source.name}.tmp-{writer_id()}"
        if source.is_dir():
            shutil.copytree(source, temp, copy_function=_link_or_copy)
        elif target.is_file() and os.path.samefile(source, target):
            continue  # linked already (and renaming a link onto its twin would do nothing)
        else:
            _link_or_copy(source, temp)
        _replace(temp, target)


# --- helpers ------------------------------------------------------------------------------------

def _weights_folder(out: Path, state: dict) -> Path:
    """The folder of the weights ``state`` belongs to, verified against its hash (``out`` itself
    for a format-1 state, which has neither)."""
    if state["format"] == 1:
        return out
    state_path, name = out / STATE_NAME, state["checkpoint"]
    if not _FOLDER.fullmatch(name):
        raise CheckpointError(f"{state_path}: checkpoint {name!r} is not a folder {CHECKPOINTS_DIR}/step-N")
    folder = out / name
    if not folder.is_dir():
        raise CheckpointError(f"{state_path} names the weights folder {folder}, which is missing")
    digest = _weights_digest(folder)
    if digest != state["weights_sha256"]:
        raise CheckpointError(f"{folder / WEIGHTS_NAME} does not match {state_path} (sha256 {digest[:12]}, the "
                              f"state expects {state['weights_sha256'][:12]}): the weights changed after the "
                              f"checkpoint was written; restore them or start the run again")
    return folder


def _weights_digest(folder: Path) -> str:
    """sha256 of the weights files (``*.safetensors``) at the top of a checkpoint folder."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")):
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _replace(source: Path, target: Path) -> None:
    """``os.replace`` that also replaces a directory (which POSIX refuses onto a non-empty one):
    the old one is renamed aside first and removed after, so ``target`` is never half-written."""
    if not source.is_dir() or not target.exists():
        os.replace(source, target)
        return
    previous = target.with_name(f".{target.name}-previous")
    shutil.rmtree(previous, ignore_errors=True)
    os.replace(target, previous)
    os.replace(source, target)
    shutil.rmtree(previous, ignore_errors=True)


def _remove(path: Path) -> None:
    """Remove a file or a directory tree, if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _link_or_copy(source, target) -> None:
    """A hard link, or a copy where the file system has none. Linking is safe because every
    writer here replaces a file whole (a new inode) rather than rewriting it in place."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
