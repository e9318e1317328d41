"""Time-ordered train/val/test boundaries: the split contract. Never shuffles."""

from __future__ import annotations

from dataclasses import dataclass

from splineforecast.errors import ContractError, ErrorCode

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Row boundaries ``[start, stop)`` of each part, in time order."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def parts(self) -> dict[str, tuple[int, int]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    @property
    def n_rows(self) -> int:
        """Rows used by the three parts (rows after test are unused)."""
        return self.test[1]


def _rows(size: float, n: int, name: str) -> int:
    if size <= 0:
        raise ContractError(ErrorCode.CONFIG_ERROR, f"`data.split.{name}` ({size}) must be > 0")
    if size < 1:
        return int(round(size * n))
    if not float(size).is_integer():
        raise ContractError(
            ErrorCode.CONFIG_ERROR,
            f"`data.split.{name}` ({size}) must be a fraction below 1 or a whole row count",
        )
    return int(size)


def time_splits(n: int, train: float, val: float, test: float) -> Split:
    """Cut ``n`` time-ordered rows into train, val and test.

    Fractions (< 1) are of ``n``; with fractions summing to 1, test takes the remainder
    so no row is lost to rounding.

    Raises:
        ContractError: CONFIG_ERROR for sizes <= 0; INSUFFICIENT_DATA_ERROR when the
            parts need more rows than there are.
    """
    n_train, n_val, n_test = (_rows(s, n, k) for s, k in zip((train, val, test), PARTS, strict=True))
    if all(s < 1 for s in (train, val, test)) and abs(train + val + test - 1) < 1e-9:
        n_test = n - n_train - n_val
    if n_train + n_val + n_test > n:
        raise ContractError(
            ErrorCode.INSUFFICIENT_DATA_ERROR,
            f"data.split asks for {n_train} + {n_val} + {n_test} rows but the series has {n}",
        )
    if min(n_train, n_val, n_test) < 1:
        raise ContractError(
            ErrorCode.INSUFFICIENT_DATA_ERROR,
            f"data.split leaves an empty part (train {n_train}, val {n_val}, test {n_test} rows of {n})",
        )
    a, b = n_train, n_train + n_val
    return Split(train=(0, a), val=(a, b), test=(b, b + n_test))
