"""The images the input gate is measured on: in-scope frontal chest radiographs of a curated split, and
out-of-scope images that exist on this machine or can be generated from them.

Out-of-scope categories (each image keeps its category, so results are reported per kind):

- ``ct``: the demo CT phantom's slices and pydicom's CT test files;
- ``mr``, ``nm``, ``us``: pydicom's MR, nuclear-medicine and ultrasound test files (colour made grey);
- ``lateral``: lateral chest views of the split;
- ``non_chest_xray``: generated radiograph-like images of a hand, a knee, a skull and a pelvis
  (:func:`synthetic_radiograph`), several per kind with random geometry;
- ``rotated``, ``inverted``, ``cropped``: the split's frontal radiographs rotated by 90/180/270 degrees,
  with inverted grey levels, or cut down to a quarter (one quadrant) or the central 45%;
- ``photo``: scikit-image's sample photographs and micrographs (a user opening a non-medical image).

Nothing here is used at runtime: `radstation-eval scope fit|measure` builds these sets.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.data.images import load_image_array, to_uint8

#: Kinds made from the split's own frontal radiographs (the gate may see the train split's versions of these
#: while fitting; the measurement uses only the evaluation split's).
TRANSFORM_KINDS = ("rotated", "inverted", "cropped")
#: Kinds that come from other files or generators (never seen while fitting).
FOREIGN_KINDS = ("ct", "mr", "nm", "us", "non_chest_xray", "photo")


@dataclass
class ScopeImage:
    """One image of a measurement set: pixels (2-D), its category and where it came from."""

    pixels: np.ndarray
    category: str
    source: str
    header: dict = field(default_factory=dict)


def _grey(arr: np.ndarray) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.ndim == 3:  # a multi-frame volume: its middle frame
        a = a[a.shape[0] // 2]
    return a


def _dicom_images(paths: list[Path], category: str) -> Iterator[ScopeImage]:
    import pydicom

    seen: set[bytes] = set()
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(str(path))
                pixels = ds.pixel_array
        except Exception:  # noqa: BLE001 - a test file this pydicom cannot decode is simply left out
            continue
        if getattr(ds, "SamplesPerPixel", 1) == 1 and pixels.ndim == 3:
            pixels = pixels[pixels.shape[0] // 2]
        arr = _grey(pixels)
        if arr.ndim != 2 or min(arr.shape) < 32:
            continue
        if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
            arr = arr.max() - arr
        digest = to_uint8(arr.astype(np.float64)).tobytes()[:4096]
        if digest in seen:  # MR_small comes in eight encodings of the same pixels
            continue
        seen.add(digest)
        yield ScopeImage(np.asarray(arr, np.float32), category, f"{path.name}", _header(ds))


def _header(ds) -> dict:
    from engines.scope.header import header_of

    return header_of(ds)


def pydicom_test_images() -> list[ScopeImage]:
    """pydicom's bundled CT, MR, NM and US test files that decode here, one image each (colour as grey)."""
    from pydicom.data import get_testdata_files

    groups = {"ct": ("CT",), "mr": ("MR",), "nm": ("NM",), "us": ("US",)}
    out: list[ScopeImage] = []
    import pydicom

    files = sorted(Path(p) for p in get_testdata_files("*"))
    for category, modalities in groups.items():
        chosen = []
        for p in files:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ds = pydicom.dcmread(str(p), stop_before_pixels=True)
            except Exception:  # noqa: BLE001
                continue
            if str(getattr(ds, "Modality", "")) in modalities:
                chosen.append(p)
        out += list(_dicom_images(chosen, category))
    return out


def demo_phantom_images(demo_root: Path | None = None) -> list[ScopeImage]:
    """The 48 slices of the demo CT phantom (resources/demo, patient DEMO^PHANTOM)."""
    import pydicom

    root = demo_root or Path(__file__).resolve().parents[2] / "resources" / "demo"
    paths = []
    for p in sorted(root.rglob("IM*")):
        ds = pydicom.dcmread(str(p), stop_before_pixels=True)
        if str(getattr(ds, "Modality", "")) == "CT":
            paths.append(p)
    return [ScopeImage(im.pixels, "ct", f"demo phantom {im.source}", im.header) for im in _dicom_images(paths, "ct")]


def photo_images() -> list[ScopeImage]:
    """scikit-image's sample images that ship with it (photographs, micrographs, text), as grey."""
    import skimage.data as data

    names = ("astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock", "coffee", "coins",
             "colorwheel", "grass", "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo",
             "microaneurysms", "moon", "page", "retina", "rocket", "text", "shepp_logan_phantom")
    out = []
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                arr = getattr(data, name)()
        except Exception:  # noqa: BLE001 - a sample that needs a download is left out
            continue
        out.append(ScopeImage(_grey(arr).astype(np.float32), "photo", f"skimage.data.{name}"))
    return out


