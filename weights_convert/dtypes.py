"""Element types by their torch names (as torch files and .safetensors headers give them), and how each
becomes numpy: directly, widened exactly to float32 (bfloat16, float8), or not at all (quantized)."""
from __future__ import annotations

import numpy as np

from .budget import BadData

NUMPY = {"float64": "f8", "float32": "f4", "float16": "f2", "int64": "i8", "int32": "i4", "int16": "i2",
         "int8": "i1", "uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8", "bool": "?",
         "complex64": "c8", "complex128": "c16"}
# numpy has no such type: read the raw bits, widen to float32 (every value is exactly representable)
WIDENED = {"bfloat16": "u2", "float8_e4m3fn": "u1", "float8_e5m2": "u1"}
QUANTIZED = ("qint8", "quint8", "qint32", "quint4x2", "quint2x4")
# other torch dtypes (float8 *fnuz, bit-packed, 4-bit ...) are named in a refusal
KNOWN = tuple(NUMPY) + tuple(WIDENED) + QUANTIZED + (
    "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2", "complex32", "bits8",
    "bits16", "bits1x8", "bits2x4", "bits4x2", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
    "int1", "int2", "int3", "int4", "int5", "int6", "int7")

# legacy storage classes (torch.FloatStorage ...) name their element type
STORAGE_TYPES = {"DoubleStorage": "float64", "FloatStorage": "float32", "HalfStorage": "float16",
                 "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
                 "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
                 "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128",
                 "QInt8Storage": "qint8", "QUInt8Storage": "quint8", "QInt32Storage": "qint32",
                 "QUInt4x2Storage": "quint4x2", "QUInt2x4Storage": "quint2x4", "UntypedStorage": "uint8"}

# .safetensors header names
SAFETENSORS = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
               "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "U16": "uint16", "U32": "uint32",
               "U64": "uint64", "BOOL": "bool", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
               "C64": "complex64"}


def _float8_table(exponent_bits: int, bias: int, finite_only: bool) -> np.ndarray:
    """float32 value of every byte of a float8 format, computed from its definition."""
    mantissa_bits = 7 - exponent_bits
    b = np.arange(256)
    sign = np.where(b >> 7, -1.0, 1.0)
    exp = (b >> mantissa_bits) & ((1 << exponent_bits) - 1)
    man = b & ((1 << mantissa_bits) - 1)
    frac = man / (1 << mantissa_bits)
    value = np.where(exp == 0, frac * 2.0 ** (1 - bias), (1 + frac) * 2.0 ** (exp - bias))
    top = (1 << exponent_bits) - 1
    if finite_only:  # e4m3fn: no infinities, only S.1111.111 is NaN
        value = np.where((exp == top) & (man == (1 << mantissa_bits) - 1), np.nan, value)
    else:  # e5m2: IEEE-like
        value = np.where(exp == top, np.where(man == 0, np.inf, np.nan), value)
    return (sign * value).astype(np.float32)


_FLOAT8 = {"float8_e4m3fn": _float8_table(4, 7, True), "float8_e5m2": _float8_table(5, 15, False)}


def raw_dtype(name: str, big_endian: bool = False) -> np.dtype:
    """The numpy type that holds the bits of torch type ``name``; BadData for types we do not convert."""
    if name in QUANTIZED:
        raise BadData(quantized_refusal(name))
    code = NUMPY.get(name) or WIDENED.get(name)
    if code is None:
        raise BadData(f"a tensor of element type {name}, which the converter does not support")
    dtype = np.dtype(code)
    return dtype.newbyteorder(">") if big_endian and dtype.itemsize > 1 else dtype


def quantized_refusal(name: str) -> str:
    return (f"a quantized ({name}) tensor, refused: its integers and scales have no exact float32 form "
            f"here; dequantize it before converting")


def output_itemsize(name: str) -> int:
    """Bytes per element once converted (widened types become float32)."""
    return 4 if name in WIDENED else np.dtype(NUMPY[name]).itemsize


def to_numpy(raw: np.ndarray, name: str) -> np.ndarray:
    """Raw bits of type ``name`` as a native-order numpy array, widening bfloat16 and float8 to float32."""
    if name == "bfloat16":
        bits = raw.astype(np.uint32)
        bits <<= np.uint32(16)  # in place: a 0-d array stays an array (a shift would return a scalar)
        return bits.view(np.float32)
    if name in _FLOAT8:
        return _FLOAT8[name][raw]
    return raw.astype(raw.dtype.newbyteorder("="), copy=False)


def widening_note(name: str) -> str | None:
    return f"converted {name} weights to float32" if name in WIDENED else None
