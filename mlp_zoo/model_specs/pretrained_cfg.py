"""Each release's evaluation settings as timm's ``pretrained_cfg``: what input a set of weights expects.

The values are the authors' own evaluation settings, read from the official code (file and line cited at each
table). A release is named after what ``weights_convert`` detects in a checkpoint: its layout (SPACH sMLPNet,
official ViP, Google JAX MLP-Mixer, or native keys, i.e. timm's files or the zoo's own) and its class count.
A checkpoint written by ``tools/finetune.py`` carries its own cfg (release ``"checkpoint"``); see
``checkpoint_cfg``.
"""
from __future__ import annotations

import math
from typing import Any

from .registry import variant

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # timm.data.constants IMAGENET_DEFAULT_MEAN
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)  # timm IMAGENET_INCEPTION_MEAN / _STD, what the Mixer ports use
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
CROP_MODES = ("center", "squash")
LABEL_SETS = {1000: "imagenet-1k", 21843: "imagenet-21k"}
KEYS = ("architecture", "tag", "input_size", "crop_pct", "crop_mode", "interpolation", "mean", "std",
        "num_classes", "label_names")


def _cfg(crop_pct: float, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
         interpolation: str = "bicubic", crop_mode: str = "center", num_classes: int = 1000) -> dict[str, Any]:
    return dict(input_size=(3, 224, 224), crop_pct=crop_pct, crop_mode=crop_mode, interpolation=interpolation,
                mean=mean, std=std, num_classes=num_classes, label_names=LABEL_SETS.get(num_classes))


# family -> release -> (settings, variants it differs for: name -> overrides). The first release is the default.
RELEASES: dict[str, dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]]] = {
    # microsoft/SPACH@dcede1e datasets.py L50-58: Resize(int((256 / 224) * 224)) = 256 (shorter side),
    # CenterCrop(224), interpolation=3 (PIL bicubic), IMAGENET_DEFAULT_MEAN/STD; 224 / 256 = 0.875
    "smlp": {"spach": (_cfg(0.875), {})},
    # Andrew-Qibin/VisionPermutator@2cab2ce models/vip.py L8-21 default_cfgs: crop_pct .9 for ViP-S/14, S/7, M/7,
    # .875 for L/7, bicubic, IMAGENET_DEFAULT_MEAN/STD; main.py L491-502 evaluates with the model's crop_pct
    "vip": {"official": (_cfg(0.9), {"vip_l7": {"crop_pct": 0.875}})},
    # SHI-Labs/Convolutional-MLPs@092bf71 configs/classification/convmlp_{s,m,l}_imagenet.yml: crop_pct 0.9, no
    # interpolation or mean/std keys, so timm 0.4's defaults (data/config.py L35-40): bicubic, ImageNet mean/std
    "convmlp": {"official": (_cfg(0.9), {})},
    # timm models/mlp_mixer.py _cfg (v1.0.28 L589-622): crop_pct 0.875, bicubic, mean = std = 0.5
    # (IMAGENET_INCEPTION_*); the *.goog_in21k files: the same with num_classes 21843.
    # Google's .npz: google-research/vision_transformer@c6de1e5 vit_jax/input_pipeline.py L212-214:
    # tf.image.resize(im, [224, 224]) (bilinear, no antialias, the whole image squashed), (im - 127.5) / 127.5
    "mixer": {"timm": (_cfg(0.875, HALF, HALF), {}),
              "timm_in21k": (_cfg(0.875, HALF, HALF, num_classes=21843), {}),
              "goog": (_cfg(1.0, HALF, HALF, "bilinear", "squash"), {}),
              "goog_in21k": (_cfg(1.0, HALF, HALF, "bilinear", "squash", num_classes=21843), {})},
}
# the layout names weights_convert reports (weights_convert/layouts/*.py) -> release; "native" is the family default
LAYOUT_RELEASES = {"SPACH sMLPNet": "spach", "official ViP": "official", "Google JAX MLP-Mixer": "goog"}


