"""Number formats at the bit level: read and write the raw bit pattern of one tensor element.

Every fault model works on the *stored* bits of an element, as an unsigned integer of the
format's width: IEEE-754 binary32 (fp32), binary16 (fp16), bfloat16 (bf16: the upper half of
a binary32), the stored integer of an int8 / uint8 quantized tensor, and int64 graph ids.
Reading goes through an integer view of the tensor's storage (no arithmetic, so no rounding),
writing stores the new pattern in place; the old pattern is kept to restore the element exactly.
"""

from __future__ import annotations

import torch

#: faultlab's format names -> the torch dtype a model runs in.
TORCH_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}

#: torch dtype -> (integer dtype of the same width, width in bits).
_RAW: dict[torch.dtype, tuple[torch.dtype, int]] = {
    torch.float32: (torch.int32, 32),
    torch.float16: (torch.int16, 16),
    torch.bfloat16: (torch.int16, 16),
    torch.int8: (torch.int8, 8),
    torch.uint8: (torch.uint8, 8),
    torch.int16: (torch.int16, 16),
    torch.int32: (torch.int32, 32),
    torch.int64: (torch.int64, 64),
}


def bit_width(dtype: torch.dtype) -> int:
    """Bits of one element of ``dtype``."""
    if dtype not in _RAW:
        raise TypeError(f"no bit-level access to dtype {dtype}")
    return _RAW[dtype][1]


def raw_view(tensor: torch.Tensor) -> torch.Tensor:
    """A flat integer view of ``tensor``'s storage (writes go to the tensor)."""
    if not tensor.is_contiguous():
        raise ValueError("bit-level access needs a contiguous tensor")
    int_dtype, _ = _RAW[tensor.dtype]
    flat = tensor.reshape(-1)
    return flat if flat.dtype == int_dtype else flat.view(int_dtype)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two tensors hold the same bit patterns element by element (``-0.0`` is not
    ``0.0`` here, as a reciprocal downstream would tell); any strides."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype not in _RAW:
        return bool(torch.equal(a, b))
    int_dtype = _RAW[a.dtype][0]
    return bool(torch.equal(a.view(int_dtype), b.view(int_dtype)))


def to_unsigned(value: int, width: int) -> int:
    """Two's-complement signed integer -> its unsigned bit pattern."""
    return value & ((1 << width) - 1)


def to_signed(pattern: int, width: int) -> int:
    """Unsigned bit pattern -> the signed integer torch stores."""
    pattern &= (1 << width) - 1
    return pattern - (1 << width) if pattern >> (width - 1) else pattern


def read_bits(raw: torch.Tensor, index: int, width: int, signed: bool = True) -> int:
    """Unsigned bit pattern of element ``index`` of a raw view."""
    value = int(raw[index].item())
    return to_unsigned(value, width) if signed else value


def write_bits(
    raw: torch.Tensor, index: int, pattern: int, width: int, signed: bool = True
) -> None:
    """Stores the unsigned bit pattern ``pattern`` at ``index`` of a raw view."""
    raw[index] = to_signed(pattern, width) if signed else pattern & ((1 << width) - 1)


def is_signed(dtype: torch.dtype) -> bool:
    return dtype != torch.uint8


def float_to_bits(value: float, dtype: torch.dtype) -> int:
    """Unsigned bit pattern of ``value`` rounded to a float ``dtype``."""
    t = torch.tensor([value], dtype=dtype)
    return read_bits(raw_view(t), 0, bit_width(dtype))


def bits_to_float(pattern: int, dtype: torch.dtype) -> float:
    """The float ``dtype`` value whose bit pattern is ``pattern``."""
    t = torch.zeros(1, dtype=dtype)
    write_bits(raw_view(t), 0, pattern, bit_width(dtype))
    return float(t.item())
