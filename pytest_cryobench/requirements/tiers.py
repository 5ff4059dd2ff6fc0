"""The hardware requirements of a CryoSPARC worker and of CryoSPARC Live, as two-tier checks.

Each :class:`Requirement` has a minimum and a recommended tier, taken from CryoSPARC's hardware
and system requirements and its CryoSPARC Live prerequisites (``docs/design.md``, requirements), or, where
those name no figure, a choice of this project that says so in ``source``. :func:`judge`
turns a measured value into one of

``pass``
    meets the recommended tier;
``below recommended``
    meets the minimum only: reported as a warning, the case passes;
``below minimum``
    the case fails;

and a requirement that cannot be measured here (no GPU for a GPU requirement) is reported as
``could not run`` with the reason.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from pytest_cryobench.record.text import format_value
from pytest_cryobench.record.verdicts import Verdict

# The tiers are members of the one verdict enum, so compare, text and the report read them alike.
PASS, BELOW_RECOMMENDED, BELOW_MINIMUM, COULD_NOT_RUN = (
    Verdict.PASS, Verdict.BELOW_RECOMMENDED, Verdict.BELOW_MINIMUM, Verdict.COULD_NOT_RUN)
GB = 1e9


@dataclasses.dataclass(frozen=True)
class Requirement:
    """One requirement with two tiers.

    Attributes
    ----------
    key : str
        The case name in result files (``memory_bandwidth``).
    title : str
        What is required, in words.
    unit : str
        Unit of the value and of both tiers.
    minimum, recommended : float, tuple or None
        The tiers; ``None`` when there is no such tier (anything passes it). Versions are tuples.
    better : {"higher", "lower"}
        Which direction meets a tier.
    source : str
        Where the tiers come from.
    per_gpu : bool
        The tiers are per GPU (the value is divided by the number of GPUs, or checked per GPU).
    """

    key: str
    title: str
    unit: str
    minimum: Any
    recommended: Any
    better: str = "higher"
    source: str = ""
    per_gpu: bool = False

    def scaled(self, factor: float) -> Requirement:
        """The same requirement with numeric tiers multiplied by ``factor`` (e.g. per GPU x GPUs)."""
        def scale(tier: Any) -> Any:
            return tier * factor if isinstance(tier, (int, float)) and not isinstance(tier, bool) else tier
        return dataclasses.replace(self, minimum=scale(self.minimum), recommended=scale(self.recommended))


def _meets(value: Any, tier: Any, better: str) -> bool:
    if tier is None:
        return True
    if isinstance(tier, bool):
        return bool(value) == tier
    return value >= tier if better == "higher" else value <= tier


def judge(requirement: Requirement, value: Any) -> str:
    """``pass``, ``below recommended`` or ``below minimum`` for a measured ``value``."""
    if not _meets(value, requirement.minimum, requirement.better):
        return BELOW_MINIMUM
    if not _meets(value, requirement.recommended, requirement.better):
        return BELOW_RECOMMENDED
    return PASS


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """The leading dotted number of ``text``: ``"550.54.15"`` -> ``(550, 54, 15)``,
    ``"4.15.0-142-generic"`` -> ``(4, 15, 0)``; ``None`` if it has none."""
    match = re.match(r"\s*(\d+(?:\.\d+)*)", str(text or ""))
    return tuple(int(part) for part in match.group(1).split(".")) if match else None


WORKER = "CryoSPARC hardware requirements, worker node"
LIVE = "CryoSPARC Live prerequisites"

REQUIREMENTS: dict[str, Requirement] = {r.key: r for r in (
    Requirement("cpu_cores_per_gpu", "physical CPU cores per GPU", "cores/GPU", 2, 4,
                source=f"{WORKER}: 2+ cores per GPU (minimum), 4 per GPU (recommended)", per_gpu=True),
    Requirement("ram_per_gpu", "system memory per GPU", "GB/GPU", 32, 64,
                source=f"{WORKER}: 32GB+ per GPU (minimum), 64GB per GPU (recommended)", per_gpu=True),
    Requirement("gpu_compute_capability", "NVIDIA GPU compute capability", "version", (3, 5), (7, 0),
                source=f"{WORKER}: CC 3.5+ (minimum); the recommended V100 / RTX 2080 Ti / RTX 3090 "
                       "are CC 7.0 and newer", per_gpu=True),
    Requirement("gpu_memory", "GPU memory", "GB", 11, 11,
                source=f"{WORKER}: 11GB+ VRAM; {LIVE}: at minimum 11GB per GPU", per_gpu=True),
    Requirement("nvidia_driver", "NVIDIA driver version", "version", (410, 48), (460, 27, 3),
                source=f"{WORKER}: CUDA 10 to 11.2; the drivers NVIDIA lists for CUDA 10.0 (410.48) and "
                       "11.2 (460.27.03)"),
    Requirement("cuda_version", "CUDA version the driver supports", "version", (10, 0), (11, 2),
                source=f"{WORKER}: CUDA >= 10 (11.2 the newest the guide names); CuPy, when installed, must "
                       "not need a newer CUDA than the driver's"),
    Requirement("memory_bandwidth", "CPU memory bandwidth (STREAM triad, all cores)", "GB/s", 50, 100,
                source=f"{WORKER}: 50+ GB/s (minimum), 100+ GB/s (recommended)"),
    Requirement("ssd_cache", "a local SSD particle cache", "yes/no", None, True,
                source=f"{WORKER}: fast local storage for random particle reads; the SSD is optional but "
                       "highly recommended for reconstruction"),
    Requirement("project_storage_read", "project storage sequential read", "MB/s", 125, 250,
                source=f"{WORKER}: a 1 Gbps link to storage (125 MB/s, minimum); 1000 MB/s sustained to "
                       "feed 4 GPUs in preprocessing, i.e. 250 MB/s per GPU (recommended, scaled per GPU)"),
    Requirement("dev_shm", "/dev/shm: a writable RAM file system with room for a movie per GPU", "GB", 0.0, 1.2,
                source="CryoSPARC's guide copies TIFF/EER movies to /dev/shm before decompressing "
                       "(CRYOSPARC_TIFF_IO_SHM); recommended: room for one movie per GPU of the largest "
                       "in its benchmark data set (1.2 GB); minimum: present and writable", per_gpu=True),
    Requirement("open_files", "open-file limit (soft)", "files", 1024, 65536,
                source="not in the guide; this project's choice: 1024 (the common default) holds the "
                       "benchmark's 500 particle files at once; 65536 leaves room for larger projects"),
    Requirement("non_root", "running as a regular (non-root) user", "yes/no", True, True,
                source="CryoSPARC's guide: installed and run as a regular UNIX user, never root"),
    Requirement("platform", "64-bit x86 Linux", "yes/no", True, True,
                source=f"{WORKER}: x86-64 (Intel or AMD), a modern Linux"),
    Requirement("kernel", "Linux kernel newer than the 3.10 era", "version", (3, 11), (4, 4),
                source="CryoSPARC's guide: CUDA is unstable on 3.10 kernels (CentOS 7); Ubuntu 16.04+ "
                       "(kernel 4.4) is the best-tested platform"),
    Requirement("largest_box", "largest reconstruction box the GPU holds", "px", 256, None,
                source="the engine's memory plan; minimum: the benchmark's particle box (256); no "
                       "recommended tier: the guide's 'a 12 GB GPU handles about 700^3' is CryoSPARC's own "
                       "memory use, not this engine's", per_gpu=True),
    Requirement("live_gpu_lanes", "GPUs for Live: preprocessing, streaming 2D + 3D, auxiliary", "GPUs", 3, 4,
                source=f"{LIVE}: 1 preprocessing + 2 reconstruction (auxiliary may share them) = 3 can do "
                       "all; 4 recommended"),
    Requirement("live_throughput", "Live preprocessing keeps up with the microscope", "movies/h", None, None,
                source=f"{LIVE}: preprocessing scales linearly with its GPUs; this project measures one "
                       "movie and compares with --cryobench-live-rate"),
)}

# The Live guide's minimum GPU memory (GB) per job, and per data type for preprocessing.
LIVE_JOB_MEMORY_GB = {"streaming_2d_classification": 4, "streaming_3d_refinement": 11, "ab_initio": 8}


def live_memory_requirement(job: str, camera_gb: float | None) -> Requirement:
    """The GPU memory a Live job needs; ``preprocessing`` depends on the camera (11 GB, the
    largest, when none is given)."""
    gb = (camera_gb if camera_gb is not None else 11) if job == "preprocessing" else LIVE_JOB_MEMORY_GB[job]
    return Requirement(f"live_gpu_memory_{job}", f"GPU memory for Live {job.replace('_', ' ')}", "GB", gb, gb,
                       source=f"{LIVE}: minimum GPU memory per job and data type", per_gpu=True)


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def report(case: Any, requirement: Requirement, value: Any, detail: str = "", **facts: Any) -> str:
    """Record a requirement's outcome on a benchmark case and act on its tier.

    ``below minimum`` fails the case (as a failed check, with the requirement and its source);
    ``below recommended`` warns; the value, both tiers, the tier reached and ``facts`` go into
    the record's ``info["requirement"]`` (result files, compare and report read them there).

    Returns
    -------
    str
        The tier reached.
    """
    import warnings

    from pytest_cryobench.errors import CryobenchWarning

    tier = judge(requirement, value)
    case.info(requirement={
        "title": requirement.title, "value": _json_value(value), "unit": requirement.unit,
        "minimum": _json_value(requirement.minimum), "recommended": _json_value(requirement.recommended),
        "tier": tier, "source": requirement.source, "detail": detail, **facts})
    shown = format_value(value, requirement.unit)
    if tier == BELOW_MINIMUM:
        case.check("minimum", False, f"{requirement.title}: {shown} is below the minimum "
                   f"{format_value(requirement.minimum, requirement.unit)}{'; ' + detail if detail else ''} "
                   f"({requirement.source})")
    else:
        case.check("minimum", True)
    if tier == BELOW_RECOMMENDED:
        warnings.warn(CryobenchWarning(
            f"{case.name}: {requirement.title}: {shown} is below the recommended "
            f"{format_value(requirement.recommended, requirement.unit)}{'; ' + detail if detail else ''}"),
            stacklevel=2)
    return tier