def releases(name: str) -> list[str]:
    """The release names of variant ``name``, its default first."""
    return list(RELEASES[variant(name).family])


def pretrained_cfg(name: str, release: str | None = None, img_size: int | None = None,
                   num_classes: int | None = None) -> dict[str, Any]:
    """timm's ``pretrained_cfg`` for variant ``name`` as ``release`` evaluates it (default: the family's first).

    ``img_size`` (a model built at another size) sets ``input_size``, keeping the crop ratio; ``num_classes``
    other than the release's drops the release's label names."""
    info = variant(name)
    family = RELEASES[info.family]
    release = release or next(iter(family))
    if release not in family:
        raise ValueError(f"{name}: unknown release {release!r}; known: {', '.join(family)}")
    settings, per_variant = family[release]
    cfg = {"architecture": name, "tag": release, **settings, **per_variant.get(name, {})}
    return _override(cfg, img_size, num_classes)


def _override(cfg: dict[str, Any], img_size: Any, num_classes: int | None) -> dict[str, Any]:
    if img_size is not None:
        h, w = img_size if isinstance(img_size, (tuple, list)) else (img_size, img_size)
        cfg["input_size"] = (3, int(h), int(w))
    if num_classes is not None and num_classes != cfg["num_classes"]:
        cfg["num_classes"], cfg["label_names"] = int(num_classes), LABEL_SETS.get(int(num_classes))
    return cfg


def model_cfg(name: str, layout: str | None = None, carried: dict[str, Any] | None = None, img_size: Any = None,
              num_classes: int | None = None) -> dict[str, Any]:
    """The ``pretrained_cfg`` of a model built as ``name``: the cfg its checkpoint carried, else that of the
    release detected from the checkpoint's ``layout`` and class count, else the variant's default; then the
    model's own ``img_size`` and ``num_classes`` (a fresh classifier has no label names)."""
    if carried is not None:
        cfg = {"architecture": name, "tag": "checkpoint", **{k: v for k, v in carried.items() if k != "architecture"}}
        return _override(cfg, img_size, num_classes)
    release = detected_release(name, layout, num_classes) if layout is not None else None
    return pretrained_cfg(name, release, img_size, num_classes)


def detected_release(name: str, layout: str, num_classes: int | None) -> str:
    """The release of a checkpoint that ``weights_convert`` read in ``layout`` with ``num_classes`` classes."""
    family = variant(name).family
    release = LAYOUT_RELEASES.get(layout, next(iter(RELEASES[family])))
    if num_classes == 21843 and f"{release}_in21k" in RELEASES[family]:
        release = f"{release}_in21k"
    return release if release in RELEASES[family] else next(iter(RELEASES[family]))


def scale_size(cfg: dict[str, Any]) -> int:
    """The size the shorter side is resized to before the centre crop: ``floor(size / crop_pct)``."""
    return math.floor(cfg["input_size"][-1] / cfg["crop_pct"])