# -- generated non-chest radiographs --------------------------------------------------------------------------
def _rod(img: np.ndarray, p0: tuple[float, float], p1: tuple[float, float], radius: float, density: float,
         cortex: float = 0.35) -> None:
    """Add a bone (a capsule from p0 to p1) whose edges are denser than its middle, as a cortex is."""
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-6), 0, 1)
    d = np.hypot(yy - (y0 + t * dy), xx - (x0 + t * dx)) / radius
    inside = d < 1
    path = np.where(inside, np.sqrt(np.clip(1 - d * d, 0, 1)), 0)  # chord length through a cylinder
    shell = np.where(inside, np.clip((d - (1 - cortex)) / cortex, 0, 1), 0)
    img += density * (path + 1.5 * shell * path)


def _ellipse(img: np.ndarray, cy: float, cx: float, ry: float, rx: float, density: float, shell: float = 0.0) -> None:
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.hypot((yy - cy) / ry, (xx - cx) / rx)
    inside = d < 1
    path = np.where(inside, np.sqrt(np.clip(1 - d * d, 0, 1)), 0)
    img += density * path
    if shell:
        ring = np.where(inside & (d > 1 - shell), 1.0, 0.0)
        img += 0.8 * density * ring


def synthetic_radiograph(kind: str, rng: np.random.Generator, size: int = 256) -> np.ndarray:
    """A radiograph-like image (bright bone on darker soft tissue, blurred, with quantum noise) of a hand,
    a knee, a skull or a pelvis: not anatomy-exact, but the sort of non-chest projection a workstation
    opens. float32 in [0, 1]."""
    from scipy.ndimage import gaussian_filter, rotate

    img = np.zeros((size, size), np.float32)
    s = size / 256
    j = lambda v: v * s * rng.uniform(0.9, 1.1)  # noqa: E731 - jittered geometry
    if kind == "hand":
        _ellipse(img, j(170), j(128), j(70), j(60), 0.25)  # palm soft tissue
        for k, ang in enumerate(np.linspace(-0.5, 0.5, 5)):
            bx, by = j(128) + (k - 2) * j(22), j(175)
            length = j(60) + (0 if k in (0, 4) else j(25))
            tipx, tipy = bx + np.sin(ang) * (length + j(60)), by - np.cos(ang) * (length + j(60))
            _rod(img, (tipy, tipx), (by - np.cos(ang) * j(40), bx + np.sin(ang) * j(40)), j(9), 0.25)  # finger tissue
            _rod(img, (by, bx), (by - np.cos(ang) * length, bx + np.sin(ang) * length), j(5), 0.35)  # metacarpal
            for seg in range(3 if k else 2):  # phalanges with joint gaps
                a = length + seg * j(28) + j(4)
                b = a + j(22)
                _rod(img, (by - np.cos(ang) * a, bx + np.sin(ang) * a), (by - np.cos(ang) * b, bx + np.sin(ang) * b),
                     j(4), 0.35)
        _ellipse(img, j(215), j(128), j(18), j(45), 0.35, shell=0.2)  # carpals
    elif kind == "knee":
        _rod(img, (0, j(128)), (size, j(128)), j(70), 0.3)  # thigh/leg soft tissue
        _rod(img, (0, j(124)), (j(112), j(128)), j(26), 0.4)  # femur shaft
        _ellipse(img, j(118), j(128), j(20), j(48), 0.45, shell=0.15)  # condyles
        _ellipse(img, j(150), j(128), j(14), j(46), 0.45, shell=0.15)  # tibial plateau
        _rod(img, (j(155), j(130)), (size, j(126)), j(24), 0.4)  # tibia
        _rod(img, (j(165), j(168)), (size, j(166)), j(8), 0.35)  # fibula
        _ellipse(img, j(100), j(128), j(16), j(14), 0.25)  # patella
    elif kind == "skull":
        _ellipse(img, j(128), j(128), j(110), j(92), 0.3, shell=0.12)  # vault
        _ellipse(img, j(175), j(128), j(30), j(60), 0.25)  # facial bones
        _ellipse(img, j(130), j(92), j(16), j(16), -0.1)  # orbits
        _ellipse(img, j(130), j(164), j(16), j(16), -0.1)
        _rod(img, (j(205), j(80)), (j(235), j(128)), j(8), 0.4)  # mandible
        _rod(img, (j(235), j(128)), (j(205), j(176)), j(8), 0.4)
    elif kind == "pelvis":
        _ellipse(img, j(128), j(128), j(110), j(125), 0.2)  # soft tissue
        _ellipse(img, j(95), j(75), j(55), j(45), 0.3, shell=0.15)  # iliac wings
        _ellipse(img, j(95), j(181), j(55), j(45), 0.3, shell=0.15)
        _rod(img, (j(20), j(128)), (j(120), j(128)), j(18), 0.35)  # sacrum/spine
        _ellipse(img, j(175), j(80), j(20), j(20), 0.45, shell=0.25)  # femoral heads
        _ellipse(img, j(175), j(176), j(20), j(20), 0.45, shell=0.25)
        _rod(img, (j(180), j(70)), (size, j(60)), j(16), 0.4)  # femora
        _rod(img, (j(180), j(186)), (size, j(196)), j(16), 0.4)
        _ellipse(img, j(195), j(128), j(20), j(40), -0.1)  # obturator foramina
    else:
        raise ValueError(f"unknown synthetic radiograph kind {kind!r}; use hand, knee, skull or pelvis")
    img = rotate(img, rng.uniform(-15, 15), reshape=False, order=1)
    img = gaussian_filter(img, rng.uniform(0.8, 2.0))
    img = img / max(float(img.max()), 1e-6)
    img = np.clip(img + rng.normal(0, rng.uniform(0.01, 0.04), img.shape), 0, 1)
    return img.astype(np.float32)


