"""Region sizes as people write them: 4K, 2M, 1G, 1T.

``parse_size`` reads one size, ``parse_sizes`` a comma list with doubling
ranges ("1G,64G", "1G..256G"), ``format_size`` writes one back. The command
line, the experiment tables and the plots all use these, so a size reads
the same everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["MAX_SIZE", "format_ns", "format_ns_range", "format_size", "iter_sizes", "parse_size",
           "parse_sizes"]  # fmt: skip

#: suffix -> shift, largest first (format_size picks the largest exact one)
UNITS = (("T", 40), ("G", 30), ("M", 20), ("K", 10))
#: far beyond any address space simulated (x86-64 LA57 maps 2^56 bytes)
#: but small enough to catch a typo such as "1000000T"
MAX_SIZE = 1 << 50


def parse_size(text: str) -> int:
    """Bytes from "4K", "2M", "1G", "1T" or a plain number. Every unit is
    binary, in any case and spelled K, KB or KiB alike (1K = 1KB = 1KiB =
    1024 bytes); ValueError otherwise."""
    t = text.strip().lower()
    t = t.removesuffix("ib") if t.endswith("ib") else t.removesuffix("b")
    shift = {u.lower(): s for u, s in UNITS}.get(t[-1:], 0)
    if shift:
        t = t[:-1]
    try:
        n = int(t)
    except ValueError:
        raise ValueError(f"bad size {text!r}: use e.g. 4K, 2M, 1G, 1T (or 4KiB, 4KB)") from None
    if n <= 0:
        raise ValueError(f"size must be > 0, not {text!r}")
    if n << shift > MAX_SIZE:
        raise ValueError(f"size {text!r} is larger than {format_size(MAX_SIZE)}")
    return n << shift


def parse_sizes(text: str) -> list[int]:
    """A comma list of sizes and doubling ranges: "1G,64G", "1G..256G";
    duplicates dropped, first occurrence kept."""
    out: list[int] = []
    for part in text.split(","):
        if not part.strip():
            raise ValueError(f"empty item in {text!r}")
        lo, dots, hi = part.partition("..")
        if not dots:
            out.append(parse_size(part))
            continue
        a, b = parse_size(lo), parse_size(hi)
        if b < a:
            raise ValueError(f"range {part!r} runs backwards")
        steps = list(iter_sizes(a, b))
        if steps[-1] != b:
            raise ValueError(f"range {part!r} doubles from {lo} to {format_size(steps[-1])}, "
                             f"not to {hi}: give an end it reaches")  # fmt: skip
        out.extend(steps)
    return list(dict.fromkeys(out))


def iter_sizes(lo: int, hi: int) -> Iterator[int]:
    """lo, 2*lo, 4*lo, ... up to hi (inclusive): a size range."""
    n = lo
    while n <= hi:
        yield n
        n *= 2


def format_size(n: int) -> str:
    """1073741824 -> "1G", 4096 -> "4K", 3 << 29 -> "1536M"."""
    for unit, shift in UNITS:
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


#: time units, largest first: (name, ns per unit, decimals shown)
TIME_UNITS = (("s", 1e9, 3), ("ms", 1e6, 2), ("us", 1e3, 1), ("ns", 1.0, 0))


def _time_unit(ns: float) -> tuple[str, float, int]:
    return next((u for u in TIME_UNITS if abs(ns) >= u[1]), TIME_UNITS[-1])


def format_ns(ns: float) -> str:
    """A duration in the unit that fits it (s, ms, us, ns) with thousands
    separators: 2532423400.0 -> "2.532 s", 4800 -> "4.8 us"."""
    name, unit, places = _time_unit(ns)
    return f"{ns / unit:,.{places}f} {name}"


def format_ns_range(low: float, high: float) -> str:
    """Two durations in the unit that fits the larger: "1.294-4.952 s"."""
    name, unit, places = _time_unit(high)
    return f"{low / unit:,.{places}f}-{high / unit:,.{places}f} {name}"
