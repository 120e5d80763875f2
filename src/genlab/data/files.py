"""Read a data set from a file or folder: .npy, .npz, .csv/.tsv/.txt, MNIST IDX, a folder of images.

Every reader returns ``(X, y)``: ``X`` is ``(n, d)`` vectors or ``(n, c, h, w)`` images, uint8 when the
file holds bytes (IDX, images, uint8 arrays) and float32 otherwise; ``y`` is int64 ``(n,)`` or None.
Problems raise :class:`~genlab.errors.DataError` naming the file and the place and saying how to fix it.
"""

from __future__ import annotations

import csv
import gzip
import math
import os
import tokenize
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._validation import row_blocks
from ..errors import DataError

# Compressed data (a gzipped IDX file, a member of a .npz archive) is never inflated beyond this many
# bytes, nor beyond what its header declares, so a "gzip bomb" fails fast instead of eating memory.
MAX_DECOMPRESSED_BYTES = 2 * 1024**3
_FLOAT32_MAX = np.finfo(np.float32).max  # a float32 scalar, so float16 data compares in float32 too

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
# An image folder whose pixels (uint8) exceed this many bytes is decoded a batch at a time while training
# (:class:`ImageFiles`) instead of into memory when it is read.
STREAM_IMAGES_ABOVE = 2**30
_IMAGE_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr")  # 8-bit modes Pillow converts to L or RGB
SUPPORTED_FORMATS = (
    ".npy, .npz, .csv/.tsv/.txt, MNIST IDX (*-images-idx3-ubyte[.gz]) "
    "and folders of PNG/JPEG/BMP/GIF images (one sub-folder per class)"
)
_DATA_KEYS = ("X", "x", "data", "images", "features")
_LABEL_KEYS = ("y", "labels", "targets", "target")
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801  # ubyte, 3 dims / ubyte, 1 dim


def read_path(
    path: str | os.PathLike, *, label_column: str | int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read the file or folder at ``path`` (which must exist), dispatching on its kind."""
    path = Path(path)
    name = path.name.lower()
    is_text = path.is_file() and name.endswith(_TEXT_SUFFIXES)
    if label_column is not None and not is_text:
        raise DataError(f"label_column only applies to .csv/.tsv/.txt files, not to {path}; leave it unset.")
    if path.is_dir():
        return read_image_folder(path)
    if name.endswith(".npy"):
        return _finish(path, _array_from(path, _open_npy(path)), None)
    if name.endswith(".npz"):
        return read_npz(path)
    if is_text:
        return read_text_table(path, label_column=label_column)
    if "idx1-ubyte" in name:
        raise DataError(f"{path} is an IDX labels file: pass the images file (*-images-idx3-ubyte) instead.")
    if "idx3-ubyte" in name:
        return read_idx(path)
    raise DataError(f"cannot read {path}: unsupported file type. Supported: {SUPPORTED_FORMATS}.")


# --- arrays: .npy / .npz ---------------------------------------------------------------------------


def _open_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise DataError(f"{path} is not a .npy file (no NumPy header): write it with np.save.")
        f.seek(0)
        try:
            _check_npy_header(f, path.stat().st_size, str(path))
        except ValueError as err:
            raise DataError(f"cannot read {path} as a .npy array ({err}); write it again with np.save.") from err
    try:
        # memory-mapped, so a file larger than RAM can still be trained on; never unpickle
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        hint = "Save a numeric array, e.g. np.save(path, np.asarray(X, dtype=np.float32))"
        if "pickle" in str(err) or "object" in str(err).lower():
            hint = "It holds Python objects, which need pickle; genlab never unpickles. " + hint
        raise DataError(f"cannot read {path} as a .npy array ({err}). {hint}.") from err


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Data under X/x/data/images/features (or the only non-label array), labels under y/labels/targets/target."""
    try:
        # our own handle: np.load leaks its file when the zip is corrupt
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
            keys = list(archive.files)
            data_key = next((k for k in _DATA_KEYS if k in keys), None)
            label_key = next((k for k in _LABEL_KEYS if k in keys), None)
            if data_key is None:
                others = [k for k in keys if k != label_key]
                if len(others) != 1:
                    raise DataError(
                        f"{path} holds arrays {keys or '(none)'}: cannot tell which one is the data. "
                        "Save it under the key 'X' (labels, if any, under 'y')."
                    )
                data_key = others[0]
            X = _npz_member(path, archive, data_key)
            labels = None if label_key is None else _npz_member(path, archive, label_key)
    except DataError:
        raise
    # NotImplementedError / RuntimeError: zipfile's words for an unknown compression method / an encrypted member
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError) as err:
        raise DataError(f"cannot read {path} as a .npz archive of numeric arrays, without pickle ({err}).") from err
    where = f"{path}['{data_key}']"
    X = _array_from(path, X, where=where)
    y = None if labels is None else _labels_from(path, labels, len(X), where=f"{path}['{label_key}']")
    return _finish(path, X, y, where=where)