def checkpoint_cfg(cfg: dict[str, Any], source: str = "pretrained_cfg") -> dict[str, Any]:
    """The cfg a fine-tuned checkpoint carries, checked and in plain types: how to write it, and how it is read.

    The format: a checkpoint whose top level is ``{"state_dict": {name: array}, "pretrained_cfg": cfg}``
    (``torch.save`` for .pth, ``jt.save`` for .pkl), where ``cfg`` holds only str, int, float, bool and lists:

        input_size     [3, H, W]            the size trained at (square)
        crop_pct       float in (0, 4]      1.0 when training images were resized to the input size, uncropped
        crop_mode      "center" | "squash"
        interpolation  "bilinear", "bicubic", ...  (Pillow's filter names)
        mean, std      [r, g, b] floats     the normalisation used in training
        num_classes    int
        label_names    [str] * num_classes  the class names, class-index order (or "imagenet-1k"/"imagenet-21k")
        architecture, tag (optional)        variant name, release name

    The safe reader (``weights_convert.read_checkpoint``) exposes it as ``Checkpoint.pretrained_cfg``;
    ``create_model`` sets ``model.pretrained_cfg`` from it, and ``tools/predict.py`` / ``validate.py`` use it.
    Raises ValueError naming ``source`` and the key when a value is missing or malformed.
    """
    def bad(key: str, why: str) -> ValueError:
        return ValueError(f"{source}: '{key}' {why}")

    if not isinstance(cfg, dict):
        raise ValueError(f"{source}: a {type(cfg).__name__}, not a dict")
    unknown = [str(k) for k in cfg if k not in KEYS]
    if unknown:
        raise ValueError(f"{source}: unknown keys {', '.join(unknown)[:200]} (known: {', '.join(KEYS)})")
    missing = [k for k in KEYS[2:] if k not in cfg]
    if missing:
        raise ValueError(f"{source}: missing {', '.join(missing)}")
    out: dict[str, Any] = {}
    for key in ("architecture", "tag"):
        if key in cfg:
            if not isinstance(cfg[key], str) or len(cfg[key]) > 200:
                raise bad(key, "must be a short string")
            out[key] = cfg[key]
    size = cfg["input_size"]
    if (not isinstance(size, (list, tuple)) or len(size) != 3 or not all(type(s) is int and 0 < s <= 8192 for s in size)
            or size[0] != 3 or size[1] != size[2]):
        raise bad("input_size", f"must be [3, H, H] with 0 < H <= 8192, not {str(size)[:80]}")
    out["input_size"] = tuple(size)
    crop = cfg["crop_pct"]
    if type(crop) not in (int, float) or not 0 < crop <= 4:
        raise bad("crop_pct", f"must be a number in (0, 4], not {str(crop)[:40]}")
    out["crop_pct"] = float(crop)
    if cfg["crop_mode"] not in CROP_MODES:
        raise bad("crop_mode", f"must be one of {', '.join(CROP_MODES)}")
    if cfg["interpolation"] not in INTERPOLATIONS:
        raise bad("interpolation", f"must be one of {', '.join(INTERPOLATIONS)}")
    if cfg["crop_mode"] == "squash" and cfg["interpolation"] != "bilinear":
        raise bad("interpolation", "must be 'bilinear' with crop_mode 'squash'")
    out["crop_mode"], out["interpolation"] = cfg["crop_mode"], cfg["interpolation"]
    for key in ("mean", "std"):
        v = cfg[key]
        if (not isinstance(v, (list, tuple)) or len(v) != 3 or not all(type(x) in (int, float) for x in v)
                or not all(math.isfinite(x) for x in v) or (key == "std" and not all(x > 0 for x in v))):
            raise bad(key, f"must be three finite numbers{' > 0' if key == 'std' else ''}")
        out[key] = tuple(float(x) for x in v)
    n = cfg["num_classes"]
    if type(n) is not int or n < 0:
        raise bad("num_classes", "must be an int >= 0")
    out["num_classes"] = n
    names = cfg["label_names"]
    if names is None or names in LABEL_SETS.values():
        out["label_names"] = names
    elif isinstance(names, (list, tuple)) and len(names) == n and all(isinstance(x, str) for x in names):
        out["label_names"] = list(names)
    else:
        raise bad("label_names", f"must be a list of {n} strings, a label set ({', '.join(LABEL_SETS.values())}) "
                                 f"or None")
    return out


def with_cfg(state: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    """The object a fine-tune saves: ``{"state_dict": state, "pretrained_cfg": cfg}`` with ``cfg`` checked and
    in plain lists (see ``checkpoint_cfg``), ready for ``torch.save`` or ``jt.save``."""
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in checkpoint_cfg(cfg).items()}
    return {"state_dict": state, "pretrained_cfg": plain}
