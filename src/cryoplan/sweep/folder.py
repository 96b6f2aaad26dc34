"""The sweep's results folder: each sample stored as it finishes, so that a rerun resumes.

    DIR/sweep.json              the sweep it belongs to (spec, case files' digests)
    DIR/samples/<key>.npz       one per finished sample: metrics, T_min, lethal zone, error
    DIR/samples.parquet, DIR/maps/…, DIR/sensitivity.json, DIR/summary.{json,html}
                                written from the samples once all are there (`aggregate`)

Every file is written beside its name and renamed into place, so a sample's file is there
whole or not at all, whenever the client or a worker is killed. A sample is done when its
file exists: a rerun of the same sweep into the same folder runs only the others, and no
sample can be counted twice (one file per key).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from cryoplan.errors import CaseError
from cryoplan.outputs import TEMPORARY_PREFIX, check_output_dir, written_whole
from cryoplan.sweep.result import EncodedSample, SampleResult, decode, encode

MANIFEST = "sweep.json"
SAMPLES = "samples"
RETRY_SUFFIX = ".retry.npz"  # a sample whose error a rerun tries again


def sweep_digest(spec_json: str, case_files: list[Path]) -> str:
    """SHA-256 of the normalised spec and of each case file's bytes: what makes the stored
    samples this sweep's."""
    h = hashlib.sha256(spec_json.encode())
    for path in case_files:
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


class SweepFolder:
    """The results folder of one sweep (module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.samples = root / SAMPLES

    @classmethod
    def open(
        cls, out: str | Path, manifest: dict[str, Any], overwrite: bool = False
    ) -> SweepFolder:
        """The folder for this sweep: made if absent, kept (to resume) if it holds the same
        sweep, refused if it holds anything else (unless `overwrite`, which empties it)."""
        root = Path(out)
        existing = root / MANIFEST
        if root.is_dir() and any(root.iterdir()) and not overwrite:
            try:
                held = json.loads(existing.read_text("utf-8"))
            except (OSError, ValueError):
                raise CaseError(
                    str(root), "--out", "an empty folder or one of this sweep's (it holds other "
                    "files; give another folder or --overwrite)",
                ) from None  # fmt: skip
            if held.get("digest") != manifest["digest"]:
                raise CaseError(
                    str(root), "--out", "a folder of this sweep: it holds the samples of another "
                    "sweep file or of other case files (give another folder or --overwrite)",
                )  # fmt: skip
        else:
            check_output_dir(root, overwrite=True)
            if overwrite and root.is_dir():
                shutil.rmtree(root)
        try:
            root.mkdir(parents=True, exist_ok=True)
            with written_whole(existing) as tmp:  # first: a folder with samples has its sweep
                tmp.write_text(json.dumps(manifest, indent=1) + "\n", "utf-8")
            (root / SAMPLES).mkdir(exist_ok=True)
            for stale in root.rglob(f"{TEMPORARY_PREFIX}*"):  # left by a writer that was killed
                stale.unlink(missing_ok=True)
        except OSError as exc:
            raise CaseError(str(root), "--out", f"a writable folder ({exc.strerror})") from None
        return cls(root)

    def path_of(self, key: str, retry: bool = False) -> Path:
        return self.samples / (f"{key}{RETRY_SUFFIX}" if retry else f"{key}.npz")

    def done(self) -> set[str]:
        """Keys of the samples stored for good (not a file still being written when its
        writer was killed, nor one whose error a rerun tries again)."""
        return {
            p.name[: -len(".npz")]
            for p in self.samples.glob("*.npz")
            if not p.name.startswith(TEMPORARY_PREFIX) and not p.name.endswith(RETRY_SUFFIX)
        }

    def store(self, result: SampleResult | EncodedSample) -> None:
        """Store one sample's result, whole; one to be tried again under its own name."""
        encoded = result if isinstance(result, EncodedSample) else None
        data = encoded.data if encoded else encode(result)  # type: ignore[arg-type]
        with written_whole(self.path_of(result.key, result.retry)) as tmp:
            tmp.write_bytes(data)
        if not result.retry:
            self.path_of(result.key, retry=True).unlink(missing_ok=True)

    def load(self, key: str, fields: bool = True) -> SampleResult:
        """A stored sample (its fields only if `fields`). A file that cannot be read (a
        machine that crashed as it was written) is removed, so that a rerun runs it again."""
        path = self.path_of(key)
        if not path.exists():
            path = self.path_of(key, retry=True)
        try:
            return decode(key, path, fields)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            path.unlink(missing_ok=True)
            raise CaseError(
                str(path), "", "a readable sample file (it was damaged and is removed: rerun "
                "the sweep to run that sample again)",
            ) from None  # fmt: skip