def _npz_member(path: Path, archive, key: str) -> np.ndarray:
    """One array of an open .npz, read only after its sizes are checked: never inflated past the cap, and
    never allocated past the bytes the member holds (NumPy allocates what the header declares before reading)."""
    name = key + ".npy" if key + ".npy" in archive.zip.namelist() else key
    info = archive.zip.getinfo(name)
    where = f"{path}['{key}']"
    if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:  # np.savez: stored, so it can be mapped
        with archive.zip.open(info) as member:
            _check_npy_header(member, info.file_size, where)
        return _map_stored_member(path, info, where)
    if info.file_size > MAX_DECOMPRESSED_BYTES:
        raise DataError(
            f"{where} inflates to {info.file_size} bytes, more than the limit of {MAX_DECOMPRESSED_BYTES}: refusing to read it."
        )
    with archive.zip.open(info) as member:
        _check_npy_header(member, info.file_size, where)
    return archive[key]


def _map_stored_member(path: Path, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """An uncompressed (stored) .npy member of a .npz, memory-mapped in place like a .npy file: its bytes
    start after the zip's local header (30 bytes, the name, the extra field) and the .npy header."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise DataError(f"{where}: the archive's local header is damaged; write the file again with np.savez.")
        start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
        f.seek(start)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f, max_header_size=2**16)
        offset = f.tell()
    if dtype.hasobject:
        raise DataError(f"cannot read {path} as a .npz archive of numeric arrays, without pickle ({where} holds Python objects).")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _check_npy_header(f, available: int, where: str) -> None:
    """Refuse a .npy stream whose header declares more bytes than the ``available`` ones (NumPy would
    allocate or map them before noticing); ValueError when there is no valid header."""
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    try:
        shape, _, dtype = read_header(f)
    except (TypeError, SyntaxError, tokenize.TokenError) as err:  # NumPy's parser lets these through for mangled headers
        raise ValueError(f"unreadable .npy header ({type(err).__name__}: {err})") from err
    # the second test: NumPy's int64 size arithmetic would overflow (possible when some other dimension is 0)
    if math.prod(shape) * dtype.itemsize > available or math.prod(d for d in shape if d) * dtype.itemsize >= 2**63:
        raise DataError(
            f"{where} declares shape {shape} of {dtype} but holds only {available} bytes: "
            "the file is truncated or corrupt; write it again with np.save/np.savez."
        )


def _array_from(path: Path, X: np.ndarray, *, where: str | None = None) -> np.ndarray:
    """Check the dtype and bring the shape to (n, d) or (n, c, h, w); the dtype is left to :func:`_finish`."""
    where = where or str(path)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{where} has dtype {X.dtype}, not numbers: store numeric data (e.g. float32 or uint8).")
    if X.ndim == 0:
        raise DataError(f"{where} is a single number (0-D): store one row per sample.")
    if X.ndim == 1:
        n = X.shape[0]
        raise DataError(
            f"{where} is a 1-D array of {n} values: reshape to ({n}, 1) for {n} one-feature samples "
            f"or (1, {n}) for a single sample of {n} features."
        )
    if X.ndim == 3:
        X = X[:, None]  # (n, h, w) -> (n, 1, h, w): grayscale images
    elif X.ndim == 4 and X.shape[1] not in (1, 3, 4) and X.shape[3] in (1, 3, 4):
        X = X.transpose(0, 3, 1, 2)  # channels-last (n, h, w, c) -> (n, c, h, w), a view
    elif X.ndim > 4:
        raise DataError(f"{where} has shape {X.shape}: expected (n, d) vectors or (n, h, w) / (n, c, h, w) images.")
    if X.shape[0] == 0 or X.size == 0:
        raise DataError(f"{where} has shape {X.shape}: no data. Store at least one non-empty sample.")
    return X


def _labels_from(path: Path, labels: np.ndarray, n: int, *, where: str) -> np.ndarray:
    """Labels as int64 (n,): integer class ids kept, names (strings) mapped to 0..C-1 in sorted order."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]  # (n, 1) -> (n,)
    if labels.ndim != 1:
        raise DataError(f"{where} has shape {labels.shape}: labels must be one class per sample, shape (n,).")
    if len(labels) != n:
        raise DataError(f"{where} has {len(labels)} labels but the data has {n} samples: they must match one to one.")
    if labels.dtype.kind in "US":
        return np.unique(labels, return_inverse=True)[1].astype(np.int64)
    if labels.dtype.kind not in "biuf":
        raise DataError(f"{where} has dtype {labels.dtype}: labels must be integers or strings.")
    if labels.dtype.kind == "f":
        # beyond 2**53 a float no longer holds an exact integer (and may not fit in int64)
        bad = np.flatnonzero(~(np.abs(labels) <= 2.0**53) | (labels != np.round(labels)))
        if bad.size:
            raise DataError(
                f"{where}[{bad[0]}] = {labels[bad[0]]} is not an integer class id; labels must be whole numbers."
            )
    return labels.astype(np.int64)


def _finish(
    path: Path, X: np.ndarray, y: np.ndarray | None, *, where: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Check every value is finite in float32, in chunks so a memory-mapped array is never loaded whole;
    uint8 stays uint8, other numbers become float32."""
    if X.dtype.kind == "f":
        for start, block in row_blocks(X):
            bad = np.argwhere(~(np.abs(block) <= _FLOAT32_MAX))  # NaN, ±inf, or too large for float32
            if bad.size:
                index = (start + int(bad[0][0]), *(int(i) for i in bad[0][1:]))
                raise DataError(
                    f"{where or path} has a non-finite value {block[tuple(bad[0])]} at sample {index[0]} "
                    f"(index {list(index)}): remove or impute NaN/inf values (and rescale any beyond ±3.4e38, "
                    "the float32 range)."
                )
    return (X if X.dtype in (np.uint8, np.float32) else X.astype(np.float32)), y


# --- text tables: .csv / .tsv / .txt ---------------------------------------------------------------


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) for each non-blank, non-'#' line, with the delimiter sniffed from the first one."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            lines = [
                (i, line)
                for i, line in enumerate(f.read().splitlines(), start=1)
                if line.strip() and not line.lstrip().startswith("#")
            ]
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err}); save it as a UTF-8 .csv file.") from err
    if not lines:
        raise DataError(
            f"{path} is empty: expected one row per sample of comma-, tab-, semicolon- or space-separated numbers."
        )
    first = lines[0][1]
    delimiter = next((d for d in ("\t", ";", ",") if d in first), None)
    if delimiter is None:  # whitespace-separated
        return [(i, line.split()) for i, line in lines]
    rows = csv.reader((line for _, line in lines), delimiter=delimiter, skipinitialspace=True)
    return [(i, [field.strip() for field in row]) for (i, _), row in zip(lines, rows)]


def read_text_table(path: Path, *, label_column: str | int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """A numeric table, one sample per row; optional header row; ``label_column`` (index or name) becomes y."""
    rows = _split_lines(path)
    first = rows[0][1]
    text_cols = {j for j, field in enumerate(first) if not _is_number(field)}
    # a first row is a header when it has text where the next row has numbers (text labels alone are not)
    later_text = {j for j, field in enumerate(rows[1][1]) if not _is_number(field)} if len(rows) > 1 else set()
    has_header = isinstance(label_column, str) or bool(text_cols - later_text) or (len(rows) == 1 and bool(text_cols))
    header = first if has_header else None
    body = rows[1:] if has_header else rows
    if not body:
        raise DataError(f"{path} has a header row but no data rows.")
    width = len(first)
    for line, fields in body:
        if len(fields) != width:
            raise DataError(
                f"{path}, line {line}: {len(fields)} fields but line {rows[0][0]} has {width}; every row needs "
                "the same number of fields (look for a missing or extra delimiter)."
            )
    label_index = _label_index(path, label_column, header, width)
    feature_cols = [j for j in range(width) if j != label_index]
    if not feature_cols:
        raise DataError(f"{path} has only the label column: no features left to learn from.")
    strings = np.array([fields for _, fields in body], dtype=str)  # (n, width)
    lines = [line for line, _ in body]

    def place(i: int, j: int) -> str:
        name = f" ('{header[j]}')" if header is not None else ""
        return f"{path}, line {lines[i]}, column {j + 1}{name}"

    try:
        X = strings[:, feature_cols].astype(np.float64)
    except ValueError:  # parse field by field, to report the first offending one exactly
        X = np.empty((len(body), len(feature_cols)))
        for i, (_, fields) in enumerate(body):
            for k, j in enumerate(feature_cols):
                try:
                    X[i, k] = float(fields[j])
                except ValueError:
                    what = "is empty" if not fields[j] else f"is not a number: {fields[j]!r}"
                    raise DataError(
                        f"{place(i, j)} {what}. Every field must be numeric (fill in or drop the row)."
                    ) from None
    bad = np.argwhere(~(np.abs(X) <= _FLOAT32_MAX))  # NaN, ±inf, or too large for float32
    if bad.size:
        i, k = (int(v) for v in bad[0])
        raise DataError(
            f"{place(i, feature_cols[k])} is {body[i][1][feature_cols[k]]!r}, not finite in float32: "
            "remove or impute it (or rescale values beyond ±3.4e38)."
        )
    y = None
    if label_index is not None:
        column = strings[:, label_index]
        for i, text in enumerate(column):
            if not text:
                raise DataError(f"{place(i, label_index)}: the label is empty; every row needs a label.")
        numeric = all(_is_number(text) for text in column)
        y = _labels_from(
            path,
            np.array([float(t) for t in column]) if numeric else column,
            len(X),
            where=f"{path}, label column {label_index + 1}",
        )
    return X.astype(np.float32), y


def _label_index(path: Path, label_column: str | int | None, header: list[str] | None, width: int) -> int | None:
    if label_column is None:
        return None
    if isinstance(label_column, str):
        if header is None or label_column not in header:
            names = ", ".join(header) if header else "(no header row)"
            raise DataError(f"{path} has no column named {label_column!r}; its columns are: {names}.")
        return header.index(label_column)
    if isinstance(label_column, bool) or not isinstance(label_column, (int, np.integer)):
        raise DataError(f"label_column must be a column index (int) or a header name (str), got {label_column!r}.")
    if not -width <= label_column < width:
        raise DataError(f"label_column={label_column} is out of range: {path} has {width} columns.")
    return int(label_column) % width


# --- MNIST IDX ------------------------------------------------------------------------------------


def _read_idx_payload(path: Path, magic: int, ndim: int) -> tuple[tuple[int, ...], np.ndarray]:
    """Header dims and the uint8 payload of an IDX file (plain: memory-mapped; gzip: inflated up to a cap)."""
    gz = path.name.lower().endswith(".gz")
    kind = "images" if ndim == 3 else "labels"
    try:
        with gzip.open(path, "rb") if gz else open(path, "rb") as f:
            head = f.read(4 + 4 * ndim)
            if len(head) < 4 or int.from_bytes(head[:4], "big") != magic:
                found = f"0x{int.from_bytes(head[:4], 'big'):08x}" if len(head) >= 4 else "nothing"
                raise DataError(f"{path} is not an IDX {kind} file: magic number {found}, expected 0x{magic:08x}.")
            if len(head) < 4 + 4 * ndim:
                raise DataError(f"{path} is truncated: its header should hold {ndim} dimensions.")
            dims = tuple(int.from_bytes(head[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
            if 0 in dims:
                raise DataError(f"{path} declares dimensions {dims}: no data.")
            size = math.prod(dims)  # exact: NumPy's int64 product can wrap around for forged headers
            if not gz:
                actual = path.stat().st_size - len(head)
                if actual != size:
                    raise DataError(
                        f"{path} holds {actual} data bytes but its header declares {dims} = {size}: "
                        "the file is truncated or corrupt; download it again."
                    )
                return dims, np.memmap(path, dtype=np.uint8, mode="r", offset=len(head), shape=(size,))
            if size > MAX_DECOMPRESSED_BYTES:
                raise DataError(
                    f"{path} declares {size} bytes of data, more than the limit of {MAX_DECOMPRESSED_BYTES} "
                    "for gzipped files; decompress it first (gunzip) to read it memory-mapped."
                )
            payload = np.empty(size, dtype=np.uint8)
            view, filled = memoryview(payload), 0
            while filled < size:
                got = f.readinto(view[filled : filled + 2**20])
                if not got:
                    raise DataError(
                        f"{path} is truncated: its header declares {size} data bytes but it inflates to {filled}; "
                        "download it again."
                    )
                filled += got
            if f.read(1):  # anything beyond the declared size: corrupt, or a decompression bomb
                raise DataError(
                    f"{path} inflates to more than the {size} bytes its header declares: refusing to read it."
                )
            return dims, payload
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read {path} ({type(err).__name__}: {err}); is it a valid IDX file?") from err


def read_idx(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """MNIST IDX images as uint8 (n, 1, h, w), with labels from the ``*-labels-idx1-ubyte[.gz]`` beside it if any."""
    (n, h, w), pixels = _read_idx_payload(path, _IDX_IMAGES, 3)
    X = pixels.reshape(n, 1, h, w)  # (n*h*w,) -> (n, 1, h, w)
    base = path.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    if base == path.name:
        return X, None
    stem = base[:-3] if base.lower().endswith(".gz") else base
    candidates = [path.with_name(base)] + [path.with_name(c) for c in (stem, stem + ".gz") if c != base]
    label_path = next((c for c in candidates if c.is_file()), None)
    if label_path is None:
        return X, None
    (n_labels,), labels = _read_idx_payload(label_path, _IDX_LABELS, 1)
    if n_labels != n:
        raise DataError(f"{label_path} has {n_labels} labels but {path} has {n} images: they must match one to one.")
    return X, np.asarray(labels, dtype=np.int64)


# --- folders of images -----------------------------------------------------------------------------


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def read_image_folder(folder: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Images as uint8 (n, c, h, w); one sub-folder per class (sorted names -> 0..C-1) gives labels.

    Grayscale (c=1) when every image is grayscale, else RGB (c=3; alpha is dropped).
    """
    entries = _visible(folder)
    classes = [p for p in entries if p.is_dir()]
    if classes:
        loose = next((p for p in entries if not p.is_dir()), None)
        if loose is not None:
            raise DataError(
                f"{loose}: {folder} has class sub-folders, so every image must be inside one; move or delete this file."
            )
        files, y = [], []
        for label, sub in enumerate(classes):
            inside = _visible(sub)
            if not inside:
                raise DataError(f"class folder {sub} has no images: add some or remove the folder.")
            files += inside
            y += [label] * len(inside)
        labels = np.asarray(y, dtype=np.int64)
    else:
        files, labels = entries, None
    if not files:
        raise DataError(f"{folder} is empty: put images in it (or one sub-folder of images per class).")
    size, channels = _probe_images(files)
    if len(files) * channels * size[0] * size[1] > STREAM_IMAGES_ABOVE:
        return ImageFiles(files, channels, size), labels  # decoded a batch at a time, while training
    images = []
    for p in files:  # sizes and modes were checked from the headers
        images.append(_read_image(p))
    if all(pixels.ndim == 2 for pixels in images):
        return np.stack(images)[:, None], labels  # (n, h, w) -> (n, 1, h, w)
    # grayscale -> RGB by repeating the channel, exactly what Pillow's convert("RGB") does
    rgb = [np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels for pixels in images]
    return np.stack(rgb).transpose(0, 3, 1, 2), labels  # (n, h, w, c) -> (n, c, h, w)


def _probe_images(files: list[Path]) -> tuple[tuple[int, int], int]:
    """(height, width) and channels (1: every image grayscale, else 3) from each file's header alone, checking
    that every file is an image of the first one's size; the pixels are not decoded here."""
    size, gray = None, True
    for p in files:
        shape, mode = _with_image(p, lambda img: ((img.height, img.width), img.mode))
        if size is None:
            size = shape
        elif shape != size:
            raise DataError(f"{p} is {shape[1]}x{shape[0]} but {files[0]} is {size[1]}x{size[0]} (width x height): "
                            "all images must have the same size; resize them first.")
        gray = gray and mode in ("1", "L", "LA")
    return size, 1 if gray else 3


class ImageFiles:
    """A folder's images as a read-only uint8 array of shape (n, c, h, w) that decodes on demand:
    ``images[idx]`` decodes only those files, on a few threads, and returns them in ``idx``'s order, so a
    folder larger than memory trains a batch at a time (``np.asarray(images)`` decodes them all). Every
    header was checked when the folder was opened; a file whose pixels turn out unreadable, or that was
    replaced by one of another size, stops training with one line (its checkpoints are kept)."""

    dtype = np.dtype(np.uint8)
    ndim = 4
    genlab_streamed = True  # the estimators train on it a batch at a time instead of copying it

    def __init__(self, files: list[Path], channels: int, size: tuple[int, int]):
        self.files = list(files)
        self.shape = (len(self.files), channels, *size)
        self.nbytes = math.prod(self.shape)

    def __len__(self) -> int:
        return len(self.files)

    def _decode(self, p: Path) -> np.ndarray:
        from ..errors import DataChangedError

        try:
            pixels = _read_image(p)
        except DataError as err:
            raise DataChangedError(f"{err} (found while training: the folder's files must not change under a run)") from None
        if pixels.shape[:2] != self.shape[2:]:
            raise DataChangedError(f"{p} is now {pixels.shape[1]}x{pixels.shape[0]}, not {self.shape[3]}x{self.shape[2]}: the "
                                   "folder's images changed during training; restore them and resume.")
        if self.shape[1] == 1:
            return pixels[None]
        return (np.repeat(pixels[..., None], 3, axis=2) if pixels.ndim == 2 else pixels).transpose(2, 0, 1)

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):
            return self._decode(self.files[idx])
        picks = range(len(self))[idx] if isinstance(idx, slice) else np.asarray(idx, dtype=np.int64).reshape(-1)
        out = np.empty((len(picks), *self.shape[1:]), dtype=np.uint8)
        for i, pixels in enumerate(_decoder().map(self._decode, [self.files[j] for j in picks])):  # in order
            out[i] = pixels
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[:]
        return whole if dtype is None else whole.astype(dtype)


_POOL = None


def _decoder():
    """The threads that decode images (Pillow releases the GIL while it decodes)."""
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1), thread_name_prefix="genlab-decode")
    return _POOL


