"""A model's parameters as one flat float32 vector, the form the store
keeps and workers exchange: torch.nn.utils.parameters_to_vector's order
(model.parameters(), each tensor flattened row-major)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spirtd.errors import ConfigError

__all__ = [
    "flatten_gradients",
    "flatten_parameters",
    "load_flat_parameters",
    "num_parameters",
    "parameter_layout",
]


def parameter_layout(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """(name, shape) of each parameter, in the flat vector's order. The
    names are the model's state_dict keys (the models here have no
    buffers), so the vector can be cut back into a state dict."""
    return [(name, tuple(p.shape)) for name, p in model.named_parameters()]


def num_parameters(model: nn.Module) -> int:
    """The length of the flat vector."""
    return sum(p.numel() for p in model.parameters())


def flatten_parameters(model: nn.Module) -> np.ndarray:
    """A new float32 vector of every parameter."""
    with torch.no_grad():
        flat = nn.utils.parameters_to_vector(model.parameters())
    return flat.detach().to(torch.float32).cpu().numpy().copy()


def load_flat_parameters(model: nn.Module, vector: np.ndarray) -> None:
    """Sets every parameter from a flat vector in parameter_layout's order,
    copying it (the model does not keep a reference to `vector`). A vector
    of another length or shape, or of a non-float dtype, is a ConfigError;
    nothing is changed then."""
    array = np.asarray(vector)
    expected = num_parameters(model)
    if array.ndim != 1 or array.shape[0] != expected:
        raise ConfigError(
            f"a flat parameter vector of shape {array.shape} does not fit this model, "
            f"which has {expected} parameters"
        )
    if array.dtype.kind != "f":
        raise ConfigError(f"a flat parameter vector must hold floats, got dtype {array.dtype}")
    contiguous = np.ascontiguousarray(array, dtype=np.float32)
    if not contiguous.flags.writeable:  # e.g. bytes from the store; torch wants writable memory
        contiguous = contiguous.copy()
    tensor = torch.from_numpy(contiguous)
    offset = 0
    with torch.no_grad():
        # Copied into each parameter's own storage (vector_to_parameters
        # would make the parameters views of the caller's array).
        for p in model.parameters():
            p.copy_(tensor[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def flatten_gradients(model: nn.Module) -> np.ndarray:
    """A new float32 vector of every parameter's gradient, in the same
    order; a parameter without a gradient (unused by the last backward
    pass) contributes zeros."""
    parts = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1)
        for p in model.parameters()
    ]
    if not parts:
        return np.zeros(0, dtype=np.float32)
    return torch.cat(parts).to(torch.float32).cpu().numpy().copy()