def synthetic_radiographs(per_kind: int = 10, seed: int = 0) -> list[ScopeImage]:
    rng = np.random.default_rng(seed)
    return [ScopeImage(synthetic_radiograph(kind, rng), "non_chest_xray", f"generated {kind} #{i}")
            for kind in ("hand", "knee", "skull", "pelvis") for i in range(per_kind)]


# -- transforms of in-scope radiographs ----------------------------------------------------------------------
def transformed(pixels: np.ndarray, kind: str, variant: int) -> np.ndarray:
    """One of the out-of-scope versions of a frontal radiograph: rotated (variant 0..2: 90/180/270 degrees),
    inverted, or cropped (variant 0..3: a quadrant; 4: the central 45%)."""
    a = np.asarray(pixels, np.float32)
    if kind == "rotated":
        return np.ascontiguousarray(np.rot90(a, k=1 + variant % 3))
    if kind == "inverted":
        return (a.max() + a.min()) - a
    if kind == "cropped":
        h, w = a.shape
        if variant % 5 == 4:
            m, n = int(h * 0.275), int(w * 0.275)
            return np.ascontiguousarray(a[m:h - m, n:w - n])
        r, c = divmod(variant % 4, 2)
        return np.ascontiguousarray(a[r * h // 2:(r + 1) * h // 2, c * w // 2:(c + 1) * w // 2])
    raise ValueError(f"unknown transform {kind!r}; use one of {TRANSFORM_KINDS}")


def transformed_images(samples: list, per_image: int = 1, seed: int = 0) -> list[ScopeImage]:
    """For each frontal sample, `per_image` transformed versions of each kind (variants drawn at random)."""
    rng = np.random.default_rng(seed)
    out = []
    for s in samples:
        pixels = s.load_image()
        for kind in TRANSFORM_KINDS:
            for _ in range(per_image):
                v = int(rng.integers(0, 5))
                out.append(ScopeImage(transformed(pixels, kind, v), kind, f"{s.image_id} {kind} v{v}"))
    return out


@dataclass
class ScopeSets:
    """In-scope images (frontal radiographs of a split) and out-of-scope images, for fitting or measuring."""

    in_scope: list[ScopeImage]
    out_of_scope: list[ScopeImage]

    def categories(self) -> list[str]:
        return sorted({im.category for im in self.out_of_scope})


def split_samples(split: str, root: Path | None = None) -> tuple[list, list]:
    """(frontal, lateral) samples of a curated split."""
    from lab.data.cxr import load_cxr

    samples = list(load_cxr(root, splits=(split,)))
    return [s for s in samples if s.view == "frontal"], [s for s in samples if s.view == "lateral"]


def measurement_sets(split: str = "val", root: Path | None = None, seed: int = 0,
                     foreign: bool = True) -> ScopeSets:
    """In scope: the split's frontal radiographs. Out of scope: its laterals and transformed frontals, and (with
    `foreign`) the CT/MR/NM/US files, generated non-chest radiographs and photographs."""
    frontal, lateral = split_samples(split, root)
    inside = [ScopeImage(s.load_image(), "frontal", s.image_id) for s in frontal]
    outside = [ScopeImage(s.load_image(), "lateral", s.image_id) for s in lateral]
    outside += transformed_images(frontal, seed=seed)
    if foreign:
        outside += demo_phantom_images() + pydicom_test_images() + synthetic_radiographs(seed=seed)
        outside += photo_images()
    return ScopeSets(inside, outside)


def load_pixels(path: Path) -> np.ndarray:
    return load_image_array(path)