def _read_image(p: Path) -> np.ndarray:
    """One image file as uint8 (h, w) if grayscale, else (h, w, 3); GIFs give their first frame."""
    return _with_image(p, lambda img: np.asarray(img.convert("L" if img.mode in ("1", "L", "LA") else "RGB")))


def _with_image(p: Path, use):
    """``use(img)`` on the image file ``p`` opened by Pillow (only its header is read until ``use`` asks for the
    pixels); anything that is not an 8-bit PNG/JPEG/BMP/GIF, or that Pillow cannot read, is a DataError."""
    from PIL import Image, UnidentifiedImageError

    if p.is_dir() or p.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{p} is not an image file: an image folder may only hold PNG/JPEG/BMP/GIF files.")
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse those (possible decompression bombs) too
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p, formats=["PNG", "JPEG", "BMP", "GIF"]) as img:
                if img.mode not in _IMAGE_MODES:
                    raise DataError(f"{p} has pixel mode {img.mode} (e.g. 16-bit); save it as 8-bit grayscale or RGB.")
                return use(img)
    except DataError:
        raise
    # Pillow's words for a corrupt file: OSError and SyntaxError mostly, ValueError/TypeError/EOFError from some decoders
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, SyntaxError,
            ValueError, TypeError, EOFError) as err:
        raise DataError(f"{p} is not a readable PNG/JPEG/BMP/GIF image ({err}); re-export or remove it.") from err
