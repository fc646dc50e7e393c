"""Every published release of the zoo's variants, named timm's way ``variant.tag``: where the file is, what it is.

Framework-neutral facts only (no download code; that is ``mlp_zoo.release_files``). Each entry cites where each
fact was read. Sizes and full SHA-256 digests are unknown here (no file was downloaded when this table was
written); timm's file names carry the first 8 hex digits of the file's SHA-256 (torch.hub's ``check_hash``
convention), which the download verifies. A variant's first release in this table is its default
(``create_model(name, pretrained=True)``).
"""
from __future__ import annotations

from dataclasses import dataclass

from .registry import variant


@dataclass(frozen=True)
class Release:
    """One published file: ``urls`` are tried in order (the publisher's first, then older hosts); ``hf_hub_id``
    is timm's copy on the Hugging Face Hub (a different file: safetensors), tried after them; ``page`` is where
    a person downloads a file that has no direct URL. ``file`` is the published file name, also its path under
    ``MLPZOO_MIRROR`` (with the publisher's folder where two releases share a base name). ``cfg`` names its
    evaluation settings in ``pretrained_cfg.RELEASES``."""

    name: str
    cfg: str
    file: str
    urls: tuple[str, ...]
    source: str
    hf_hub_id: str | None = None
    page: str | None = None
    sha256: str | None = None  # the full hex digest, or the 8-hex prefix timm's file names carry
    size: int | None = None
    unconfirmed: str = ""

    @property
    def variant(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.split(".", 1)[1]


_SPACH = "https://github.com/microsoft/SPACH/releases/download/v1.0/"
_CONVMLP = "https://shi-labs.com/projects/convmlp/checkpoints/"
_CONVMLP_OLD = "http://ix.cs.uoregon.edu/~alih/conv-mlp/checkpoints/"
_TIMM = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-vitjx/"
_GOOG = "https://storage.googleapis.com/mixer_models/"
_SPACH_SRC = "microsoft/SPACH README.md, table 'Main Results on ImageNet with Pretrained Models' (sMLPNet rows)"
_CONVMLP_SRC = ("SHI-Labs/Convolutional-MLPs src/convmlp.py `model_urls` and README.md results table (the "
                "ix.cs.uoregon.edu URLs, e.g. in the copy of commit 258f0df); shi-labs.com: the project's later host")
_CONVMLP_NOTE = ("the shi-labs.com URL was read in a downstream copy of convmlp.py, not in the official repository "
                 "(whose files read here name ix.cs.uoregon.edu, tried next)")
_TIMM_SRC = ("huggingface/pytorch-image-models timm/models/mlp_mixer.py `default_cfgs` (v1.0.x): url=, "
             "hf_hub_id='timm/'; the 8 hex digits of each file name are its SHA-256 prefix")
_GOOG_SRC = ("google-research/vision_transformer README.md 'Available Mixer models' (gs://mixer_models/imagenet1k/ "
             "= pre-trained on ImageNet, imagenet21k/ = on ImageNet-21k) and vit_jax checkpoint shortcuts "
             "'B-i1k/16': gs://mixer_models/imagenet1k/Mixer-B_16.npz ...; served over HTTPS by storage.googleapis.com")
_VIP_SRC = "Andrew-Qibin/VisionPermutator README.md, table 'Comparison with Recent MLP-like Models', Download column"
_VIP_NOTE = ("published on Google Drive only (a web page, not a direct download) under a name not confirmed here: "
             "download it from the page and put it at the cache path, or serve it as this file name from MLPZOO_MIRROR")


def _timm(name: str, arch_tag: str, file: str, digest: str) -> Release:
    return Release(name, "timm_in21k" if name.endswith("in21k") else "timm", file, (_TIMM + file,), _TIMM_SRC,
                   hf_hub_id=f"timm/{arch_tag}", sha256=digest)


def _goog(name: str, folder: str, file: str) -> Release:
    return Release(name, "goog_in21k" if folder == "imagenet21k" else "goog", f"{folder}/{file}",
                   (f"{_GOOG}{folder}/{file}",), _GOOG_SRC)


def _vip(name: str, drive_id: str) -> Release:
    return Release(name, "official", f"{name.split('.')[0]}.pth", (), _VIP_SRC,
                   page=f"https://drive.google.com/file/d/{drive_id}/view?usp=sharing", unconfirmed=_VIP_NOTE)


PUBLISHED: dict[str, Release] = {r.name: r for r in (
    Release("smlpnet_s.spach_in1k", "spach", "smlp_s.pth", (_SPACH + "smlp_s.pth",), _SPACH_SRC),
    Release("smlpnet_b.spach_in1k", "spach", "smlp_b.pth", (_SPACH + "smlp_b.pth",), _SPACH_SRC),
    *(Release(f"convmlp_{s}.in1k", "official", f"convmlp_{s}_imagenet.pth",
              (f"{_CONVMLP}convmlp_{s}_imagenet.pth", f"{_CONVMLP_OLD}convmlp_{s}_imagenet.pth"), _CONVMLP_SRC,
              unconfirmed=_CONVMLP_NOTE)
      for s in "sml"),
    _vip("vip_s7.in1k", "1cX6eauDrsGsLSZnqsX7cl0oiKX8Dzv5z"),
    _vip("vip_m7.in1k", "15y5WMypthpbBFdc01E3mJCZit7q0Yn8m"),
    _vip("vip_l7.in1k", "14F5IXGXmB_3jrwK33Efae-WEb5D_G85c"),
    _timm("mixer_b16.goog_in21k_ft_in1k", "mixer_b16_224.goog_in21k_ft_in1k", "jx_mixer_b16_224-76587d61.pth",
          "76587d61"),
    _timm("mixer_b16.goog_in21k", "mixer_b16_224.goog_in21k", "jx_mixer_b16_224_in21k-617b3de2.pth", "617b3de2"),
    _timm("mixer_l16.goog_in21k_ft_in1k", "mixer_l16_224.goog_in21k_ft_in1k", "jx_mixer_l16_224-92f9adc4.pth",
          "92f9adc4"),
    _timm("mixer_l16.goog_in21k", "mixer_l16_224.goog_in21k", "jx_mixer_l16_224_in21k-846aa33c.pth", "846aa33c"),
    _goog("mixer_b16.goog_in1k_jax", "imagenet1k", "Mixer-B_16.npz"),
    _goog("mixer_b16.goog_in21k_jax", "imagenet21k", "Mixer-B_16.npz"),
    _goog("mixer_l16.goog_in1k_jax", "imagenet1k", "Mixer-L_16.npz"),
    _goog("mixer_l16.goog_in21k_jax", "imagenet21k", "Mixer-L_16.npz"),
)}


def published(name: str) -> list[Release]:
    """The releases of variant ``name``, its default first (none for a variant never published)."""
    variant(name)  # an unknown variant raises KeyError listing the known ones
    return [r for r in PUBLISHED.values() if r.variant == name]


def release(name: str) -> Release:
    """The release ``variant.tag``, or the default release of variant ``name``; an unknown tag or a variant
    without a release raises ValueError naming what exists."""
    if name in PUBLISHED:
        return PUBLISHED[name]
    arch, _, tag = name.partition(".")
    options = published(arch)
    if not options:
        with_releases = sorted({r.variant for r in PUBLISHED.values()})
        raise ValueError(f"{arch} has no published release (variants with one: {', '.join(with_releases)}); "
                         f"give a checkpoint path instead")
    if tag:
        raise ValueError(f"{arch}: no release tagged {tag!r}; published: {', '.join(r.name for r in options)}")
    return options[0]

